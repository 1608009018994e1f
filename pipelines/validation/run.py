"""`radflow validate`: the table a data contract guards (the ingest manifest or a frozen
dataset), checked against it; a violation names the expectation and how many rows broke it."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from pipelines import db
from pipelines.contracts.enforce import ContractReport, enforce
from pipelines.contracts.suites import Contract, contract_path, load_contract
from pipelines.errors import PermanentError


def load_table(contract: Contract) -> pd.DataFrame:
    """The table `contract` guards: the manifest in the database, or a frozen dataset."""
    if contract.source == "images":
        with db.get_engine().connect() as conn:
            return pd.read_sql(sa.select(db.images), conn)
    if contract.source == "dataset":
        from pipelines.layout import dataset_dir

        path = dataset_dir(contract.meta.get("dataset", "mammo")) / "manifest.parquet"
        if not path.exists():
            raise PermanentError(f"no dataset at {path}: run `radflow build-dataset` first")
        return pd.read_parquet(path)
    raise PermanentError(f"{contract.path.name}: unknown source {contract.source!r}")


def run(suite: str = "mammo_manifest", version: int | None = None,
        data_docs: bool = True) -> ContractReport:
    """Validate the table guarded by contract `suite` (latest version unless pinned)."""
    contract = load_contract(contract_path(suite, version))
    return enforce(load_table(contract), contract, data_docs=data_docs)
