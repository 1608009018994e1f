"""Validation of drift monitoring by simulation: how fast a change alerts, how often a
stable month alerts, and how strong each test family is at a given daily volume.

Four pools of synthetic exams go through the nightly path (`simulate_pools`): a reference
(the model's "validation data"), a stable pool from the same site and unit, and two change
pools from the same site: a vendor change (another vendor's unit) and a detector
degradation (the same unit, ageing). Nights are *resampled from these finite pools*: a
night of n exams is n distinct exams of one pool, drawn afresh each night, so two nights
share exams when n is a large part of the pool, and the stable nights and the reference
never do. Every night runs the real `drift.assess` -> `drift.night_status` ->
`alerts.decide` with the configured `drift_*` settings.

A sequence is `stable_nights` stable nights, then `changed_nights` changed ones from night
k = stable_nights + 1. Detection delay = alert night - k + 1 (the changed nights seen when
the alert fires), None when none fires in the changed nights; false alarms = alerts raised
in the stable nights. The QC family's baseline is the summed QC counts of the sequence's
previous stable nights (at most `drift_qc_history_nights`), as the monitor reads a
device's history; the first night has none, so its QC rates are not tested. With the
default rule (2 drifted nights of 3) the shortest possible delay is 2 nights, unless a
stable night just before the change drifted too; an alert in the `drift_cooldown_nights`
before the change holds the change's alert back until the cooldown ends.

Because nights come from finite pools, a chance difference between a pool and the
reference (a few hundred exams each) recurs on every night drawn from that pool, where
real nights would each be a fresh sample: false alarms and powers are those of these
pools, and larger pools make them closer to the population's.

Power is read off the same nights, one night alone (no sustained rule): the share of
changed nights on which a family (or a single test) drifted; the same share over stable
nights is the per-night false positive rate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from benchmarks.drift_simulation.pools import Pool, PoolSpec, build_pool, renderers
from pipelines.errors import PermanentError
from pipelines.monitoring.records import FAMILIES, DriftTest, NightStatus

if TYPE_CHECKING:
    from concurrent.futures import Executor

    import pandas as pd

    from pipelines.config import RadflowSettings

log = logging.getLogger(__name__)

SCENARIOS = ("vendor", "degradation")  # the two changes: delays and targets
# A subtler ageing, reported beside them to show where each family's power falls off.
ALL_SCENARIOS = (*SCENARIOS, "mild_degradation")
FIRST_NIGHT = dt.date(2026, 3, 2)


@dataclasses.dataclass(frozen=True)
class SimulationParams:
    """The simulation's sizes and seeds; defaults are the benchmark's full run.

    Attributes:
        reference_exams, stable_exams, change_exams: pool sizes (each change pool has
            change_exams).
        vendor: the unit the site changes to (a synth vendor key).
        degradation: the detector degradation of the degradation pool, 0-1.
        mild_degradation: a subtler degradation simulated too (None: not simulated); its
            delays and powers are reported but it is not one of the issue's targets.
        volumes: exams per night to simulate.
        sequences: seeded sequences per (scenario, volume).
        stable_nights, changed_nights: nights before and from the change.
        seed: base seed of pools and sequences.
        site, scale, positive_rate: what synth draws (site "north" screens on a GE unit).
        height, width: model input.
        workers: rendering processes (1: in this process).
        flag_rate: the reference share flagged when no operating point is given.
        model: "train" a small ViewClassifier on its own pool, or an "untrained" seeded one
            (fast; for tests). Ignored when simulate() is given a model file or URI.
        train_exams, train_epochs: the training pool's size and epochs.
        top_features: how many single tests to report per family, scenario and volume.
    """

    reference_exams: int = 300
    stable_exams: int = 600
    change_exams: int = 300
    vendor: str = "hologic"
    degradation: float = 0.5
    mild_degradation: float | None = 0.15
    volumes: tuple[int, ...] = (50, 100, 200)
    sequences: int = 4
    stable_nights: int = 30
    changed_nights: int = 10
    seed: int = 2026
    site: str = "north"
    scale: float = 0.125
    positive_rate: float = 0.15
    height: int = 128
    width: int = 96
    workers: int = 2
    flag_rate: float = 0.10
    model: Literal["train", "untrained"] = "train"
    train_exams: int = 240
    train_epochs: int = 4
    top_features: int = 3

    @property
    def scenarios(self) -> tuple[str, ...]:
        return ALL_SCENARIOS if self.mild_degradation is not None else SCENARIOS

    def pool_specs(self) -> dict[str, PoolSpec]:
        """The pools by name (reference, stable, one per scenario), each with its own seed."""
        base = PoolSpec("reference", self.reference_exams, self.seed + 1, self.site, scale=self.scale,
                        positive_rate=self.positive_rate)
        mild = {} if self.mild_degradation is None else {"mild_degradation": dataclasses.replace(
            base, name="mild_degradation", exams=self.change_exams, seed=self.seed + 5,
            detector_degradation=self.mild_degradation)}
        return {**mild,
            "reference": base,
            "stable": dataclasses.replace(base, name="stable", exams=self.stable_exams, seed=self.seed + 2),
            "vendor": dataclasses.replace(base, name="vendor", exams=self.change_exams, seed=self.seed + 3,
                                          vendor=self.vendor),
            "degradation": dataclasses.replace(base, name="degradation", exams=self.change_exams,
                                               seed=self.seed + 4, detector_degradation=self.degradation),
        }

    def check(self) -> None:
        """Raises PermanentError naming the first volume or count that cannot be simulated."""
        smallest = min(self.stable_exams, self.change_exams)
        if not self.volumes or min(self.volumes) < 1 or max(self.volumes) > smallest:
            raise PermanentError(f"volumes {list(self.volumes)} must be 1..{smallest} exams a night "
                                 f"(stable pool {self.stable_exams}, change pools {self.change_exams})")
        if min(self.sequences, self.stable_nights, self.changed_nights, self.reference_exams) < 1:
            raise PermanentError(f"need at least one sequence, night and reference exam, got sequences "
                                 f"{self.sequences}, nights {self.stable_nights}+{self.changed_nights}, "
                                 f"reference {self.reference_exams}")


@dataclasses.dataclass(frozen=True)
class NightOutcome:
    """One simulated night: which families and tests drifted, and whether it alerted."""

    scenario: str
    volume: int
    sequence: int
    night: int  # 0-based; changed from params.stable_nights on
    changed: bool
    families: tuple[str, ...]
    drifted_tests: tuple[tuple[str, str], ...]  # (family, feature) with a p-value
    alert: bool


@dataclasses.dataclass(frozen=True)
class SimulationResult:
    """The simulation's numbers (see the module docstring for their definitions).

    Attributes:
        delays: scenario -> volume -> detection delay per sequence (None: not detected).
        false_alarms: scenario -> volume -> alerts in the stable nights per sequence.
        power: scenario -> family -> volume -> share of changed nights it drifted.
        false_positive_rate: family -> volume -> share of stable nights it drifted.
        feature_power: scenario -> volume -> the strongest single tests of each family
            (family, feature, power), `params.top_features` per family at most.
        changed_night_count, stable_night_count: nights behind each power (per scenario
            and volume) and false positive rate (per volume).
        operating_point, expected_flag_rate: the prediction family's flag test.
        model: which model scored the exams.
    """

    params: SimulationParams
    model: str
    operating_point: float
    expected_flag_rate: float
    delays: dict[str, dict[int, tuple[int | None, ...]]]
    false_alarms: dict[str, dict[int, tuple[int, ...]]]
    power: dict[str, dict[str, dict[int, float]]]
    false_positive_rate: dict[str, dict[int, float]]
    feature_power: dict[str, dict[int, tuple[tuple[str, str, float], ...]]]
    changed_night_count: int
    stable_night_count: int

    def worst_delay(self, volume: int) -> int | None:
        """The longest detection delay over both scenarios' sequences; None if one missed."""
        delays = [d for s in SCENARIOS for d in self.delays[s][volume]]
        return None if any(d is None for d in delays) else max(d for d in delays if d is not None)

    def worst_false_alarms(self) -> int:
        """The most alerts any sequence raised in its stable nights."""
        return max(n for s in self.params.scenarios for v in self.false_alarms[s].values() for n in v)


@dataclasses.dataclass(frozen=True)
class _Context:
    reference: pd.DataFrame
    operating_point: float
    expected_flag_rate: float
    settings: RadflowSettings


def _night(ctx: _Context, pool: Pool, index: np.ndarray,
           baseline: pd.DataFrame) -> tuple[list[DriftTest], pd.DataFrame]:
    """The night's corrected tests and its QC counts."""
    from pipelines.monitoring import drift

    s, qc_night = ctx.settings, pool.qc_counts(index)
    tests = drift.assess(ctx.reference, pool.table.iloc[index], operating_point=ctx.operating_point,
                         expected_flag_rate=ctx.expected_flag_rate, qc_night=qc_night,
                         qc_baseline=baseline, alpha=s.drift_alpha, psi_max=s.drift_psi_max)
    return tests, qc_night


def _baseline(history: Sequence[pd.DataFrame], nights: int) -> pd.DataFrame:
    import pandas as pd

    if not history:
        return pd.DataFrame(columns=["device", "code", "views", "flagged"])
    recent = pd.concat(history[-nights:])
    return recent.groupby(["device", "code"], as_index=False)[["views", "flagged"]].sum()


def run_sequence(ctx: _Context, stable: Pool, changed: Pool, scenario: str, volume: int, sequence: int,
                 params: SimulationParams) -> list[NightOutcome]:
    """One seeded sequence: stable nights, then changed nights, through assess and decide."""
    from pipelines.monitoring import alerts, drift

    s = ctx.settings
    rng = np.random.default_rng([params.seed, ALL_SCENARIOS.index(scenario), volume, sequence])
    statuses: list[NightStatus] = []
    raised: dict[str, tuple[str, ...]] = {}
    qc_history: list[pd.DataFrame] = []
    out: list[NightOutcome] = []
    for night in range(params.stable_nights + params.changed_nights):
        is_changed = night >= params.stable_nights
        pool = changed if is_changed else stable
        index = rng.choice(len(pool.table), size=volume, replace=False)
        date = (FIRST_NIGHT + dt.timedelta(days=night)).isoformat()
        tests, qc_night = _night(ctx, pool, index, _baseline(qc_history, s.drift_qc_history_nights))
        if not is_changed:
            qc_history.append(qc_night)
        statuses.append(drift.night_status(date, tests, volume, s.drift_min_exams))
        alert = alerts.decide(statuses, s.drift_window_nights, s.drift_min_nights,
                              s.drift_cooldown_nights, raised)
        if alert.raised:
            raised[date] = alert.sustained_families
        drifted = tuple((t.family, t.feature) for t in tests if t.drifted and t.p_value is not None)
        out.append(NightOutcome(scenario, volume, sequence, night, is_changed,
                                statuses[-1].drifted_families, drifted, alert.raised))
    return out


def _delay(nights: Sequence[NightOutcome], stable_nights: int) -> int | None:
    alerts = [n.night - stable_nights + 1 for n in nights if n.changed and n.alert]
    return min(alerts) if alerts else None


def _share(nights: Sequence[NightOutcome], family: str) -> float:
    """The share of `nights` on which `family` drifted (NaN without nights)."""
    return float(np.mean([family in n.families for n in nights])) if nights else float("nan")


def _strongest(counts: Counter[tuple[str, str]], nights: int, top: int) -> tuple[tuple[str, str, float], ...]:
    """The `top` most often drifted tests of each family, as (family, feature, share of nights)."""
    out: list[tuple[str, str, float]] = []
    for family in FAMILIES:
        mine = sorted(((c, n) for (f, c), n in counts.items() if f == family), key=lambda cn: (-cn[1], cn[0]))
        out += [(family, feature, n / nights) for feature, n in mine[:top]]
    return tuple(out)


def summarize(outcomes: Sequence[NightOutcome], params: SimulationParams) -> dict[str, object]:
    """Delays, false alarms, powers and false positive rates of the simulated nights
    (the SimulationResult fields that come from the nights)."""
    delays: dict[str, dict[int, tuple[int | None, ...]]] = {}
    false_alarms: dict[str, dict[int, tuple[int, ...]]] = {}
    power: dict[str, dict[str, dict[int, float]]] = {s: {f: {} for f in FAMILIES} for s in params.scenarios}
    features: dict[str, dict[int, tuple[tuple[str, str, float], ...]]] = {s: {} for s in params.scenarios}
    fpr: dict[str, dict[int, float]] = {f: {} for f in FAMILIES}
    for scenario in params.scenarios:
        delays[scenario], false_alarms[scenario] = {}, {}
        for volume in params.volumes:
            mine = [n for n in outcomes if n.scenario == scenario and n.volume == volume]
            runs = [[n for n in mine if n.sequence == r] for r in range(params.sequences)]
            delays[scenario][volume] = tuple(_delay(r, params.stable_nights) for r in runs)
            false_alarms[scenario][volume] = tuple(sum(n.alert for n in r if not n.changed) for r in runs)
            changed = [n for n in mine if n.changed]
            for family in FAMILIES:
                power[scenario][family][volume] = _share(changed, family)
            counts = Counter(t for n in changed for t in n.drifted_tests)
            features[scenario][volume] = _strongest(counts, len(changed), params.top_features)
    for volume in params.volumes:
        stable = [n for n in outcomes if n.volume == volume and not n.changed]
        for family in FAMILIES:
            fpr[family][volume] = _share(stable, family)
    return {"delays": delays, "false_alarms": false_alarms, "power": power, "false_positive_rate": fpr,
            "feature_power": features}


def _model(params: SimulationParams, work: Path, onnx_file: Path | None, model_uri: str | None,
           executor: Executor | None) -> tuple[Path, str, float | None]:
    """(ONNX file, description, registered operating point or None) of the scoring model."""
    from benchmarks.drift_simulation import pools

    h, w = params.height, params.width
    if onnx_file is not None:
        return onnx_file, f"ONNX file {onnx_file.name}", None
    if model_uri is not None:
        path, point = pools.registered_model(model_uri, work)
        return path, model_uri, point
    if params.model == "untrained":
        return pools.untrained_model(work / "model.onnx", h, w, params.seed), "untrained ViewClassifier", None
    spec = PoolSpec("train", params.train_exams, params.seed + 5, params.site, scale=params.scale,
                    positive_rate=0.3)
    path = pools.trained_model(spec, work / "model.onnx", h, w, executor, params.train_epochs, params.seed)
    return path, f"ViewClassifier trained {params.train_epochs} epochs on {params.train_exams} exams", None


def simulate(params: SimulationParams = SimulationParams(), *, onnx_file: Path | None = None,
             model_uri: str | None = None, operating_point: float | None = None) -> SimulationResult:
    """Build the pools, run every (scenario, volume, sequence) and summarize.

    Args:
        params: sizes, seeds and volumes.
        onnx_file: a model file (input "image" [N, 1, height, width]) to score with.
        model_uri: else a registered version, `models:/<name>@<alias>` (hash-checked).
        operating_point: the flag threshold; default the registered version's tag, else the
            reference's score quantile that flags `params.flag_rate` of it.

    Returns:
        The numbers; the drift settings come from `get_settings()`.

    Raises:
        PermanentError: a volume larger than a pool, or no sequence or night to run.
    """
    from pipelines.config import get_settings

    params.check()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="radflow-drift-sim-") as tmp, renderers(params.workers) as ex:
        path, model, registered_point = _model(params, Path(tmp), onnx_file, model_uri, ex)
        pools = {name: build_pool(spec, path, params.height, params.width, ex)
                 for name, spec in params.pool_specs().items()}
    ref_scores = pools["reference"].table["score"].to_numpy(dtype=float)
    point = operating_point if operating_point is not None else registered_point
    point = float(np.quantile(ref_scores, 1 - params.flag_rate)) if point is None else float(point)
    ctx = _Context(pools["reference"].table, point, float(np.mean(ref_scores >= point)), get_settings())
    outcomes: list[NightOutcome] = []
    for scenario in params.scenarios:
        for volume in params.volumes:
            for r in range(params.sequences):
                outcomes += run_sequence(ctx, pools["stable"], pools[scenario], scenario, volume, r, params)
            log.info("simulate: %s at %d exams/night, %d sequences done (%.0f s)", scenario, volume,
                     params.sequences, time.monotonic() - started)
    return SimulationResult(params=params, model=model, operating_point=point,
                            expected_flag_rate=ctx.expected_flag_rate,
                            changed_night_count=params.sequences * params.changed_nights,
                            stable_night_count=(len(params.scenarios) * params.sequences
                                                * params.stable_nights),
                            **summarize(outcomes, params))  # type: ignore[arg-type]
