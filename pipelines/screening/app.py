"""The worklist as a web app radiologists can act on, served behind a login.

Routes, under the prefix the app is mounted at (`/radflow` in Airflow's api-server, by
pipelines.orchestration.plugin):

    GET  /worklist/                          the published nights (read from the files)
    GET  /worklist/<task>/<date>             one night: per exam the accession number,
                                             patient name and birth date (resolved at view
                                             time), suspicion, score, flag, views, QC notes,
                                             a viewer link and the reader's verdict buttons
    GET  /worklist/<task>/<date>/img/<name>  one of the night's thumbnails or heatmaps
    POST /worklist/<task>/<date>/feedback    JSON {"exam_id": ..., "verdict": agree|disagree|artifact}

Who may look is the `authenticate` dependency `create_app` is given; it returns the Reader or
raises HTTPException. Without one every request is refused. A request without a login gets
401, never a redirect (a browser gets a page linking to the login page).

Identifying values (pipelines.pacs.demographics) exist only while a page is built (the pages
are pipelines.screening.reading_pages): they are HTML-escaped, sent with `Cache-Control:
no-store` under a strict Content-Security-Policy, never written to disk or logged.

Feedback and CSRF: the login travels in a cookie, so a forged cross-site POST would carry
it. The feedback route takes only `Content-Type: application/json` (an HTML form cannot send
it; a cross-origin script needs a CORS preflight, which is never granted) and refuses a
request whose `Origin` is not this host or whose `Sec-Fetch-Site` is not same-origin (other
services on the same host, e.g. MLflow or Orthanc on other ports, are "same-site", so the
cookie's SameSite=Lax alone does not keep them out).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time,
# and `ReaderDep` is local to create_app.
import dataclasses
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.config import get_settings
from pipelines.db import get_engine
from pipelines.errors import RadflowError
from pipelines.pacs.demographics import UNAVAILABLE, StudyDirectory, StudyIdentity, resolve_exams
from pipelines.screening import feedback
from pipelines.screening.reading_pages import index_page, login_page, night_page
from pipelines.screening.worklist import nights

_TASK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_IMAGE = re.compile(r"^\d{4}-[A-Za-z0-9_-]+\.png$")


@dataclasses.dataclass(frozen=True)
class Reader:
    """The logged-in person; `login` is what feedback records as the reader."""

    login: str


Authenticate = Callable[..., Reader] | Callable[..., Awaitable[Reader]]
LoginUrl = Callable[[str], str]
Gateway = Callable[[], AbstractContextManager[StudyDirectory]]


def refuse_everyone() -> Reader:
    """The default `authenticate`: no login is configured, so nobody is let in."""
    raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})


def _gateway() -> AbstractContextManager[StudyDirectory]:
    from pipelines.pacs.client import OrthancClient  # lazily: pyorthanc loads pydicom

    return OrthancClient(timeout_s=15.0)


class FeedbackIn(BaseModel):
    """The feedback route's JSON body."""

    model_config = ConfigDict(extra="forbid")
    exam_id: str = Field(min_length=1, max_length=64)
    verdict: feedback.Verdict


async def feedback_body(request: Request) -> FeedbackIn:
    """The feedback, if the request is one a cross-site page could not have sent (see the
    module docstring); 415, 403, or 422 naming what is wrong otherwise."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "feedback must be sent as application/json")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "feedback from another origin is refused")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise HTTPException(403, "feedback from another site is refused")
    try:
        return FeedbackIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from exc


def _night_folder(task: str, date: str) -> Path:
    if not (_TASK.match(task) and _DATE.match(date)):
        raise HTTPException(404, "no such night")
    folder = get_settings().worklists_dir / task / date
    if not (folder / "worklist.json").is_file():
        raise HTTPException(404, f"no worklist published for {task} {date}")
    return folder


def _night(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "worklist.json").read_text("utf-8"))
    return data


def _image_path(task: str, date: str, name: str) -> Path:
    """A file of the night's img folder, by a name that cannot leave it; 404 otherwise."""
    if not _IMAGE.match(name):  # one file name: no separator, no "..", no NUL
        raise HTTPException(404, "no such image")
    folder = (_night_folder(task, date) / "img").resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():  # a symlink out of the folder, or absent
        raise HTTPException(404, "no such image")
    return path


def _store_feedback(task: str, date: str, reader: Reader, body: FeedbackIn) -> None:
    """The reader's verdict, with the score, flag and model version the night's page showed."""
    data = _night(_night_folder(task, date))
    row = next((r for r in data.get("rows", []) if r["exam_id"] == body.exam_id), None)
    if row is None:
        raise HTTPException(404, f"exam {body.exam_id} is not on the {task} worklist of {date}")
    given = feedback.Feedback(body.exam_id, task, reader.login, body.verdict, str(data["model_version"]),
                              date, float(row["score"]), bool(row["flagged"]))
    with get_engine().begin() as conn:
        feedback.record(conn, given)


def _resolve(exam_ids: list[str], gateway: Gateway) -> dict[str, StudyIdentity]:
    """Who each exam is, for this page view; UNAVAILABLE for all if Orthanc cannot be reached."""
    try:
        with get_engine().connect() as conn, gateway() as directory:
            return resolve_exams(conn, exam_ids, directory, get_settings().pacs_aet)
    except RadflowError:
        return {e: StudyIdentity(e, UNAVAILABLE) for e in exam_ids}


def _page(text: str, nonce: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": (
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; "
            f"script-src 'nonce-{nonce or 'none'}'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")})


def _errors(login_url: LoginUrl | None) -> Callable[[Request, Exception], Awaitable[Response]]:
    """401 for a browser: a page linking to the login page, still with status 401."""
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code != 401 or "text/html" not in request.headers.get("accept", ""):
            return await http_exception_handler(request, exc)
        page = _page(login_page(login_url(request.url.path) if login_url else None), status=401)
        page.headers.update(exc.headers or {})
        return page

    return handle


def create_app(authenticate: Authenticate = refuse_everyone, login_url: LoginUrl | None = None,
               gateway: Gateway = _gateway) -> FastAPI:
    """The worklist app.

    Args:
        authenticate: a FastAPI dependency returning the request's Reader, raising
            HTTPException 401 without a login and 403 without the right to read.
        login_url: the login page's URL given the path to come back to (linked from 401 pages).
        gateway: opens the gateway Orthanc (tests give a fake).

    Returns:
        A FastAPI app without API docs: no route answers without a login.
    """
    app = FastAPI(title="radflow worklist", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(StarletteHTTPException, _errors(login_url))
    ReaderDep = Annotated[Reader, Depends(authenticate)]

    @app.get("/worklist/", response_class=HTMLResponse)
    def index(reader: ReaderDep) -> HTMLResponse:
        return _page(index_page(nights(get_settings().worklists_dir), reader.login))

    @app.get("/worklist/{task}/{date}", response_class=HTMLResponse)
    def night(task: str, date: str, reader: ReaderDep) -> HTMLResponse:
        folder = _night_folder(task, date)
        data = _night(folder)
        rows, missing = data.get("rows", []), data.get("not_retrieved") or []
        who = _resolve([r["exam_id"] for r in rows] + [m["exam_id"] for m in missing], gateway)
        with get_engine().connect() as conn:
            verdicts = feedback.verdicts_of(conn, task, reader.login, [r["exam_id"] for r in rows])
        nonce = secrets.token_urlsafe(16)
        return _page(night_page(data, who, verdicts, reader.login, nonce, folder / "img"), nonce)

    @app.get("/worklist/{task}/{date}/img/{name}")
    def image(task: str, date: str, name: str, reader: ReaderDep) -> FileResponse:
        return FileResponse(_image_path(task, date, name), media_type="image/png", headers={
            "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})

    @app.post("/worklist/{task}/{date}/feedback")
    def give_feedback(task: str, date: str, reader: ReaderDep,
                      body: Annotated[FeedbackIn, Depends(feedback_body)]) -> JSONResponse:
        _store_feedback(task, date, reader, body)
        return JSONResponse({"exam_id": body.exam_id, "verdict": body.verdict, "reader": reader.login},
                            headers={"Cache-Control": "no-store"})

    return app
