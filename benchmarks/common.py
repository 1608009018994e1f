"""Shared pieces of the benchmarks: a throwaway stack and the result file."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
RADFLOW = str(Path(sys.executable).parent / "radflow")


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def write_result(name: str, unit: str, value: float, limit: float, limit_definition: str,
                 target: float, params: dict[str, Any], secondary: dict[str, Any],
                 higher_is_better: bool = True) -> dict[str, Any]:
    """Write benchmarks/results/<name>.json and print the ratio against the limit."""
    ratio = value / limit if higher_is_better else limit / value
    result = {"benchmark": name, "unit": unit, "value": round(value, 3), "limit": round(limit, 3),
              "limit_definition": limit_definition, "ratio": round(ratio, 3), "target": target,
              "params": params, "secondary": secondary, "machine": machine(),
              "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(f"{name}: {value:.2f} {unit} vs limit {limit:.2f} {unit} -> ratio {ratio:.2f} "
          f"(target {target}); {json.dumps(secondary)}")
    return result


@contextmanager
def throwaway_stack(only: str, **settings: str) -> Iterator[dict[str, str]]:
    """`radflow stack up --only <only>` in a temp state dir on free ports, with extra
    `settings` (environment variables); down afterwards."""
    from tests.integration.stack import stack_env

    with tempfile.TemporaryDirectory(prefix="radflow-bench-") as tmp:
        env = {**stack_env(Path(tmp), f"sqlite:///{tmp}/radflow.db"), **settings}
        subprocess.run([RADFLOW, "stack", "up", "--only", only, "--json"], env=env, check=True,
                       capture_output=True, timeout=600)
        try:
            yield env
        finally:
            subprocess.run([RADFLOW, "stack", "down", "--json"], env=env, capture_output=True,
                           timeout=300)
