"""OrthancClient's parallel downloads: one connection pool per thread, order kept, all closed."""

from __future__ import annotations

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
