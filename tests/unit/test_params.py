"""params.yaml holds only what the stages read, and dvc.yaml names only what params.yaml holds.

A key no code reads would still make DVC rerun its stage when it changes; a stale copy of a
setting (the image size used to be one) drifts from the value the code really uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.params import (
    SECTIONS,
    UNFREEZE_GROUPS,
    DatasetParams,
    TaskTrainParams,
    TrainParams,
    check_params_file,
    load_dataset_params,
    load_params,
)

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params.yaml"


class PerTask(BaseModel):
    """The train parameters each task of `task_train` trains and evaluates with."""

    model_config = ConfigDict(extra="allow")


def load_per_task(path: Path) -> BaseModel:
    names = yaml.safe_load(path.read_text()).get("task_train") or {}
    return PerTask(**{name: load_params(path, task=name) for name in names})


# The loader of each section: what the stages call (build-dataset; train, pretrain, evaluate).
LOADERS: dict[str, Callable[[Path], BaseModel]] = {
    "dataset": load_dataset_params, "train": load_params, "task_train": load_per_task}


def params() -> dict[str, Any]:
    return yaml.safe_load(PARAMS.read_text())


def leaves(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def written(tmp_path: Path, tree: dict[str, Any]) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_every_section_is_one_a_stage_loads() -> None:
    assert set(params()) == set(SECTIONS) == set(LOADERS)
    assert SECTIONS == {"dataset": DatasetParams, "train": TrainParams, "task_train": TaskTrainParams}
    check_params_file(PARAMS)


@pytest.mark.parametrize("path", [p for p, _ in leaves(params())], ids=".".join)
def test_every_key_reaches_the_stage_that_loads_its_section(path: tuple[str, ...]) -> None:
    section, *field = path
    loaded: Any = LOADERS[section](PARAMS).model_dump()
    for key in field:
        assert key in loaded, f"params.yaml {'.'.join(path)} is read by nothing"
        loaded = loaded[key]
    expected = dict(leaves(params()))[path]
    assert loaded == expected


@pytest.mark.parametrize("extra", [("preprocess", "image_height"), ("dataset", "suite"),
                                   ("train", "image_width"), ("train", "unfreeze_at", "head"),
                                   ("task_train", "cxr-nodule", "image_width")])
def test_a_key_nothing_reads_fails_the_check(tmp_path: Path, extra: tuple[str, ...]) -> None:
    tree = params()
    node = tree
    for key in extra[:-1]:
        node = node.setdefault(key, {})
    node[extra[-1]] = 3
    path = written(tmp_path, tree)
    unread = extra[-1] if extra[0] in LOADERS else extra[0]
    with pytest.raises((ValueError, ValidationError), match=unread):
        check_params_file(path)
    if extra[0] in LOADERS:  # the stage itself refuses it too, naming the key
        with pytest.raises(ValidationError, match=unread):
            LOADERS[extra[0]](path)


def test_the_loaders_read_their_own_section_with_overrides(tmp_path: Path) -> None:
    tree = params()
    tree["dataset"]["seed"], tree["train"]["epochs"] = 7, 3
    path = written(tmp_path, tree)
    assert load_dataset_params(path).seed == 7 and load_params(path).epochs == 3
    assert load_params(path, epochs=None, seed=9).model_dump() == {**tree["train"], "seed": 9}


def test_a_task_trains_with_its_own_keys_over_the_train_section(tmp_path: Path) -> None:
    tree = params()
    tree["task_train"] = {"cxr-nodule": {"learning_rate": 0.0001, "patience": 9}}
    path = written(tmp_path, tree)
    chest = load_params(path, task="cxr-nodule", patience=3)
    assert (chest.learning_rate, chest.patience, chest.epochs) == (0.0001, 3, tree["train"]["epochs"])
    assert load_params(path, task="cxr-nodule", patience=None).patience == 9  # None: not given
    assert load_params(path, task="mammo") == load_params(path)  # no keys of its own
    tree["task_train"] = {"cxr": {"epochs": 2}}
    with pytest.raises(ValidationError, match=r"task_train.cxr: no such task"):
        check_params_file(written(tmp_path, tree))


def test_the_fine_tuning_groups_are_the_models_layer_groups() -> None:
    from pipelines.training.gmic import GMIC_GROUPS, GmicClassifier
    from pipelines.training.model import LAYER_GROUPS, ViewClassifier
    from pipelines.training.profiles import all_groups

    assert set(UNFREEZE_GROUPS) == set(all_groups()) == set(params()["train"]["unfreeze_at"])
    assert set(all_groups()) == set(LAYER_GROUPS) | set(GMIC_GROUPS)
    assert tuple(ViewClassifier(width=4).groups()) == LAYER_GROUPS
    assert tuple(GmicClassifier(width=4, local_width=4, patch_size=64).groups()) == GMIC_GROUPS


def dvc_params_entries() -> Iterator[tuple[str, str]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for entry in stage.get("params", []):
            # DVC accepts "section" / "section.key" from params.yaml, or {file: [keys]}.
            items = entry.items() if isinstance(entry, dict) else [("params.yaml", [entry])]
            for file, keys in items:
                assert file == "params.yaml", f"stage {name} reads params from {file}"
                for key in keys:
                    yield name, key


def test_every_dvc_params_entry_names_a_params_yaml_key() -> None:
    entries = list(dvc_params_entries())
    assert entries, "no stage declares params: the check below would check nothing"
    for stage, key in entries:
        node: Any = params()
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, \
                f"dvc.yaml stage {stage} depends on params {key}, not in params.yaml"
            node = node[part]


def test_the_image_size_is_not_a_parameter() -> None:
    """It is RADFLOW_IMAGE_HEIGHT/_WIDTH (or a task's override); a copy here would drift."""
    keys = {p[-1] for p, _ in leaves(params())}
    assert not keys & {"image_height", "image_width"}
