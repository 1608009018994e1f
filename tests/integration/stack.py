"""A real local stack for one test module, driven via the CLI: Orthanc, MLflow (basic
auth) and Triton, and Airflow (api-server, scheduler, dag-processor, triggerer) where a
module asks for it; results and Airflow's metadata in fresh PostgreSQL databases."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

RADFLOW = str(Path(sys.executable).parent / "radflow")
WITHOUT_AIRFLOW = ("orthanc", "mlflow", "triton")


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


@dataclass
class Stack:
    env: dict[str, str]
    state: Path
    db_url: str
    outputs: list[str] = field(default_factory=list)  # stdout + stderr of every CLI call

    def secret(self, service: str, name: str) -> str:
        """A generated secret of the stack (<state>/secrets/<service>.env)."""
        from pipelines.config import read_secret_file

        return read_secret_file(self.state / "secrets" / f"{service}.env", name)

    def login_env(self, login: str, password: str | None = None) -> dict[str, str]:
        """The environment of a CLI call made by a person's MLflow login ("admin": the
        stack's MLflow admin, whose password is in the secrets folder)."""
        if password is None:
            assert login == "admin", "give the password of logins other than the admin"
            password = self.secret("mlflow", "RADFLOW_MLFLOW_ADMIN_PASSWORD")
        return {**self.env, "RADFLOW_MLFLOW_USERNAME": login, "RADFLOW_MLFLOW_PASSWORD": password}

    def radflow(self, *args: str, ok: bool | None = True, timeout: float = 1200, login: str | None = None,
                env: dict[str, str] | None = None) -> dict[str, Any]:
        """Run `radflow <args> --json`; the parsed last stdout line (fails the test if ok and
        rc != 0, or if ok is False and rc != 1; ok=None takes either answer).
        `login`: as that person's MLflow login (see login_env) instead of the pipeline's."""
        run_env = env or (self.login_env(login) if login else self.env)
        proc = subprocess.run([RADFLOW, *args, "--json"], env=run_env, capture_output=True,
                              text=True, timeout=timeout)
        self.outputs.append(proc.stdout + proc.stderr)
        lines = proc.stdout.strip().splitlines()
        assert lines, f"radflow {' '.join(args)} printed nothing; stderr:\n{proc.stderr[-3000:]}"
        out = json.loads(lines[-1])
        if ok:
            assert proc.returncode == 0, f"radflow {' '.join(args)} failed: {out}\n{proc.stderr[-3000:]}"
        elif ok is None:
            assert proc.returncode in (0, 1), f"radflow {' '.join(args)} crashed: {proc.stderr[-3000:]}"
        else:
            assert proc.returncode == 1, f"radflow {' '.join(args)} should fail, got {out}"
        out["_stderr"] = proc.stderr
        return out

    def orthanc_api(self) -> tuple[str, tuple[str, str]]:
        """The stack's Orthanc REST URL and radflow's login to it (user, password)."""
        return (f"http://127.0.0.1:{self.env['RADFLOW_ORTHANC_HTTP_PORT']}",
                ("radflow", self.secret("orthanc", "RADFLOW_ORTHANC_PASSWORD")))

    def wait_stable(self, timeout: float = 120) -> None:
        """Block until Orthanc has marked every study stable."""
        import time

        import httpx

        url, auth = self.orthanc_api()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            studies = httpx.get(f"{url}/studies", params={"expand": 1}, auth=auth).json()
            if studies and all(s["IsStable"] for s in studies):
                return
            time.sleep(1)
        raise AssertionError("Orthanc studies did not become stable")

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Run one statement in its own committed transaction; rows as dicts."""
        eng = sa.create_engine(self.db_url)
        try:
            with eng.begin() as conn:
                result = conn.execute(sa.text(sql), params)
                return [dict(r) for r in result.mappings()] if result.returns_rows else []
        finally:
            eng.dispose()


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the same PostgreSQL server, dropped afterwards (with the
    `<name>_airflow` database a stack with Airflow creates beside it)."""
    name = f"radflow_it_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with closing(admin.connect()) as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with closing(admin.connect()) as conn:
            for database in (name, f"{name}_airflow"):
                conn.execute(sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                    {"n": database})
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))
        admin.dispose()


def stack_env(state: Path, db_url: str) -> dict[str, str]:
    ports = free_ports(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADFLOW_", "AIRFLOW"))}
    env.update({
        "RADFLOW_STATE_DIR": str(state),
        "RADFLOW_ORTHANC_HTTP_PORT": str(ports[0]),
        "RADFLOW_ORTHANC_DICOM_PORT": str(ports[1]),
        "RADFLOW_MLFLOW_PORT": str(ports[2]),
        "RADFLOW_TRITON_HTTP_PORT": str(ports[3]),
        "RADFLOW_TRITON_GRPC_PORT": str(ports[4]),
        "RADFLOW_TRITON_METRICS_PORT": str(ports[5]),
        "RADFLOW_AIRFLOW_PORT": str(ports[6]),
        "RADFLOW_TRITON_REPO": str(state / "triton_repo"),
        "RADFLOW_ORTHANC_STABLE_AGE_S": "2",
        "RADFLOW_DATABASE_URL": db_url,
        "RADFLOW_TRAIN_EPOCHS": "4",
        "GX_ANALYTICS_ENABLED": "False",
        # The policy without its floor: these stacks promote models trained on a few dozen
        # exams (a test AUC CI too wide for any floor) or registered without weights. The
        # floor is tested where it is the point: test_promotion.py, test_pipeline.py.
        "RADFLOW_REGISTRY_POLICY_FILE": str(policy_with_approvers(state.parent / f"{state.name}-policy", [])),
    })
    return env


@contextmanager
def running_stack(state: Path, db_url: str, services: tuple[str, ...] = WITHOUT_AIRFLOW,
                  env: dict[str, str] | None = None) -> Iterator[Stack]:
    """`radflow stack up --only <services>` (extra settings in `env`), `down` afterwards.
    While it runs, this test process's own MLflow calls log in as the stack's MLflow admin."""
    from pipelines.tracking import credentials

    stack = Stack(env={**stack_env(state, db_url), **(env or {})}, state=state, db_url=db_url)
    try:
        stack.radflow("stack", "up", "--only", ",".join(services), timeout=900)
        with credentials("admin", stack.secret("mlflow", "RADFLOW_MLFLOW_ADMIN_PASSWORD")):
            yield stack
    finally:
        subprocess.run([RADFLOW, "stack", "down", "--json"], env=stack.env, capture_output=True,
                       timeout=300)


def policy_with_approvers(folder: Path, approvers: list[Any], floor: bool = False) -> Path:
    """The repository's registered-model policy with this approver list, as a new file;
    without its floor unless `floor` (see `stack_env`)."""
    import yaml

    from pipelines.registry.policy import POLICY_FILE

    document = yaml.safe_load(POLICY_FILE.read_text())
    for entry in document["models"].values():
        entry["promotion"]["approvers"] = approvers
        if not floor:
            entry["promotion"].pop("floor", None)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "registered_models.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def leaked(identifiers: set[str], blobs: list[bytes]) -> list[str]:
    """The identifiers found as whole tokens in any blob (not as digits inside a longer
    number such as a new 2.25 UID or a float)."""
    big = b"\n".join(blobs)
    found = []
    for value in sorted(identifiers):
        needle, start = value.encode(), 0
        while (at := big.find(needle, start)) >= 0:
            before = big[at - 1:at] if at else b" "
            after = big[at + len(needle):at + len(needle) + 1] or b" "
            if not (before.isalnum() or before in b"._") and not (after.isalnum() or after == b"_"):
                found.append(value)
                break
            start = at + 1
    return found

def scanned_files(root: Path, folders: list[str]) -> list[bytes]:
    """Contents of every file under the folders, but pixel arrays (numbers only)."""
    return [p.read_bytes() for name in folders for p in (root / name).rglob("*")
            if p.is_file() and p.suffix != ".npy"]
