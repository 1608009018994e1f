"""What a person types wrong is refused before any work (issue 18): exit 2, argparse's usage
error naming the argument, nothing on stdout (also with --json), no file written, no service
called; and the argument types accept what is right."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import cli, config
from pipelines import cli_args as arg
from pipelines.tasks import BUILTIN

RADFLOW = str(Path(sys.executable).parent / "radflow")
FUTURE = (dt.date.today() + dt.timedelta(days=2)).isoformat()  # after today in every time zone
GOOD_DATE = "2026-03-14"
TOO_BIG_SEED = str(2**32)


def closed_port() -> int:
    """A loopback port nothing listens on (bound once by the kernel, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    """Paths the cases name: a file, a folder, nothing, a binary file, an empty file."""
    (tmp_path / "a-file.txt").write_text("x\n")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "labels.csv").write_text("exam_id,laterality,outcome,date\n")
    (tmp_path / "weights.pt").write_bytes(b"\x00")
    return {"file": str(tmp_path / "a-file.txt"), "folder": str(tmp_path / "a-folder"),
            "missing": str(tmp_path / "missing.csv"), "binary": str(tmp_path / "binary.csv"),
            "empty": str(tmp_path / "empty.csv"), "csv": str(tmp_path / "labels.csv"),
            "weights": str(tmp_path / "weights.pt"), "new": str(tmp_path / "new" / "folder"),
            "future": FUTURE, "today": arg.hospital_today().isoformat()}


@pytest.fixture
def offline(isolated_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every service on a closed loopback port (work that started would fail otherwise than
    with exit 2), the working directory an empty folder; returns the state dir."""
    for key in ("ORTHANC_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(f"RADFLOW_{key}", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("RADFLOW_TRITON_URL", f"127.0.0.1:{closed_port()}")
    for key in ("ORTHANC_HTTP_PORT", "MLFLOW_PORT", "TRITON_HTTP_PORT", "POSTGRES_PORT",
                "AIRFLOW_PORT", "ORTHANC_DICOM_PORT"):
        monkeypatch.setenv(f"RADFLOW_{key}", str(closed_port()))
    monkeypatch.setenv("RADFLOW_CELERY_BROKER_URL", f"redis://127.0.0.1:{closed_port()}/0")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    config.reset_settings()
    return isolated_settings


@pytest.fixture
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that got past its arguments fails here instead of starting a service
    (stack up, demo) or replacing this process (worker)."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the command started work: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "execve", refuse)


# (the command line, the argument named in the refusal, a word of the reason); "{x}" is a
# path or a date of `places`.
BAD: list[tuple[list[str], str, str]] = [
    (["--state-dir", "{file}", "stack", "status"], "--state-dir", "not a folder"),
    (["--state-dir", "{file}/state", "stack", "status"], "--state-dir", "cannot be created"),
    (["stack", "up", "--only", "orthanc,foo"], "--only", "'foo'"),
    (["stack", "up", "--workers", "0"], "--workers", "at least 1"),
    (["stack", "start"], "action", "invalid choice"),
    (["worker", "--queues", "default,cpu"], "--queues", "'cpu'"),
    (["worker", "--concurrency", "two"], "--concurrency", "not a whole number"),
    (["worker", "--name", "gpu@host"], "--name", "no '@'"),
    (["user", "add", "a", "--role", "viewer", "--name", "Ada"], "login", "not a login"),
    (["user", "add", "ada", "--role", "viewer", "--name", "  "], "--name", "not a display name"),
    (["user", "add", "ada", "--role", "viewer", "--name", "Ada", "--email", "ada"], "--email", "e-mail"),
    (["user", "add", "ada", "--role", "admin", "--name", "Ada"], "--role", "invalid choice"),
    (["synth", "--exams", "0", "--date", GOOD_DATE], "--exams", "at least 1"),
    (["synth", "--exams", "ten", "--date", GOOD_DATE], "--exams", "not a whole number"),
    (["synth", "--exams", "1", "--date", "2026-13-01"], "--date", "not a calendar date"),
    (["synth", "--exams", "1", "--date", "2026-02-29"], "--date", "not a calendar date"),
    (["synth", "--exams", "1", "--date", "20260301"], "--date", "YYYY-MM-DD"),
    (["synth", "--exams", "1", "--date", GOOD_DATE, "--site", "north site"], "--site", "'north site'"),
    (["synth", "--exams", "1", "--date", GOOD_DATE, "--seed", "-1"], "--seed", "out of range"),
    (["synth", "--exams", "1", "--date", GOOD_DATE, "--positive-rate", "30"], "--positive-rate",
     "from 0 to 1"),
    (["synth", "--exams", "1", "--date", GOOD_DATE, "--scale", "0"], "--scale", "above 0"),
    (["synth", "--exams", "1", "--date", GOOD_DATE, "--out", "{file}"], "--out", "not a folder"),
    (["synth", "--exams", "1", "--date", GOOD_DATE, "--burned-in-text-rate", "-0.1"],
     "--burned-in-text-rate", "from 0 to 1"),
    (["synth", "--exams", "1", "--date", GOOD_DATE, "--artifact-rate", "nan"], "--artifact-rate",
     "from 0 to 1"),
    (["synth", "--exams", "1", "--date", GOOD_DATE, "--vendor", "agfa"], "--vendor", "unknown vendor"),
    (["synth", "--exams", "1", "--date", GOOD_DATE, "--detector-degradation", "1.5"],
     "--detector-degradation", "from 0 to 1"),
    (["ingest", "--limit", "0"], "--limit", "at least 1"),
    (["validate", "--suite", "mammo_manifset"], "--suite", "unknown data contract"),
    (["validate", "--contract-version", "v2"], "--contract-version", "not a whole number"),
    (["validate", "--task", "mamo"], "--task", "unknown task 'mamo'"),
    (["build-dataset", "--seed", "1.5"], "--seed", "not a whole number"),
    (["build-dataset", "--remote", "{file}/remote"], "--remote", "cannot be created"),
    (["build-dataset", "--task", "chest"], "--task", "unknown task"),
    (["train", "--epochs", "0"], "--epochs", "at least 1"),
    (["train", "--seed", TOO_BIG_SEED], "--seed", "out of range"),
    (["train", "--patience", "-2"], "--patience", "at least 1"),
    (["train", "--base", "{missing}"], "--base", "no such file"),
    (["train", "--base", "{folder}"], "--base", "not a file"),
    (["train", "--base", "models:/mammo-screening-base@v3"], "--base", "reserved"),
    (["train", "--base", "runs:/abc"], "--base", "runs:/RUN_ID/PATH"),
    (["train", "--task", "nope"], "--task", "unknown task"),
    (["pretrain", "--exams", "-5"], "--exams", "at least 1"),
    (["pretrain", "--site", ""], "--site", "site"),
    (["pretrain", "--seed", "seven"], "--seed", "not a whole number"),
    (["pretrain", "--epochs", "0"], "--epochs", "at least 1"),
    (["evaluate", "--alias", "champ ion"], "--alias", "not an alias name"),
    (["evaluate", "--alias", "latest"], "--alias", "reserved"),
    (["evaluate", "--split", "holdout"], "--split", "invalid choice"),
    (["evaluate", "--task", "nope"], "--task", "unknown task"),
    (["promote", "--reason", "r", "--version", "0"], "--version", "not a model version"),
    (["promote", "--reason", "r", "--version", "v3"], "--version", "not a model version"),
    (["promote", "--reason", "r", "--task", "nope"], "--task", "unknown task"),
    (["rollback", "--reason", "r", "--task", "nope"], "--task", "unknown task"),
    (["deploy", "--alias", "champion/1"], "--alias", "not an alias name"),
    (["deploy", "--model-uri", "s3://bucket/model.onnx"], "--model-uri", "models:/NAME@ALIAS"),
    (["deploy", "--model-uri", "models:/mammo-screening/zero"], "--model-uri", "not a model version"),
    (["deploy", "--slot", "canary"], "--slot", "invalid choice"),
    (["deploy", "--task", "nope"], "--task", "unknown task"),
    (["serving-repo", "--out", "{file}"], "--out", "not a folder"),
    (["serving-repo", "--out", "{file}/repo"], "--out", "cannot be created"),
    (["serving-repo", "--out", "{new}", "--task", "nope"], "--task", "unknown task"),
    (["screen", "--date", "2026-13-01"], "--date", "not a calendar date: '2026-13-01' (expected YYYY-MM-DD)"),
    (["screen", "--date", "{future}"], "--date", "in the future"),
    (["screen", "--date", GOOD_DATE, "--task", "nope"], "--task", "unknown task"),
    (["gateway", "retrieve", "--date", "2026-11-31"], "--date", "not a calendar date"),
    (["gateway", "deliver", "--date", "{future}"], "--date", "in the future"),
    (["gateway", "purge", "--today", "{future}"], "--today", "in the future"),
    (["gateway", "retrieve", "--date", GOOD_DATE, "--task", "nope"], "--task", "unknown task"),
    (["worklist", "feedback", "--since", "yesterday"], "--since", "not a calendar date"),
    (["worklist", "feedback", "--task", "nope"], "--task", "unknown task"),
    (["labels", "import", "--pathology", "{missing}"], "--pathology", "no such file"),
    (["labels", "import", "--pathology", "{folder}"], "--pathology", "not a file"),
    (["labels", "import", "--ris", "{binary}"], "--ris", "not a CSV file"),
    (["labels", "import", "--ris", "{empty}"], "--ris", "not a CSV file"),
    (["outcomes", "--version", "-1"], "--version", "not a model version"),
    (["outcomes", "--task", "nope"], "--task", "unknown task"),
    (["monitor", "--date", "{future}"], "--date", "in the future"),
    (["monitor", "--date", "2026-3-14"], "--date", "not a calendar date"),
    (["monitor", "--date", GOOD_DATE, "--task", "nope"], "--task", "unknown task"),
    (["check-integrity", "--date", "2026-02-30"], "--date", "not a calendar date"),
    (["monitor-reference", "--version", "latest"], "--version", "not a model version"),
    (["monitor-reference", "--version", "1", "--task", "nope"], "--task", "unknown task"),
    (["synth-chest", "--exams", "0", "--date", GOOD_DATE], "--exams", "at least 1"),
    (["synth-chest", "--date", "14.03.2026"], "--date", "not a calendar date"),
    (["synth-chest", "--date", GOOD_DATE, "--seed", "-7"], "--seed", "out of range"),
    (["synth-chest", "--date", GOOD_DATE, "--size", "8"], "--size", "from 32 to 8192"),
    (["db", "downgrade"], "action", "invalid choice"),
    (["demo", "--exams", "3"], "--exams", "at least 9"),
    (["demo", "--days", "0"], "--days", "at least 1"),
    (["demo", "--seed", "x"], "--seed", "not a whole number"),
]
COMMANDS_CHECKED = {argv[2] if argv[0] == "--state-dir" else argv[0] for argv, _, _ in BAD}


def _filled(argv: list[str], places: dict[str, str]) -> list[str]:
    return [a.format(**places) for a in argv]


def _written(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize(("argv", "argument", "reason"), BAD,
                         ids=[" ".join(argv) for argv, _, _ in BAD])
def test_a_malformed_argument_is_refused_before_any_work(
    offline: Path, no_processes: None, places: dict[str, str], capsys: pytest.CaptureFixture[str],
    argv: list[str], argument: str, reason: str,
) -> None:
    line = [*_filled(argv, places), "--json"]
    before = _written(Path(places["folder"]).parent)
    with pytest.raises(SystemExit) as refused:
        cli.main(line)
    assert refused.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""  # not even with --json: the JSON contract is for a command that ran
    assert f"error: argument {argument}: " in err, err
    assert reason.format(**places) in err, err
    assert "usage: radflow" in err
    assert _written(offline) == []  # nothing under the state dir (no worklist page either)
    assert _written(Path(places["folder"]).parent) == before
    assert not Path(places["new"]).exists()


def test_the_issue_case_screens_nothing_and_writes_no_worklist(
    offline: Path, tmp_path: Path
) -> None:
    """`radflow screen --date 2026-13-01` (the console script, as hospital IT runs it)."""
    env = {**os.environ, "RADFLOW_STATE_DIR": str(offline)}
    proc = subprocess.run([RADFLOW, "screen", "--date", "2026-13-01", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert ("radflow screen: error: argument --date: not a calendar date: '2026-13-01' "
            "(expected YYYY-MM-DD)") in proc.stderr
    assert not offline.exists()
    assert list(tmp_path.rglob("index.html")) == []


def test_every_command_has_a_refused_case() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) <= COMMANDS_CHECKED


GOOD: list[tuple[Callable[[str], Any], str, Any]] = [
    (arg.calendar_date, "2026-02-28", "2026-02-28"),
    (arg.calendar_date, "2024-02-29", "2024-02-29"),
    (arg.calendar_date, "{future}", "{future}"),  # synth may make any day
    (arg.past_date, "{today}", "{today}"),
    (arg.past_date, "2025-12-31", "2025-12-31"),
    (arg.at_least_one, "1", 1),
    (arg.at_least_one, "250", 250),
    (arg.whole(32, 8192), "8192", 8192),
    (arg.seed, "0", 0),
    (arg.seed, str(arg.MAX_SEED), arg.MAX_SEED),
    (arg.share, "0", 0.0),
    (arg.share, "1", 1.0),
    (arg.share, "0.25", 0.25),
    (arg.scale, "1", 1.0),
    (arg.scale, "0.125", 0.125),
    (arg.version_number, "4", "4"),
    (arg.version_number, "007", "7"),
    (arg.alias_name, "champion", "champion"),
    (arg.alias_name, "shadow_2", "shadow_2"),
    (arg.registered_model_uri, "models:/mammo-screening@champion", "models:/mammo-screening@champion"),
    (arg.registered_model_uri, "models:/mammo-screening/3", "models:/mammo-screening/3"),
    (arg.base_model, "scratch", "scratch"),
    (arg.base_model, "none", "none"),
    (arg.base_model, "models:/mammo-screening-base@base", "models:/mammo-screening-base@base"),
    (arg.base_model, "runs:/0123456789abcdef/model", "runs:/0123456789abcdef/model"),
    (arg.base_model, "{weights}", "{weights}"),
    (arg.task_name, "mammo", "mammo"),
    (arg.task_name, "cxr-nodule", "cxr-nodule"),
    (arg.contract_name, "mammo_manifest", "mammo_manifest"),
    (arg.contract_name, "cxr_dataset", "cxr_dataset"),
    (arg.services, "orthanc,mlflow", "orthanc,mlflow"),
    (arg.queues, "default, gpu", "default,gpu"),
    (arg.worker_name, "gpu-1", "gpu-1"),
    (arg.login, "ada.reviewer", "ada.reviewer"),
    (arg.display_name, "Ada Reviewer", "Ada Reviewer"),
    (arg.email, "ada@hospital.example", "ada@hospital.example"),
    (arg.site, "north", "north"),
    (arg.vendor, "GE", "ge"),
    (arg.output_folder, "{folder}", "{folder}"),
    (arg.output_folder, "{new}", "{new}"),
    (arg.dvc_remote, "s3://bucket/radflow", "s3://bucket/radflow"),
    (arg.dvc_remote, "{new}", "{new}"),
    (arg.input_csv, "{csv}", "{csv}"),
]


@pytest.mark.parametrize(("check", "text", "expected"), GOOD,
                         ids=[f"{c.__name__}({t})" for c, t, _ in GOOD])
def test_a_good_value_is_accepted(
    places: dict[str, str], check: Callable[[str], Any], text: str, expected: Any
) -> None:
    if isinstance(expected, str):
        expected = expected.format(**places)
    assert check(text.format(**places)) == expected
    assert not Path(places["new"]).exists()  # checking a folder does not make it


def test_a_tasks_file_of_its_own_names_the_tasks_and_leaves_the_default_to_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = yaml.safe_load(BUILTIN.read_text())
    tasks["tasks"] = {"chest": tasks["tasks"]["cxr-nodule"]}
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump(tasks))
    monkeypatch.setenv("RADFLOW_SCREENING_TASKS_FILE", str(tmp_path / "tasks.yaml"))
    config.reset_settings()
    parser = cli.build_parser()
    assert parser.parse_args(["screen", "--date", GOOD_DATE, "--task", "chest"]).task == "chest"
    assert parser.parse_args(["gateway", "purge"]).task == "mammo"  # purge takes no task
    with pytest.raises(SystemExit):
        parser.parse_args(["screen", "--date", GOOD_DATE, "--task", "cxr-nodule"])
    assert "unknown task 'cxr-nodule' (known: chest)" in capsys.readouterr().err


def test_a_state_dir_on_the_command_line_wins_over_settings_read_while_checking(
    offline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.get_settings()  # as checking --task or a date does, before --state-dir is applied
    other = tmp_path / "elsewhere"
    assert cli.main(["--state-dir", str(other), "stack", "status", "--json"]) == 0
    assert f'"state_dir": "{other.resolve()}"' in capsys.readouterr().out
