"""checkov (offline, from .venv-infra) over the rendered Kubernetes manifests, both
Dockerfiles and the compose file: no failed check. Without an API key checkov has no
severities, so every failure counts; a check may only be skipped in the file itself
(`checkov.io/skipN: CKV_..=reason` annotations, `# checkov:skip=CKV_..: reason`), with a reason."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from infra_checkers import COMPOSE_FILE, DOCKERFILES, KUSTOMIZATIONS, checkov, kustomize

FRAMEWORKS = ["kubernetes", "dockerfile", "secrets"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    rendered = tmp_path_factory.mktemp("checkov") / "rendered.yaml"
    rendered.write_text("---\n".join(kustomize(k) for k in KUSTOMIZATIONS))
    return checkov([rendered, *DOCKERFILES, COMPOSE_FILE], FRAMEWORKS)


def test_checkov_finds_no_failed_check(reports: dict[str, dict[str, Any]]) -> None:
    assert {"kubernetes", "dockerfile"} <= set(reports), f"checkov ran only {sorted(reports)}"
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']}, {c['file_path']})"
              for r in reports.values() for c in r["results"]["failed_checks"]]
    assert failed == []
    for kind, report in sorted(reports.items()):
        s = report["summary"]
        print(f"checkov {kind}: passed {s['passed']}, failed {s['failed']}, skipped {s['skipped']}")


def test_every_skip_carries_a_reason(reports: dict[str, dict[str, Any]]) -> None:
    for report in reports.values():
        for check in report["results"]["skipped_checks"]:
            result = check.get("check_result", {})
            reason = (result.get("suppress_comment") or check.get("suppress_comment") or "").strip()
            assert len(reason) > 20 and reason != "No comment provided", (
                f"{check['check_id']} skipped on {check['resource']} without a reason")
            print(f"skip {check['check_id']} {check['resource']}: {reason}")


def test_checkov_catches_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: bad, namespace: radflow}
        spec:
          selector: {matchLabels: {app: bad}}
          template:
            metadata: {labels: {app: bad}}
            spec:
              containers:
                - name: bad
                  image: nginx:latest
                  securityContext: {privileged: true}
        """))
    (tmp_path / "Dockerfile").write_text("FROM python:latest\nRUN pip install flask\nCMD [\"python\"]\n")
    (tmp_path / "compose.yaml").write_text(textwrap.dedent("""\
        services:
          db:
            image: postgres:17
            environment:
              POSTGRES_PASSWORD: "Zq8tL0pX4vR2mN7bK9sW3yJ6"
              AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        """))
    bad = checkov([tmp_path / "bad.yaml", tmp_path / "Dockerfile", tmp_path / "compose.yaml"], FRAMEWORKS)
    failed = {kind: {c["check_id"] for c in r["results"]["failed_checks"]} for kind, r in bad.items()}
    assert {"CKV_K8S_16", "CKV_K8S_14"} <= failed["kubernetes"], failed  # privileged, :latest
    assert "CKV_DOCKER_3" in failed["dockerfile"], failed  # no non-root USER
    assert failed.get("secrets"), f"the inline secrets in compose went unnoticed: {failed}"
