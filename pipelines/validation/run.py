"""`radflow validate`: the table a data contract guards (the ingest manifest or a frozen
dataset), checked against it; a violation names the expectation and how many rows broke it."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from pipelines import db
from pipelines.contracts.enforce import ContractReport, enforce
from pipelines.contracts.suites import Contract, contract_path, load_contract
from pipelines.errors import PermanentError
from pipelines.tasks import TaskDefinition, configured, get_task


def load_table(contract: Contract, task: TaskDefinition) -> pd.DataFrame:
    """The table `contract` guards: the task's rows of the manifest in the database (all
    but those of another task's modality: a row of no task's modality stays in, for the
    contract to refuse), or a frozen dataset (the contract's, else the task's)."""
    if contract.source == "images":
        others = sorted({t.modality for t in configured().values() if t.name != task.name})
        with db.get_engine().connect() as conn:
            return pd.read_sql(sa.select(db.images).where(db.images.c.modality.not_in(others)), conn)
    if contract.source == "dataset":
        from pipelines.layout import dataset_dir

        path = dataset_dir(contract.meta.get("dataset", task.dataset)) / "manifest.parquet"
        if not path.exists():
            raise PermanentError(f"no dataset at {path}: run `radflow build-dataset` first")
        return pd.read_parquet(path)
    raise PermanentError(f"{contract.path.name}: unknown source {contract.source!r}")


def run(suite: str | None = None, version: int | None = None, data_docs: bool = True,
        task: str = "mammo") -> ContractReport:
    """Validate the table guarded by contract `suite` (default: the task's manifest contract;
    latest version unless pinned), on the rows of `task` (pipelines/tasks.yaml)."""
    definition = get_task(task)
    contract = load_contract(contract_path(suite or definition.manifest_contract, version))
    return enforce(load_table(contract, definition), contract, data_docs=data_docs)
