"""The BI-RADS extractor over the report corpus: precision and recall per category.

tests/data/reports/corpus.jsonl holds report texts with the category a radiologist reads
for each breast (null: the report gives that breast none). The table is printed and
written to benchmarks/results/birads_extractor.json; the floors below are the measured
figures minus a margin, so a regression fails.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipelines.labels.birads import birads_by_side, label_of

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "reports" / "corpus.jsonl"
RESULT = ROOT / "benchmarks" / "results" / "birads_extractor.json"
CATEGORIES = range(7)
# The extractor was tuned on this corpus, so its figures here are optimistic: measured 0.998
# per-breast accuracy (455/456), label accuracy 1.0, every category's precision and
# recall >= 0.98. The two "holdout" slices were scored blind, before any change made for
# them: 0.875 per-breast accuracy each (35/40, 28/32). Floors: measured minus a margin.
# The 26 cases tagged "density" (for the density reader) came later, not tuned for: with
# them 0.996 (506/508) and label accuracy 0.996; the miss is a density sentence naming both
# breasts ("The left breast is ... and the right breast is ...") before one "BI-RADS 1",
# which goes to the left breast only.
FLOOR_ACCURACY = 0.97
FLOOR_LABEL_ACCURACY = 0.98
FLOOR_PRECISION = {0: 0.9, 1: 0.95, 2: 0.95, 3: 0.9, 4: 0.95, 5: 0.9, 6: 0.9}
FLOOR_RECALL = {0: 0.9, 1: 0.95, 2: 0.95, 3: 0.9, 4: 0.95, 5: 0.9, 6: 0.9}


def load_corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-breast pairs (expected, extracted) scored per category and as labels."""
    pairs, by_tag = [], {}
    for case in cases:
        got = birads_by_side(case["text"])
        these = [(case["expected"][side], got.get(side)) for side in ("R", "L")]
        pairs += these
        for tag in case["tags"]:
            by_tag.setdefault(tag, []).extend(e == g for e, g in these)
    per_category = {}
    for c in CATEGORIES:
        tp = sum(1 for e, g in pairs if e == c and g == c)
        predicted = sum(1 for _, g in pairs if g == c)
        actual = sum(1 for e, _ in pairs if e == c)
        per_category[str(c)] = {
            "support": actual, "predicted": predicted,
            "precision": tp / predicted if predicted else None,
            "recall": tp / actual if actual else None,
        }
    labels = [(label_of(e), label_of(g)) for e, g in pairs]
    return {
        "cases": len(cases), "breasts": len(pairs),
        "accuracy": sum(e == g for e, g in pairs) / len(pairs),
        "label_accuracy": sum(e == g for e, g in labels) / len(labels),
        "suspicious_labelled_negative": sum(e == 1 and g == 0 for e, g in labels),
        "negative_labelled_suspicious": sum(e == 0 and g == 1 for e, g in labels),
        "per_category": per_category,
        "accuracy_by_tag": {t: sum(ok) / len(ok) for t, ok in sorted(by_tag.items())},
        "errors": Counter(f"{e}->{g}" for e, g in pairs if e != g),
    }


def table(result: dict[str, Any]) -> str:
    def fmt(x: float | None) -> str:
        return "  -  " if x is None else f"{x:.3f}"

    lines = ["BI-RADS  support  predicted  precision  recall"]
    for c, row in result["per_category"].items():
        lines.append(f"{c:>7}  {row['support']:>7}  {row['predicted']:>9}  "
                     f"{fmt(row['precision']):>9}  {fmt(row['recall']):>6}")
    lines.append(f"per-breast accuracy {result['accuracy']:.3f} over {result['breasts']} breasts "
                 f"({result['cases']} reports); label accuracy {result['label_accuracy']:.3f}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    result = evaluate(load_corpus())
    print("\n" + table(result))
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({
        "benchmark": "birads_extractor", "unit": "per-breast accuracy", "value": result["accuracy"],
        "limit": 1.0, "limit_definition": "every breast of the corpus read as the radiologist reads it",
        "ratio": result["accuracy"], "target": FLOOR_ACCURACY,
        "params": {"corpus": str(CORPUS.relative_to(ROOT)), "cases": result["cases"]},
        "secondary": {k: v for k, v in result.items() if k not in ("errors",)}
        | {"errors": dict(result["errors"])},
        "machine": platform.platform(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }, indent=2) + "\n", encoding="utf-8")
    return result


def test_corpus_is_large_and_varied() -> None:
    cases = load_corpus()
    tags = Counter(t for c in cases for t in c["tags"])
    assert len(cases) >= 150
    for tag in ("negation", "addendum", "bilateral", "flattened", "abbreviation", "prior", "roman",
                "multiple-findings", "no-category", "unilateral"):
        assert tags[tag] >= 1, tag
    expected = Counter(v for c in cases for v in c["expected"].values())
    assert all(expected[c] >= 5 for c in CATEGORIES), expected


def test_per_breast_accuracy_stays_above_the_measured_floor(result: dict[str, Any]) -> None:
    assert result["accuracy"] >= FLOOR_ACCURACY
    assert result["label_accuracy"] >= FLOOR_LABEL_ACCURACY


def test_a_suspicious_breast_is_never_labelled_negative(result: dict[str, Any]) -> None:
    assert result["suspicious_labelled_negative"] == 0


@pytest.mark.parametrize("category", CATEGORIES)
def test_precision_and_recall_per_category(result: dict[str, Any], category: int) -> None:
    row = result["per_category"][str(category)]
    assert row["precision"] is not None and row["precision"] >= FLOOR_PRECISION[category]
    assert row["recall"] is not None and row["recall"] >= FLOOR_RECALL[category]
