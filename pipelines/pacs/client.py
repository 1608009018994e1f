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

import json
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from pyorthanc import Orthanc

from pipelines.config import RadflowSettings, get_settings
from pipelines.errors import OrthancUnavailable, PermanentError

IDENTITY = {"Accept-Encoding": "identity"}
PACS_MODALITY = "pacs"  # the hospital PACS's id among the gateway Orthanc's DicomModalities
_UID = re.compile(r"\b\d+(?:\.\d+){3,}\b")
_PYORTHANC_STATUS = re.compile(r"HTTP code: (?P<code>\d{3}), with (?:text|content): (?P<body>.*)", re.S)


def _details(body: str) -> str:
    """Orthanc's own explanation of a refused call ("Details"), UIDs masked: it may quote
    the query (a study's UID identifies a patient's exam)."""
    try:
        details = str(json.loads(body).get("Details", "") or "")
    except (ValueError, AttributeError):
        return ""
    return f": {_UID.sub('<uid>', details)[:300]}" if details else ""


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
            raise self._refused(exc.response.status_code, exc.request.url.path,
                                _details(exc.response.text)) from exc
        except httpx.HTTPError as exc:
            # pyorthanc raises a bare HTTPError "HTTP code: N, with text: <body>" for non-2xx
            found = _PYORTHANC_STATUS.match(str(exc))
            if found is None:
                raise OrthancUnavailable(f"Orthanc at {self.url} failed: {exc}") from exc
            raise self._refused(int(found["code"]), getattr(fn, "__name__", "a call"),
                                _details(found["body"])) from exc

    def _refused(self, code: int, what: str, details: str) -> OrthancUnavailable | PermanentError:
        """The error of an HTTP status: credentials and 5xx are transient, the rest permanent."""
        if code in (401, 403):
            return OrthancUnavailable(
                f"Orthanc at {self.url} refused the credentials (HTTP {code}); "
                "check RADFLOW_ORTHANC_USERNAME / RADFLOW_ORTHANC_PASSWORD")
        if code >= 500:
            return OrthancUnavailable(f"Orthanc at {self.url} failed: HTTP {code} for {what}{details}")
        return PermanentError(f"Orthanc at {self.url} answered HTTP {code} for {what}{details}")

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

    # The hospital PACS, a DICOM modality declared in this Orthanc (DicomModalities)

    def modality_find_studies(self, modality: str, query: dict[str, str]) -> list[dict[str, str]]:
        """C-FIND at study level through Orthanc: each answer's tags by keyword.

        `query` keys are DICOM keywords; an empty value asks for the attribute back.
        """
        started = self._call(self._api.post_modalities_id_query, modality,
                             json={"Level": "Study", "Query": query})
        answers = self._call(self._api.get_queries_id_answers, str(started["ID"]),
                             params={"expand": True, "simplify": True})
        return [{str(k): str(v) for k, v in a.items()} for a in answers]

    def modality_retrieve(self, modality: str, study_uid: str, mode: str, target_aet: str,
                          timeout_s: float) -> None:
        """C-MOVE (to `target_aet`, this Orthanc) or C-GET one study, waiting until it ends.

        Raises:
            PermanentError: the PACS refused or failed the retrieve (its DIMSE status named).
            OrthancUnavailable: Orthanc did not answer.
        """
        body: dict[str, Any] = {"Level": "Study", "Resources": [{"StudyInstanceUID": study_uid}],
                                "Synchronous": True, "Timeout": int(timeout_s)}
        if mode == "get":
            try:
                self._call(self._api.post_modalities_id_get, modality, json=body)
            except PermanentError as exc:
                if "HTTP 404" in str(exc):  # Orthanc before 1.12 has no C-GET client
                    raise PermanentError(f"Orthanc at {self.url} cannot C-GET (it needs Orthanc >= 1.12); "
                                         "set RADFLOW_PACS_RETRIEVE=move") from exc
                raise
            return
        self._call(self._api.post_modalities_id_move, modality, json={**body, "TargetAet": target_aet})

    def modality_store(self, modality: str, instance_ids: Sequence[str], timeout_s: float) -> None:
        """C-STORE instances of this Orthanc to a declared modality, waiting until it ends."""
        self._call(self._api.post_modalities_id_store, modality,
                   json={"Resources": list(instance_ids), "Synchronous": True,
                         "Timeout": int(timeout_s)})

    def find_study_uid(self, study_uid: str) -> str | None:
        """The Orthanc id of the study with this StudyInstanceUID, or None."""
        found = self._call(self._api.post_tools_find, json={
            "Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
        return str(found[0]) if found else None

    def delete_study(self, study_id: str) -> None:
        """Delete a study and its instances (callers check the retention rule first)."""
        self._call(self._api.delete_studies_id, study_id)

    def sop_class(self, instance_id: str) -> str:
        """The SOP Class UID Orthanc recorded for an instance (its `SopClassUid` metadata)."""
        return str(self._call(self._api.get_instances_id_metadata_name, instance_id, "SopClassUid"))

    def find_studies_until(self, last_date: str) -> list[str]:
        """Orthanc ids of the studies dated on or before `last_date` (YYYYMMDD)."""
        found = self._call(self._api.post_tools_find, json={
            "Level": "Study", "Query": {"StudyDate": f"-{last_date}"}})
        return [str(x) for x in found]

    def find_studies_by_uid(self, study_uids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The studies this Orthanc holds among `study_uids`, by StudyInstanceUID, each
        expanded ("ID", "MainDicomTags", "PatientMainDicomTags"); a UID it lacks is absent.

        One /tools/find per 100 UIDs, as one backslash-separated multi-valued match (Orthanc
        1.10 matches each value exactly). An empty value would match every study and `*`/`?`
        are refused on UIDs, so UIDs with those (no valid UID has them) are never asked.
        """
        wanted = list(dict.fromkeys(u for u in study_uids if u and not set(u) & set("\\*?")))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 100):
            chunk = wanted[start:start + 100]
            found = self._call(self._api.post_tools_find, json={
                "Level": "Study", "Expand": True, "Query": {"StudyInstanceUID": "\\".join(chunk)}})
            for study in found:
                uid = str(study.get("MainDicomTags", {}).get("StudyInstanceUID", ""))
                if uid in chunk:
                    out[uid] = dict(study)
        return out

    def find_study_uids_by_accession(self, accession: str) -> list[str]:
        """StudyInstanceUIDs of the studies this Orthanc holds with exactly this
        AccessionNumber (one /tools/find); [] for a value with `*`, `?` or a backslash,
        which Orthanc would read as a pattern or a list rather than the number itself."""
        if not accession or set(accession) & set("\\*?"):
            return []
        found = self._call(self._api.post_tools_find, json={
            "Level": "Study", "Expand": True, "Query": {"AccessionNumber": accession}})
        return [uid for study in found
                if (uid := str(study.get("MainDicomTags", {}).get("StudyInstanceUID", "")))]
