"""`radflow` as hospital IT scripts it: the commands, and the one-JSON-object contract."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines import cli

RADFLOW = str(Path(sys.executable).parent / "radflow")
COMMANDS = ("stack", "synth", "ingest", "validate", "train", "promote", "rollback", "deploy",
            "screen", "demo", "labels", "outcomes")


def closed_port() -> int:
    """A loopback port nothing listens on (bound once by the kernel, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def env(isolated_settings: Path) -> dict[str, str]:
    """The environment of a `radflow` process: no developer RADFLOW_* settings, every
    service pointed at a closed loopback port, state in the test's tmp dir."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("RADFLOW_")}
    out.update({
        "RADFLOW_STATE_DIR": str(isolated_settings),
        "RADFLOW_ORTHANC_URL": f"http://127.0.0.1:{closed_port()}",
        "RADFLOW_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}",
        "RADFLOW_TRITON_URL": f"127.0.0.1:{closed_port()}",
        "RADFLOW_ORTHANC_HTTP_PORT": str(closed_port()),
        "RADFLOW_MLFLOW_PORT": str(closed_port()),
        "RADFLOW_TRITON_HTTP_PORT": str(closed_port()),
        "RADFLOW_POSTGRES_PORT": str(closed_port()),
        "RADFLOW_AIRFLOW_PORT": str(closed_port()),
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    return out


def radflow(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RADFLOW, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def last_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object on the last stdout line, checking it is the only one on stdout."""
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"nothing on stdout; stderr:\n{proc.stderr[-2000:]}"
    objects = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    assert len(objects) == 1, proc.stdout
    last = json.loads(lines[-1])
    assert isinstance(last, dict), proc.stdout
    return last


def test_help_lists_every_stage(env: dict[str, str]) -> None:
    proc = radflow("--help", env=env)
    assert proc.returncode == 0
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("    ")}
    assert set(COMMANDS) <= listed


def test_starting_the_cli_creates_nothing_in_the_working_directory(
    env: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    env = {**env}
    env.pop("RADFLOW_STATE_DIR")
    assert radflow("--help", env=env, cwd=work).returncode == 0
    assert radflow("ingest", "--help", env=env, cwd=work).returncode == 0
    assert list(work.iterdir()) == []


def test_ingest_with_orthanc_down_prints_one_json_error_and_exits_1(
        env: dict[str, str], isolated_settings: Path) -> None:
    env = {**env, "RADFLOW_DATABASE_URL": f"sqlite:///{isolated_settings / 'radflow.db'}"}
    proc = radflow("ingest", "--json", env=env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    out = last_json(proc)
    assert "Orthanc" in out["error"]
    assert env["RADFLOW_ORTHANC_URL"] in out["error"]
    assert out["type"] == "OrthancUnavailable"


def test_stack_status_json_reports_this_state_dir_and_nothing_running(
    env: dict[str, str], isolated_settings: Path
) -> None:
    proc = radflow("stack", "status", "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = last_json(proc)
    assert out["state_dir"] == str(isolated_settings.resolve())
    assert {name: svc["running"] for name, svc in out["services"].items()} == {
        "postgres": False, "orthanc": False, "mlflow": False, "triton": False, "airflow": False}
    assert out["services"]["postgres"]["embedded"] is True  # no RADFLOW_DATABASE_URL given
    assert out["services"]["airflow"]["password_file"] == str(
        isolated_settings.resolve() / "secrets" / "airflow.env")


# The same contract, in-process (cheaper than a new interpreter per case).

@pytest.fixture
def in_process(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("RADFLOW_") and not key.startswith("RADFLOW_TEST_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("RADFLOW_"):
            monkeypatch.setenv(key, value)
    return monkeypatch


def main_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    proc = subprocess.CompletedProcess(argv, code, captured.out, captured.err)
    return code, last_json(proc)


@pytest.mark.parametrize("command", ["promote", "rollback"])
@pytest.mark.parametrize("reason", ["", "   "])
def test_a_change_of_champion_without_a_reason_is_refused(
    in_process: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str, reason: str
) -> None:
    code, out = main_json(capsys, command, "--json", "--reason", reason)
    assert code == 1
    assert "reason" in out["error"]
    assert "MLflow" not in out["error"]  # refused before any registry call


@pytest.mark.parametrize("command", ["promote", "rollback"])
def test_the_approver_is_a_login_not_an_argument_and_there_is_no_force_flag(command: str) -> None:
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([command])  # --reason is required
    with pytest.raises(SystemExit):  # the approver is the MLflow login the CLI uses
        parser.parse_args([command, "--approver", "Dr. Ada Reviewer", "--reason", "r"])
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--reason", "r", "--force"])


def test_without_json_a_failure_goes_to_stderr_only(
    in_process: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["promote", "--reason", " "]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "radflow promote:" in captured.err and "reason" in captured.err


def test_state_dir_option_overrides_the_environment(
    in_process: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    code, out = main_json(capsys, "--state-dir", str(other), "stack", "status", "--json")
    assert code == 0
    assert out["state_dir"] == str(other.resolve())
    assert out["paths"]["lake"] == str(other.resolve() / "lake")


def test_a_malformed_setting_still_gives_one_json_error(
    in_process: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    in_process.setenv("RADFLOW_DOWNLOAD_WORKERS", "four")
    code, out = main_json(capsys, "ingest", "--json")
    assert code == 1
    assert "download_workers" in out["error"]


def test_an_unreachable_results_database_gives_one_json_error(
    in_process: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    in_process.setenv("RADFLOW_DATABASE_URL",
                      f"postgresql+psycopg2://radflow:pw@127.0.0.1:{closed_port()}/results")
    code, out = main_json(capsys, "ingest", "--json")
    assert code == 1
    assert "error" in out and "pw@" not in out["error"]


@pytest.mark.parametrize("command", [
    ["train"], ["evaluate"], ["promote", "--reason", "r"], ["rollback", "--reason", "r"],
    ["deploy"], ["screen", "--date", "2026-01-01"], ["monitor", "--date", "2026-01-01"],
    ["monitor-reference", "--version", "1"]])
def test_every_stage_of_the_loop_takes_the_task(command: list[str]) -> None:
    parser = cli.build_parser()
    assert parser.parse_args(command).task == "mammo"
    assert parser.parse_args([*command, "--task", "cxr-nodule"]).task == "cxr-nodule"


def test_labels_import_takes_exactly_one_file_and_outcomes_takes_the_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("p.csv", "r.csv"):  # the files must exist (tests/unit/test_cli_arguments.py)
        (tmp_path / name).write_text("exam_id,laterality,outcome,date\n")
    parser = cli.build_parser()
    args = parser.parse_args(["labels", "import", "--pathology", "p.csv", "--json"])
    assert (args.action, args.pathology, args.ris, args.json) == ("import", "p.csv", None, True)
    assert parser.parse_args(["labels", "import", "--ris", "r.csv"]).ris == "r.csv"
    for bad in (["labels", "import"], ["labels", "import", "--pathology", "p.csv", "--ris", "r.csv"],
                ["labels", "export", "--ris", "r.csv"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    args = parser.parse_args(["outcomes", "--task", "cxr-nodule", "--json"])
    assert (args.task, args.version, args.json) == ("cxr-nodule", None, True)
    assert parser.parse_args(["outcomes", "--version", "4"]).task == "mammo"
