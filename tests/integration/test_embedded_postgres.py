"""The embedded PostgreSQL of a machine where no database is configured: `radflow stack up`
initialises a cluster from the Debian binaries, runs it on loopback with a generated
password, creates and migrates the results database; `down` stops it, the next `up` finds
its data again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import psycopg2
import pytest

from tests.integration.stack import RADFLOW, free_ports


def cli(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run([RADFLOW, *args, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_stack_up_runs_its_own_postgresql_when_no_database_is_given(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (port,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADFLOW_", "AIRFLOW"))}
    env.update({"RADFLOW_STATE_DIR": str(state), "RADFLOW_POSTGRES_PORT": str(port)})
    data_dir: Path | None = None
    try:
        up = cli(env, "stack", "up", "--only", "postgres")
        service = up["services"]["postgres"]
        assert (service["running"], service["embedded"], service["managed"], service["port"]) == (
            True, True, True, port)
        data_dir = Path(service["data_dir"])
        assert (data_dir / "PG_VERSION").exists()
        assert up["database_url"] == f"postgresql+psycopg2://radflow:***@127.0.0.1:{port}/radflow"
        password = (state / "secrets" / "postgres.env").read_text().strip().split("=", 1)[1]
        assert oct((state / "secrets" / "postgres.env").stat().st_mode & 0o777) == "0o600"
        # password authentication only, on loopback
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(host="127.0.0.1", port=port, user="radflow", password="wrong", dbname="radflow")
        # the results database exists and is at the newest schema
        revision = cli(env, "db", "current")
        assert revision["up_to_date"] is True
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="radflow", password=password,
                                dbname="radflow")
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO ingest_state (source, watermark) VALUES ('kept', 42)")
        conn.close()

        assert cli(env, "stack", "down", "--only", "postgres")["actions"] == {"postgres": "stopped"}
        assert cli(env, "stack", "status")["services"]["postgres"]["running"] is False
        again = cli(env, "stack", "up", "--only", "postgres")
        assert again["actions"]["postgres"] == "started"
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="radflow", password=password,
                                dbname="radflow")
        with conn, conn.cursor() as cur:
            cur.execute("SELECT watermark FROM ingest_state WHERE source = 'kept'")
            assert cur.fetchone() == (42,)
        conn.close()
    finally:
        subprocess.run([RADFLOW, "stack", "down", "--json"], env=env, capture_output=True, timeout=120)
        if data_dir is not None and not data_dir.is_relative_to(tmp_path):
            shutil.rmtree(data_dir.parent, ignore_errors=True)  # the cluster root outside the state dir
