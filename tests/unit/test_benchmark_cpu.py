"""CPU-seconds sampling of the benchmarks (benchmarks/cpu.py) and the screening benchmark's
stage windows, on hand-made samples and log lines (no services, no timing asserted)."""

from __future__ import annotations

import os

import pytest

from benchmarks.cpu import Group, Sampler, read
from benchmarks.screening import log_windows


def sampler(readings: list[float], times: list[float]) -> Sampler:
    return Sampler([Group("a", session=1)], interval_s=1.0, times=times,
                   readings=[{"a": r} for r in readings])


def test_a_window_is_interpolated_between_samples() -> None:
    s = sampler([0.0, 1.0, 3.0], [100.0, 101.0, 102.0])
    assert s.between("a", 100.5, 101.5) == pytest.approx(0.5 + 1.0)
    assert s.total("a") == pytest.approx(3.0)


def test_a_group_that_loses_a_process_never_goes_backwards() -> None:
    # a backend with 2 CPU-s disconnected between samples 2 and 3: its share is kept, not subtracted
    s = sampler([5.0, 6.0, 4.0, 4.5], [0.0, 1.0, 2.0, 3.0])
    assert s.series("a") == pytest.approx([0.0, 1.0, 1.0, 1.5])


def test_a_window_outside_the_samples_or_reversed_is_refused() -> None:
    s = sampler([0.0, 1.0], [100.0, 101.0])
    with pytest.raises(ValueError, match="outside the sampled period"):
        s.between("a", 90.0, 101.0)
    with pytest.raises(ValueError, match="before it starts"):
        s.between("a", 101.0, 100.5)


def test_a_group_is_a_session_or_databases_not_both() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Group("x", session=1, databases=("db",))
    with pytest.raises(ValueError, match="exactly one"):
        Group("x")


def test_this_session_uses_cpu() -> None:
    assert read([Group("me", session=os.getsid(0))])["me"] > 0


def test_log_windows_cut_tasks_and_the_stages_inside_them() -> None:
    log = ("2026-12-06T16:37:30.000000Z [info     ] [DAG TEST] starting task_id=score_batch map_index=0 "
           "[airflow.sdk.definitions.dag] loc=dag.py:1501\n"
           "2026-12-06T16:37:40.013812Z [info     ] screen: stage collect took 5.33 s "
           "[pipelines.screening.timing] loc=timing.py:25\n"
           "2026-12-06 16:37:40,500 INFO something else\n"
           "2026-12-06T17:37:41.000000+01:00 [info] [DAG TEST] end task task_id=score_batch map_index=0\n"
           "2026-12-06T16:37:42.000000Z [info] [DAG TEST] starting task_id=merge_screening map_index=-1\n"
           "2026-12-06T16:37:43.000000Z [info     ] screen: stage write_back took 0.50 s\n")
    start = 1796575050.0  # 2026-12-06T16:37:30Z
    got = {w.key: (round(w.start - start, 4), round(w.end - start, 4)) for w in log_windows(log)}
    assert got == {"score_batch/collect": (4.6838, 10.0138),
                   "score_batch": (0.0, 11.0),  # the +01:00 offset is honoured
                   "merge_screening/write_back": (12.5, 13.0)}
    with pytest.raises(ValueError, match="no timestamp"):
        log_windows("screen: stage collect took 1.00 s")


def test_per_exam_adds_the_instances_of_a_mapped_task_and_divides_by_the_exams() -> None:
    from benchmarks.screening import DagRun, per_exam

    log = "".join(f"2026-12-06T16:37:{a}.000000Z [info] [DAG TEST] {kind} task_id=score_batch map_index={i}\n"
                  for a, kind, i in (("30", "starting", 0), ("32", "end task", 0),
                                     ("32", "starting", 1), ("34", "end task", 1)))
    log += "2026-12-06T16:37:34.000000Z [info] screen: stage collect took 1.00 s\n"  # in batch 1
    start = 1796575050.0  # 16:37:30Z
    cpu = Sampler([Group("radflow", session=1)], interval_s=1.0, times=[start + t for t in range(6)],
                  readings=[{"radflow": float(t)} for t in range(6)])  # one CPU-s a second
    by_key, wall = per_exam(DagRun(6.0, log, cpu), exams=2)
    assert by_key["score_batch"] == {"radflow": pytest.approx(2.0)}  # 4 s of CPU over 2 exams
    assert by_key["score_batch/collect"] == {"radflow": pytest.approx(0.5)}
    assert by_key["stages"] == by_key["score_batch/collect"]
    assert by_key["dag"] == {"radflow": pytest.approx(2.5)}
    assert wall == {"score_batch": pytest.approx(2.0), "score_batch/collect": pytest.approx(0.5)}
