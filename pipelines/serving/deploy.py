"""`radflow deploy`: a registered version served by Triton without a moment of doubt.

A deploy (1) downloads the version's ONNX file from MLflow and checks its SHA-256 against
the registered one, (2) publishes `<repo>/<model>/<version>/` by one rename, (3) checks
every file Triton is about to load against MLflow again, (4) loads the new version
BESIDE the one serving (version policy: both), (5) waits for readiness and checks a
smoke inference against onnxruntime's answer on the same input (within the bound of the
profile's precision; on FP16, also the flags at the version's operating point), and only then (6)
switches the version policy to the new version, which unloads the old one. The old
version's folder stays for `radflow deploy --rollback`; older ones are deleted. A failed
step leaves the old version serving. `mlflow deployments -t triton` runs the same code.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import uuid
from pathlib import Path

from pipelines import approvals, db
from pipelines.config import get_settings
from pipelines.deployments import (
    DEFAULT_NAMES,
    Deployment,
    Slot,
    check_slot,
    find,
    record,
    remove,
    triton_name,
)
from pipelines.domain import DeployResult, UndeployResult
from pipelines.errors import DeploymentFailed, PermanentError, UnapprovedChampion
from pipelines.layout import CLASSIFIER_ADAPTER
from pipelines.locks import stage_lock
from pipelines.modelfiles import integrity
from pipelines.publish import publish_dir
from pipelines.scoring import SUSPICION_TAG
from pipelines.serving import repository
from pipelines.serving.switch import switch
from pipelines.tasks import TaskDefinition, get_task
from pipelines.tracking import mlflow_client, model_uri
from pipelines.triton_client import TritonClient

log = logging.getLogger(__name__)
REVIEWED = repository.REVIEWED


def write_version(repo: Path, triton_model: str, version: int, onnx_file: Path) -> Path:
    """Publish `<repo>/<model>/<version>/` (model.onnx + the reviewed model.py) by rename;
    writes the model's CPU config when the folder has none yet."""
    model_dir = repo / triton_model
    model_dir.mkdir(parents=True, exist_ok=True)
    if not (model_dir / "config.pbtxt").exists():
        profile = get_settings().triton_profile
        config = repository.classifier(triton_model, profile)
        repository.write_config(model_dir, repository.render(config, profile))
    final = model_dir / str(version)
    # staged as <model>/.staging-<token>: Triton loads numeric version folders only
    with publish_dir(final) as staging:
        shutil.copy2(onnx_file, staging / "model.onnx")
        shutil.copy2(CLASSIFIER_ADAPTER, staging / "model.py")
    return final


def _result(dep: Deployment, smoke: float, action: str) -> DeployResult:
    return DeployResult(model_name=dep.model_name, version=dep.model_version, triton_model=dep.triton_model,
                        triton_version=dep.triton_version, repository=str(get_settings().triton_repository),
                        ready=True, smoke_probability=round(smoke, 6), slot=dep.slot, name=dep.name,
                        previous_version=dep.previous_version, sha256=dep.sha256, action=action)


def downloads_dir() -> Path:
    return get_settings().state / "serving" / "downloads"


def clear_leftovers(model: str) -> int:
    """Remove what a killed deploy of Triton model `model` left: its download, and hidden
    entries in the model's folder (a half-published version folder, which Triton skips, or a
    config being written). Call it with the model's deploy lock held; returns how many."""
    folder = get_settings().triton_repository / model
    hidden = [p for p in folder.iterdir() if p.name.startswith(".")] if folder.is_dir() else []
    downloads = list(downloads_dir().glob(f"{model}-*"))  # none when the folder does not exist
    for path in (*hidden, *downloads):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return len(hidden) + len(downloads)


def deploy(uri: str | None = None, slot: str = "champion", name: str | None = None,
           task: str = "mammo") -> DeployResult:
    """Serve the registered version `uri` names in the `slot` of screening `task` (default
    URI: the task model's champion alias for the champion slot, its challenger for shadow).

    One deploy of a slot runs at a time, wherever it runs (the lock `deploy-<Triton model>`,
    pipelines/locks.py); it first removes what a killed deploy of the slot left.

    Raises:
        LockHeld: another deploy of the slot held its lock for 600 s (a retry may succeed).
    """
    slot_, spec = check_slot(slot), get_task(task)
    model = triton_name(slot_, spec.triton_model)
    with stage_lock(f"deploy-{model}"):
        if cleared := clear_leftovers(model):
            log.warning("deploy: removed %d leftovers of an interrupted deploy of %s", cleared, model)
        return _deploy(uri, slot_, spec, model, name)


def _deploy(uri: str | None, slot_: Slot, spec: TaskDefinition, model: str,
            name: str | None) -> DeployResult:
    s = get_settings()
    uri = uri or model_uri(spec.registered_model, "champion" if slot_ == "champion" else "challenger")
    client = mlflow_client()
    mv = integrity.resolve(client, uri)
    if slot_ == "champion":
        approvals.require_approved(mv.name, str(mv.version))
    expected, version = integrity.registered_sha(mv), int(mv.version)
    current = find(slot_, spec.triton_model)
    folder = s.triton_repository / model / str(version)
    if not (folder / "model.onnx").exists() or integrity.sha256(folder / "model.onnx") != expected:
        work = downloads_dir() / f"{model}-{version}-{uuid.uuid4().hex[:6]}"
        try:
            onnx_file = integrity.fetch_onnx(str(mv.run_id), expected, work)
            write_version(s.triton_repository, model, version, onnx_file)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    # the version serving now is loaded beside the new one; after the switch it is the
    # rollback target (a redeploy of the serving version keeps the earlier target)
    old = current.triton_version if current and current.triton_version != version else None
    if current is None:
        keep, keep_sha = None, ""
    elif old is None:
        keep, keep_sha = current.previous_version, current.previous_sha256
    else:
        keep, keep_sha = old, current.sha256
    triton = TritonClient(s)
    operating_point = float((mv.tags or {}).get("operating_point", 0.5))
    smoke = switch(triton, model, version, expected, old, keep_sha if old is not None else "",
                   mv.name, keep, spec.input_size(), operating_point)
    dep = Deployment(
        model_name=mv.name, model_version=str(version), triton_model=model, triton_version=version,
        operating_point=operating_point, sha256=expected,
        deployed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), slot=slot_,
        name=name or (current.name if current else DEFAULT_NAMES[slot_]), previous_version=keep,
        previous_sha256=keep_sha, suspicion_cuts=str((mv.tags or {}).get(SUSPICION_TAG, "")), task=spec.name)
    record(dep)
    log.info("deploy: %s v%d serving as %s (slot %s, previous %s)", mv.name, version, model, slot_, keep)
    if slot_ == "champion" and spec.preprocessing == "mammogram":
        load_ensemble(triton, spec, version)
    return _result(dep, smoke, "deployed")


def rollback(slot: str = "champion", task: str = "mammo") -> DeployResult:
    """Serve the slot's previous version again (its folder is still there), verified first.

    Raises:
        DeploymentFailed: nothing deployed, or no previous version to return to.
        ModelIntegrityError: the previous version's file is not its registered one.
    """
    slot_, spec = check_slot(slot), get_task(task)
    current = find(slot_, spec.triton_model)
    if current is None or current.previous_version is None:
        raise DeploymentFailed(f"nothing to roll back to in slot {slot_}: "
                               + ("nothing is deployed" if current is None else
                                  f"version {current.triton_version} has no previous version on disk"))
    client = mlflow_client()
    prev = current.previous_version
    if slot_ == "champion":
        with db.get_engine().connect() as conn:
            ever = approvals.approved_versions(conn, current.model_name)
        if str(prev) not in ever:
            raise UnapprovedChampion(f"{current.model_name} version {prev} was never made champion "
                                     "by an audited promotion or rollback: not serving it again")
    mv = client.get_model_version(current.model_name, str(prev))
    expected = integrity.registered_sha(mv)
    triton = TritonClient(get_settings())
    operating_point = float((mv.tags or {}).get("operating_point", 0.5))
    smoke = switch(triton, current.triton_model, prev, expected, current.triton_version,
                   current.sha256, current.model_name, current.triton_version, spec.input_size(),
                   operating_point)
    dep = Deployment(
        model_name=current.model_name, model_version=str(prev), triton_model=current.triton_model,
        triton_version=prev, operating_point=operating_point,
        sha256=expected, deployed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        slot=slot_, name=current.name, previous_version=current.triton_version,
        previous_sha256=current.sha256, suspicion_cuts=str((mv.tags or {}).get(SUSPICION_TAG, "")),
        task=spec.name)
    record(dep)
    log.info("rollback: %s serves version %d again (was %d)", dep.triton_model, prev, current.triton_version)
    return _result(dep, smoke, "rolled_back")


def load_ensemble(triton: TritonClient, spec: TaskDefinition, version: int) -> None:
    """(Re)write and load the preprocessing model and the ensemble over the task's champion,
    at the task's input size.

    Raises:
        DeploymentFailed: they did not load; the classifier `version` is serving regardless.
    """
    s = get_settings()
    classifier = spec.triton_model
    name = repository.ensemble_name(classifier)
    try:
        repository.write_static(s.triton_repository, classifier, s.triton_profile, *spec.input_size())
        triton.load(name)
    except Exception as exc:
        raise DeploymentFailed(f"{classifier} v{version} is serving, but {name} (preprocessing "
                               f"on stored pixels) did not load: {exc}") from exc


def undeploy(slot: str, task: str = "mammo") -> UndeployResult:
    """Stop serving a slot: unload its Triton models and delete their files and record."""
    s = get_settings()
    slot_, spec = check_slot(slot), get_task(task)
    current = find(slot_, spec.triton_model)
    if current is None:
        raise PermanentError(f"nothing is deployed in slot {slot_}")
    triton = TritonClient(s)
    models = [current.triton_model]
    if slot_ == "champion" and spec.preprocessing == "mammogram":
        models = [repository.ensemble_name(spec.triton_model), repository.PREPROCESSING, *models]
    for m in models:
        triton.unload(m)
    shutil.rmtree(s.triton_repository / current.triton_model, ignore_errors=True)
    remove(slot_, spec.triton_model)
    log.info("undeploy: slot %s (%s) no longer served", slot_, current.triton_model)
    return UndeployResult(slot=slot_, name=current.name, triton_model=current.triton_model, unloaded=models)


def run(alias: str = "champion", task: str = "mammo") -> DeployResult:
    """The deploy DAG's entry: serve the version of the task's model holding `alias`."""
    return deploy(model_uri(get_task(task).registered_model, alias), "champion", task=task)
