"""OrthancClient: the few Orthanc REST calls radflow needs, over pyorthanc.

Pixel downloads ask for identity encoding: Orthanc gzips responses when asked, which cuts
a mammogram download from ~700 MB/s to ~16 MB/s on a 2-core machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from pyorthanc import Orthanc

from pipelines.config import RadflowSettings, get_settings
from pipelines.errors import OrthancUnavailable, PermanentError

IDENTITY = {"Accept-Encoding": "identity"}


class OrthancClient:
    """A thin, typed wrapper that turns transport failures into OrthancUnavailable."""

    def __init__(self, settings: RadflowSettings | None = None, timeout_s: float = 60.0) -> None:
        s = settings or get_settings()
        self.url = s.orthanc_base_url.rstrip("/")
        self._api = Orthanc(
            self.url,
            username=s.orthanc_username,
            password=s.orthanc_secret() or None,
            headers=IDENTITY,
            timeout=timeout_s,
        )

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> OrthancClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return fn(*args, **kwargs)
            except httpx.RemoteProtocolError:  # Orthanc closed an idle keep-alive connection
                return fn(*args, **kwargs)
        except httpx.TransportError as exc:
            raise OrthancUnavailable(f"Orthanc at {self.url} did not answer: {exc}") from exc
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            if code in (401, 403):
                raise OrthancUnavailable(
                    f"Orthanc at {self.url} refused the credentials (HTTP {code}); "
                    "check RADFLOW_ORTHANC_USERNAME / RADFLOW_ORTHANC_PASSWORD"
                ) from exc
            if code >= 500:
                raise OrthancUnavailable(f"Orthanc at {self.url} failed: HTTP {code}") from exc
            raise PermanentError(
                f"Orthanc at {self.url} answered HTTP {code} for {exc.request.url.path}"
            ) from exc

    def system(self) -> dict[str, Any]:
        return dict(self._call(self._api.get_system))

    def changes(self, since: int, limit: int = 500) -> Iterator[dict[str, Any]]:
        """Every change after sequence number `since`, in order, page by page."""
        while True:
            page = self._call(self._api.get_changes, params={"since": since, "limit": limit})
            yield from page["Changes"]
            if page["Done"] or not page["Changes"]:
                return
            since = int(page["Last"])

    def last_change(self) -> int:
        return int(self._call(self._api.get_changes, params={"last": 1})["Last"])

    def study(self, study_id: str) -> dict[str, Any]:
        return dict(self._call(self._api.get_studies_id, study_id))

    def study_instances(self, study_id: str) -> list[dict[str, Any]]:
        """The instances of a study with their main DICOM tags and series modality."""
        instances = self._call(self._api.get_studies_id_instances, study_id)
        return list(instances)

    def unstable_studies(self) -> int:
        """How many studies Orthanc has not yet marked stable."""
        studies = self._call(self._api.get_studies, params={"expand": True})
        return sum(1 for st in studies if not st.get("IsStable", False))

    def find_studies(self, study_date: str, modality: str = "MG") -> list[str]:
        """Orthanc ids of the studies of a date (YYYYMMDD) holding `modality`."""
        found = self._call(
            self._api.post_tools_find,
            json={
                "Level": "Study",
                "Query": {"StudyDate": study_date, "ModalitiesInStudy": modality},
            },
        )
        return [str(x) for x in found]

    def instance_file(self, instance_id: str) -> bytes:
        """The DICOM file of an instance, uncompressed on the wire."""
        data = self._call(self._api.get_instances_id_file, instance_id, headers=IDENTITY)
        return bytes(data)

    def upload(self, dicom_bytes: bytes) -> dict[str, Any]:
        return dict(self._call(self._api.post_instances, dicom_bytes))

    def study_series(self, study_id: str) -> list[dict[str, Any]]:
        """The series of a study: "ID", "MainDicomTags" (SeriesInstanceUID, Modality,
        Manufacturer, SeriesDescription, ...) and "Instances" (Orthanc ids)."""
        series = self._call(self._api.get_studies_id_series, study_id, params={"expand": True})
        return [dict(s) for s in series]

    def series_instances(self, series_id: str) -> list[dict[str, Any]]:
        """The instances of a series: "ID" and "MainDicomTags" (SOPInstanceUID, ...)."""
        instances = self._call(self._api.get_series_id_instances, series_id,
                               params={"expand": True})
        return [dict(i) for i in instances]

    def delete_series(self, series_id: str) -> None:
        """Delete a series and its instances (callers check it is theirs first)."""
        self._call(self._api.delete_series_id, series_id)

    def delete_instance(self, instance_id: str) -> None:
        """Delete one instance (callers check it is theirs first)."""
        self._call(self._api.delete_instances_id, instance_id)
