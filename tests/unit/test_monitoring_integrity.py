"""Model-file integrity on a repository laid out as deploy lays it out, with MLflow and
Triton's repository index replaced by fakes (their real behaviour is in
tests/integration/test_monitoring_integrity.py)."""

from __future__ import annotations

import dataclasses
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import db
from pipelines import deployments as deployment
from pipelines.config import get_settings
from pipelines.errors import MlflowUnavailable, TritonUnavailable
from pipelines.modelfiles.onnx import sha256
from pipelines.monitoring import integrity
from pipelines.monitoring.records import IntegrityRow
from pipelines.registry import audit
from pipelines.serving import repository
from pipelines.serving.deploy import write_version

MODEL = "mammo-screening"


class FakeRegistry:
    """MLflow's get_model_version over {version: onnx_sha256 tag or None (untagged)}, and
    its alias lookup over {alias: version}."""

    def __init__(self, tags: dict[str, str | None], down: bool = False,
                 aliases: dict[str, str] | None = None) -> None:
        self.tags, self.down = tags, down
        self.aliases = aliases if aliases is not None else {"champion": "2"}

    def get_model_version_by_alias(self, name: str, alias: str) -> object:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

        if name != MODEL or alias not in self.aliases:
            raise MlflowException(f"alias {alias} not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return self.get_model_version(name, self.aliases[alias])

    def get_model_version(self, name: str, version: str) -> object:
        from mlflow.entities.model_registry import ModelVersion, ModelVersionTag
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST

        if self.down:
            raise MlflowException("API request failed: connection refused", error_code=INTERNAL_ERROR)
        if name != MODEL or version not in self.tags:
            raise MlflowException(f"Model Version (name={name}, version={version}) not found",
                                  error_code=RESOURCE_DOES_NOT_EXIST)
        sha = self.tags[version]
        return ModelVersion(name, version, 0, tags=[ModelVersionTag("onnx_sha256", sha)] if sha else [])


@dataclasses.dataclass
class Live:
    repo: Path
    registry: FakeRegistry
    index: dict[str, set[str]]

    def rows(self) -> dict[tuple[str, str], IntegrityRow]:
        return {(r.triton_model, r.version): r for r in integrity.check()}


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Live:
    """Champion mammo_screening serving version 2, version 1 kept for rollback, the
    preprocessing model and the ensemble, as deploy leaves them; MLflow knows versions 1-2,
    alias champion is on 2, and the audit table says 1 then 2 were promoted."""
    repo = get_settings().triton_repository
    tags: dict[str, str | None] = {}
    for version in (1, 2):
        onnx = tmp_path / f"v{version}.onnx"
        onnx.write_bytes(f"onnx graph of version {version}".encode() * 100)
        write_version(repo, "mammo_screening", version, onnx)
        tags[str(version)] = sha256(onnx)
    repository.write_static(repo, "mammo_screening", "cpu", 128, 96)
    deployment.record(deployment.Deployment(
        model_name=MODEL, model_version="2", triton_model="mammo_screening", triton_version=2,
        operating_point=0.5, sha256=str(tags["2"]), deployed_at="2026-10-07T06:00:00+00:00",
        previous_version=1, previous_sha256=str(tags["1"])))
    for version, previous in (("1", None), ("2", "1")):
        approve(version, previous)
    state = Live(repo, FakeRegistry(tags), {"mammo_screening": {"2"}, "mammo_preprocessing": {"1"},
                                            "mammo_screening_ensemble": {"1"}})
    monkeypatch.setattr(integrity, "mlflow_client", lambda: state.registry)
    monkeypatch.setattr(integrity, "repository_index", lambda settings: state.index)
    return state


def approve(version: str, previous: str | None, outcome: str = audit.PROMOTED) -> None:
    with db.get_engine().begin() as conn:
        audit.record(conn, model_name=MODEL, action=audit.PROMOTE, version=version, alias="champion",
                     previous_version=previous, approver="ada", reason="r", outcome=outcome, gates={})


ALIAS = (f"registry:{MODEL}@champion", "2")


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in root.rglob("*") if p.is_file()}


def test_an_untouched_deployment_is_all_ok_and_nothing_is_changed(live: Live) -> None:
    before = _tree(live.repo)
    rows = live.rows()
    assert set(rows) == {("mammo_screening", "1"), ("mammo_screening", "2"),
                         ("mammo_preprocessing", "1"), ("mammo_screening_ensemble", "1"), ALIAS}
    assert all(r.status == "ok" for r in rows.values()), rows
    served = rows["mammo_screening", "2"]
    assert served.served and served.registered == f"{MODEL}/2"
    assert served.expected_sha256 == served.actual_sha256 == live.registry.tags["2"]
    assert not rows["mammo_screening", "1"].served  # the rollback target is on disk, not loaded
    assert integrity.summary(rows.values())["ok"] is True
    assert _tree(live.repo) == before


def test_a_changed_byte_is_a_mismatch_of_exactly_that_version(live: Live) -> None:
    onnx = live.repo / "mammo_screening" / "1" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[10] ^= 0x01
    onnx.write_bytes(bytes(data))
    bad = [r for r in live.rows().values() if not r.ok]
    assert [(r.triton_model, r.version, r.status) for r in bad] == [("mammo_screening", "1", "mismatch")]
    row = bad[0]
    assert str(onnx) in row.detail and f"{MODEL}/1" in row.detail
    assert row.actual_sha256[:16] in row.detail and row.expected_sha256[:16] in row.detail
    assert row.actual_sha256 == sha256(onnx) != row.expected_sha256 == live.registry.tags["1"]
    report = integrity.summary([row])
    assert report["ok"] is False and report["counts"]["mismatch"] == 1
    assert report["problems"][0]["reason"] == row.detail


def test_a_served_version_without_its_file_is_missing(live: Live) -> None:
    (live.repo / "mammo_screening" / "2" / "model.onnx").unlink()
    row = live.rows()["mammo_screening", "2"]
    assert (row.status, row.served, row.actual_sha256) == ("missing", True, "")
    assert "served" in row.detail


def test_models_nobody_deployed_are_unknown(live: Live) -> None:
    rogue = live.repo / "rogue_model" / "1"
    rogue.mkdir(parents=True)
    (rogue / "model.onnx").write_bytes(b"not approved")
    live.index["ghost"] = {"3"}  # loaded in Triton, no folder here
    rows = live.rows()
    assert rows["rogue_model", "1"].status == "unknown" and not rows["rogue_model", "1"].served
    assert rows["rogue_model", "1"].actual_sha256 == sha256(rogue / "model.onnx")
    assert rows["ghost", "3"].status == "unknown" and rows["ghost", "3"].served
    assert "Triton lists ghost" in rows["ghost", "3"].detail
    assert integrity.summary(rows.values())["counts"]["unknown"] == 2


def test_a_version_mlflow_cannot_vouch_for_is_unregistered(live: Live) -> None:
    shutil.copytree(live.repo / "mammo_screening" / "2", live.repo / "mammo_screening" / "7")
    live.registry.tags["1"] = None  # registered, but without its onnx_sha256 tag
    rows = live.rows()
    assert rows["mammo_screening", "7"].status == "unregistered"
    assert "not registered in MLflow" in rows["mammo_screening", "7"].detail
    assert rows["mammo_screening", "1"].status == "unregistered"
    assert "onnx_sha256" in rows["mammo_screening", "1"].detail
    assert rows["mammo_screening", "2"].ok


def test_a_deployment_record_that_disagrees_with_mlflow_is_a_mismatch(live: Live) -> None:
    record = deployment.find("champion", "mammo_screening")
    assert record is not None
    deployment.record(dataclasses.replace(record, previous_sha256="f" * 64))
    row = live.rows()["mammo_screening", "1"]
    assert row.status == "mismatch" and "deployment record" in row.detail and "ffffffffffffffff" in row.detail


def test_changed_adapters_and_stray_files_are_reported_but_configs_may_differ(live: Live) -> None:
    pre = live.repo / "mammo_preprocessing"
    (pre / "1" / "model.py").write_text((pre / "1" / "model.py").read_text() + "\nimport os\n")
    (pre / "config.pbtxt").write_text((pre / "config.pbtxt").read_text() + "\n# regenerated\n")
    (live.repo / "mammo_screening" / "2" / "onnxruntime.py").write_text("# shadows the real import\n")
    (live.repo / "mammo_screening_ensemble" / "1" / "__pycache__").mkdir()
    (live.repo / "mammo_screening_ensemble" / "1" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    rows = live.rows()
    assert rows["mammo_preprocessing", "1"].status == "mismatch"
    assert "model.py" in rows["mammo_preprocessing", "1"].detail
    assert rows["mammo_screening", "2"].status == "unknown"
    assert "onnxruntime.py" in rows["mammo_screening", "2"].detail
    assert rows["mammo_screening_ensemble", "1"].ok  # bytecode caches are not files of the model
    (live.repo / "mammo_screening" / "1" / "model.py").write_text("print('changed')\n")
    assert live.rows()["mammo_screening", "1"].status == "mismatch"


def test_a_template_without_its_adapter_is_missing(live: Live) -> None:
    (live.repo / "mammo_preprocessing" / "1" / "model.py").unlink()
    row = live.rows()["mammo_preprocessing", "1"]
    assert row.status == "missing" and row.served


def test_mlflow_not_answering_raises_transient(live: Live) -> None:
    live.registry.down = True
    with pytest.raises(MlflowUnavailable, match="mammo-screening version 1"):
        integrity.check()


def test_summary_counts_every_status() -> None:
    rows = [IntegrityRow("a", "1", "ok", True), IntegrityRow("b", "1", "unknown", False, detail="why")]
    assert integrity.summary(rows) == {
        "ok": False, "checked": 2,
        "counts": {"ok": 1, "mismatch": 0, "missing": 0, "unregistered": 0, "unapproved": 0,
                       "unknown": 1},
        "problems": [{"triton_model": "b", "version": "1", "status": "unknown", "served": False,
                      "reason": "why"}]}
    assert integrity.summary([])["ok"] is True


@pytest.fixture
def fake_triton(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, str]]]:
    """An HTTP server answering POST /v2/repository/index as Triton does; yields the
    headers of each request it received."""
    seen: list[dict[str, str]] = []
    index = [{"name": "mammo_screening", "version": "2", "state": "READY"},
             {"name": "mammo_screening", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"},
             {"name": "rogue_model"}]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(dict(self.headers))
            body = json.dumps(index).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("RADFLOW_TRITON_URL", f"127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("RADFLOW_TRITON_ADMIN_KEY", "k3y")
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_repository_index_is_read_with_the_admin_key(fake_triton: list[dict[str, str]]) -> None:
    from pipelines.config import reset_settings

    reset_settings()
    index = integrity.repository_index(get_settings())
    assert index == {"mammo_screening": {"2"}, "rogue_model": set()}
    assert fake_triton[0].get("radflow-admin-key") == "k3y"


def test_triton_not_answering_raises_transient_naming_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from pipelines.config import reset_settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    monkeypatch.setenv("RADFLOW_TRITON_URL", f"127.0.0.1:{port}")
    reset_settings()
    with pytest.raises(TritonUnavailable, match=f"127.0.0.1:{port}/v2/repository/index"):
        integrity.check()


def test_an_alias_moved_by_hand_in_mlflow_is_unapproved(live: Live) -> None:
    live.registry.tags["3"] = live.registry.tags["2"]
    live.registry.aliases["champion"] = "3"  # one REST call to MLflow, no promotion
    rows = live.rows()
    row = rows[f"registry:{MODEL}@champion", "3"]
    assert row.status == "unapproved" and not row.served
    assert "no promotion or rollback" in row.detail and "approved champion is version 2" in row.detail
    assert integrity.summary(rows.values())["counts"]["unapproved"] == 1


def test_a_served_champion_no_audited_promotion_approved_is_unapproved(live: Live) -> None:
    shutil.copytree(live.repo / "mammo_screening" / "2", live.repo / "mammo_screening" / "3")
    live.registry.tags["3"] = live.registry.tags["2"]  # a registered, intact file
    live.index["mammo_screening"] = {"3"}  # loaded behind radflow's back
    row = live.rows()["mammo_screening", "3"]
    assert row.status == "unapproved" and row.served
    assert "no audited promotion or rollback made champion" in row.detail
    approve("3", "2", outcome=audit.REFUSED)  # a refused attempt approves nothing
    assert live.rows()["mammo_screening", "3"].status == "unapproved"
    approve("3", "2")
    assert live.rows()["mammo_screening", "3"].ok
