"""The embedded PostgreSQL cluster, used when no RADFLOW_DATABASE_URL is given.

`radflow stack up` initialises it once from the Debian server binaries (package
`postgresql`) under `<state>/postgres/data` and runs it on 127.0.0.1:RADFLOW_POSTGRES_PORT
with password authentication only (scram-sha-256, user `radflow`, password generated
into `<state>/secrets/postgres.env`); its socket lives beside the data, not in /run. It
holds radflow's results database (`radflow`) and Airflow's metadata (`radflow_airflow`).

PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system
user, which must be able to reach the state folder; when it cannot (a state folder under
a private home), the cluster lives in /var/lib/postgresql/radflow-<hash of the state
folder> instead, and `stack status` names the folder.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from pipelines.config import RadflowSettings
from pipelines.errors import StackError
from pipelines.stack import secrets

SYSTEM_USER = "postgres"
STOP_SIGNAL = signal.SIGINT  # PostgreSQL's "fast" shutdown: no waiting for pooled clients


def binaries() -> Path:
    """The bin/ folder of the newest installed Debian PostgreSQL server."""
    def version(path: str) -> float:
        try:
            return float(Path(path).parents[1].name)
        except ValueError:
            return 0.0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=version, reverse=True)
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    raise StackError("PostgreSQL server binaries not found: `make bootstrap` installs the Debian "
                     "package postgresql (needs root), or set RADFLOW_DATABASE_URL to an existing "
                     "PostgreSQL database")


def _owner() -> pwd.struct_passwd | None:
    """The system user the cluster runs as when radflow runs as root (None otherwise)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError as exc:
        raise StackError("running as root and there is no `postgres` system user to run the "
                         "embedded PostgreSQL: install the Debian package postgresql") from exc


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Can `user` traverse every folder above `path`?"""
    for folder in [*reversed(path.parents)]:
        if not folder.exists():
            return True
        st = folder.stat()
        bits = (0o100 if st.st_uid == user.pw_uid else 0o010 if st.st_gid == user.pw_gid else 0o001)
        if not st.st_mode & bits:
            return False
    return True


def root_dir(s: RadflowSettings) -> Path:
    """Where the cluster lives: `<state>/postgres`, or a folder the postgres user can reach."""
    preferred = s.state / "postgres"
    owner = _owner()
    if owner is None or _reachable_by(preferred, owner):
        return preferred
    digest = hashlib.sha256(str(s.state).encode()).hexdigest()[:12]
    return Path(pwd.getpwnam(SYSTEM_USER).pw_dir) / f"radflow-{digest}"


def _as_owner(argv: list[str]) -> list[str]:
    owner = _owner()
    if owner is None:
        return argv
    return ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups", *argv]


def _mkdir_owned(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    owner = _owner()
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def ensure_cluster(s: RadflowSettings) -> Path:
    """Initialise the cluster once (initdb); returns its data folder."""
    root = root_dir(s)
    data = root / "data"
    password = secrets.ensure(s.secret_file("postgres"), "RADFLOW_POSTGRES_PASSWORD", s.postgres_secret())
    if (data / "PG_VERSION").exists():
        return data
    _mkdir_owned(root)
    _mkdir_owned(root / "run")
    bindir = binaries()
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        owner = _owner()
        if owner is not None:
            os.chown(tmp, owner.pw_uid, owner.pw_gid)
        pwfile = Path(tmp) / "pw"
        pwfile.write_text(password + "\n")
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        out = subprocess.run(
            _as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "radflow",
                       "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"]),
            capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise StackError(f"initdb of the embedded PostgreSQL in {data} failed: "
                         f"{out.stderr.strip()[-600:]}")
    return data


def command(s: RadflowSettings) -> list[str]:
    """The server command line: loopback only, its socket beside the data."""
    data = ensure_cluster(s)
    return _as_owner([str(binaries() / "postgres"), "-D", str(data),
                      "-c", "listen_addresses=127.0.0.1", "-p", str(s.postgres_port),
                      "-c", f"unix_socket_directories={data.parent / 'run'}",
                      "-c", "unix_socket_permissions=0700",
                      "-c", "password_encryption=scram-sha-256", "-c", "max_connections=200"])


def healthy(s: RadflowSettings) -> bool:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=s.postgres_port, user="radflow",
                            password=s.postgres_secret(), dbname="postgres", connect_timeout=2)
    conn.close()
    return True


def ensure_database(url: str) -> bool:
    """Create the database a SQLAlchemy PostgreSQL URL names when it does not exist, by
    connecting to the server's `postgres` database as the URL's user. Returns True if created.

    Raises:
        StackError: the server refused (wrong password, no CREATEDB right: the message
            names the database to create by hand).
    """
    import psycopg2
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    if target.get_backend_name() != "postgresql":
        return False
    params = {"host": target.host or "127.0.0.1", "port": target.port or 5432,
              "user": target.username, "password": target.password, "connect_timeout": 5}
    try:
        conn = psycopg2.connect(dbname=target.database, **params)
        conn.close()
        return False
    except psycopg2.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise StackError(f"PostgreSQL at {params['host']}:{params['port']} refused database "
                             f"{target.database!r}: {str(exc).strip()}") from exc
    try:
        conn = psycopg2.connect(dbname="postgres", **params)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{target.database}"')
        conn.close()
    except psycopg2.Error as exc:
        raise StackError(f"cannot create database {target.database!r} on {params['host']}:"
                         f"{params['port']} as {target.username}: {str(exc).strip()}; create it "
                         "by hand or set RADFLOW_AIRFLOW_DATABASE_URL") from exc
    return True
