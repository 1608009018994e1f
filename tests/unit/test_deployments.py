"""Deployment records in the results database, on SQLite and PostgreSQL: what a slot serves
round-trips whole, a redeploy replaces the slot's record, every host (state dir) sees the
same records (issue 17), and the JSON records of an older installation are imported once."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines import config, db
from pipelines import deployments as deployment
from pipelines.errors import PermanentError

CUTS = json.dumps([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8])


@pytest.fixture(params=["sqlite", "postgresql"])
def results_db(request: pytest.FixtureRequest, isolated_settings: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The configured results database, on either dialect, with no deployment row."""
    if request.param == "postgresql":
        monkeypatch.setenv("RADFLOW_DATABASE_URL", request.getfixturevalue("postgres_url"))
        config.reset_settings()
    engine = db.get_engine()
    assert engine.dialect.name == request.param
    with engine.begin() as conn:
        conn.execute(sa.delete(db.deployments))
    yield request.param
    with engine.begin() as conn:
        conn.execute(sa.delete(db.deployments))


def _dep(slot: deployment.Slot = "champion", version: int = 3, **changes: object) -> deployment.Deployment:
    dep = deployment.Deployment(
        model_name="cxr-nodule", model_version=str(version),
        triton_model=deployment.triton_name(slot, "cxr_nodule"), triton_version=version,
        operating_point=0.37, sha256="ab" * 32, deployed_at="2026-12-08T02:00:00+00:00", slot=slot,
        name="cxr" if slot == "champion" else "cxr-shadow", previous_version=version - 1,
        previous_sha256="cd" * 32, suspicion_cuts=CUTS, task="cxr")
    return dataclasses.replace(dep, **changes)  # type: ignore[arg-type]


def _legacy(state: Path, dep: deployment.Deployment, drop: tuple[str, ...] = ()) -> Path:
    """A record as radflow wrote it under <state>/serving before the table (older ones
    lacked the later fields)."""
    path = state / "serving" / f"{dep.triton_model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {k: v for k, v in dataclasses.asdict(dep).items() if k not in drop}
    path.write_text(json.dumps(fields, indent=2))
    return path


def test_a_record_round_trips_whole_and_is_removed(results_db: str) -> None:
    champion, shadow = _dep("champion", 3), _dep("shadow", 4, previous_version=None, previous_sha256="")
    deployment.record(shadow)
    deployment.record(champion)
    assert deployment.find("champion", "cxr_nodule") == champion
    assert deployment.find("shadow", "cxr_nodule") == shadow
    assert deployment.current_deployment("cxr_nodule") == champion
    assert deployment.all_deployments() == [champion, shadow]  # by Triton model name
    assert deployment.by_name("cxr-shadow") == shadow
    assert deployment.by_name("nobody") is None
    assert deployment.find("champion", "mammo_screening") is None

    deployment.remove("champion", "cxr_nodule")
    deployment.remove("champion", "cxr_nodule")  # nothing there: no error
    assert deployment.find("champion", "cxr_nodule") is None
    assert deployment.all_deployments() == [shadow]
    with pytest.raises(PermanentError, match="no model is deployed to Triton as cxr_nodule"):
        deployment.current_deployment("cxr_nodule")


def test_a_redeploy_replaces_the_slots_record(results_db: str) -> None:
    deployment.record(_dep(version=3))
    newer = _dep(version=4, operating_point=0.41, suspicion_cuts="", deployed_at="2026-12-09T02:00:00+00:00")
    deployment.record(newer)
    assert deployment.all_deployments() == [newer]
    with db.get_engine().connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.deployments)).scalar_one() == 1


def test_every_host_sees_the_same_records(postgres_url: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def on_host(name: str) -> None:  # a worker with its own disk, the shared database
        monkeypatch.setenv("RADFLOW_STATE_DIR", str(tmp_path / name))
        monkeypatch.setenv("RADFLOW_DATABASE_URL", postgres_url)
        config.reset_settings()

    on_host("worker-a")
    deployment.remove("champion", "cxr_nodule")
    deployment.record(_dep())
    on_host("worker-b")
    assert deployment.current_deployment("cxr_nodule") == _dep()
    deployment.remove("champion", "cxr_nodule")
    on_host("worker-a")
    assert deployment.find("champion", "cxr_nodule") is None


def test_legacy_json_records_are_imported_once(results_db: str, isolated_settings: Path) -> None:
    old = _dep("champion", 5, suspicion_cuts="", task="mammo")
    legacy = _legacy(isolated_settings, old, drop=("suspicion_cuts", "task"))
    shadow = _legacy(isolated_settings, _dep("shadow", 6))
    (isolated_settings / "serving" / ".staging-x.json").write_text("{half written")  # ignored
    (isolated_settings / "serving" / "downloads").mkdir()

    assert deployment.current_deployment("cxr_nodule") == old
    assert deployment.find("shadow", "cxr_nodule") == _dep("shadow", 6)
    assert not legacy.exists() and not shadow.exists()
    assert legacy.with_name(f"{legacy.name}.imported").exists()

    deployment.remove("shadow", "cxr_nodule")  # a removed slot stays removed: imported once
    assert deployment.all_deployments() == [old]


def test_a_record_already_in_the_database_wins_over_a_legacy_file(results_db: str,
                                                                  isolated_settings: Path) -> None:
    deployment.record(_dep(version=7))  # deployed from another host since
    stale = _legacy(isolated_settings, _dep(version=5))
    assert deployment.all_deployments() == [_dep(version=7)]
    assert not stale.exists()


def test_a_legacy_file_that_is_no_record_is_refused_by_name(results_db: str,
                                                            isolated_settings: Path) -> None:
    bad = isolated_settings / "serving" / "cxr_nodule.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"model_name": "cxr-nodule"}))
    with pytest.raises(PermanentError, match=r"legacy deployment record .*cxr_nodule\.json"):
        deployment.all_deployments()
    assert bad.exists()
