"""`radflow validate`: the manifest against its data contract; a violation names the
expectation and how many rows broke it."""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from pipelines import db
from pipelines.config import get_settings
from pipelines.domain import ValidationResult
from pipelines.errors import DataContractViolation
from pipelines.validation.contracts import latest, load_suite

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

log = logging.getLogger(__name__)


def validate_frame(frame: pd.DataFrame, suite: ExpectationSuite) -> list[dict[str, Any]]:
    """Run `suite` on `frame` in an ephemeral GX context; the failed expectations."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = context.suites.add(suite)
    asset = context.data_sources.add_pandas("manifest").add_dataframe_asset("manifest")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": frame})
    result = batch.validate(suite)
    failed = []
    for r in result.results:
        config = r.expectation_config
        if r.success or config is None:
            continue
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        failed.append({"expectation": config.type, "kwargs": kwargs,
                       "unexpected_count": int((r.result or {}).get("unexpected_count") or 0),
                       "reason": _reason(config.type, kwargs, r.result or {})})
    return failed


def _reason(kind: str, kwargs: dict[str, Any], result: dict[str, Any]) -> str:
    where = kwargs.get("column") or kwargs.get("column_list") or "table"
    count = result.get("unexpected_count")
    rows = f"{count} offending rows" if count is not None else f"observed {result.get('observed_value')}"
    return f"{kind} on {where}: {rows}"


def run(suite: str = "mammo_manifest") -> ValidationResult:
    """Validate the manifest; raise DataContractViolation naming each failed expectation."""
    path = latest(suite)
    gx_suite, _meta = load_suite(path)
    with db.get_engine().connect() as conn:
        frame = pd.read_sql(sa.select(db.images), conn)
    failed = validate_frame(frame, gx_suite)
    out = ValidationResult(suite=path.name.removesuffix(".json"), success=not failed,
                           rows=len(frame), evaluated_expectations=len(gx_suite.expectations),
                           failed=failed)
    report = get_settings().lake_dir / "validation" / f"{out.suite}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    tmp = report.with_name(f".{uuid.uuid4().hex[:8]}.json")
    tmp.write_text(json.dumps(out.as_json(), indent=2, default=str))
    os.replace(tmp, report)
    if failed:
        raise DataContractViolation(
            f"data contract {out.suite} failed on {len(frame)} rows: "
            + "; ".join(f["reason"] for f in failed))
    log.info("validate: %s passed on %d rows (%d expectations)", out.suite, len(frame),
             out.evaluated_expectations)
    return out
