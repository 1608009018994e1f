"""Model profiles: which classifier a training run builds, and how it trains.

RADFLOW_MODEL_PROFILE chooses one (pipelines/config.py):

- demo: the ViewClassifier (pipelines/training/model.py) at RADFLOW_IMAGE_HEIGHT/_WIDTH,
  128x96 by default; nothing else.
- clinical: the GmicClassifier (pipelines/training/gmic.py) at an input of at least
  1024x832 (its default) up to the full detector; gradient checkpointing, and mixed
  precision when training on CUDA.

The sizes of either model are params.yaml `train` keys (TrainParams): `width` and `top_k`
for both (the clinical model's global network), `local_width`, `patch_size`, `patches`
and `global_downsample` for the clinical one. A weights file records its architecture and
constructor arguments (pipelines/training/weights.py), so a base model is rebuilt as it
was trained, whatever the profile.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from pipelines.config import CLINICAL_MIN_INPUT
from pipelines.errors import PermanentError
from pipelines.params import TrainParams
from pipelines.training import gmic, model

# The classifiers by the name a weights file records ("architecture").
ARCHITECTURES: dict[str, type[model.ViewClassifier] | type[gmic.GmicClassifier]] = {
    model.ARCHITECTURE: model.ViewClassifier, gmic.ARCHITECTURE: gmic.GmicClassifier}
ViewModel = model.ViewClassifier | gmic.GmicClassifier


@dataclasses.dataclass(frozen=True)
class Profile:
    """One model profile.

    Attributes:
        name: demo or clinical (RADFLOW_MODEL_PROFILE).
        architecture: the key of ARCHITECTURES it builds.
        min_input: (rows, columns) the settings refuse to go below, None for any.
        checkpointing: gradient checkpointing in the model's networks.
        mixed_precision: autocast (bf16, else fp16 with a GradScaler) when training on CUDA;
            never on the CPU.
    """

    name: str
    architecture: str
    min_input: tuple[int, int] | None
    checkpointing: bool
    mixed_precision: bool


PROFILES = {
    "demo": Profile("demo", model.ARCHITECTURE, None, checkpointing=False, mixed_precision=False),
    "clinical": Profile("clinical", gmic.ARCHITECTURE, CLINICAL_MIN_INPUT, checkpointing=True,
                        mixed_precision=True),
}


def get_profile(name: str | None = None) -> Profile:
    """The named profile; None reads RADFLOW_MODEL_PROFILE.

    Raises:
        PermanentError: no such profile (the known ones are named).
    """
    if name is None:
        from pipelines.config import get_settings

        name = get_settings().model_profile
    if name not in PROFILES:
        raise PermanentError(f"model profile {name!r}: expected one of {sorted(PROFILES)}")
    return PROFILES[name]


def model_config(profile: Profile, params: TrainParams) -> dict[str, Any]:
    """The constructor arguments of the profile's model from the `train` hyperparameters."""
    if profile.architecture == gmic.ARCHITECTURE:
        return {"width": params.width, "top_k": params.top_k, "local_width": params.local_width,
                "patch_size": params.patch_size, "patches": params.patches,
                "downsample": params.global_downsample}
    return {"width": params.width, "top_k": params.top_k}


def build_model(profile: Profile | str | None = None, params: TrainParams | None = None,
                checkpointing: bool | None = None) -> ViewModel:
    """A new, randomly initialised model of a profile (seed torch first to repeat it).

    Args:
        profile: a Profile or its name; None reads RADFLOW_MODEL_PROFILE.
        params: the sizes (TrainParams); None: TrainParams' defaults (load_params() reads
            params.yaml).
        checkpointing: override the profile's gradient checkpointing.

    Raises:
        PermanentError: an unknown profile.
        ValueError: sizes the architecture cannot take (e.g. a patch size off the grid).
    """
    chosen = profile if isinstance(profile, Profile) else get_profile(profile)
    built = architecture(chosen.architecture)(**model_config(chosen, params or TrainParams()))
    return prepare(built, chosen, checkpointing)


def prepare(built: nn.Module, profile: Profile, checkpointing: bool | None = None) -> ViewModel:
    """A model (new, or a base loaded from a file) set up to train under `profile`.

    Raises:
        PermanentError: the model is of another architecture than the profile builds (a
            demo base cannot be fine-tuned into the clinical model, nor the reverse).
    """
    name = architecture_of(built)
    if name != profile.architecture:
        raise PermanentError(
            f"the base model is a {name}, but the {profile.name} profile (RADFLOW_MODEL_PROFILE) "
            f"trains a {profile.architecture}: register a base of that profile (radflow pretrain "
            "with the same profile) or train from scratch (--base scratch)")
    if isinstance(built, gmic.GmicClassifier):
        built.checkpointing = profile.checkpointing if checkpointing is None else checkpointing
    assert isinstance(built, model.ViewClassifier | gmic.GmicClassifier)  # architecture_of said so
    return built


def architecture(name: str) -> type[model.ViewClassifier] | type[gmic.GmicClassifier]:
    """The model class a weights file's `architecture` names.

    Raises:
        PermanentError: an architecture radflow does not know.
    """
    if name not in ARCHITECTURES:
        raise PermanentError(f"model architecture {name!r}: radflow knows {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def architecture_of(built: nn.Module) -> str:
    """The ARCHITECTURES key of a model (its class's, or a subclass's)."""
    for name, cls in ARCHITECTURES.items():
        if isinstance(built, cls):
            return name
    raise PermanentError(f"model class {type(built).__name__} is none of radflow's "
                         f"architectures {sorted(ARCHITECTURES)}")


def all_groups() -> tuple[str, ...]:
    """Every layer-group name of every architecture (what `unfreeze_at` may name)."""
    return tuple(dict.fromkeys([*model.LAYER_GROUPS, *gmic.GMIC_GROUPS]))
