"""What is deployed, per slot: one row of the results database's `deployments` table.

Each screening task (pipelines/tasks.yaml) has two slots: `champion` (Triton
model `<task's triton_model>`, read by screening) and `shadow` (`<triton_model>_shadow`,
scored beside the champion, never on the worklist). The record, one row per Triton model,
names the served version and the previous one, which stays on disk for rollback. It lives
in the database so that every worker host sees the same one (issue 17).

Before that, the records were JSON files under `<state>/serving/`. A host that still has
such files imports them on first use (a record already in the database wins: it is newer)
and renames each to `*.json.imported`, so the import happens once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from pipelines import db
from pipelines.config import get_settings
from pipelines.errors import PermanentError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

Slot = Literal["champion", "shadow"]
SLOTS: tuple[Slot, ...] = ("champion", "shadow")
DEFAULT_NAMES: dict[Slot, str] = {"champion": "mammo", "shadow": "mammo-shadow"}


@dataclasses.dataclass(frozen=True)
class Deployment:
    model_name: str
    model_version: str
    triton_model: str
    triton_version: int
    operating_point: float
    sha256: str
    deployed_at: str
    slot: Slot = "champion"
    name: str = "mammo"  # the deployment's name in `mlflow deployments`
    previous_version: int | None = None  # kept loaded-able on disk for rollback
    previous_sha256: str = ""
    suspicion_cuts: str = ""  # the version's validation deciles (JSON), for suspicion 1-10
    task: str = "mammo"


def triton_name(slot: Slot, base: str) -> str:
    """The Triton model serving a slot of the task whose champion model is `base` (the
    task's `triton_model`)."""
    return base if slot == "champion" else f"{base}_shadow"


def check_slot(slot: str) -> Slot:
    if slot not in SLOTS:
        raise PermanentError(f"unknown deployment slot {slot!r}: expected one of {', '.join(SLOTS)}")
    return slot  # type: ignore[return-value]


def record(dep: Deployment) -> None:
    """Write the slot's record (insert, or replace the slot's previous record) in one transaction."""
    with _engine().begin() as conn:
        db.upsert(conn, db.deployments, [dataclasses.asdict(dep)], keys=["triton_model"])


def remove(slot: Slot, base: str) -> None:
    """Forget the slot's record (nothing happens when there is none)."""
    table = db.deployments
    with _engine().begin() as conn:
        conn.execute(sa.delete(table).where(table.c.triton_model == triton_name(slot, base)))


def find(slot: Slot, base: str) -> Deployment | None:
    """The slot's deployment, or None when nothing is deployed there."""
    found = _select(db.deployments.c.triton_model == triton_name(slot, base))
    return found[0] if found else None


def all_deployments() -> list[Deployment]:
    """Every slot of every task that serves something, by Triton model name."""
    return _select()


def by_name(name: str) -> Deployment | None:
    """The deployment called `name` in `mlflow deployments`, or None."""
    return next(iter(_select(db.deployments.c.name == name)), None)


def current_deployment(base: str) -> Deployment:
    """The deployed champion (of the task whose Triton model is `base`); PermanentError
    when nothing was deployed yet."""
    found = find("champion", base)
    if found is None:
        raise PermanentError(f"no model is deployed to Triton as {triton_name('champion', base)} yet: "
                             "run `radflow deploy`")
    return found


def _select(*where: sa.ColumnElement[bool]) -> list[Deployment]:
    with _engine().connect() as conn:
        rows = conn.execute(sa.select(db.deployments).where(*where)).mappings().all()
    # sorted here, not by ORDER BY: PostgreSQL's collation need not sort names bytewise
    return sorted((_deployment(r) for r in rows), key=lambda d: d.triton_model)


def _deployment(row: sa.RowMapping) -> Deployment:
    return Deployment(**{f.name: row[f.name] for f in dataclasses.fields(Deployment)})


def _engine() -> Engine:
    """The results database, with this host's legacy JSON records imported into it."""
    engine = db.get_engine()
    _import_legacy(engine, get_settings().state / "serving")
    return engine


def _import_legacy(engine: Engine, folder: Path) -> int:
    """Import the JSON records under `folder` (made before the table existed) and rename
    each to `*.json.imported`; a slot that already has a row keeps it. Returns how many
    files were imported.

    Raises:
        PermanentError: a file is not a deployment record (it names the file; nothing is
            imported until it is fixed or moved away).
    """
    files = sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))
    if not files:
        return 0
    records = []
    for path in files:
        try:
            records.append(Deployment(**json.loads(path.read_text())))
        except (ValueError, TypeError) as exc:
            raise PermanentError(f"legacy deployment record {path} cannot be imported: {exc}") from exc
    with engine.begin() as conn:
        for dep in records:
            db.insert_if_absent(conn, db.deployments, dataclasses.asdict(dep), keys=["triton_model"])
    for path in files:
        try:
            path.rename(path.with_name(f"{path.name}.imported"))
        except FileNotFoundError:  # another process on this host imported it at the same moment
            pass
    log.info("deployments: imported %d legacy record(s) from %s", len(files), folder)
    return len(files)
