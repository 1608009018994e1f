"""OrthancClient: the few Orthanc REST calls radflow needs, over pyorthanc.

Pixel downloads ask for identity encoding: Orthanc gzips responses when asked, which cuts
a mammogram download from ~700 MB/s to ~16 MB/s on a 2-core machine.

Parallel downloads give each thread its own HTTP connection pool. httpcore's pool decides
under its lock to close an expired keep-alive connection but closes it after releasing
the lock, so a thread that has just been handed that connection can find its socket
closed mid-request (encode/httpcore#1110): `ReadError: [Errno 9] Bad file descriptor`.
Measured here with a shared pool, 4 threads and a 2 ms keep-alive expiry: 9 failures in
27,000 downloads in 30 s; with a pool per thread, none.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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
        self._username, self._password = s.orthanc_username, s.orthanc_secret() or None
        self._timeout_s = timeout_s
        self._api = self._new_api()
        # the download threads, each with its own pool (see the module docstring)
        self._downloaders: ThreadPoolExecutor | None = None
        self._download_workers = 0
        self._thread_apis: list[Orthanc] = []
        self._local = threading.local()
        self._lock = threading.Lock()  # the pool
        self._apis_lock = threading.Lock()  # the threads' clients (taken by the threads)

    def _new_api(self) -> Orthanc:
        return Orthanc(self.url, username=self._username, password=self._password,
                       headers=IDENTITY, timeout=self._timeout_s)

    def close(self) -> None:
        self._stop_downloaders()
        self._api.close()

    def _stop_downloaders(self) -> None:
        """Stop the download threads and close their clients (each thread's dies with it)."""
        if self._downloaders is not None:
            self._downloaders.shutdown(wait=True)
            self._downloaders = None
        with self._apis_lock:
            for api in self._thread_apis:
                api.close()
            self._thread_apis.clear()

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
        return self._file_with(self._api, instance_id)

    def _file_with(self, api: Orthanc, instance_id: str) -> bytes:
        return bytes(self._call(api.get_instances_id_file, instance_id, headers=IDENTITY))

    def instance_files(self, instance_ids: Sequence[str], workers: int) -> list[bytes]:
        """The DICOM files of instances, in order, downloaded by up to `workers` threads.

        The threads live as long as this client, each with its own keep-alive connection.
        """
        if workers <= 1 or len(instance_ids) <= 1:
            return [self.instance_file(i) for i in instance_ids]
        with self._lock:
            if self._downloaders is None or self._download_workers != workers:
                self._stop_downloaders()
                self._downloaders = ThreadPoolExecutor(workers, thread_name_prefix="orthanc-download")
                self._download_workers = workers
            pool = self._downloaders
        return list(pool.map(self._instance_file_in_thread, instance_ids))

    def _instance_file_in_thread(self, instance_id: str) -> bytes:
        api: Orthanc | None = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = self._new_api()
            with self._apis_lock:
                self._thread_apis.append(api)
        return self._file_with(api, instance_id)

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
