"""Is every model file Triton serves the one MLflow approved? A daily, read-only check.

Deploy and rollback verify a file before Triton loads it (pipelines/modelfiles/integrity.py);
this check catches what happens afterwards: a file changed on disk, a served version whose
file is gone, a model nobody deployed. It walks the live repository and Triton's
repository index and reports one `IntegrityRow` per model version:

- a model radflow deploys (a deployment record names it, any slot of any task): each
  version's `model.onnx` against the `onnx_sha256` tag of the MLflow registered version
  of that number (looked up in MLflow: the local record could be changed too), and its
  `model.py` adapter against the reviewed one deploy copies;
- a template model (a folder of serving/triton_repo: preprocessing, ensemble): the files
  of each version folder against the reviewed files (config.pbtxt is generated per
  deployment and legitimately differs, so it is not compared);
- anything else, on disk or in the index: "unknown";
- approval: a version served in a champion slot that no audited promotion or rollback ever
  made champion, and a registered model whose alias `champion` points at another version
  than the audited champion (the alias moved in MLflow by hand), are "unapproved" (the
  latter as a row `registry:<model>@champion`).

Nothing is loaded or unloaded.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import TRITON_ADMIN_HEADER, RadflowSettings, get_settings
from pipelines.deployments import Deployment, all_deployments
from pipelines.errors import DeploymentFailed, MlflowUnavailable, TritonUnavailable
from pipelines.layout import CLASSIFIER_ADAPTER
from pipelines.layout import TRITON_TEMPLATES as REVIEWED
from pipelines.modelfiles.integrity import registered_sha
from pipelines.modelfiles.onnx import sha256
from pipelines.monitoring.records import IntegrityRow
from pipelines.tracking import mlflow_client

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

STATUSES = ("ok", "mismatch", "missing", "unregistered", "unapproved", "unknown")
_SEVERITY = ("mismatch", "missing", "unregistered", "unapproved", "unknown")  # a row's worst finding
_NOT_COMPARED = {"config.pbtxt"}  # rewritten by deploy (version policy, image size)
_SKIPPED_DIRS = {"__pycache__"}  # bytecode the Python backend writes beside model.py
_DEPLOYED_FILES = {"model.onnx", "model.py"}  # what deploy writes into a version folder


def repository_index(settings: RadflowSettings) -> dict[str, set[str]]:
    """Every model in Triton's repository index, with the versions it reports READY.

    Raises:
        TritonUnavailable: Triton did not answer (or refused the admin key).
    """
    import httpx

    base = settings.triton_http_url
    url = f"{base if base.startswith('http') else 'http://' + base}/v2/repository/index"
    key = settings.triton_admin_secret()
    try:
        response = httpx.post(url, json={}, headers={TRITON_ADMIN_HEADER: key} if key else None,
                              timeout=30.0)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise TritonUnavailable(f"Triton repository index at {url} did not answer: {exc}") from exc
    index: dict[str, set[str]] = {}
    for entry in entries:
        if not entry.get("name"):
            continue
        ready = index.setdefault(str(entry["name"]), set())
        if entry.get("state") == "READY" and entry.get("version"):
            ready.add(str(entry["version"]))
    return index


def _file_sha(path: Path) -> str:
    return sha256(path) if path.is_file() else ""


def _versions(folder: Path, served: set[str]) -> list[str]:
    """Version folders on disk (numeric names, as Triton reads them) and served versions."""
    on_disk = ({p.name for p in folder.iterdir() if p.is_dir() and p.name.isdigit()}
               if folder.is_dir() else set())
    return sorted(on_disk | served, key=lambda v: (len(v), v))


def _row(model: str, version: str, findings: list[tuple[str, str]], served: bool, when_ok: str,
         **hashes: str) -> IntegrityRow:
    """A row whose status is the worst of `findings` ((status, detail) pairs); ok, with the
    detail `when_ok`, when there are none."""
    status = next((s for s in _SEVERITY if any(f == s for f, _ in findings)), "ok")
    return IntegrityRow(triton_model=model, version=version, status=status, served=served,
                        detail="; ".join(d for _, d in findings) or when_ok, **hashes)


def _registered(client: MlflowClient, name: str, version: str) -> tuple[str, str]:
    """(registered SHA-256, "") of `name` version `version`, or ("", why it has none).

    Raises:
        MlflowUnavailable: MLflow did not answer (anything but "does not exist").
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return "", f"{name} version {version} is not registered in MLflow: its file cannot be verified"
        raise MlflowUnavailable(f"MLflow at {get_settings().mlflow_uri} did not answer the lookup of "
                                f"{name} version {version}: {exc.message}") from exc
    try:
        return registered_sha(mv), ""
    except DeploymentFailed as exc:
        return "", str(exc)


def _version_findings(folder: Path, dep: Deployment, version: str, served: bool, expected: str,
                      unregistered: str) -> tuple[str, list[tuple[str, str]]]:
    """(the file's SHA-256, what is wrong with it) for one version of a deployed model."""
    onnx = folder / version / "model.onnx"
    actual = _file_sha(onnx)
    if not actual:
        state = "served" if served else "deployed"
        return "", [("missing", f"{dep.triton_model} version {version} is {state}, "
                                f"but {onnx} does not exist")]
    if unregistered:
        return actual, [("unregistered", f"{onnx}: {unregistered}")]
    if actual != expected:
        return actual, [("mismatch", f"{onnx} has SHA-256 {actual[:16]}..., but registered version "
                                     f"{dep.model_name}/{version} has {expected[:16]}...")]
    return actual, []


def _claims(dep: Deployment) -> dict[str, str]:
    """The SHA-256 the local record claims per version (cross-checked against MLflow)."""
    claimed = {str(dep.triton_version): dep.sha256}
    if dep.previous_version is not None and dep.previous_sha256:
        claimed[str(dep.previous_version)] = dep.previous_sha256
    return claimed


def _deployed(client: MlflowClient, folder: Path, dep: Deployment, served: set[str],
              adapter: Path, approved: set[str] | None = None) -> list[IntegrityRow]:
    """Rows of a model radflow deploys: each version's file against its registered version,
    its adapter against the reviewed one; in a champion slot, each served version against
    the `approved` versions (None: not checked)."""
    claimed, reviewed = _claims(dep), _file_sha(adapter)
    rows = []
    for version in _versions(folder, served | {str(dep.triton_version)}):
        expected, unregistered = _registered(client, dep.model_name, version)
        actual, findings = _version_findings(folder, dep, version, version in served, expected, unregistered)
        if approved is not None and version in served and version not in approved:
            findings.append(("unapproved", f"{dep.triton_model} serves {dep.model_name} version {version}, "
                                           "which no audited promotion or rollback made champion"))
        if expected and claimed.get(version, expected) != expected:
            findings.append(("mismatch", f"the deployment record of {dep.triton_model} says version "
                                         f"{version} is {claimed[version][:16]}..., MLflow "
                                         f"{expected[:16]}..."))
        code = folder / version / "model.py"
        if reviewed and (code_sha := _file_sha(code)) and code_sha != reviewed:
            findings.append(("mismatch", f"{code} has SHA-256 {code_sha[:16]}..., the reviewed "
                                         f"adapter {adapter} {reviewed[:16]}..."))
        findings += [("unknown", f"{folder / version / rel} is not a file deploy writes")
                     for rel in sorted(set(_files(folder / version)) - _DEPLOYED_FILES)]
        registered = f"{dep.model_name}/{version}"
        rows.append(_row(dep.triton_model, version, findings, version in served,
                         f"{folder / version / 'model.onnx'} is registered version {registered}",
                         expected_sha256=expected, actual_sha256=actual, registered=registered))
    return rows


def _files(folder: Path) -> dict[str, Path]:
    """Files under `folder` by relative path, bytecode caches left out (a Python module
    beside model.py is importable by it, so every other file counts)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and not _SKIPPED_DIRS & set(p.relative_to(folder).parts)}


def _template(folder: Path, reviewed: Path, served: set[str]) -> list[IntegrityRow]:
    """Rows of a template model: each version folder holds exactly the reviewed adapter files."""
    want = {rel: p for rel, p in _files(reviewed).items() if rel not in _NOT_COMPARED}
    rows = []
    for version in _versions(folder, served) or [""]:
        have = _files(folder / version) if version else {}
        findings = []
        for rel, source in want.items():
            if rel not in have:
                findings.append(("missing", f"{folder / version / rel} does not exist (reviewed: {source})"))
            elif sha256(have[rel]) != sha256(source):
                findings.append(("mismatch", f"{have[rel]} has SHA-256 {sha256(have[rel])[:16]}..., the "
                                             f"reviewed {source} {sha256(source)[:16]}..."))
        findings += [("unknown", f"{have[rel]} is not a file of the reviewed template {reviewed}")
                     for rel in sorted(set(have) - set(want))]
        first = next(iter(want), "")
        rows.append(_row(folder.name, version, findings, version in served,
                         f"the files of the reviewed template {reviewed}",
                         expected_sha256=_file_sha(want[first]) if first else "",
                         actual_sha256=_file_sha(have[first]) if first in have else ""))
    return rows


def _unknown(folder: Path, served: set[str], on_disk: bool) -> list[IntegrityRow]:
    """Rows of a model radflow did not deploy and does not template."""
    where = (f"{folder} has no deployment record and is not a template in {REVIEWED}" if on_disk else
             f"Triton lists {folder.name}, but the repository has no folder {folder}")
    return [IntegrityRow(triton_model=folder.name, version=version, status="unknown",
                         served=version in served, detail=where,
                         actual_sha256=_file_sha(folder / version / "model.onnx") if version else "")
            for version in _versions(folder, served) or [""]]


def check(settings: RadflowSettings | None = None) -> list[IntegrityRow]:
    """Check every model in Triton's live repository and repository index.

    Args:
        settings: where Triton and its repository are (default: the process settings).
            Deployment records and the MLflow client come from the process settings, as
            deploy writes and reads them.

    Returns:
        One row per model version (one row with version "" for a model without version
        folders), sorted by model and version.

    Raises:
        TritonUnavailable: Triton's repository index did not answer.
        MlflowUnavailable: MLflow did not answer a registered-version lookup.
    """
    s = settings or get_settings()
    repo = s.triton_repository
    index = repository_index(s)
    deployed = {d.triton_model: d for d in all_deployments()}
    on_disk = {p.name for p in repo.iterdir() if p.is_dir()} if repo.is_dir() else set()
    client = mlflow_client() if deployed else None
    adapter = CLASSIFIER_ADAPTER  # what deploy copies into every version folder
    rows: list[IntegrityRow] = []
    approved = _approved({d.model_name for d in deployed.values() if d.slot == "champion"})
    for name in sorted(on_disk | set(index) | set(deployed)):
        served = index.get(name, set())
        if name in deployed and client is not None:
            dep = deployed[name]
            rows += _deployed(client, repo / name, dep, served, adapter,
                              approved.get(dep.model_name) if dep.slot == "champion" else None)
        elif (REVIEWED / name).is_dir():
            rows += _template(repo / name, REVIEWED / name, served)
        else:
            rows += _unknown(repo / name, served, name in on_disk)
    rows += _aliases(client or mlflow_client())
    counts = summary(rows)["counts"]
    log.info("integrity: %d model versions checked in %s: %s", len(rows), repo, counts)
    for row in rows:
        if not row.ok:
            log.warning("integrity: %s version %s is %s: %s", row.triton_model, row.version or "-",
                        row.status, row.detail)
    return rows


def _approved(models: set[str]) -> dict[str, set[str]]:
    """The versions each model's audited promotions and rollbacks made champion."""
    from pipelines import db
    from pipelines.approvals import approved_versions

    if not models:
        return {}
    with db.get_engine().connect() as conn:
        return {m: approved_versions(conn, m) for m in models}


def _aliases(client: MlflowClient) -> list[IntegrityRow]:
    """One row per screening task's registered model that has a champion: its alias against
    the audited champion (a hand-moved alias is "unapproved")."""
    from pipelines.approvals import unapproved_reason
    from pipelines.tasks import configured
    from pipelines.tracking import version_by_alias

    rows = []
    tasks = configured()
    for model in sorted({t.registered_model for t in tasks.values()}):
        champion = version_by_alias(client, model, "champion")
        if champion is None:
            continue
        version = str(champion.version)
        reason = unapproved_reason(model, version)
        rows.append(IntegrityRow(triton_model=f"registry:{model}@champion", version=version,
                                 status="unapproved" if reason else "ok", served=False,
                                 detail=reason or f"alias champion of {model} is the audited champion",
                                 registered=f"{model}/{version}"))
    return rows


def summary(rows: Iterable[IntegrityRow]) -> dict[str, Any]:
    """Counts per status, whether every row is ok, and the problems with a reason each.

    Returns:
        {"ok": bool, "checked": int, "counts": {status: int for every status},
        "problems": [{"triton_model", "version", "status", "served", "reason"}]};
        "ok" is True only if every row is ok (also when there are none).
    """
    rows = list(rows)
    counts = Counter(r.status for r in rows)
    return {
        "ok": all(r.ok for r in rows),
        "checked": len(rows),
        "counts": {status: counts.get(status, 0) for status in STATUSES},
        "problems": [{"triton_model": r.triton_model, "version": r.version, "status": r.status,
                      "served": r.served, "reason": r.detail} for r in rows if not r.ok],
    }
