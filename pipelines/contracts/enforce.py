"""A table checked against its data contract and the report published; a violation names the
expectation and how many rows broke it, and the result links the Data Docs page."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd

from pipelines.config import get_settings
from pipelines.contracts.checkpoint import CheckOutcome, check, validate_frame
from pipelines.contracts.suites import Contract
from pipelines.domain import ValidationResult
from pipelines.errors import DataContractViolation
from pipelines.publish import write_text

__all__ = ["ContractReport", "enforce", "validate_frame"]
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


def enforce(frame: pd.DataFrame, contract: Contract, data_docs: bool = True) -> ContractReport:
    """Check `frame`, write the JSON report, raise DataContractViolation on any failure.

    Raises:
        DataContractViolation: naming each failed expectation, its column and the number
            of offending rows (exams, patients or splits for derived frames).
    """
    outcome = check(frame, contract, docs_dir() if data_docs else None)
    report_path = get_settings().lake_dir / "validation" / f"{contract.name}.json"
    out = _report(frame, contract, outcome, report_path)
    write_text(report_path, json.dumps(out.as_json(), indent=2, default=str))
    if outcome.failed:
        raise DataContractViolation(
            f"data contract {contract.suite_name} failed on {len(frame)} rows: "
            + "; ".join(f["reason"] for f in outcome.failed)
            + (f" (report: {outcome.data_docs})" if outcome.data_docs else ""))
    log.info("validate: %s passed on %d rows (%d expectations)", contract.suite_name, len(frame),
             outcome.evaluated_expectations)
    return out


def _report(frame: pd.DataFrame, contract: Contract, outcome: CheckOutcome,
            path: Path) -> ContractReport:
    return ContractReport(
        suite=contract.suite_name, success=not outcome.failed, rows=len(frame),
        evaluated_expectations=outcome.evaluated_expectations, failed=outcome.failed,
        contract=contract.name, failed_expectations=len(outcome.failed),
        frame_rows=outcome.frame_rows, data_docs=outcome.data_docs, pages=outcome.pages,
        report=str(path))

