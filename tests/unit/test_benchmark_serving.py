"""The serving benchmark's arithmetic and parsing (no Triton, no timing)."""

from __future__ import annotations

import pytest

from benchmarks.serving import Batching, Load, Round, config_text, parse_perf_csv, percentiles, summarize
from pipelines.serving import repository

PERF_CSV = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
    "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
    "p50 latency,p90 latency,p95 latency,p99 latency\n"
    "16,250.5,225,2148,64,206,11781,19,0,13891,18795,19753,21018\n"
    "32,261.2,237,1768,21673,209,11742,17,0,35398,43984,47085,51701\n"
)


def test_percentiles_interpolate_between_requests() -> None:
    p50, p95 = percentiles([float(ms) for ms in range(1, 101)])
    assert p50 == pytest.approx(50.5)
    assert p95 == pytest.approx(95.05)


def test_perf_analyzer_row_of_the_concurrency_used_in_milliseconds() -> None:
    got = parse_perf_csv(PERF_CSV, 32)
    assert got == {"ran": True, "concurrency": 32, "images_per_s": 261.2,
                   "p50_ms": 35.398, "p95_ms": 47.085}
    with pytest.raises(ValueError, match="concurrency 8"):
        parse_perf_csv(PERF_CSV, 8)


def _round(limit: dict[int, float], naive: float, value: float, latencies: list[float]) -> Round:
    return Round(limit, Load(naive, [10.0], 1.0), Load(value, latencies, 8.0))


def test_summary_takes_medians_over_rounds_and_the_best_batch_as_the_limit() -> None:
    rounds = [
        _round({1: 100.0, 8: 200.0}, 50.0, 150.0, [1.0, 2.0]),
        _round({1: 300.0, 8: 100.0}, 60.0, 120.0, [3.0, 4.0]),
        _round({1: 100.0, 8: 250.0}, 40.0, 180.0, [5.0, 6.0]),  # a slow-down hits every phase
    ]
    value, limit, secondary = summarize(rounds)
    assert (value, limit) == (150.0, 250.0)
    assert secondary["vs_naive"] == 3.0
    assert secondary["sequential_per_s"] == 50.0
    assert secondary["inprocess_by_batch_per_s"] == {"1": 100.0, "8": 200.0}
    assert secondary["p50_ms"] == 3.5  # pooled over every round's requests
    assert secondary["round_ratios"] == [0.75, 0.4, 0.72]


def test_benchmark_config_changes_only_the_batching_of_the_reviewed_one() -> None:
    reviewed = repository.parse((repository.REVIEWED / "mammo_screening" / "config.pbtxt").read_text())
    got = repository.parse(config_text(Batching(max_queue_delay_us=500, preferred=(8,), instances=2)))
    assert got.dynamic_batching.max_queue_delay_microseconds == 500
    assert list(got.dynamic_batching.preferred_batch_size) == [8]
    assert got.instance_group[0].count == 2
    got.dynamic_batching.CopyFrom(reviewed.dynamic_batching)
    got.instance_group[0].count = reviewed.instance_group[0].count
    assert got == reviewed
