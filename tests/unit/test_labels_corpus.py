"""The BI-RADS extractor over three report corpora, scored separately.

tests/data/reports/corpus.jsonl holds the report texts the extractor was developed on;
tests/data/reports/independent.jsonl holds reports written blind, by someone who saw neither
the extractor nor that corpus (issue 16); tests/data/reports/holdout.jsonl holds a third set
written blind and scored once before any of its failures was looked at. Each gives the
category a radiologist reads for each breast (null: the report gives that breast none).
The three tables are printed and written to benchmarks/results/birads_extractor.json under
"corpus", "independent" and "holdout"; the floors below are the target, so a regression on
any of them fails.
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
REPORTS = ROOT / "tests" / "data" / "reports"
CORPORA = {
    "corpus": REPORTS / "corpus.jsonl",
    "independent": REPORTS / "independent.jsonl",
    "holdout": REPORTS / "holdout.jsonl",
}
RESULT = ROOT / "benchmarks" / "results" / "birads_extractor.json"
CATEGORIES = range(7)
# Measured per-breast accuracy (issue 16 figures):
# - corpus.jsonl, which the extractor was tuned on, so its figures are optimistic: 0.996
#   (506/508) before issue 16, 1.0 (508/508) after. Its "holdout" slices, scored blind
#   when they were added, read 0.875 each (35/40, 28/32).
# - independent.jsonl (101 reports, 202 breasts, written blind): 0.787 (159/202) with the
#   extractor of git HEAD before issue 16; 0.881 (178/202) with the issue-16 fixes made
#   from the phrasings alone, before any failure on this corpus was looked at;
#   1.0 (202/202) after fixing what it showed (hyphenated/line-broken/OCR "BI-RADS",
#   "cat.", "IVa", tables with a prior-exam column, a breast written after the category,
#   "Final assessment (per breast):", "both breasts" ending an exam line). It is now
#   tuned-on too: the 0.881 is the honest estimate for reports nobody here has seen.
# - holdout.jsonl (103 reports, 206 breasts, written blind, never tuned on before):
#   0.864 (178/206) blind, with the extractor that read the two corpora above at 1.0;
#   1.0 (206/206) after general rules for what it showed (dictated punctuation and spelled
#   numbers, "by rads"/"B I RADS", OCR "Ieft"/"Rigth", checkbox forms, "would be BI-RADS 0"
#   as a hypothetical, "4 cm from the lesion" as a place, "BI-RADS category, right breast:
#   2", "Right 5. Left 1." pairs, an overall category before per-breast ones, "BI-RADS 2 /
#   BI-RADS 4 (R/L)", an inline breast section ending with its paragraph, "ACR 5" when the
#   report ties ACR to BI-RADS, a table with an empty corner and dated columns). Tuned-on
#   now as well: 0.864 is its honest figure, and the next unseen set will read lower.
# The blind figures above, kept beside the live ones in the results file (not measured here).
HISTORY = {
    "corpus": {"before_issue_16": 506 / 508},
    "independent": {"git_head_before_issue_16": 159 / 202, "fixed_before_looking": 178 / 202},
    "holdout": 178 / 206,  # blind: scored before any of its failures was looked at
}
# Holdout: measured 1.0 (206/206) after the fixes, floored at 0.98 (4 breasts of margin).
FLOOR_ACCURACY = {"corpus": 0.97, "independent": 0.97, "holdout": 0.98}
FLOOR_LABEL_ACCURACY = {"corpus": 0.98, "independent": 0.97, "holdout": 0.98}
# Per-category floors on the large corpus only: the independent one has 4-9 breasts of
# categories 3, 5 and 6, too few for a per-category rate to mean much.
FLOOR_PRECISION = {0: 0.9, 1: 0.95, 2: 0.95, 3: 0.9, 4: 0.95, 5: 0.9, 6: 0.9}
FLOOR_RECALL = {0: 0.9, 1: 0.95, 2: 0.95, 3: 0.9, 4: 0.95, 5: 0.9, 6: 0.9}


def load_corpus(name: str = "corpus") -> list[dict[str, Any]]:
    text = CORPORA[name].read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def evaluate(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-breast pairs (expected, extracted) scored per category and as labels."""
    pairs: list[tuple[int | None, int | None]] = []
    by_tag: dict[str, list[bool]] = {}
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


def _summary(result: dict[str, Any], name: str) -> dict[str, Any]:
    return {"corpus": str(CORPORA[name].relative_to(ROOT)), "floor": FLOOR_ACCURACY[name],
            "earlier_accuracy": HISTORY[name]} | {
        k: v for k, v in result.items() if k != "errors"
    } | {"errors": dict(result["errors"])}


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    results = {name: evaluate(load_corpus(name)) for name in CORPORA}
    for name, result in results.items():
        print(f"\n{name} ({CORPORA[name].name})\n" + table(result))
    worst = min(r["accuracy"] for r in results.values())
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({
        "benchmark": "birads_extractor", "unit": "per-breast accuracy (the lower of the corpora)",
        "value": worst, "limit": 1.0,
        "limit_definition": "every breast of every corpus read as the radiologist reads it",
        "ratio": worst, "target": min(FLOOR_ACCURACY.values()),
        "params": {name: {"corpus": str(path.relative_to(ROOT)), "cases": results[name]["cases"]}
                   for name, path in CORPORA.items()},
        **{name: _summary(result, name) for name, result in results.items()},
        "machine": platform.platform(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }, indent=2) + "\n", encoding="utf-8")
    return results


def test_corpus_is_large_and_varied() -> None:
    cases = load_corpus()
    tags = Counter(t for c in cases for t in c["tags"])
    assert len(cases) >= 150
    for tag in ("negation", "addendum", "bilateral", "flattened", "abbreviation", "prior", "roman",
                "multiple-findings", "no-category", "unilateral"):
        assert tags[tag] >= 1, tag
    expected = Counter(v for c in cases for v in c["expected"].values())
    assert all(expected[c] >= 5 for c in CATEGORIES), expected


def test_the_independent_corpus_is_large_blind_and_varied() -> None:
    cases = load_corpus("independent")
    tags = Counter(t for c in cases for t in c["tags"])
    assert len(cases) >= 60
    assert all(c["source"] == "independent" for c in cases)
    for tag in ("negative-after", "final-assessment-list", "paren-category", "known-cancer-new-finding",
                "non-native", "ocr-typo", "table", "unilateral", "addendum"):
        assert tags[tag] >= 1, tag
    old = {c["text"] for c in load_corpus("corpus")}
    assert not [c for c in cases if c["text"] in old]


def test_the_holdout_corpus_is_blind_and_new() -> None:
    cases = load_corpus("holdout")
    assert len(cases) >= 100
    assert all(c["source"] == "holdout" for c in cases)
    seen = {c["text"] for name in ("corpus", "independent") for c in load_corpus(name)}
    assert not [c for c in cases if c["text"] in seen]


@pytest.mark.parametrize("name", CORPORA)
def test_per_breast_accuracy_reaches_the_target_on_each_corpus(
    results: dict[str, dict[str, Any]], name: str
) -> None:
    result = results[name]
    assert result["accuracy"] >= FLOOR_ACCURACY[name], (name, dict(result["errors"]))
    assert result["label_accuracy"] >= FLOOR_LABEL_ACCURACY[name], name


@pytest.mark.parametrize("name", CORPORA)
def test_a_suspicious_breast_is_never_labelled_negative(
    results: dict[str, dict[str, Any]], name: str
) -> None:
    assert results[name]["suspicious_labelled_negative"] == 0


@pytest.mark.parametrize("category", CATEGORIES)
def test_precision_and_recall_per_category(results: dict[str, dict[str, Any]], category: int) -> None:
    row = results["corpus"]["per_category"][str(category)]
    assert row["precision"] is not None and row["precision"] >= FLOOR_PRECISION[category]
    assert row["recall"] is not None and row["recall"] >= FLOOR_RECALL[category]
