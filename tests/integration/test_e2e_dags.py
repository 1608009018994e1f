"""The nightly loop end to end: `radflow demo` runs the three DAGs with `airflow dags test`
against a real Orthanc, MLflow, Triton and PostgreSQL, on about 40 synthetic exams."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import sqlalchemy as sa

from tests.integration.stack import RADFLOW, fresh_database, stack_env


def test_demo_runs_the_three_dags_end_to_end(postgres_url: str, tmp_path: Path) -> None:
    with fresh_database(postgres_url) as db_url:
        env = stack_env(tmp_path / "state", db_url)
        try:
            proc = subprocess.run([RADFLOW, "demo", "--exams", "40", "--json"], env=env,
                                  capture_output=True, text=True, timeout=2400)
            assert proc.returncode == 0, proc.stderr[-4000:]
            summary = json.loads(proc.stdout.strip().splitlines()[-1])
        finally:
            subprocess.run([RADFLOW, "stack", "down"], env=env, capture_output=True, timeout=300)

        assert [r["dag_id"] for r in summary["dag_runs"]] == [
            "retrain_mammo_model", "deploy_mammo_model", "screen_daily_mammograms"]
        for dag_run in summary["dag_runs"]:
            text = Path(dag_run["log"]).read_text()
            assert re.search(r"Marking run .* successful", text), dag_run["dag_id"]

        # Tonight's exams are on the worklist exactly once each, sorted by suspicion.
        assert summary["screened_exams"] == summary["synthesized_tonight"] == 8
        page = Path(summary["worklist"]).read_text()
        ids = re.findall(r"<td>(ex-[0-9a-f]+)</td><td>([0-9.]+)</td>", page)
        assert len(ids) == 8 == len({i for i, _ in ids})
        assert [float(s) for _, s in ids] == sorted((float(s) for _, s in ids), reverse=True)
        assert "radflow demo: the nightly loop ran end to end" in proc.stderr

        eng = sa.create_engine(db_url)
        with eng.connect() as conn:
            approvers = conn.execute(sa.text("SELECT approver FROM promotions")).scalars().all()
            results = conn.execute(sa.text(
                "SELECT count(*) FROM exam_results WHERE study_date = :d"),
                {"d": summary["screened_date"]}).scalar_one()
        eng.dispose()
        assert approvers == ["Dr. Demo Radiologist"]
        assert results == 8
