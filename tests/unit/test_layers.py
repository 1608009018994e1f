"""The layers of ARCHITECTURE.md hold: the import contracts cover every module, catch a
stage importing another stage (lazily too), and every error class lives in errors.py."""

from __future__ import annotations

import ast
import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pipelines

PACKAGE = Path(pipelines.__file__).parent
ROOT = PACKAGE.parent
CONTRACTS = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(CONTRACTS)
    return parser


def _layers() -> list[list[str]]:
    raw = _contracts()["importlinter:contract:layers"]["layers"]
    return [[m.strip() for m in line.replace("|", ":").split(":")] for line in raw.strip().splitlines()]


def _top_level_modules() -> set[str]:
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    return {f"pipelines.{n}" for n in names}


def _lint_imports(cwd: Path, env_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(cwd / ".importlinter")],
                          cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(env_path), "PATH": "/usr/bin:/bin"})


def test_every_module_of_the_package_is_in_exactly_one_layer() -> None:
    placed = [m for layer in _layers() for m in layer]
    assert len(placed) == len(set(placed)), "a module is in two layers"
    assert set(placed) == _top_level_modules(), (
        f"not placed: {sorted(_top_level_modules() - set(placed))}; "
        f"gone: {sorted(set(placed) - _top_level_modules())}")


def test_the_stage_layer_and_the_independence_contract_name_the_same_stages() -> None:
    stages = _contracts()["importlinter:contract:stages"]["modules"].split()
    assert sorted(stages) == sorted(_layers()[1])


def test_only_orchestration_may_import_airflow() -> None:
    sources = _contracts()["importlinter:contract:airflow"]["source_modules"].split()
    assert sorted(sources) == sorted(_top_level_modules() - {"pipelines.orchestration"})


def test_the_contracts_hold() -> None:
    result = _lint_imports(ROOT, ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_a_lazy_import_of_another_stage_breaks_the_contracts(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONTRACTS, tmp_path / ".importlinter")
    module = tmp_path / "pipelines" / "screening" / "sr.py"
    module.write_text(module.read_text() + "\n\ndef _probe() -> None:\n"
                      "    from pipelines.training import run  # noqa: F401\n")
    result = _lint_imports(tmp_path, tmp_path)
    assert result.returncode != 0
    assert "pipelines.screening.sr -> pipelines.training.run" in result.stdout


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_error_class_is_in_errors_py() -> None:
    from pipelines import errors

    known = {name for name, value in vars(errors).items() if isinstance(value, type)}
    elsewhere = []
    for path in _python_files():
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & (known | {"Exception", "BaseException", "RuntimeError", "ValueError"}):
                    elsewhere.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not elsewhere


def test_no_runtime_error_escapes_the_transient_permanent_split() -> None:
    raised = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in _python_files()
              for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Raise) and node.exc is not None
              and "RuntimeError" in ast.unparse(node.exc).split("(")[0]]
    assert not raised, f"raise a TransientError or PermanentError instead: {raised}"
