"""Patient-level split assignment: disjoint, seeded, balanced, and sticky across rebuilds."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.datasets.splits import assign_splits, patient_strata
from pipelines.params import DatasetParams, load_dataset_params

FRACTIONS = DatasetParams().fractions


def cohort(n: int, positive_every: int = 4, prefix: str = "pt") -> pd.Series:
    return pd.Series({f"{prefix}-{i:05d}": i % positive_every == 0 for i in range(n)})


def test_every_patient_gets_one_split_in_the_configured_shares() -> None:
    patients = cohort(400)
    splits = assign_splits(patients, {}, FRACTIONS, seed=1)
    assert set(splits) == set(patients.index) and set(splits.values()) == {"train", "val", "test"}
    shares = pd.Series(splits).value_counts(normalize=True)
    for split, share in FRACTIONS.items():
        assert shares[split] == pytest.approx(share, abs=0.01)
    # stratified: positives are spread in the same shares
    positive_shares = pd.Series(splits)[patients].value_counts(normalize=True)
    for split, share in FRACTIONS.items():
        assert positive_shares[split] == pytest.approx(share, abs=0.02)


def test_the_same_seed_gives_the_same_splits_and_another_seed_others() -> None:
    patients = cohort(200)
    first = assign_splits(patients, {}, FRACTIONS, seed=7)
    assert assign_splits(patients.sample(frac=1, random_state=3), {}, FRACTIONS, seed=7) == first
    assert assign_splits(patients, {}, FRACTIONS, seed=8) != first


def test_new_patients_never_move_old_ones() -> None:
    old = assign_splits(cohort(120), {}, FRACTIONS, seed=3)
    grown = pd.concat([cohort(120), cohort(60, positive_every=2, prefix="new")])
    new = assign_splits(grown, old, FRACTIONS, seed=3)
    assert {p: new[p] for p in old} == old
    assert {p for p in new if p.startswith("new")} == {p for p in grown.index if p.startswith("new")}
    # the newcomers fill the shares up again
    shares = pd.Series(new).value_counts(normalize=True)
    assert shares["test"] == pytest.approx(FRACTIONS["test"], abs=0.02)


def test_a_patient_gone_from_the_manifest_is_dropped_and_the_rest_keep_their_split() -> None:
    old = assign_splits(cohort(50), {}, FRACTIONS, seed=3)
    fewer = cohort(50).iloc[10:]
    new = assign_splits(fewer, old, FRACTIONS, seed=3)
    assert new == {p: old[p] for p in fewer.index}


def test_a_few_positive_patients_still_reach_every_split() -> None:
    splits = assign_splits(cohort(40, positive_every=8), {}, FRACTIONS, seed=0)  # 5 positives
    positives = {splits[p] for p in cohort(40, positive_every=8).pipe(lambda s: s[s]).index}
    assert positives == {"train", "val", "test"}


def test_patient_strata_mark_patients_with_any_positive_view() -> None:
    frame = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "label": [0, 1, 0, 0]})
    assert patient_strata(frame).to_dict() == {"a": True, "b": False}


def test_params_yaml_has_a_dataset_section() -> None:
    params = load_dataset_params()
    assert params.seed == 42 and params.remote is None  # name and contract are the task's
    assert sum(params.fractions.values()) == pytest.approx(1.0)
    assert load_dataset_params(seed=9).seed == 9
