"""Run a contract's suites on their frames through a GX checkpoint; render Data Docs.

Great Expectations runs in an ephemeral context (nothing of GX's own state on disk); the
only files it writes are the Data Docs site, a static HTML folder under the lake.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.contracts.frames import KEYS, derive
from pipelines.contracts.suites import ROWS, Contract

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuite
    from great_expectations.data_context import AbstractDataContext

DOCS_SITE = "radflow"
EXAMPLES = 3


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """What a contract run found: failures, sizes and where the HTML report is."""

    failed: list[dict[str, Any]]
    evaluated_expectations: int
    frame_rows: dict[str, int]
    data_docs: str | None
    pages: list[str]


def check(frame: pd.DataFrame, contract: Contract, docs_dir: Path | None = None) -> CheckOutcome:
    """Every frame of `contract`, derived from `frame`, through one GX context.

    Args:
        frame: the table the contract guards (manifest or dataset rows).
        contract: the loaded contract file.
        docs_dir: where to render the Data Docs site; None renders nothing.
    """
    context = _context(docs_dir)
    failed: list[dict[str, Any]] = []
    sizes, pages, evaluated = {}, [], 0
    for name in contract.frames:
        derived = derive(frame, name)
        sizes[name] = len(derived)
        suite = contract.suite(name)
        evaluated += len(suite.expectations)
        failures, page = _run(context, name, derived, suite, docs_dir is not None)
        failed += failures
        pages += [page] if page else []
    index = str(docs_dir / "index.html") if docs_dir is not None else None
    return CheckOutcome(failed=failed, evaluated_expectations=evaluated, frame_rows=sizes,
                        data_docs=index, pages=pages)


def validate_frame(frame: pd.DataFrame, suite: ExpectationSuite) -> list[dict[str, Any]]:
    """Run `suite` on `frame` as it is (no derived frames, no Data Docs); the failures."""
    return _run(_context(None), ROWS, frame, suite, False)[0]


def _context(docs_dir: Path | None) -> AbstractDataContext:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    _drop_default_site(context)
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(site_name=DOCS_SITE, site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(docs_dir)},
        })
    return context


def _drop_default_site(context: AbstractDataContext) -> None:
    # An ephemeral context makes a temp folder for its default site on every creation;
    # radflow renders only its own site, so the folder would just pile up under /tmp.
    site = (context.variables.data_docs_sites or {}).get("local_site") or {}
    base = (site.get("store_backend") or {}).get("base_directory")
    if base and Path(base).parent == Path(tempfile.gettempdir()):
        context.delete_data_docs_site("local_site")
        shutil.rmtree(base, ignore_errors=True)


def _run(context: AbstractDataContext, name: str, frame: pd.DataFrame, suite: ExpectationSuite,
         docs: bool) -> tuple[list[dict[str, Any]], str | None]:
    import great_expectations as gx

    suite = context.suites.add(suite)
    batch = context.data_sources.add_pandas(f"{name}-source").add_dataframe_asset(
        name).add_batch_definition_whole_dataframe("all")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=suite))
    key = KEYS.get(name)
    actions: list[Any] = (
        [gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])] if docs else [])
    result_format: dict[str, Any] = {"result_format": "SUMMARY"}
    if key in frame.columns:
        result_format["unexpected_index_column_names"] = [key]
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"{suite.name}-checkpoint", validation_definitions=[definition], actions=actions,
        result_format=result_format))
    outcome = checkpoint.run(batch_parameters={"dataframe": frame})
    failed, page = [], None
    for identifier, result in outcome.run_results.items():
        if docs:
            urls = context.get_docs_sites_urls(resource_identifier=identifier, site_names=[DOCS_SITE])
            page = str(urls[0]["site_url"]).removeprefix("file://") if urls else None
        failed += [_failure(name, key, r) for r in result.results if not r.success]
    return failed, page


def _failure(frame: str, key: str | None, r: Any) -> dict[str, Any]:
    config = r.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    result = r.result or {}
    count = None if "observed_value" in result else result.get("unexpected_count")
    examples = [row.get(key) if isinstance(row, dict) else row
                for row in (result.get("partial_unexpected_index_list") or [])[:EXAMPLES]]
    return {"expectation": config.type, "kwargs": kwargs, "frame": frame,
            "unexpected_count": int(count or 0),
            "observed_value": result.get("observed_value"),
            "examples": [str(e) for e in examples if e is not None],
            "reason": _reason(config.type, kwargs, frame, result, examples)}


def _reason(kind: str, kwargs: dict[str, Any], frame: str, result: dict[str, Any],
            examples: list[Any]) -> str:
    where = kwargs.get("column") or kwargs.get("column_list") or "table"
    per = "" if frame == ROWS else f" per {frame.removesuffix('s')}"
    count = result.get("unexpected_count")
    if count is None or "observed_value" in result:  # an aggregate expectation: no rows to count
        return f"{kind} on {where}{per}: observed {result.get('observed_value')}"
    shown = ", ".join(str(e) for e in examples if e is not None)
    return f"{kind} on {where}{per}: {count} offending rows" + (f" (e.g. {shown})" if shown else "")
