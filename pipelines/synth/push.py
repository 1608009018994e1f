"""C-STORE of synthetic instances to Orthanc over one DICOM association per batch.

The association is opened once and reused; if it drops (peer abort, network error, no
response), it is re-established once per instance before giving up. Messages name the
host, port, AE titles, SOP class, status and exam index, never an identifier or a UID.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pipelines.errors import OrthancUnavailable, PermanentError

if TYPE_CHECKING:
    from pydicom import Dataset

    from pipelines.config import RadflowSettings

logger = logging.getLogger(__name__)

STORAGE_CLASSES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
)
TRANSFER_SYNTAXES: tuple[str, ...] = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
# Success, and the storage warnings (coercion, elements discarded, mismatch) that still store.
STORED_STATUSES = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


class OrthancStoreClient:
    """A C-STORE SCU bound to one Orthanc DICOM endpoint; use as a context manager.

    Attributes:
        stored: number of instances Orthanc acknowledged as stored.
        drops: how often the association dropped and had to be re-established.
    """

    def __init__(
        self, host: str, port: int, called_aet: str, calling_aet: str, *, timeout: float = 30.0
    ) -> None:
        self.host, self.port = host, port
        self.called_aet, self.calling_aet = called_aet, calling_aet
        self.timeout = timeout
        self.stored = 0
        self.drops = 0
        self._assoc: Any = None
        self._ae: Any = None
        self._message_id = 0

    @classmethod
    def from_settings(cls, settings: RadflowSettings) -> OrthancStoreClient:
        """A client for the Orthanc DICOM endpoint and AE titles in the settings."""
        return cls(
            settings.orthanc_dicom_host,
            settings.orthanc_dicom_port,
            settings.orthanc_aet,
            settings.calling_aet,
        )

    @property
    def target(self) -> str:
        """The endpoint for messages: "host:port (AE calling -> called)"."""
        return f"{self.host}:{self.port} (AE {self.calling_aet} -> {self.called_aet})"

    def __enter__(self) -> OrthancStoreClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Open the association.

        Raises:
            OrthancUnavailable: the peer cannot be reached or rejected the association.
        """
        from pynetdicom import AE

        if self._ae is None:
            self._ae = AE(ae_title=self.calling_aet)
            self._ae.acse_timeout = self._ae.connection_timeout = self.timeout
            self._ae.dimse_timeout = self._ae.network_timeout = self.timeout * 2
            for sop_class in STORAGE_CLASSES:
                self._ae.add_requested_context(sop_class, list(TRANSFER_SYNTAXES))
        assoc = self._ae.associate(self.host, self.port, ae_title=self.called_aet)
        if not assoc.is_established:
            outcome = "not established"
            if assoc.is_rejected or assoc.is_aborted:
                outcome = "rejected" if assoc.is_rejected else "aborted"
            raise OrthancUnavailable(
                f"cannot open a DICOM association to Orthanc at {self.target}: {outcome}"
            )
        self._assoc = assoc
        logger.debug("association to %s established", self.target)

    def close(self) -> None:
        """Release the association if it is still up."""
        if self._assoc is not None and self._assoc.is_established:
            self._assoc.release()
        self._assoc = None

    def store(self, dataset: Dataset, exam_index: int) -> int:
        """Send one instance; returns the C-STORE status (success or a storing warning).

        Raises:
            OrthancUnavailable: the association dropped twice, or cannot be re-opened.
            PermanentError: Orthanc answered with a failure status, or accepted no
                presentation context for the SOP class.
        """
        sop_class = _sop_name(str(dataset.SOPClassUID))
        for _attempt in range(2):
            if self._assoc is None or not self._assoc.is_established:
                self.connect()
            self._message_id = self._message_id % 65535 + 1
            try:
                status = self._assoc.send_c_store(dataset, msg_id=self._message_id)
            except ValueError as exc:
                raise PermanentError(
                    f"cannot send {sop_class} of exam {exam_index} to Orthanc at {self.target} "
                    f"(no accepted presentation context, or not encodable): {exc}"
                ) from exc
            except (RuntimeError, OSError):
                status = None
            if status is None or "Status" not in status:
                logger.warning("association to %s dropped (exam %d)", self.target, exam_index)
                self.drops += 1
                self._abort()
                continue
            return self._check(int(status.Status), sop_class, exam_index)
        raise OrthancUnavailable(
            f"association to Orthanc at {self.target} dropped twice while storing "
            f"{sop_class} of exam {exam_index}"
        )

    def _check(self, code: int, sop_class: str, exam_index: int) -> int:
        if code not in STORED_STATUSES:
            raise PermanentError(
                f"Orthanc at {self.target} refused {sop_class} of exam {exam_index}: "
                f"C-STORE status 0x{code:04X}"
            )
        if code:
            logger.info("C-STORE warning 0x%04X for exam %d (stored)", code, exam_index)
        self.stored += 1
        return code

    def _abort(self) -> None:
        if self._assoc is not None and self._assoc.is_established:
            self._assoc.abort()
        self._assoc = None


def _sop_name(sop_class: str) -> str:
    """The SOP class's name from the DICOM dictionary, else its UID."""
    from pydicom.uid import UID

    name = UID(sop_class).name
    return name if name and name != sop_class else sop_class


def client_from_settings() -> OrthancStoreClient:
    """An OrthancStoreClient for the current settings (`pipelines.config.get_settings`)."""
    from pipelines.config import get_settings

    return OrthancStoreClient.from_settings(get_settings())
