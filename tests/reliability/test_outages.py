"""Reliability item 4: a service stopped or restarted in the middle of a run.

Every outage is real. Orthanc, MLflow and Triton are stopped by radflow's own supervision
(`radflow stack down --only <service>`, which stops that service and no other) and started
again with `stack up --only <service>`, so their clients meet refused connections; MLflow is
also frozen once (SIGSTOP of its process group, then SIGCONT: its clients' calls hang);
PostgreSQL is restarted (`pg_ctl restart -m fast`: every session ends, open transactions roll
back). The PostgreSQL is a cluster of this module's own, made the way tests/postgres.py makes
its throwaway one, so that restarting it disturbs no other test (the machine's server on
127.0.0.1:5432 never moves).

A run is driven as the DAGs drive a stage: one attempt is one `radflow <stage> --json`
command, and a failed attempt is retried as Airflow retries the task, with the DAGs' own
policy (`pipelines.orchestration.controls.default_args` under this stack's settings: 10
retries, 6 s then 9 s apart, the lower bound of Airflow's jittered exponential backoff; a
PermanentError is not retried). That budget (87 s) exceeds the longest outage (60 s), so
every case is expected to complete within its retries, and each failed attempt to fail
clean: exit 1 with an error naming the service. Where the outage falls is pinned by a lock
this test holds on a table the stage is about to write (the stage waits on it, visibly in
pg_stat_activity), so that each case hits the same moment on every run:

- Orthanc stopped for 60 s while ingest commits its first studies and, in the same outage,
  while a screening night's merge holds its results transaction (released once Orthanc is
  down, so the write-back meets the outage);
- MLflow stopped while a promotion holds its audit row, just before the alias moves; MLflow
  frozen for 20 s while training runs (once its MLflow run exists);
- Triton stopped between a night's scoring batches (batch 0 scored, held at its staging);
- PostgreSQL restarted while screening's results transaction is open (its exam and view rows
  written, not committed, the transaction waiting on its last table).

After each: 0 partial commits (what a failed attempt left is all or nothing: a whole night of
results or none, an exam with all its views in the database and the lake or none, an audit
row only with its alias), 0 lost rows, and the retried run's counts exact (every exam once,
one SR, CAD SR and heatmap series per study). Figures: docs/reliability.md, item 4.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests import postgres as pg
from tests.integration.models import approve, register_versions
from tests.integration.stack import RADFLOW, WITHOUT_AIRFLOW, Stack, running_stack
from tests.reliability.figures import record

TRAIN_DATE, TRAIN_EXAMS = "2026-08-03", 24
NIGHTS = {"orthanc": ("2026-08-04", 6), "triton": ("2026-08-05", 6), "postgres": ("2026-08-06", 4)}
ORTHANC_OUTAGE_S = 60.0
FREEZE_S = 20.0  # MLflow frozen (SIGSTOP) during training: under its client's 60 s timeout
BATCH_EXAMS = 2  # screening batches of 2 exams: a night of 6 is scored in 3 batches
MODEL, CHEST_MODEL = "mammo-screening", "cxr-nodule"
# The DAGs' retry policy in this stack (RADFLOW_TASK_RETRIES etc.): waits of 6 s, then 9 s.
RETRY_SETTINGS = {"RADFLOW_TASK_RETRIES": "10", "RADFLOW_RETRY_DELAY_MINUTES": "0.1",
                  "RADFLOW_MAX_RETRY_DELAY_MINUTES": "0.15"}


class Postgres:
    """A PostgreSQL cluster of this module's own, made as tests/postgres.py makes its
    throwaway one: initdb and pg_ctl (as the `postgres` user when running as root, since
    initdb refuses root), trust authentication, a free loopback port."""

    def __init__(self) -> None:
        binaries = pg._server_binaries()
        if binaries is None:
            raise pg.PostgresUnavailable("no initdb/pg_ctl under /usr/lib/postgresql/*/bin")
        self.initdb, self.pg_ctl = binaries
        self.root = Path(tempfile.mkdtemp(prefix="radflow-pg-outages-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = pg._free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str) -> str:
        return pg.sqlalchemy_url(pg.SUPERUSER, self.port, database)

    def _run(self, *argv: str) -> None:
        out = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            log = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            raise pg.PostgresUnavailable(f"{Path(argv[0]).name} failed: {out.stderr.strip()[-500:]}\n{log}")

    def _pg_ctl(self, *argv: str) -> None:
        # -l always: without it the server would write to (and hold open) this test's pipes
        self._run(str(self.pg_ctl), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *argv)

    def start(self, database: str) -> None:
        self._run(str(self.initdb), "-D", str(self.data), "-A", "trust", "-U", pg.SUPERUSER, "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self._pg_ctl("-o", f"-c listen_addresses={pg.LOCAL_HOST} -p {self.port} -k {self.root} "
                     "-c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start")
        conn = pg._connect(pg.SUPERUSER, self.port, "postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{database}"')
        finally:
            conn.close()

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every session ends, open transactions roll back; returns
        once the server accepts connections again."""
        self._pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        try:
            self._pg_ctl("-m", "fast", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        server.start("radflow")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Orthanc, MLflow and Triton on this module's PostgreSQL (no Airflow: the retries are
    driven here, with the DAGs' policy)."""
    env = {**RETRY_SETTINGS, "RADFLOW_TRAIN_EPOCHS": "1", "RADFLOW_SCREENING_BATCH_EXAMS": str(BATCH_EXAMS)}
    with running_stack(tmp_path_factory.mktemp("radflow-state"), postgres.url("radflow"), WITHOUT_AIRFLOW,
                       env) as running:
        yield running


# --- runs driven as the DAGs drive them ---------------------------------------------------------

@dataclass
class Attempt:
    code: int
    out: dict[str, Any]
    seconds: float
    stderr: str = ""  # its tail, for the assertion messages

    @property
    def error(self) -> str:
        return str(self.out.get("error", ""))


class Run:
    """`radflow <args>` driven as the DAGs drive a stage, on a thread of its own: one attempt
    is one command; a failed one is retried with the DAGs' policy (`retry_waits`) unless its
    error is a PermanentError. `after_first_failure` runs once, right after the first failed
    attempt and before any retry (it may wait, e.g. for the service to be back): it looks at
    what the failed attempt left behind."""

    def __init__(self, stack: Stack, *args: str, env: dict[str, str] | None = None,
                 after_first_failure: Callable[[], dict[str, Any]] | None = None) -> None:
        self.stack, self.args, self.env = stack, args, env
        self.attempts: list[Attempt] = []
        self.after_first_failure: dict[str, Any] = {}
        self.seconds = 0.0
        self._check = after_first_failure
        self._waits = retry_waits(stack)  # here, on the test's thread: it sets this process's settings
        pool = ThreadPoolExecutor(max_workers=1)
        self._future = pool.submit(self._drive)
        pool.shutdown(wait=False)

    def _drive(self) -> None:
        waits, started = self._waits, time.monotonic()
        for n in range(len(waits) + 1):
            self.attempts.append(attempt(self.stack, self.args, self.env))
            last = self.attempts[-1]
            if last.code == 0 or permanent(str(last.out.get("type", ""))) or n == len(waits):
                break
            if n == 0 and self._check is not None:
                self.after_first_failure = self._check()
            time.sleep(waits[n])
        self.seconds = time.monotonic() - started

    def join(self, timeout_s: float = 900) -> Run:
        self._future.result(timeout=timeout_s)
        return self

    def failed_once(self) -> bool:
        return any(a.code != 0 for a in list(self.attempts)) or self._future.done()

    @property
    def completed(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].code == 0

    @property
    def failures(self) -> list[Attempt]:
        return [a for a in self.attempts if a.code != 0]

    @property
    def result(self) -> dict[str, Any]:
        assert self.completed, f"radflow {' '.join(self.args)} did not complete: {self.failures[-1:]}"
        return self.attempts[-1].out

    def outcome(self) -> str:
        if not self.completed:
            return "failed clean" if self.failures else "no attempt"
        return "completed within retries" if self.failures else "completed (no attempt failed)"

    def errors_name(self, service: str) -> bool:
        """Every failed attempt's error names the service."""
        return all(service.lower() in a.error.lower() for a in self.failures)


def retry_waits(stack: Stack) -> list[float]:
    """Seconds before each retry, from the DAGs' default_args under this stack's settings
    (Airflow waits between 1x and 2x the exponential delay; this takes the lower bound)."""
    from pipelines import config
    from pipelines.orchestration.controls import default_args

    with pytest.MonkeyPatch.context() as patch:
        for key, value in stack.env.items():
            if key.startswith("RADFLOW_"):
                patch.setenv(key, value)
        config.reset_settings()
        try:
            args = default_args("radflow")
        finally:
            config.reset_settings()
    first, cap = args["retry_delay"].total_seconds(), args["max_retry_delay"].total_seconds()
    return [min(first * args["retry_exponential_backoff"] ** n, cap) for n in range(args["retries"])]


def permanent(error_type: str) -> bool:
    """Whether the orchestration layer would fail the task without retrying (PermanentError)."""
    from pipelines import errors

    found = getattr(errors, error_type, None)
    return isinstance(found, type) and issubclass(found, errors.PermanentError)


def attempt(stack: Stack, args: tuple[str, ...], env: dict[str, str] | None = None) -> Attempt:
    started = time.monotonic()
    proc = subprocess.run([RADFLOW, *args, "--json"], env=env or stack.env, capture_output=True, text=True,
                          timeout=900)
    stack.outputs.append(proc.stdout + proc.stderr)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode in (0, 1) and lines, (
        f"radflow {' '.join(args)} crashed (exit {proc.returncode}): {proc.stderr[-3000:]}")
    return Attempt(proc.returncode, json.loads(lines[-1]), time.monotonic() - started, proc.stderr[-3000:])


# --- outages ------------------------------------------------------------------------------------

@dataclass
class Outage:
    service: str
    down_at: float = 0.0
    up_at: float = 0.0

    @property
    def seconds(self) -> float:
        return round(self.up_at - self.down_at, 1)


def stop_service(stack: Stack, service: str, already_down: tuple[str, ...] = ()) -> Outage:
    """`radflow stack down --only <service>`: that service stopped, the others (but those
    `already_down`) still running."""
    out = stack.radflow("stack", "down", "--only", service)
    assert out["actions"] == {service: "stopped"}, out["actions"]
    running = {name: out["services"][name]["running"] for name in WITHOUT_AIRFLOW}
    assert running == {name: name not in (service, *already_down) for name in WITHOUT_AIRFLOW}, running
    return Outage(service, down_at=time.monotonic())


def start_service(stack: Stack, outage: Outage) -> None:
    """`radflow stack up --only <service>`: healthy again (Triton reloads what was deployed)."""
    stack.radflow("stack", "up", "--only", outage.service, timeout=600)
    outage.up_at = time.monotonic()


def wait_for(what: str, condition: Callable[[], Any], timeout_s: float = 300, poll_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@contextlib.contextmanager
def frozen(stack: Stack, service: str) -> Iterator[None]:
    """The service's processes stopped with SIGSTOP (connections are accepted by the kernel and
    hang: a frozen server), continued with SIGCONT after the block. The process group is the
    one radflow's supervision recorded (<state>/run/<service>.pid, its own session)."""
    pid = int((stack.state / "run" / f"{service}.pid").read_text())
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


class Held:
    """A lock this test holds in an open transaction of its own, which a stage's statement then
    waits on (in pg_stat_activity) until `release` (or a server restart ends the session)."""

    def __init__(self, stack: Stack, statement: str) -> None:
        self.engine = sa.create_engine(stack.db_url, poolclass=sa.pool.NullPool)
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()
        self.conn.execute(sa.text(statement))

    def release(self) -> None:
        with contextlib.suppress(sa.exc.DBAPIError):
            self.tx.rollback()
        with contextlib.suppress(sa.exc.DBAPIError):
            self.conn.close()
        self.engine.dispose()


def waiting_statement(stack: Stack, prefix: str) -> bool:
    """Whether a session of the results database waits on a lock in a statement starting with `prefix`."""
    rows = stack.query("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
    return any(r["query"].lstrip().upper().startswith(prefix.upper()) for r in rows)


# The last statement of screening's results transaction (pipelines/screening/results.py `store`):
# a SHARE lock this test holds on qc_device_rates keeps the transaction open there.
RESULTS_LAST = "DELETE FROM qc_device_rates"


def transaction_tables(stack: Stack, prefix: str) -> list[str]:
    """The tables the session waiting on a lock in a statement starting with `prefix` has
    written to in its open transaction (it holds their RowExclusiveLock)."""
    rows = stack.query(
        "SELECT c.relname, a.query FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.mode = 'RowExclusiveLock' AND l.granted "
        "AND a.wait_event_type = 'Lock' AND c.relkind = 'r'")
    return sorted({r["relname"] for r in rows if r["query"].lstrip().upper().startswith(prefix.upper())})


# --- what the stages left -----------------------------------------------------------------------

def orthanc(stack: Stack) -> tuple[str, tuple[str, str]]:
    return f"http://127.0.0.1:{stack.env['RADFLOW_ORTHANC_HTTP_PORT']}", ("radflow", stack.secret(
        "orthanc", "RADFLOW_ORTHANC_PASSWORD"))


def written_back(stack: Stack, night: str) -> dict[str, list[tuple[str, int]]]:
    """Per study of the night: radflow's series in it as (kind, instances), sorted."""
    url, auth = orthanc(stack)
    found = httpx.post(f"{url}/tools/find", auth=auth, timeout=60,
                       json={"Level": "Study", "Query": {"StudyDate": night.replace("-", "")}}).json()
    out = {}
    for study in found:
        series = httpx.get(f"{url}/studies/{study}/series", auth=auth, timeout=60).json()
        descriptions = [(s["MainDicomTags"].get("SeriesDescription", ""), len(s["Instances"]))
                        for s in series]
        out[study] = sorted((d.split()[2], n) for d, n in descriptions if d.startswith("radflow mammo "))
    return out


EXPECTED_SERIES = [("CAD-SR", 1), ("SR", 1), ("heatmaps", 4)]  # per study: one of each, 4 heatmaps


def night_rows(stack: Stack, night: str) -> dict[str, int]:
    """The night's rows in the results database."""
    exams = [r["exam_id"] for r in stack.query("SELECT exam_id FROM exam_results WHERE study_date = :d",
                                                 d=night)]
    count = "SELECT count(*) AS n FROM {} WHERE study_date = :d"
    return {"exam_rows": len(exams), "distinct_exams": len(set(exams)),
            "view_rows": int(stack.query(count.format("view_results"), d=night)[0]["n"]),
            "qc_flag_rows": int(stack.query(count.format("qc_flags"), d=night)[0]["n"])}


def half_stored(rows: dict[str, int], exams: int) -> int:
    """Exams a failed attempt left half-stored: the results transaction is all or nothing
    (no exam or every one, each with its 4 views)."""
    return (0 if rows["exam_rows"] in (0, exams) else abs(exams - rows["exam_rows"])) \
        + abs(rows["view_rows"] - 4 * rows["exam_rows"])


def half_written(series: dict[str, list[tuple[str, int]]]) -> int:
    """Studies holding some of radflow's objects but not exactly one SR, CAD SR and heatmap series."""
    return sum(1 for s in series.values() if s and s != EXPECTED_SERIES)


def run_record(stack: Stack, night: str) -> dict[str, Any]:
    (row,) = stack.query("SELECT status, error FROM screening_runs WHERE study_date = :d", d=night)
    return row


def assert_night_complete(stack: Stack, night: str, exams: int, run: Run) -> dict[str, int]:
    """The retried night: every exam once with its 4 views, one SR, CAD SR and heatmap series
    in each study, the run complete and the worklist listing every exam. Returns the counts."""
    assert run.completed, f"screen {night} did not complete: {run.failures[-1:]}"
    assert run.result["exams"] == exams and run.result["quarantined"] == []
    rows = night_rows(stack, night)
    assert rows["exam_rows"] == rows["distinct_exams"] == exams and rows["view_rows"] == 4 * exams, rows
    series = written_back(stack, night)
    assert len(series) == exams and all(s == EXPECTED_SERIES for s in series.values()), series
    assert run_record(stack, night)["status"] == "complete"
    with open(stack.state / "worklists" / "mammo" / night / "worklist.csv") as fh:
        listed = list(csv.DictReader(fh))
    assert len(listed) == exams
    return {**rows, "studies_written_once": sum(1 for s in series.values() if s == EXPECTED_SERIES),
            "worklist_rows": len(listed)}


def lake_state(stack: Stack) -> dict[str, int]:
    """Ingest's commits as the database and the lake show them: an exam is committed whole
    (4 manifest rows, each naming a file that exists) or not at all (no rows, no folder)."""
    rows = stack.query("SELECT exam_id, image_path FROM images")
    views: dict[str, int] = {}
    for r in rows:
        views[r["exam_id"]] = views.get(r["exam_id"], 0) + 1
    missing_files = sum(1 for r in rows if not Path(r["image_path"]).is_file())
    folders = {p.parent for p in (stack.state / "lake" / "images").glob("study_date=*/*/*.npy")}
    orphans = len({f.name for f in folders} - set(views))
    return {"exams": len(views), "view_rows": len(rows),
            "partial": sum(1 for n in views.values() if n != 4) + missing_files + orphans,
            "quarantined": len(stack.query("SELECT item_id FROM quarantine WHERE stage = 'ingest'"))}


def watermark(stack: Stack) -> int:
    rows = stack.query("SELECT watermark FROM ingest_state")
    return max((int(r["watermark"]) for r in rows), default=0)


def lost_studies(stack: Stack, uids: list[str]) -> int:
    """Study UIDs pushed to Orthanc that have no exam in the manifest."""
    found = stack.query("SELECT p.original FROM pseudonyms p JOIN images i ON i.exam_id = p.pseudonym "
                        "WHERE p.kind = 'study' GROUP BY p.original")
    return len(set(uids) - {r["original"] for r in found})


def _aliases(stack: Stack, model: str) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    return {alias: str(version) for alias, version in client.get_registered_model(model).aliases.items()}


def _versions(stack: Stack) -> list[dict[str, Any]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    aliases = client.get_registered_model(MODEL).aliases  # {alias: version}; a search leaves them out
    return [{"version": int(mv.version), "tags": dict(mv.tags),
             "aliases": sorted(a for a, v in aliases.items() if int(v) == int(mv.version))}
            for mv in client.search_model_versions(f"name = '{MODEL}'")]


def _training_started(stack: Stack) -> bool:
    """Whether a run of training's experiment is running in MLflow."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    experiment = client.get_experiment_by_name("mammo-screening")  # RADFLOW_MLFLOW_EXPERIMENT
    return experiment is not None and bool(
        client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"))


def _mlflow_run(stack: Stack, run_id: str) -> dict[str, Any]:
    """An MLflow run's status, start and end (ms) and its metrics as (key, ms)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    run = client.get_run(run_id)
    metrics = [(key, m.timestamp) for key in run.data.metrics for m in client.get_metric_history(run_id, key)]
    return {"status": run.info.status, "start_ms": run.info.start_time, "end_ms": run.info.end_time,
            "metrics": sorted(metrics, key=lambda m: m[1])}


# --- the module's data --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(stack: Stack) -> dict[str, list[str]]:
    """Synthetic exams in Orthanc (the training date and the nights): {date: StudyInstanceUIDs}."""
    uids = {}
    for seed, (date, exams) in enumerate([(TRAIN_DATE, TRAIN_EXAMS), *NIGHTS.values()], start=41):
        out = stack.radflow("synth", "--exams", str(exams), "--date", date, "--site", "north",
                            "--seed", str(seed), "--positive-rate", "0.5")
        with open(out["truth_file"]) as fh:
            uids[date] = [r["study_instance_uid"] for r in csv.DictReader(fh)]
    stack.wait_stable()
    return uids


@pytest.fixture(scope="module")
def champion(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> int:
    """The nights' champion: a version with known weights (tests/integration/models.py),
    approved as a passed gate records it, deployed on Triton."""
    (version,) = register_versions(stack, MODEL, [(128, 96)], tmp_path_factory.mktemp("onnx"))
    approve(stack, MODEL, version)
    stack.radflow("deploy")
    return version


@dataclass
class Window:
    """The first outages' runs: what each attempt did and left."""

    orthanc: Outage
    mlflow: Outage
    ingest: Run
    screen: Run
    promote: Run
    seconds: float


@pytest.fixture(scope="module")
def first_outages(stack: Stack, data: dict, champion: int,
                  tmp_path_factory: pytest.TempPathFactory) -> Window:
    """One window of outages, as a night could meet them together. Orthanc is stopped for
    60 s while ingest commits its first studies and while a night's merge holds its results
    transaction; in the same window MLflow is stopped while a promotion (the chest task's
    first champion) holds its audit row, and started again once that attempt has failed. The
    locks are released once the services are down, so the stages go on into the outage."""
    started = time.monotonic()
    night, _ = NIGHTS["orthanc"]
    (chest,) = register_versions(stack, CHEST_MODEL, [(128, 96)], tmp_path_factory.mktemp("chest"))
    mlflow_back = threading.Event()

    def promotion_left() -> dict[str, Any]:  # once MLflow is back, before any retry
        mlflow_back.wait(600)
        audit = stack.query("SELECT id FROM promotions WHERE model_name = :m", m=CHEST_MODEL)
        return {"audit_rows": len(audit),
                "champion_moved": "champion" in _aliases(stack, CHEST_MODEL)}

    results = Held(stack, "LOCK TABLE qc_device_rates IN SHARE MODE")  # the results' last table
    audit = Held(stack, "LOCK TABLE promotions IN SHARE MODE")  # the audit row's INSERT
    try:
        screen = Run(stack, "screen", "--date", night,
                     after_first_failure=lambda: {**night_rows(stack, night), **run_record(stack, night)})
        promote = Run(stack, "promote", "--task", "cxr-nodule", "--version", str(chest), "--reason",
                      "first champion", env=stack.login_env("admin"), after_first_failure=promotion_left)
        wait_for("the night's results transaction", lambda: waiting_statement(stack, RESULTS_LAST),
                 timeout_s=600)
        wait_for("the promotion's audit row", lambda: waiting_statement(stack, "INSERT INTO promotions"),
                 timeout_s=600)
        ingest = Run(stack, "ingest", after_first_failure=lambda: lake_state(stack))
        wait_for("ingest's first committed study", lambda: watermark(stack) > 0, timeout_s=600)
        orthanc_down = stop_service(stack, "orthanc")
        mlflow_down = stop_service(stack, "mlflow", already_down=("orthanc",))
    finally:
        results.release()
        audit.release()

    def mlflow_again() -> None:  # beside the Orthanc outage's 60 s, not after them
        try:
            wait_for("the promotion's first attempt to end", promote.failed_once, timeout_s=600, poll_s=0.2)
        finally:
            start_service(stack, mlflow_down)
            mlflow_back.set()

    restarting = ThreadPoolExecutor(max_workers=1)
    mlflow_up = restarting.submit(mlflow_again)
    try:
        time.sleep(max(0.0, ORTHANC_OUTAGE_S - (time.monotonic() - orthanc_down.down_at)))
    finally:
        start_service(stack, orthanc_down)
        mlflow_up.result(timeout=900)
        restarting.shutdown()
    for run in (ingest, screen, promote):
        run.join()
    return Window(orthanc_down, mlflow_down, ingest, screen, promote, time.monotonic() - started)


def test_orthanc_stopped_for_60s_during_ingest(stack: Stack, data: dict, first_outages: Window) -> None:
    """Ingest's attempt fails naming Orthanc, having committed whole exams only (each with
    its 4 views in the database and the lake); its retries complete every exam once."""
    ingest, every = first_outages.ingest, [uid for uids in data.values() for uid in uids]
    assert ingest.failures, "the outage did not reach ingest: it finished first"
    first = ingest.failures[0]
    assert first.out["type"] == "OrthancUnavailable", (first.out, first.stderr)
    assert ingest.errors_name("Orthanc"), ingest.failures
    before = ingest.after_first_failure
    assert before["partial"] == 0 and before["quarantined"] == 0 and 0 < before["exams"] < len(every), before
    assert ingest.completed, ingest.failures[-1:]
    after = lake_state(stack)
    assert after == {"exams": len(every), "view_rows": 4 * len(every), "partial": 0, "quarantined": 0}, after
    lost = lost_studies(stack, every)
    assert lost == 0
    again = stack.radflow("ingest")
    assert again["quarantined"] == [] and lake_state(stack) == after
    record(4, "orthanc_stopped_during_ingest", {
        "outage_s": first_outages.orthanc.seconds, "run_outcome": ingest.outcome(),
        "attempts": len(ingest.attempts), "error_names_service": ingest.errors_name("Orthanc"),
        "exams_committed_before_the_outage": before["exams"], "partial_commits": before["partial"],
        "lost_rows": lost, "exams_after_rerun": after["exams"], "view_rows_after_rerun": after["view_rows"],
        "seconds_to_complete": round(ingest.seconds, 1),
    }, seconds=first_outages.seconds,
        note=f"{len(every)} exams; Orthanc stopped once ingest had committed its first study, started "
             f"again {ORTHANC_OUTAGE_S:.0f} s after it stopped (outage_s: until healthy), the outage "
             "of orthanc_stopped_during_screening")


def test_orthanc_stopped_for_60s_during_screening(stack: Stack, first_outages: Window) -> None:
    """The night's attempt fails naming Orthanc after its results transaction committed whole
    (the write-back met the outage); its retries complete the night: every exam once, one SR,
    CAD SR and heatmap series per study."""
    night, exams = NIGHTS["orthanc"]
    screen = first_outages.screen
    assert screen.failures, "the outage did not reach the night"
    first = screen.failures[0]
    assert first.out["type"] == "OrthancUnavailable", (first.out, first.stderr)
    assert screen.errors_name("Orthanc"), screen.failures
    left = screen.after_first_failure
    assert left["status"] == "failed" and "Orthanc" in left["error"], left
    assert half_stored(left, exams) == 0 and left["exam_rows"] == exams, left  # committed whole
    counts = assert_night_complete(stack, night, exams, screen)
    record(4, "orthanc_stopped_during_screening", {
        "outage_s": first_outages.orthanc.seconds, "run_outcome": screen.outcome(),
        "attempts": len(screen.attempts), "error_names_service": screen.errors_name("Orthanc"),
        "partial_commits": half_stored(left, exams), "lost_rows": exams - counts["exam_rows"],
        "exam_rows_after_rerun": counts["exam_rows"], "studies_written_once": counts["studies_written_once"],
        "seconds_to_complete": round(screen.seconds, 1),
    }, seconds=first_outages.seconds,
        note=f"{exams} exams; Orthanc stopped while the night's merge held its results transaction (a lock "
             "held by the test, released once Orthanc was down, so the write-back met the outage)")


def test_mlflow_stopped_during_a_promotion(stack: Stack, first_outages: Window) -> None:
    """The promotion's attempt fails naming MLflow at its alias move, leaving no audit row and
    no alias; its retry promotes, audited once."""
    promote = first_outages.promote
    assert promote.failures, "the outage did not reach the promotion"
    first = promote.failures[0]
    assert first.out["type"] == "MlflowUnavailable", (first.out, first.stderr)
    assert promote.errors_name("MLflow"), promote.failures
    left = promote.after_first_failure
    assert left == {"audit_rows": 0, "champion_moved": False}, left
    assert promote.result["outcome"] == "promoted"
    audit = stack.query("SELECT version, outcome FROM promotions WHERE model_name = :m", m=CHEST_MODEL)
    assert audit == [{"version": promote.result["version"], "outcome": "promoted"}]
    assert _aliases(stack, CHEST_MODEL) == {"champion": promote.result["version"]}
    record(4, "mlflow_stopped_during_promotion", {
        "outage_s": first_outages.mlflow.seconds, "run_outcome": promote.outcome(),
        "attempts": len(promote.attempts), "error_names_service": promote.errors_name("MLflow"),
        "partial_commits": left["audit_rows"] + int(left["champion_moved"]),
        "audit_rows_after_rerun": len(audit), "seconds_to_complete": round(promote.seconds, 1),
    }, seconds=first_outages.seconds,
        note="MLflow stopped while the promotion waited on its audit row (a lock held by the test), "
             "started again once the attempt had failed (in the window of the Orthanc outage)")


def test_mlflow_frozen_during_training(stack: Stack, data: dict) -> None:
    """MLflow stopped by SIGSTOP (its processes frozen: calls hang, nothing is refused) for
    20 s once training's MLflow run exists, then resumed: the training's calls wait and go
    on, one complete version is registered as challenger, and nothing else."""
    stack.radflow("build-dataset")
    started = time.monotonic()
    before = {v["version"] for v in _versions(stack)}
    run = Run(stack, "train")
    wait_for("training's MLflow run", lambda: _training_started(stack), timeout_s=600, poll_s=0.2)
    frozen_at = time.time()
    with frozen(stack, "mlflow"):
        time.sleep(FREEZE_S)
    thawed_at = time.time()
    run.join()
    assert run.completed and not run.failures, run.failures
    new = [v for v in _versions(stack) if v["version"] not in before]
    assert [v["version"] for v in new] == [int(run.result["model_version"])]
    assert {"onnx_sha256", "operating_point", "suspicion_cuts", "dataset_version"} <= set(new[0]["tags"])
    assert new[0]["aliases"] == ["challenger"]
    training = _mlflow_run(stack, run.result["run_id"])
    assert training["status"] == "FINISHED"
    # a call made while MLflow was frozen: its metric's (client) time falls in the freeze
    hung = [m for m in training["metrics"] if frozen_at * 1000 <= m[1] < thawed_at * 1000]
    assert hung, f"no MLflow call of training fell in the freeze: {training['metrics']}"
    assert training["start_ms"] < frozen_at * 1000 and training["end_ms"] > thawed_at * 1000
    record(4, "mlflow_frozen_during_training", {
        "outage_s": round(thawed_at - frozen_at, 1), "outage_kind": "SIGSTOP (calls hang)",
        "run_outcome": run.outcome(), "attempts": len(run.attempts), "partial_commits": 0,
        "versions_after_run": len(new), "complete_versions": sum(
            {"onnx_sha256", "operating_point", "suspicion_cuts"} <= set(v["tags"]) for v in new),
        "seconds_to_complete": round(run.seconds, 1),
    }, seconds=time.monotonic() - started,
        note=f"1 epoch; MLflow's processes SIGSTOPped for {FREEZE_S:.0f} s once training's MLflow run "
             f"existed (a call of training waited in it: {hung[0][0]}), then SIGCONTed")


def test_triton_stopped_during_screening(stack: Stack, data: dict) -> None:
    """Triton goes down between a night's scoring batches (batch 0 scored and held at its
    staging by a lock): the attempt fails naming Triton before any result, SR or worklist
    exists; its retry completes the night."""
    started = time.monotonic()
    night, exams = NIGHTS["triton"]

    def left_behind() -> dict[str, Any]:
        staged = stack.query("SELECT batch FROM screening_batches WHERE study_date = :d", d=night)
        return {**night_rows(stack, night), **run_record(stack, night), "batches_staged": len(staged),
                "half_written": half_written(written_back(stack, night)),
                "studies_with_results": sum(1 for s in written_back(stack, night).values() if s)}

    run = Run(stack, "screen", "--date", night, after_first_failure=left_behind)
    planned = f"SELECT 1 FROM screening_runs WHERE study_date = '{night}' AND status = 'running'"
    wait_for("the night's plan", lambda: stack.query(planned), timeout_s=600, poll_s=0.02)
    held = Held(stack, f"SELECT plan_id FROM screening_plans WHERE study_date = '{night}' FOR UPDATE")
    try:  # a batch's staging transaction locks the plan's row first
        wait_for("a scored batch to wait at its staging",
                 lambda: waiting_statement(stack, "SELECT screening_plans.plan_id"), timeout_s=600)
        outage = stop_service(stack, "triton")
    finally:
        held.release()
    try:
        wait_for("the night's first attempt to end", run.failed_once, timeout_s=600, poll_s=0.2)
    finally:
        start_service(stack, outage)
    run.join()
    assert run.failures, "the outage did not reach the night"
    first = run.failures[0]
    assert first.out["type"] == "TritonUnavailable" and run.errors_name("Triton"), (first.out, first.stderr)
    left = run.after_first_failure
    assert left["status"] == "failed" and "Triton" in left["error"], left
    assert 1 <= left["batches_staged"] < exams // BATCH_EXAMS, left  # between batches
    assert (left["exam_rows"], left["view_rows"], left["studies_with_results"]) == (0, 0, 0), left
    counts = assert_night_complete(stack, night, exams, run)
    record(4, "triton_stopped_during_screening", {
        "outage_s": outage.seconds, "run_outcome": run.outcome(), "attempts": len(run.attempts),
        "error_names_service": run.errors_name("Triton"),
        "batches_scored_before_the_outage": left["batches_staged"],
        "partial_commits": left["exam_rows"] + left["view_rows"] + left["studies_with_results"],
        "lost_rows": exams - counts["exam_rows"], "exam_rows_after_rerun": counts["exam_rows"],
        "studies_written_once": counts["studies_written_once"], "seconds_to_complete": round(run.seconds, 1),
    }, seconds=time.monotonic() - started,
        note=f"{exams} exams in batches of {BATCH_EXAMS}; Triton stopped while a scored batch waited at its "
             "staging (a lock held by the test), started again once the attempt had failed")


def test_postgres_restarted_during_the_results_transaction(stack: Stack, postgres: Postgres,
                                                           data: dict) -> None:
    """PostgreSQL restarts while screening's results transaction is open (its exam, view and
    QC rows written, waiting on a lock this test holds on its last table): the attempt fails,
    nothing of the transaction is committed, and the retry stores the night exactly once."""
    started = time.monotonic()
    night, exams = NIGHTS["postgres"]

    def left_behind() -> dict[str, Any]:
        return {**night_rows(stack, night), "studies_with_results": sum(
            1 for s in written_back(stack, night).values() if s)}

    held = Held(stack, "LOCK TABLE qc_device_rates IN SHARE MODE")
    try:
        run = Run(stack, "screen", "--date", night, after_first_failure=left_behind)
        wait_for("the night's results transaction", lambda: waiting_statement(stack, RESULTS_LAST),
                 timeout_s=600)
        written = transaction_tables(stack, RESULTS_LAST)
        restarting = time.monotonic()
        postgres.restart()
        restart_s = time.monotonic() - restarting
    finally:
        held.release()
    run.join()
    assert {"exam_results", "view_results"} <= set(written), written  # the restart hit the open transaction
    assert run.failures, "the restart did not reach the night"
    first = run.failures[0]
    assert first.out["type"] == "DatabaseUnavailable", (first.out, first.stderr)
    assert run.errors_name("PostgreSQL"), run.failures
    left = run.after_first_failure
    assert left == {"exam_rows": 0, "distinct_exams": 0, "view_rows": 0, "qc_flag_rows": 0,
                    "studies_with_results": 0}, left
    counts = assert_night_complete(stack, night, exams, run)
    record(4, "postgres_restarted_during_results_transaction", {
        "restart_s": round(restart_s, 1), "run_outcome": run.outcome(), "attempts": len(run.attempts),
        "error_names_service": run.errors_name("PostgreSQL"),
        "partial_commits": sum(left.values()), "lost_rows": exams - counts["exam_rows"],
        "exam_rows_after_rerun": counts["exam_rows"], "view_rows_after_rerun": counts["view_rows"],
        "studies_written_once": counts["studies_written_once"], "seconds_to_complete": round(run.seconds, 1),
    }, seconds=time.monotonic() - started,
        note=f"{exams} exams; `pg_ctl restart -m fast` of the module's own cluster while the results "
             f"transaction (rows in {', '.join(written)}) waited on a lock held by the test")
