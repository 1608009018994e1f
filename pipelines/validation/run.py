"""`radflow validate`: a table against its data contract; a violation names the
expectation and how many rows broke it, and the result links the Data Docs page."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from pipelines import db
from pipelines.config import get_settings
from pipelines.domain import ValidationResult
from pipelines.errors import DataContractViolation, PermanentError
from pipelines.validation.checkpoint import CheckOutcome, check, validate_frame
from pipelines.validation.contracts import Contract, contract_path, load_contract

__all__ = ["ContractReport", "enforce", "run", "validate_frame"]
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ContractReport(ValidationResult):
    """ValidationResult plus the frames checked and the Data Docs pages."""

    contract: str
    failed_expectations: int
    frame_rows: dict[str, int]
    data_docs: str | None
    pages: list[str]
    report: str


def docs_dir() -> Path:
    """The Data Docs site of every contract run: `<lake>/validation/data_docs`."""
    return get_settings().lake_dir / "validation" / "data_docs"


def load_table(contract: Contract) -> pd.DataFrame:
    """The table `contract` guards: the manifest in the database, or a frozen dataset."""
    if contract.source == "images":
        with db.get_engine().connect() as conn:
            return pd.read_sql(sa.select(db.images), conn)
    if contract.source == "dataset":
        from pipelines.datasets.layout import dataset_dir

        path = dataset_dir(contract.meta.get("dataset", "mammo")) / "manifest.parquet"
        if not path.exists():
            raise PermanentError(f"no dataset at {path}: run `radflow build-dataset` first")
        return pd.read_parquet(path)
    raise PermanentError(f"{contract.path.name}: unknown source {contract.source!r}")


def enforce(frame: pd.DataFrame, contract: Contract, data_docs: bool = True) -> ContractReport:
    """Check `frame`, write the JSON report, raise DataContractViolation on any failure.

    Raises:
        DataContractViolation: naming each failed expectation, its column and the number
            of offending rows (exams, patients or splits for derived frames).
    """
    outcome = check(frame, contract, docs_dir() if data_docs else None)
    report_path = get_settings().lake_dir / "validation" / f"{contract.name}.json"
    out = _report(frame, contract, outcome, report_path)
    _publish(report_path, out.as_json())
    if outcome.failed:
        raise DataContractViolation(
            f"data contract {contract.suite_name} failed on {len(frame)} rows: "
            + "; ".join(f["reason"] for f in outcome.failed)
            + (f" (report: {outcome.data_docs})" if outcome.data_docs else ""))
    log.info("validate: %s passed on %d rows (%d expectations)", contract.suite_name, len(frame),
             outcome.evaluated_expectations)
    return out


def run(suite: str = "mammo_manifest", version: int | None = None,
        data_docs: bool = True) -> ContractReport:
    """Validate the table guarded by contract `suite` (latest version unless pinned)."""
    contract = load_contract(contract_path(suite, version))
    return enforce(load_table(contract), contract, data_docs=data_docs)


def _report(frame: pd.DataFrame, contract: Contract, outcome: CheckOutcome,
            path: Path) -> ContractReport:
    return ContractReport(
        suite=contract.suite_name, success=not outcome.failed, rows=len(frame),
        evaluated_expectations=outcome.evaluated_expectations, failed=outcome.failed,
        contract=contract.name, failed_expectations=len(outcome.failed),
        frame_rows=outcome.frame_rows, data_docs=outcome.data_docs, pages=outcome.pages,
        report=str(path))


def _publish(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.json")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)
