"""Does fine-tuning on local data pay? Base as is, from scratch, fine-tuned, on one local test set.

A base model is trained on a synthetic "public" site (one vendor); the local hospital has
another vendor and fewer exams. Three models are scored on the local held-out patients:
- base: the public model applied as is;
- scratch: trained on the local training split only;
- fine-tuned: the base model fine-tuned on the same local split (layer-freezing schedule).
Exam-level AUC with stratified bootstrap 95% CIs. value = fine-tuned AUC; limit = the
better of the other two; ratio = value / limit (target: above 1, fine-tuning wins).
Everything is in process (synth -> the ingest preprocessing -> fit), seeded.

    python -m benchmarks.finetune [--quick] [--public N] [--local N]
"""

from __future__ import annotations

import argparse
import copy
import logging
import time

import numpy as np

from benchmarks.common import write_result


def main() -> None:
    from pipelines.metrics.binary import auc_with_ci
    from pipelines.params import load_dataset_params, load_params
    from pipelines.scoring import exam_table
    from pipelines.synth.views import synthetic_views
    from pipelines.training import data, fit

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sites, few epochs")
    parser.add_argument("--public", type=int, default=None, help="exams of the public site")
    parser.add_argument("--local", type=int, default=None, help="exams of the local site")
    parser.add_argument("--public-site", default="general")
    parser.add_argument("--local-site", default="north")
    args = parser.parse_args()
    public_n = args.public or (160 if args.quick else 600)
    local_n = args.local or (80 if args.quick else 250)
    params = load_params(epochs=4 if args.quick else 14)
    started = time.monotonic()

    def splits(site: str, exams: int, seed: int) -> dict[str, data.Split]:
        frame, images = synthetic_views(exams, site, seed, study_date="2026-02-02")
        frame["row"] = np.arange(len(frame))
        fractions = load_dataset_params()
        parts = data.split_patients(frame, fractions.val_fraction, fractions.test_fraction, seed)
        return {k: data.to_split(v.reset_index(drop=True), images[v.row.to_numpy()])
                for k, v in parts.items()}

    public, local = splits(args.public_site, public_n, 7), splits(args.local_site, local_n, 11)
    base, _ = fit.fit(public["train"], public["val"], params)
    scratch, _ = fit.fit(local["train"], local["val"], params)
    tuned, _ = fit.fit(local["train"], local["val"], params, base=copy.deepcopy(base))
    test = local["test"]
    results = {}
    for name, model in {"base_as_is": base, "scratch": scratch, "fine_tuned": tuned}.items():
        exams = exam_table(test.rows(), fit.predict(model, test.images))
        est = auc_with_ci(exams.label.to_numpy(), exams.score.to_numpy(), seed=0)
        results[name] = {"auc": round(est.auc, 4), "ci_low": round(est.ci_low, 4),
                         "ci_high": round(est.ci_high, 4)}
        print(f"finetune: {name}: exam AUC {est.auc:.3f} (95% CI {est.ci_low:.3f}-{est.ci_high:.3f})")
    best_other = max(results["base_as_is"]["auc"], results["scratch"]["auc"])
    write_result(
        "finetune", "exam AUC", results["fine_tuned"]["auc"], best_other,
        "the better of the base model applied as is and a model trained from scratch on the "
        "same local data, on the same local test exams", 1.0,
        {"public_site": args.public_site, "public_exams": public_n, "local_site": args.local_site,
         "local_exams": local_n, "local_test_exams": test.exams, "epochs": params.epochs,
         "unfreeze_at": params.unfreeze_at},
        {**results, "seconds": round(time.monotonic() - started, 1)},
    )


if __name__ == "__main__":
    main()
