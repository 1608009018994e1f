"""OrthancClient's parallel downloads: one connection pool per thread, order kept, all closed."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from pipelines.errors import OrthancUnavailable
from pipelines.pacs.client import OrthancClient


class RecordingApi:
    """Stands in for one pyorthanc client: which threads used it, and whether it was closed."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.threads: set[int] = set()
        self.closed = False
        self.fail_on = fail_on

    def get_instances_id_file(self, instance_id: str, headers: dict[str, str]) -> bytes:
        assert headers == {"Accept-Encoding": "identity"}
        self.threads.add(threading.get_ident())
        if instance_id == self.fail_on:
            raise httpx.ReadError("[Errno 9] Bad file descriptor")
        return instance_id.encode()

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> tuple[OrthancClient, list[RecordingApi]]:
    made: list[RecordingApi] = []

    def new_api(self: OrthancClient) -> Any:
        made.append(RecordingApi(fail_on="broken"))
        return made[-1]

    monkeypatch.setattr(OrthancClient, "_new_api", new_api)
    return OrthancClient(), made


def test_each_download_thread_has_its_own_pool_and_the_order_is_kept(client: Any) -> None:
    orthanc, made = client
    ids = [f"i{n}" for n in range(40)]
    assert orthanc.instance_files(ids, 4) == [i.encode() for i in ids]
    assert orthanc.instance_files(ids[:9], 4) == [i.encode() for i in ids[:9]]  # threads reused
    thread_apis = made[1:]  # made[0] is the caller's own
    assert 1 <= len(thread_apis) <= 4
    assert all(len(api.threads) == 1 for api in thread_apis)
    assert len({t for api in thread_apis for t in api.threads}) == len(thread_apis)
    assert threading.get_ident() not in {t for api in thread_apis for t in api.threads}
    orthanc.close()
    assert all(api.closed for api in made)


def test_one_worker_downloads_in_the_calling_thread(client: Any) -> None:
    orthanc, made = client
    assert orthanc.instance_files(["a", "b"], 1) == [b"a", b"b"]
    assert len(made) == 1 and made[0].threads == {threading.get_ident()}


def test_a_transport_failure_in_a_download_thread_is_orthanc_unavailable(client: Any) -> None:
    orthanc, _ = client
    with pytest.raises(OrthancUnavailable, match="did not answer: .*Bad file descriptor"):
        orthanc.instance_files(["a", "broken", "c"], 3)
    orthanc.close()


@pytest.mark.parametrize(("code", "error"), [(422, "PermanentError"), (404, "PermanentError"),
                                             (500, "OrthancUnavailable"), (401, "OrthancUnavailable")])
def test_a_refusal_names_its_status_and_orthancs_reason_with_uids_masked(
        client: tuple[OrthancClient, list[RecordingApi]], code: int, error: str) -> None:
    orthanc, _ = client
    body = json.dumps({"Details": 'C-MOVE SCU to AET "PACS" has failed for study 1.2.840.113619.2.55.3 '
                                  "with DIMSE status 0xC000", "HttpStatus": code})

    def move(*args: Any, **kwargs: Any) -> None:  # pyorthanc's bare HTTPError for a non-2xx answer
        raise httpx.HTTPError(f"HTTP code: {code}, with text: {body}")

    with pytest.raises(Exception) as caught:
        orthanc._call(move)
    assert type(caught.value).__name__ == error
    message = str(caught.value)
    assert f"HTTP {code}" in message
    if code not in (401, 403):
        assert "C-MOVE SCU" in message and "<uid>" in message and "1.2.840.113619" not in message


class FindApi:
    """Orthanc's /tools/find at study level as 1.10 answers it (checked against a real 1.10.1):
    a backslash-separated StudyInstanceUID matches each value exactly; an empty one matches all."""

    def __init__(self, held: list[str]) -> None:
        self.held, self.queries = held, []  # type: ignore[var-annotated]

    def post_tools_find(self, json: dict[str, Any]) -> list[dict[str, Any]]:
        self.queries.append(json)
        assert json["Level"] == "Study" and json["Expand"] is True
        asked = json["Query"]["StudyInstanceUID"].split("\\")
        return [{"ID": f"id-{uid}", "MainDicomTags": {"StudyInstanceUID": uid, "AccessionNumber": "A"},
                 "PatientMainDicomTags": {"PatientName": "X^Y"}}
                for uid in self.held if "" in asked or uid in asked]

    def close(self) -> None:
        pass


def test_studies_are_found_by_uid_a_hundred_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    held = [f"1.2.3.{n}" for n in range(0, 300, 2)]  # the even ones
    api = FindApi(held)
    monkeypatch.setattr(OrthancClient, "_new_api", lambda self: api)
    asked = [f"1.2.3.{n}" for n in range(205)] + ["1.2.3.4", "", "1.2.*", "1.2.3.5\\1.2.3.6"]
    found = OrthancClient().find_studies_by_uid(asked)
    assert sorted(found) == sorted(f"1.2.3.{n}" for n in range(0, 205, 2))
    assert found["1.2.3.4"]["ID"] == "id-1.2.3.4" and found["1.2.3.4"]["PatientMainDicomTags"]
    values = [q["Query"]["StudyInstanceUID"].split("\\") for q in api.queries]
    assert [len(v) for v in values] == [100, 100, 5]  # duplicates asked once
    assert all(u and "*" not in u for v in values for u in v)  # never a value matching every study
    assert OrthancClient().find_studies_by_uid([]) == {} and len(api.queries) == 3


def test_c_get_on_an_orthanc_without_it_says_to_use_c_move(
        client: tuple[OrthancClient, list[RecordingApi]], monkeypatch: pytest.MonkeyPatch) -> None:
    orthanc, _ = client

    def get(*args: Any, **kwargs: Any) -> None:  # Orthanc 1.10: no /modalities/{id}/get
        raise httpx.HTTPError('HTTP code: 404, with text: {"Message": "Unknown resource"}')

    monkeypatch.setattr(orthanc._api, "post_modalities_id_get", get, raising=False)
    with pytest.raises(Exception, match="needs Orthanc >= 1.12.*RADFLOW_PACS_RETRIEVE=move"):
        orthanc.modality_retrieve("pacs", "1.2.3.4.5", "get", "GATEWAY", 60)
