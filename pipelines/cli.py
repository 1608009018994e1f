"""`radflow <stage>`: parses arguments and calls the stage; holds no logic of its own.

With --json every stage prints exactly one JSON object as the last line of stdout and
exits 0 on success, 1 on failure (the object then has "error"). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pipelines import cli_args as arg
from pipelines.errors import PermanentError, RadflowError


def _stack(args: argparse.Namespace) -> Any:
    from pipelines.stack import manage

    only = args.only.split(",") if args.only else None
    if args.action == "up":
        return manage.up(only=only, executor=args.executor, workers=args.workers)
    if args.action == "down":
        return manage.down(only=only)
    return manage.status()


def _worker(args: argparse.Namespace) -> Any:
    """Run one Celery worker here in the foreground (it replaces this process)."""
    import os

    from pipelines.config import get_settings
    from pipelines.stack import airflow

    updates: dict[str, Any] = {"airflow_executor": "celery"}
    if args.queues:
        updates["worker_queues"] = args.queues
    if args.concurrency:
        updates["worker_concurrency"] = args.concurrency
    s = get_settings().model_copy(update=updates)
    airflow.check_broker(s)
    argv, env = airflow.worker_command(s, args.name, serve_logs=True)
    os.execve(argv[0], argv, env)


def _synth(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from pipelines.synth.run import run

    return run(
        exams=args.exams, study_date=args.date, site=args.site, seed=args.seed,
        push=not args.no_push, out_dir=Path(args.out) if args.out else None,
        positive_rate=args.positive_rate, scale=args.scale,
        burned_in_text_rate=args.burned_in_text_rate, artifact_rate=args.artifact_rate,
        vendor=args.vendor, detector_degradation=args.detector_degradation,
    )


def _ingest(args: argparse.Namespace) -> Any:
    from pipelines.ingest import run

    return run.run(limit=args.limit)


def _validate(args: argparse.Namespace) -> Any:
    from pipelines.validation import run

    return run.run(suite=args.suite, version=args.contract_version, data_docs=not args.no_data_docs,
                   task=args.task)


def _build_dataset(args: argparse.Namespace) -> Any:
    from pipelines.datasets import run as build

    return build.run(task=args.task, seed=args.seed, remote=args.remote)


def _evaluate(args: argparse.Namespace) -> Any:
    from pipelines.evaluation import run as evaluate

    return evaluate.run(alias=args.alias, split=args.split, task=args.task)


def _train(args: argparse.Namespace) -> Any:
    from pipelines.monitoring import reference
    from pipelines.training import run

    trained = run.run(epochs=args.epochs, seed=args.seed, base=args.base, task=args.task,
                      patience=args.patience)
    reference.build_for_version(trained.model_version, task=args.task)  # what monitoring compares with
    return trained


def _pretrain(args: argparse.Namespace) -> Any:
    from pipelines.synth.views import synthetic_views
    from pipelines.training import pretrain

    frame, images = synthetic_views(args.exams, args.site, args.seed)
    return pretrain.run(frame, images, site=args.site, seed=args.seed, epochs=args.epochs)


def _promote(args: argparse.Namespace) -> Any:
    from pipelines.registry import promote

    return promote.run(reason=args.reason, version=args.version, task=args.task)


def _rollback(args: argparse.Namespace) -> Any:
    from pipelines.registry import rollback

    return rollback.run(reason=args.reason, task=args.task)


def _user(args: argparse.Namespace) -> Any:
    from pipelines.stack import users

    return users.add(args.login, args.role, args.name, args.email)


def _deploy(args: argparse.Namespace) -> Any:
    from pipelines.serving import deploy
    from pipelines.tasks import get_task
    from pipelines.tracking import model_uri

    if args.rollback:
        return deploy.rollback(slot=args.slot, task=args.task)
    if args.undeploy:
        return deploy.undeploy(slot=args.slot, task=args.task)
    uri = args.model_uri or (model_uri(get_task(args.task).registered_model, args.alias)
                             if args.alias else None)
    return deploy.deploy(uri, slot=args.slot, task=args.task)


def _serving_repo(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from pipelines.serving import repository
    from pipelines.tasks import get_task

    task = get_task(args.task)
    written = repository.generate(Path(args.out), args.profile, task.triton_model, *task.input_size())
    return {"profile": args.profile, "repository": args.out, "configs": [str(p) for p in written]}


def _screen(args: argparse.Namespace) -> Any:
    from pipelines.screening import run

    return run.run(study_date=args.date, task=args.task)


def _gateway(args: argparse.Namespace) -> Any:
    if args.action == "purge":
        from pipelines.gateway import purge

        return purge.run(today=args.today)
    if not args.date:
        raise PermanentError(f"radflow gateway {args.action} needs --date YYYY-MM-DD")
    if args.action == "retrieve":
        from pipelines.gateway import retrieve

        return retrieve.run(study_date=args.date, task=args.task)
    from pipelines.gateway import deliver

    return deliver.run(study_date=args.date, task=args.task)


def _worklist(args: argparse.Namespace) -> Any:
    from pipelines.screening.feedback import feedback_rows

    rows = feedback_rows(args.task, args.since)
    return {"task": args.task, "since": args.since, "count": len(rows), "feedback": rows}


def _labels(args: argparse.Namespace) -> Any:
    from pipelines.outcomes import imports

    if args.pathology:
        return imports.import_pathology(args.pathology)
    return imports.import_follow_up(args.ris)


def _outcomes(args: argparse.Namespace) -> Any:
    from pipelines.outcomes import summary

    return summary.summarise(task=args.task, model_version=args.version)


def _monitor(args: argparse.Namespace) -> Any:
    from pipelines.monitoring import run

    return run.run(study_date=args.date, task=args.task)


def _check_integrity(args: argparse.Namespace) -> Any:
    from pipelines.monitoring import run

    return run.check_integrity(args.date)


def _monitor_reference(args: argparse.Namespace) -> Any:
    from pipelines.monitoring import reference

    return reference.build_for_version(args.version, task=args.task)


def _db(args: argparse.Namespace) -> Any:
    from pipelines import db
    from pipelines.config import get_settings

    url = get_settings().db_url
    revision = db.migrate(url) if args.action == "upgrade" else db.current_revision(url)
    head = db.head_revision()
    return {"action": args.action, "revision": revision, "head": head,
            "up_to_date": revision == head, "database_url": db.redacted_url(url)}


def _synth_chest(args: argparse.Namespace) -> Any:
    from pipelines.synth import chest

    return chest.push(args.exams, args.date, args.seed, args.size)


def _demo(args: argparse.Namespace) -> Any:
    from pipelines import demo

    return demo.run(exams=args.exams, days=args.days, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radflow",
        description="Hospital imaging MLOps: Orthanc -> Airflow -> PyTorch/MLflow -> Triton -> PACS.",
    )
    parser.add_argument("--state-dir", type=arg.output_folder,
                        help="state folder (default .radflow, env RADFLOW_STATE_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], Any], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        p.set_defaults(func=fn)
        return p

    def with_task(p: argparse.ArgumentParser) -> None:
        p.add_argument("--task", default=arg.DEFAULT_TASK, type=arg.task_name,
                       help="the task (pipelines/tasks.yaml): its model, dataset, policy and Triton model")

    p = add("stack", _stack, "start, inspect or stop the local PostgreSQL, Orthanc, MLflow, Triton "
                             "and Airflow")
    p.add_argument("action", choices=["up", "status", "down"])
    p.add_argument("--only", type=arg.services,
                   help="comma-separated subset: postgres,orthanc,mlflow,triton,airflow")
    p.add_argument("--executor", choices=["local", "celery"], default=None,
                   help="Airflow's executor (recorded for later commands): local (LocalExecutor, "
                        "the default) or celery (CeleryExecutor on RADFLOW_CELERY_BROKER_URL)")
    p.add_argument("--workers", type=arg.at_least_one, default=None,
                   help="Celery workers to start on this machine (with --executor celery)")

    p = add("worker", _worker, "run one Celery worker on this host in the foreground, serving "
                               "RADFLOW_WORKER_QUEUES for the Airflow at RADFLOW_AIRFLOW_URL")
    p.add_argument("--queues", default=None, type=arg.queues, help="comma-separated: default,pacs,gpu "
                                                  "(default RADFLOW_WORKER_QUEUES)")
    p.add_argument("--concurrency", type=arg.at_least_one, default=None,
                   help="task slots (default RADFLOW_WORKER_CONCURRENCY)")
    p.add_argument("--name", default="radflow", type=arg.worker_name,
                   help="the worker's Celery name (name@host)")

    p = add("user", _user, "add a person's login to Airflow and MLflow with a role (password "
                           "from RADFLOW_NEW_USER_PASSWORD, else generated into the secrets folder)")
    p.add_argument("action", choices=["add"])
    p.add_argument("login", type=arg.login)
    p.add_argument("--role", required=True, choices=["hospital-it", "ml-team", "viewer"])
    p.add_argument("--name", required=True, type=arg.display_name, help="display name, e.g. 'Ada Reviewer'")
    p.add_argument("--email", default=None, type=arg.email)

    p = add("synth", _synth, "generate synthetic screening mammograms and C-STORE them to Orthanc")
    p.add_argument("--exams", type=arg.at_least_one, required=True)
    p.add_argument("--date", required=True, type=arg.calendar_date, help="study date YYYY-MM-DD")
    p.add_argument("--site", default="general", type=arg.site, help="site name (picks a vendor profile)")
    p.add_argument("--seed", type=arg.seed, default=0)
    p.add_argument("--positive-rate", type=arg.share, default=0.3)
    p.add_argument("--scale", type=arg.scale, default=0.125, help="fraction of the detector matrix")
    p.add_argument("--out", type=arg.output_folder, help="also write the DICOM files under this folder")
    p.add_argument("--no-push", action="store_true", help="do not send to Orthanc")
    p.add_argument("--burned-in-text-rate", type=arg.share, default=0.0,
                   help="share of exams with the patient's name and id burned into one view")
    p.add_argument("--artifact-rate", type=arg.share, default=0.0,
                   help="share of exams with one image artifact (foreign object, motion blur, grid "
                        "lines, clipped exposure, missing pectoral muscle) in one view")
    p.add_argument("--vendor", default=None, type=arg.vendor,
                   help="image with this vendor's unit instead of the site's (hologic, ge, "
                        "siemens, fujifilm); the site's population stays")
    p.add_argument("--detector-degradation", type=arg.share, default=0.0,
                   help="0-1: ageing detector on the same unit (more noise, less contrast, "
                        "gain non-uniformity)")

    p = add("ingest", _ingest, "ingest studies new since the last Orthanc /changes watermark")
    p.add_argument("--limit", type=arg.at_least_one, default=None, help="at most this many studies")

    p = add("validate", _validate, "check the manifest against a data contract (Great Expectations)")
    p.add_argument("--suite", default=None, type=arg.contract_name,
                   help="data_contracts/<suite>.v<N>.json (default: the task's manifest_contract; "
                        "its dataset_contract checks the frozen dataset)")
    p.add_argument("--contract-version", type=arg.at_least_one, default=None,
                   help="pin contract version N (default: the latest)")
    p.add_argument("--no-data-docs", action="store_true", help="skip rendering the GX Data Docs HTML")
    with_task(p)

    p = add("build-dataset", _build_dataset,
            "freeze the validated manifest into a patient-split dataset versioned with DVC")
    p.add_argument("--seed", type=arg.seed, default=None, help="orders new patients for split assignment")
    p.add_argument("--remote", default=None, type=arg.dvc_remote,
                   help="DVC remote URL (default <state>/dvc-remote)")
    with_task(p)

    p = add("train", _train, "train the view classifier on the frozen dataset, log to MLflow, "
                             "register it as challenger")
    p.add_argument("--epochs", type=arg.at_least_one, default=None)
    p.add_argument("--seed", type=arg.seed, default=None)
    p.add_argument("--patience", type=arg.at_least_one, default=None,
                   help="epochs without a better validation AUC before stopping (params.yaml train.patience)")
    p.add_argument("--base", default=None, type=arg.base_model,
                   help="the base model to fine-tune: an MLflow model URI (models:/NAME@ALIAS, "
                        "models:/NAME/VERSION, runs:/ID), a weights file (.pt), or 'scratch'; "
                        "default: the task's registered base (<model>-base@base), from scratch "
                        "when none is registered")
    with_task(p)

    p = add("pretrain", _pretrain, "train a base model on a synthetic public site, register it "
                                   "as <registered model>-base@base")
    p.add_argument("--exams", type=arg.at_least_one, default=600)
    p.add_argument("--site", default="general", type=arg.site, help="synthetic site (picks the vendor)")
    p.add_argument("--seed", type=arg.seed, default=7)
    p.add_argument("--epochs", type=arg.at_least_one, default=None)

    p = add("evaluate", _evaluate, "evaluate a registered model on a frozen dataset split, log to MLflow")
    p.add_argument("--alias", default="challenger", type=arg.alias_name,
                   help="registered model alias to evaluate")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    with_task(p)

    p = add("promote", _promote, "gate the challenger against the champion on the frozen test "
            "set and, if it passes, make it champion (approved by your MLflow login, "
            "RADFLOW_MLFLOW_USERNAME, listed in the policy; reason required; audited)")
    p.add_argument("--reason", required=True, help="why (recorded in the audit table and MLflow)")
    p.add_argument("--version", default=None, type=arg.version_number,
                   help="model version (default: the challenger)")
    with_task(p)

    p = add("rollback", _rollback, "move alias champion back to the version the current "
            "champion replaced (approved by your MLflow login; reason required; audited)")
    p.add_argument("--reason", required=True, help="why (recorded in the audit table and MLflow)")
    with_task(p)

    p = add("deploy", _deploy, "serve a registered version on Triton: SHA-256 verified, loaded "
            "beside the serving version, smoke-checked, then switched")
    p.add_argument("--slot", default="champion", choices=["champion", "shadow"],
                   help="champion (screened, on the worklist) or shadow (scored beside it only)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--alias", default=None, type=arg.alias_name,
                       help="registered-model alias (default: champion, or challenger for --slot shadow)")
    which.add_argument("--model-uri", default=None, type=arg.registered_model_uri,
                       help="models:/NAME@ALIAS or models:/NAME/VERSION")
    which.add_argument("--rollback", action="store_true",
                       help="serve the slot's previous version again (verified, no download)")
    which.add_argument("--undeploy", action="store_true", help="stop serving the slot and unload it")
    with_task(p)

    p = add("serving-repo", _serving_repo, "generate a Triton model repository (configs and "
            "adapters) for the cpu or gpu profile, e.g. for the production Triton container")
    p.add_argument("--profile", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--out", required=True, type=arg.output_folder, help="repository folder to write")
    with_task(p)

    p = add("screen", _screen, "screen one study date's exams: QC, Triton, results, PACS write-back, "
            "worklist, notification")
    p.add_argument("--date", required=True, type=arg.past_date, help="study date YYYY-MM-DD")
    with_task(p)

    p = add("gateway", _gateway, "the gateway and the hospital PACS/RIS: retrieve a night from the "
            "PACS (pull mode), deliver its results to the PACS and RIS, purge old studies (retention)")
    p.add_argument("action", choices=["retrieve", "deliver", "purge"])
    p.add_argument("--date", type=arg.past_date, help="study date YYYY-MM-DD (retrieve, deliver)")
    p.add_argument("--today", type=arg.past_date, help="purge: the day retention counts from (default today)")
    with_task(p)

    p = add("worklist", _worklist, "the radiologists' feedback from the worklist (agree, disagree, "
            "artifact per exam and reader), for the ML team")
    p.add_argument("action", choices=["feedback"])
    p.add_argument("--since", type=arg.past_date, help="only nights on or after this study date YYYY-MM-DD")
    with_task(p)

    p = add("labels", _labels, "import outcomes of screened exams per exam pseudonym and breast: "
            "pathology (malignant/benign) or follow-up BI-RADS from a RIS export; re-import adds nothing, "
            "bad rows are listed with their row and column")
    p.add_argument("action", choices=["import"])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pathology", metavar="FILE", type=arg.input_csv,
                        help="CSV: exam_id (pseudonym), laterality, outcome, date")
    source.add_argument("--ris", metavar="FILE", type=arg.input_csv,
                        help="RIS CSV export of follow-up reports: accession_number or "
                        "study_instance_uid of the screened exam, report_text, report_date")

    p = add("outcomes", _outcomes, "realised performance once outcomes arrived: per model version and "
            "month, exams screened and with an outcome, sensitivity and specificity at the stored flags and "
            "AUC with bootstrap confidence intervals; the champion checked against the policy's minimum")
    p.add_argument("--version", default=None, type=arg.version_number,
                   help="the version to check (default: the latest screened)")
    with_task(p)

    p = add("monitor", _monitor, "one screened night against the champion's validation data: "
            "metadata, image, embedding, prediction and artifact-rate drift, sustained-drift alert, report")
    p.add_argument("--date", required=True, type=arg.past_date,
                   help="study date YYYY-MM-DD (screened already)")
    with_task(p)

    p = add("check-integrity", _check_integrity, "every model file in Triton's repository against its "
            "registered SHA-256; unknown models reported")
    p.add_argument("--date", type=arg.past_date, help="the day the check is recorded under (default today)")

    p = add("monitor-reference", _monitor_reference, "build and log the monitoring reference of a "
            "version registered before monitoring existed (from its validation split)")
    p.add_argument("--version", required=True, type=arg.version_number, help="registered version")
    with_task(p)

    p = add("synth-chest", _synth_chest, "synthetic chest radiographs (DX, PA) into Orthanc, for the "
            "cxr-nodule screening task")
    p.add_argument("--exams", type=arg.at_least_one, default=10)
    p.add_argument("--date", required=True, type=arg.calendar_date, help="study date YYYY-MM-DD")
    p.add_argument("--seed", type=arg.seed, default=7)
    p.add_argument("--size", type=arg.whole(32, 8192), default=512, help="rows and columns")

    p = add("db", _db, "migrate the results database to the newest schema, or show its revision")
    p.add_argument("action", choices=["upgrade", "current"])

    p = add("demo", _demo, "the whole nightly loop on synthetic data, end to end")
    p.add_argument("--exams", type=arg.whole(9), default=200,
                   help="exams in all, over --days study dates (8 or more of them screened tonight)")
    p.add_argument("--days", type=arg.at_least_one, default=2)
    p.add_argument("--seed", type=arg.seed, default=7)
    return parser


def _as_json(result: Any) -> dict[str, Any]:
    if hasattr(result, "as_json"):
        return dict(result.as_json())
    return dict(result)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.state_dir:
        from pipelines.config import reset_settings

        os.environ["RADFLOW_STATE_DIR"] = args.state_dir
        reset_settings()  # checking the arguments may have read the settings already
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "urllib3", "great_expectations", "alembic", "pynetdicom", "highdicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from pipelines.tracking import quiet_mlflow

    quiet_mlflow()  # before any stage imports mlflow: no telemetry, bars or URLs on stdout
    try:
        out = _as_json(args.func(args))
        code = 0 if not out.get("error") else 1
    except RadflowError as exc:
        out, code = {"error": str(exc), "type": type(exc).__name__}, 1
    except Exception as exc:  # a bug or an unforeseen failure: still one JSON object, exit 1
        from pipelines.db import unavailable

        if (outage := unavailable(exc)) is not None:  # a restart or a network cut: retry
            logging.getLogger("radflow").error("radflow %s: %s", args.command, outage)
            out, code = {"error": str(outage), "type": type(outage).__name__}, 1
        else:
            logging.getLogger("radflow").exception("radflow %s failed unexpectedly", args.command)
            out, code = {"error": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__}, 1
    if args.json:
        print(json.dumps(out, default=str))
    elif code:
        print(f"radflow {args.command}: {out['error']}", file=sys.stderr)
    else:
        print(json.dumps(out, indent=2, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
