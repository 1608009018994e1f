"""Argument types of `radflow`: what a person types, checked before any work.

Each function here is an argparse `type=`: it returns the value the command passes on, or
raises `argparse.ArgumentTypeError` with the reason and the value, which argparse prints
after the argument's name ("argument --date: not a calendar date: '2026-13-01' (expected
YYYY-MM-DD)") with the usage, exiting 2 before the command touches a file, a service or the
network. They read, never write: the tasks file, the data contracts folder, a file's
first bytes. What only the command can know (does the registry hold that version?) stays
the command's error (exit 1, one JSON object with --json).
"""

from __future__ import annotations

import argparse
import codecs
import datetime as dt
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

DEFAULT_TASK = "mammo"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,255}")  # MLflow's alias names
_RESERVED_ALIAS = re.compile(r"(?i:latest|v\d+)")  # MLflow keeps these for itself
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))")
_RUN_URI = re.compile(r"runs:/[A-Za-z0-9_-]+/\S+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_WORKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DIGITS = re.compile(r"[0-9]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds both take it


def _refuse(reason: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(reason)


# Dates

def calendar_date(text: str) -> str:
    """A real calendar date written YYYY-MM-DD, returned as typed."""
    if not _ISO_DATE.fullmatch(text):
        raise _refuse(f"not a calendar date: {text!r} (expected YYYY-MM-DD)")
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise _refuse(f"not a calendar date: {text!r} (expected YYYY-MM-DD)") from None
    return text


def hospital_today() -> dt.date:
    """Today in the hospital's time zone (RADFLOW_HOSPITAL_TIMEZONE; UTC when unreadable)."""
    try:
        from pipelines.config import get_settings

        zone = ZoneInfo(get_settings().hospital_timezone)
    except Exception:  # a broken setting is not this argument's fault: the command reports it
        zone = ZoneInfo("UTC")
    return dt.datetime.now(zone).date()


def past_date(text: str) -> str:
    """A calendar date that is today or earlier in the hospital: a night to screen, monitor,
    retrieve or deliver, the day a check or the retention counts from, or since when."""
    calendar_date(text)
    today = hospital_today()
    if dt.date.fromisoformat(text) > today:
        raise _refuse(f"{text} is in the future: today is {today.isoformat()} in the hospital's "
                      "time zone, and only a day that has begun has studies, results or checks")
    return text


# Numbers

def whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """The type of a whole number in [minimum, maximum] (no maximum when None)."""
    expected = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _refuse(f"not a whole number: {text!r} (expected {expected})") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise _refuse(f"{value} is out of range (expected {expected})")
        return value

    check.__name__ = "whole_number"
    return check


at_least_one = whole(1)
seed = whole(0, MAX_SEED)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _refuse(f"not a number: {text!r}") from None


def share(text: str) -> float:
    """A rate or share from 0 to 1 (0.3 is 30 %)."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise _refuse(f"{text} is not a share from 0 to 1 (0.3 is 30 %)")
    return value


def scale(text: str) -> float:
    """A fraction of a size, above 0 and at most 1."""
    value = _number(text)
    if not 0.0 < value <= 1.0:
        raise _refuse(f"{text} is not a fraction above 0 and at most 1")
    return value


# Paths

def output_folder(text: str) -> str:
    """A folder to write: an existing folder, or one that can be made where it is named
    (its nearest existing parent is a writable folder)."""
    if not text.strip():
        raise _refuse("an empty path (expected a folder)")
    path = Path(text).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise _refuse(f"{text!r} exists and is not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise _refuse(f"{text!r} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _refuse(f"{text!r} cannot be written: {existing} is not writable")
    return text


def input_csv(text: str) -> str:
    """An existing, readable UTF-8 text file with a header line (its columns are the
    import's to check)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise _refuse(f"no such file: {text!r}")
    if not path.is_file():
        raise _refuse(f"{text!r} is not a file")
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        raise _refuse(f"{text!r} cannot be read: {exc.strerror}") from None
    try:
        sample = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        raise _refuse(f"{text!r} is not a CSV file (not UTF-8 text)") from None
    if not sample.strip() or "\x00" in sample:
        raise _refuse(f"{text!r} is not a CSV file (empty or binary)")
    return text


def dvc_remote(text: str) -> str:
    """A DVC remote: a URL with a scheme (s3://..., for DVC to check) or a local folder."""
    return text if _SCHEME.match(text) else output_folder(text)


# Models

def version_number(text: str) -> str:
    """A registered model version: a whole number from 1, returned as MLflow spells it."""
    if not _DIGITS.fullmatch(text) or int(text) < 1:
        raise _refuse(f"not a model version: {text!r} (expected a registered version number: 1, 2, ...)")
    return str(int(text))


def alias_name(text: str) -> str:
    """A registered-model alias name MLflow can hold (champion, challenger, base, ...)."""
    if not _ALIAS.fullmatch(text):
        raise _refuse(f"not an alias name: {text!r} (letters, digits, '_' and '-', e.g. champion)")
    if _RESERVED_ALIAS.fullmatch(text):
        raise _refuse(f"{text!r} is reserved by MLflow and is never an alias (use a version or a name "
                      "such as champion)")
    return text


def registered_model_uri(text: str) -> str:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION`: a registered version (deploy)."""
    match = _MODEL_URI.fullmatch(text)
    if match is None:
        raise _refuse(f"not a registered model URI: {text!r} (expected models:/NAME@ALIAS or "
                      "models:/NAME/VERSION)")
    if match["alias"] is not None:
        alias_name(match["alias"])
    else:
        version_number(match["version"])
    return text


def base_model(text: str) -> str:
    """The base to fine-tune: a model URI (models:/..., runs:/RUN_ID/PATH), an existing
    weights file, or `scratch` (also `none`)."""
    if text.strip().lower() in ("scratch", "none"):
        return text
    if text.startswith("models:/"):
        return registered_model_uri(text)
    if text.startswith("runs:/"):
        if not _RUN_URI.fullmatch(text):
            raise _refuse(f"not a run URI: {text!r} (expected runs:/RUN_ID/PATH)")
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise _refuse(f"no such file: {text!r} (expected models:/NAME@ALIAS, models:/NAME/VERSION, "
                      "runs:/RUN_ID/PATH, a weights file or 'scratch')")
    if not path.is_file():
        raise _refuse(f"{text!r} is not a file (expected a weights file)")
    return text


# Names radflow defines

def _known(kind: str, text: str, names: Iterable[str]) -> str:
    known = sorted(names)
    if text not in known:
        raise _refuse(f"unknown {kind} {text!r} (known: {', '.join(known)})")
    return text


def task_name(text: str) -> str:
    """A task of the configured tasks file (pipelines/tasks.yaml or
    RADFLOW_SCREENING_TASKS_FILE).

    The default task is let through: argparse converts defaults too, and a command that
    does not use its task (gateway purge) must not be refused in a tasks file without it;
    the commands that use it name it (exit 1). A tasks file or setting that cannot be read
    is the command's error too, not this argument's.
    """
    if text == DEFAULT_TASK:
        return text
    try:
        from pipelines.tasks import configured

        known = configured()
    except Exception:  # a broken settings or tasks file: the command reports it (exit 1)
        return text
    return _known("task", text, known)


def contract_name(text: str) -> str:
    """A data contract of data_contracts/ (`<name>.v<N>.json`), by name."""
    from pipelines.contracts.suites import CONTRACTS_DIR, VERSIONED

    names = {m["name"] for p in CONTRACTS_DIR.glob("*.json") if (m := VERSIONED.match(p.name))}
    return _known("data contract", text, names)


def _subset(kind: str, text: str, known: Iterable[str]) -> str:
    names = [n.strip() for n in text.split(",")]
    unknown = [n for n in names if n not in known]
    if not text.strip() or unknown:
        raise _refuse(f"unknown {kind} {', '.join(repr(n) for n in unknown) or '(none given)'} "
                      f"(choose from {','.join(known)}, comma-separated)")
    return ",".join(names)


def services(text: str) -> str:
    """Comma-separated services of the local stack."""
    from pipelines.stack.manage import SERVICES

    return _subset("service", text, SERVICES)


def queues(text: str) -> str:
    """Comma-separated Celery queues radflow routes tasks to."""
    from pipelines.config import QUEUES

    return _subset("queue", text, QUEUES)


def worker_name(text: str) -> str:
    """A Celery worker name (the `name` of name@host)."""
    if not _WORKER_NAME.fullmatch(text):
        raise _refuse(f"not a worker name: {text!r} (1-64 letters, digits, '.', '_' or '-'; no '@')")
    return text


def login(text: str) -> str:
    """A login radflow can create in Airflow and MLflow."""
    from pipelines.stack.users import LOGIN

    if not LOGIN.fullmatch(text):
        raise _refuse(f"not a login: {text!r} (2-64 letters, digits, '.', '_', '@' or '-')")
    return text


def display_name(text: str) -> str:
    """A person's name as shown in the UIs: not blank, one line."""
    if not text.strip() or any(c in text for c in "\r\n\t"):
        raise _refuse(f"not a display name: {text!r} (expected e.g. 'Ada Reviewer')")
    return text


def email(text: str) -> str:
    """An e-mail address (name@domain.tld)."""
    if not _EMAIL.fullmatch(text):
        raise _refuse(f"not an e-mail address: {text!r}")
    return text


def site(text: str) -> str:
    """A synthetic site name, safe in file names and DICOM values."""
    from pipelines.errors import PermanentError
    from pipelines.synth.generate import check_site

    try:
        return check_site(text)
    except PermanentError as exc:
        raise _refuse(str(exc)) from None


def vendor(text: str) -> str:
    """A vendor profile of the synthetic units (hologic, ge, siemens, fujifilm)."""
    from pipelines.synth.sites import PROFILES

    return _known("vendor", text.lower(), PROFILES)
