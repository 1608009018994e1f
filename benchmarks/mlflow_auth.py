"""The CPU an authenticated MLflow request costs the tracking server radflow runs.

MLflow's basic-auth app checks the login's password hash (scrypt) at every request unless
its credential cache is on (`auth_cache_ttl_seconds`, off by default). radflow's stack turns
it on (pipelines/stack/mlflow.py): a training run, a promotion or a deploy makes hundreds of
requests.

Setup (not timed): MLflow alone, twice, in a throwaway state dir: as radflow configures it,
then with MLflow's default (no cache). Measured: the server's CPU seconds (every process of
it) over N authenticated `experiments/search` requests.

value = server CPU ms per request as radflow runs it; limit = the same with MLflow's default;
ratio = limit / value (target 5: the cache must cut the server's CPU per request at least
fivefold).

    python -m benchmarks.mlflow_auth [--requests N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from unittest import mock

import httpx
import psutil

from benchmarks.common import write_result


def _server_cpu_ms(requests: int, cache_s: int) -> float:
    """CPU ms of the MLflow server per authenticated request, its credential cache `cache_s`."""
    from pipelines import config
    from pipelines.stack import manage, mlflow
    from tests.integration.stack import stack_env

    with tempfile.TemporaryDirectory(prefix="radflow-bench-") as tmp:
        env = stack_env(Path(tmp), f"sqlite:///{tmp}/radflow.db")
        old, mlflow.AUTH_CACHE_TTL_S = mlflow.AUTH_CACHE_TTL_S, cache_s
        with mock.patch.dict(os.environ, env, clear=True):
            config.get_settings.cache_clear()
            try:
                manage.up(["mlflow"])
                s = config.get_settings()
                root = psutil.Process(int((s.state / "run" / "mlflow.pid").read_text()))
                family = [root, *root.children(recursive=True)]

                def cpu() -> float:
                    return sum(sum(p.cpu_times()[:2]) for p in family)

                auth = (s.mlflow_admin_username, s.mlflow_admin_secret())
                with httpx.Client(base_url=s.mlflow_uri, auth=auth, timeout=60) as client:
                    client.post("/api/2.0/mlflow/experiments/search", json={"max_results": 1})
                    before = cpu()
                    for _ in range(requests):
                        client.post("/api/2.0/mlflow/experiments/search",
                                    json={"max_results": 1}).raise_for_status()
                    return 1000 * (cpu() - before) / requests
            finally:
                manage.down(["mlflow"])
                mlflow.AUTH_CACHE_TTL_S = old
                config.get_settings.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    cached = _server_cpu_ms(args.requests, cache_s=60)
    default = _server_cpu_ms(args.requests, cache_s=0)
    write_result("mlflow_auth", "ms CPU/request", cached, default,
                 "the same requests to MLflow with its default basic-auth settings (no credential cache)",
                 5.0, {"requests": args.requests, "auth_cache_ttl_seconds": 60},
                 {"default_ms_cpu_per_request": round(default, 1)}, higher_is_better=False)


if __name__ == "__main__":
    main()
