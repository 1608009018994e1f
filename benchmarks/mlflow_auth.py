"""The CPU an authenticated MLflow request costs the tracking server radflow runs.

MLflow's basic-auth app checks the login's password hash (scrypt) at every request unless
its credential cache is on (`auth_cache_ttl_seconds`, off by default). radflow's stack turns
it on (RADFLOW_MLFLOW_AUTH_CACHE_S, default 60 s): a training run, a promotion or a deploy
makes hundreds of requests.

Setup (not timed): MLflow alone, twice, in a throwaway state dir: as radflow configures it,
then with MLflow's default (RADFLOW_MLFLOW_AUTH_CACHE_S=0, no cache). Measured: the server's
CPU seconds (every process of it) over N authenticated `experiments/search` requests.

value = server CPU ms per request as radflow runs it; limit = the same with MLflow's default;
ratio = limit / value (target 5: the cache must cut the server's CPU per request at least
fivefold).

    python -m benchmarks.mlflow_auth [--requests N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import psutil

from benchmarks.common import throwaway_stack, write_result

SEARCH = "/api/2.0/mlflow/experiments/search"


def _server_cpu_ms(requests: int, cache_s: int) -> float:
    """CPU ms of the MLflow server per authenticated request, its credential cache `cache_s`."""
    from pipelines.config import read_secret_file

    with throwaway_stack("mlflow", RADFLOW_MLFLOW_AUTH_CACHE_S=str(cache_s)) as env:
        state = Path(env["RADFLOW_STATE_DIR"])
        root = psutil.Process(int((state / "run" / "mlflow.pid").read_text()))
        family = [root, *root.children(recursive=True)]

        def cpu() -> float:
            return sum(sum(p.cpu_times()[:2]) for p in family)

        auth = ("admin", read_secret_file(state / "secrets" / "mlflow.env", "RADFLOW_MLFLOW_ADMIN_PASSWORD"))
        with httpx.Client(base_url=f"http://127.0.0.1:{env['RADFLOW_MLFLOW_PORT']}", auth=auth,
                          timeout=60) as client:
            client.post(SEARCH, json={"max_results": 1}).raise_for_status()
            before = cpu()
            for _ in range(requests):
                client.post(SEARCH, json={"max_results": 1}).raise_for_status()
            return 1000 * (cpu() - before) / requests


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
