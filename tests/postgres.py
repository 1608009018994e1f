"""A PostgreSQL database for the tests, found or started; PostgreSQL tests never skip.

In order:
1. `RADFLOW_TEST_POSTGRES_URL` when set (used as it is; the caller owns that database);
2. a server on 127.0.0.1:5432 with trust authentication (the development and CI machines
   run one): a fresh database `radflow_test_<hex>` is created there and dropped at the end;
3. a throwaway server: `initdb` into a temporary folder and `pg_ctl start` on a free
   loopback port (as the `postgres` system user when running as root, since initdb
   refuses root), stopped and removed at the end.
`RADFLOW_TEST_POSTGRES_THROWAWAY=1` skips step 2, so that step 3 can be exercised on a
machine that runs a server.
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCAL_HOST, LOCAL_PORT = "127.0.0.1", 5432
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """No way to get a PostgreSQL database on this machine."""


def sqlalchemy_url(user: str, port: int, dbname: str, host: str = LOCAL_HOST) -> str:
    return f"postgresql+psycopg2://{user}@{host}:{port}/{dbname}"


def _connect(user: str, port: int, dbname: str, timeout_s: int = 3) -> Any:
    import psycopg2

    conn = psycopg2.connect(host=LOCAL_HOST, port=port, user=user, dbname=dbname,
                            connect_timeout=timeout_s)
    conn.autocommit = True
    return conn


def _candidate_users() -> list[str]:
    users = [os.environ.get("PGUSER", ""), "postgres", "root"]
    return [u for i, u in enumerate(users) if u and u not in users[:i]]


def _admin_login(port: int) -> tuple[str, str] | None:
    """(user, maintenance database) of a trust login on 127.0.0.1:port, or None."""
    for user in _candidate_users():
        for dbname in ("test", "postgres"):
            try:
                _connect(user, port, dbname).close()
            except Exception:  # any failure means: try the next login
                continue
            return user, dbname
    return None


def _create_database(user: str, port: int, admin_db: str) -> str:
    name = f"radflow_test_{secrets.token_hex(6)}"
    conn = _connect(user, port, admin_db)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return name


def _drop_database(user: str, port: int, admin_db: str, name: str) -> None:
    conn = _connect(user, port, admin_db)
    try:
        with conn.cursor() as cur:
            # Pooled engines of the tests may still hold connections to it.
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        conn.close()


@contextlib.contextmanager
def _database_on(user: str, port: int, admin_db: str) -> Iterator[str]:
    name = _create_database(user, port, admin_db)
    try:
        yield sqlalchemy_url(user, port, name)
    finally:
        _drop_database(user, port, admin_db, name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_HOST, 0))
        return int(sock.getsockname()[1])


def _server_binaries() -> tuple[Path, Path] | None:
    """initdb and pg_ctl of the newest installed Debian PostgreSQL."""
    def version(path: str) -> float:
        try:
            return float(Path(path).parents[1].name)
        except ValueError:
            return 0.0

    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True):
        pg_ctl = Path(initdb).with_name("pg_ctl")
        if pg_ctl.exists():
            return Path(initdb), pg_ctl
    found = shutil.which("initdb"), shutil.which("pg_ctl")
    if found[0] and found[1]:
        return Path(found[0]), Path(found[1])
    return None


@contextlib.contextmanager
def _throwaway_server() -> Iterator[str]:
    binaries = _server_binaries()
    if binaries is None:
        raise PostgresUnavailable("no initdb/pg_ctl under /usr/lib/postgresql/*/bin")
    initdb, pg_ctl = binaries
    root = Path(tempfile.mkdtemp(prefix="radflow-pg-"))
    data, logfile = root / "data", root / "server.log"
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable("running as root and there is no `postgres` user") from exc
        os.chown(root, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120)

    port = _free_port()
    started = False
    try:
        out = run(str(initdb), "-D", str(data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8",
                  "--locale=C", "--no-sync")
        if out.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {out.stderr.strip()[-500:]}")
        options = (f"-c listen_addresses={LOCAL_HOST} -p {port} -k {root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        out = run(str(pg_ctl), "-D", str(data), "-l", str(logfile), "-o", options, "-w",
                  "-t", "60", "start")
        if out.returncode != 0:
            log = logfile.read_text(errors="replace")[-800:] if logfile.exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {out.stderr.strip()[-500:]}\n{log}")
        started = True
        with _database_on(SUPERUSER, port, "postgres") as url:
            yield url
    finally:
        if started:
            run(str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """The SQLAlchemy URL of an empty PostgreSQL database for this test session.

    Raises:
        PostgresUnavailable: none of the three ways worked (the message says what to do).
    """
    given = os.environ.get("RADFLOW_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    problems = []
    if os.environ.get("RADFLOW_TEST_POSTGRES_THROWAWAY", "") not in ("1", "true", "yes"):
        login = _admin_login(LOCAL_PORT)
        if login is not None:
            with _database_on(login[0], LOCAL_PORT, login[1]) as url:
                yield url
            return
        problems.append(f"no trust login on {LOCAL_HOST}:{LOCAL_PORT} as "
                        f"{', '.join(_candidate_users())} (database test or postgres)")
    try:
        server = _throwaway_server()
        url = server.__enter__()
    except PostgresUnavailable as exc:
        problems.append(f"throwaway server: {exc}")
        raise PostgresUnavailable(
            "PostgreSQL tests need a server and never skip. Tried: " + "; ".join(problems)
            + ". Fix: `make bootstrap` installs the Debian package postgresql (needs root), "
            "or set RADFLOW_TEST_POSTGRES_URL=postgresql+psycopg2://user@host:port/db "
            f"(running as {getpass.getuser()})."
        ) from exc
    try:
        yield url
    finally:
        server.__exit__(None, None, None)
