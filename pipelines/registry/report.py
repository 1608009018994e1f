"""The promotion report: one JSON document and its self-contained HTML rendering, logged
to MLflow as the artifacts of a run named `promote-v<version>` (refused attempts too)."""

from __future__ import annotations

import html
from typing import Any

from pipelines.config import get_settings

JSON_ARTIFACT, HTML_ARTIFACT = "promotion_report.json", "promotion_report.html"

_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
          "table{border-collapse:collapse;margin-bottom:1.5em}"
          "th,td{border:1px solid #bbb;padding:4px 10px;text-align:left;vertical-align:top}"
          "th{background:#eee}.pass{color:#17642b}.fail{color:#a11;font-weight:bold}")


def summary(gate: dict[str, Any]) -> str:
    """One line per check for an MLflow tag: `name=value (limit) PASS|FAIL; ...`."""
    parts = []
    for check in gate["checks"]:
        value = "" if check["value"] is None else f"={check['value']:+.4f}"
        limit = "" if check["limit"] is None else f" (limit {check['limit']:+.4f})"
        parts.append(f"{check['name']}{value}{limit} {'PASS' if check['passed'] else 'FAIL'}")
    skipped = len(gate["skipped_subgroups"])
    return "; ".join(parts) + (f"; {skipped} subgroups skipped" if skipped else "")


def render_html(report: dict[str, Any]) -> str:
    """The report as one HTML page with no external resources."""
    gate = report["gate"]
    about = [("Model", report["model_name"]), ("Challenger version", report["version"]),
             ("Champion version", report["previous_version"] or "none (first promotion)"),
             ("Outcome", report["outcome"]), ("Approver", report["approver"]),
             ("Reason", report["reason"]), ("At", report["at"]),
             ("Dataset version (test split)", report["dataset_version"] or "not scored"),
             ("Exams (positive)", f"{gate['exams']} ({gate['positives']})"),
             ("Bootstrap", ", ".join(f"{k} {v}" for k, v in report["policy"]["bootstrap"].items()))]
    checks = [[c["name"], _num(c["value"]), _num(c["limit"]),
               ("pass", "passed") if c["passed"] else ("fail", "FAILED"), c["detail"]]
              for c in gate["checks"]]
    check_rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{v}</td><td>{lim}</td><td class=\"{cls}\">{word}</td>"
        f"<td>{_e(d)}</td></tr>" for n, v, lim, (cls, word), d in checks)
    skipped_rows = "".join(f"<tr><td>{_e(s['name'])}</td><td>{s['exams']}</td>"
                           f"<td>{_e(s['reason'])}</td></tr>" for s in gate["skipped_subgroups"])
    metric_rows = "".join(f"<tr><td>{_e(k)}</td><td>{v:.4f}</td></tr>"
                          for k, v in gate["metrics"].items())
    compared = "".join(
        f"<tr><td>{_e(r['role'])}</td><td>{_e(r['model'])}</td><td>{r['auc']:.3f}</td>"
        f"<td>{r['auc_ci_low']:.3f} - {r['auc_ci_high']:.3f}</td><td>{_rate(r['sensitivity'])}</td>"
        f"<td>{_rate(r['specificity'])}</td><td>{_rate(r['operating_point'])}</td></tr>"
        for r in report.get("comparison") or [])
    title = f"Promotion report: {report['model_name']} version {report['version']}"
    return "".join([
        f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>",
        "<table>", *(f"<tr><th>{_e(k)}</th><td>{_e(str(v))}</td></tr>" for k, v in about),
        "</table><h2>Checks</h2><table><tr><th>check</th><th>value</th><th>limit</th>",
        f"<th>result</th><th>detail</th></tr>{check_rows}</table>",
        "<h2>Base as is, challenger and champion on the same test split</h2>",
        ("<table id=\"comparison\"><tr><th>model</th><th>which</th><th>AUC</th><th>AUC CI</th>"
         f"<th>sensitivity</th><th>specificity</th><th>operating point</th></tr>{compared}</table>"
         if compared else "<p>none (nothing was scored)</p>"),
        "<h2>Skipped subgroups</h2>",
        (f"<table><tr><th>subgroup</th><th>exams</th><th>reason</th></tr>{skipped_rows}</table>"
         if skipped_rows else "<p>none</p>"),
        "<h2>Metrics</h2>",
        f"<table><tr><th>metric</th><th>value</th></tr>{metric_rows}</table>" if metric_rows
        else "<p>none (nothing was compared)</p>",
        "</body></html>\n",
    ])


def log_report(report: dict[str, Any]) -> str:
    """Log the report as a run of the project's experiment; returns the run id."""
    import mlflow

    mlflow.set_experiment(get_settings().mlflow_experiment)
    with mlflow.start_run(run_name=f"promote-v{report['version']}") as active:
        mlflow.set_tags({"stage": "promote", "model_version": report["version"],
                         "champion_version": report["previous_version"] or "",
                         "outcome": report["outcome"], "approver": report["approver"],
                         "dataset_version": report["dataset_version"] or ""})
        if report["gate"]["metrics"]:
            mlflow.log_metrics(report["gate"]["metrics"])
        mlflow.log_dict(report, JSON_ARTIFACT)
        mlflow.log_text(render_html(report), HTML_ARTIFACT)
    return str(active.info.run_id)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:+.4f}"


def _e(text: str) -> str:
    return html.escape(str(text))
