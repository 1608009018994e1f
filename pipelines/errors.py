"""Errors that tell orchestration whether a retry can help.

TransientError: the world may be different on the next try (a service down, a lock held).
PermanentError: the same input will fail the same way (bad data, a refused promotion).
The orchestration layer maps PermanentError to AirflowFailException; the CLI prints the
message in the JSON object's "error" field and exits 1. `origin` and `described` put an
unforeseen exception into a reason without quoting the input.
"""

import functools


class RadflowError(Exception):
    """Base class of every error radflow raises on purpose."""


class TransientError(RadflowError):
    """Retrying later may succeed."""


class PermanentError(RadflowError):
    """Retrying with the same input will fail again."""


class ServiceUnavailable(TransientError):
    """A service radflow depends on did not answer."""


class OrthancUnavailable(ServiceUnavailable):
    """Orthanc did not answer or refused the request."""


class TritonUnavailable(ServiceUnavailable):
    """Triton did not answer, or the model is not ready."""


class MlflowUnavailable(ServiceUnavailable):
    """The MLflow tracking server did not answer."""


class DatabaseUnavailable(ServiceUnavailable):
    """The results database did not answer, or ended the session (a restart, a network cut):
    the open transaction rolled back whole."""


class LockHeld(TransientError):
    """Another run of the same stage holds its lock."""


class DiskFull(TransientError):
    """A file system radflow writes to is full (ENOSPC) or over quota (EDQUOT); the message
    names the path. Nothing was published: a rerun once space is freed completes."""


class StackError(PermanentError):
    """The local stack cannot be started as configured (port taken, binary missing)."""


class DataContractViolation(PermanentError):
    """A data contract (Great Expectations suite) failed."""


class InvalidStudy(PermanentError):
    """A study or instance cannot be used (wrong modality, missing view, bad pixels)."""


class UnforeseenInput(InvalidStudy):
    """Input that made radflow raise an exception none of its checks foresaw: refused
    naming the step and attribute, and a bug to fix (with the check it was missing)."""


class PhiDetected(PermanentError):
    """Something identifying was about to cross the ingest boundary."""


class NoTrainingData(PermanentError):
    """The lake does not hold enough labelled exams to train and evaluate."""


class RegistryError(PermanentError):
    """The model registry does not hold what was asked for (alias, version)."""


class PolicyInvalid(PermanentError):
    """The registered-model policy (mlflow/registered_models.yaml) is missing or invalid."""


class PromotionRefused(PermanentError):
    """The challenger failed the promotion gate; the message names each failing check."""


class DeploymentFailed(PermanentError):
    """A model version could not be loaded or failed its smoke inference."""


class UnapprovedChampion(DeploymentFailed):
    """A version holds alias champion that no audited promotion or rollback approved."""


class ModelIntegrityError(DeploymentFailed):
    """A model file's SHA-256 differs from its MLflow registered version: never load it."""


class NotificationFailed(TransientError):
    """The webhook or mail server did not take the notice; a retry may."""


class LabelFileInvalid(PermanentError):
    """A RIS export or pathology file cannot be read as declared (missing column, bad value)."""


class SchemaMismatch(PermanentError):
    """The database's schema is not one this radflow can migrate."""


class DvcError(PermanentError):
    """A DVC command failed (its stderr is in the message)."""


class MisusedApi(PermanentError):
    """radflow code called a function outside its contract (a bug, not bad data): no retry helps."""


def origin(exc: BaseException) -> str:
    """Where an exception was raised, for a reason or a log line (no input value appears in
    it): the innermost library function that raised it and the innermost radflow function
    that called it, "pydicom.pixels.processing.apply_modality_lut via
    pipelines.imaging.preprocess.display_pixels"."""
    import traceback

    ours, theirs = "", ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = frame.filename.replace("\\", "/")
        if not ours and "/pipelines/" in path:
            ours = _function(path[path.rindex("/pipelines/") + 1:], frame.name)
        elif not ours and not theirs and not path.endswith(_ACCESSORS):
            module = path.split("site-packages/")[-1] if "site-packages/" in path else path.rsplit("/", 1)[-1]
            theirs = _function(module, frame.name)
    return " via ".join(p for p in (theirs, ours) if p) or "unknown"


# pydicom's attribute access and context managers: the function that asked says more
_ACCESSORS = ("pydicom/dataset.py", "pydicom/dataelem.py", "contextlib.py")


def _function(module_path: str, name: str) -> str:
    return f"{module_path.removesuffix('.py').replace('/', '.')}.{name}"


def described(exc: BaseException, limit: int = 160) -> str:
    """An exception's type and text for a reason, its quoted values masked: a library's
    message may quote a value of the input ("... value 'DOE^JANE' ..."), never kept here;
    a quoted DICOM keyword or attribute name ('Pixel Data') stays."""
    import re

    def mask(found: re.Match[str]) -> str:
        return found.group(0) if _is_attribute_name(found.group(2)) else f"{found.group(1)}…{found.group(1)}"

    text = re.sub(r"(['\"])(.*?)\1", mask, " ".join(str(exc).split()))
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_attribute_name(text: str) -> bool:
    return text in _attribute_names()


@functools.cache
def _attribute_names() -> frozenset[str]:
    """Every DICOM keyword and attribute name pydicom knows ("PixelData", "Pixel Data")."""
    from pydicom.datadict import DicomDictionary

    return frozenset(name for entry in DicomDictionary.values() for name in (entry[2], entry[4]))


def code_string(value: object) -> str:
    """A coded value (DICOM CS: Modality, ViewPosition...) as a reason shows it: itself when
    it is one (1 to 16 capitals, digits, spaces or underscores), else what it is not."""
    import re

    text = str(value if value is not None else "").strip()
    if not text:
        return "missing"
    return text if re.fullmatch(r"[A-Z0-9 _]{1,16}", text) else "(not a code string)"
