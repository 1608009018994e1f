"""Errors that tell orchestration whether a retry can help.

TransientError: the world may be different on the next try (a service down, a lock held).
PermanentError: the same input will fail the same way (bad data, a refused promotion).
The orchestration layer maps PermanentError to AirflowFailException; the CLI prints the
message in the JSON object's "error" field and exits 1.
"""


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


class LockHeld(TransientError):
    """Another run of the same stage holds its lock."""


class StackError(PermanentError):
    """The local stack cannot be started as configured (port taken, binary missing)."""


class DataContractViolation(PermanentError):
    """A data contract (Great Expectations suite) failed."""


class InvalidStudy(PermanentError):
    """A study or instance cannot be used (wrong modality, missing view, bad pixels)."""


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
