"""The repository layout that ARCHITECTURE.md and STYLE.md promise (rules 1, 8, 12, 18)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_PACKAGES = ("mlflow", "infra", "serving", "data_contracts", "dags")
HEAVY = ("torch", "mlflow", "great_expectations", "pydicom", "tritonclient", "onnxruntime",
         "sklearn", "pandas")


def _dag_files() -> list[Path]:
    return sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _top_level_imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("folder", NO_PACKAGES)
def test_folders_that_are_not_packages_have_no_init_py(folder: str) -> None:
    # mlflow/__init__.py would shadow the mlflow library; dags/ is not importable code.
    found = sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("__init__.py"))
    assert found == []


def test_pipelines_is_the_one_package() -> None:
    assert (ROOT / "pipelines" / "__init__.py").exists()


def test_every_dag_file_is_named_after_its_dag_id() -> None:
    files = _dag_files()
    assert files, "no DAG files in dags/"
    for path in files:
        tree = ast.parse(path.read_text())
        ids = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("dag", "DAG"):
                ids += [kw.value.value for kw in node.keywords
                        if kw.arg == "dag_id" and isinstance(kw.value, ast.Constant)]
                ids += [a.value for a in node.args[:1] if isinstance(a, ast.Constant)]
        decorated = [f.name for f in tree.body if isinstance(f, ast.FunctionDef)
                     and any(getattr(getattr(d, "func", d), "id", None) == "dag"
                             for d in f.decorator_list)]
        assert (ids or decorated) == [path.stem], path.name


def test_dag_files_import_no_heavy_library_at_top_level() -> None:
    for path in _dag_files():
        top = _top_level_imports(ast.parse(path.read_text()))
        heavy = sorted(m for m in top if m.split(".")[0] in HEAVY)
        assert heavy == [], f"{path.name} imports {heavy} at parse time"


def test_only_pipelines_orchestration_imports_airflow() -> None:
    offenders = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        if "orchestration" in path.relative_to(ROOT / "pipelines").parts:
            continue
        if any(m == "airflow" or m.startswith("airflow.") for m in _imports(ast.parse(path.read_text()))):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_nothing_imports_dags() -> None:
    offenders = []
    for folder in ("pipelines", "serving", "dags"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if any(m == "dags" or m.startswith("dags.") for m in _imports(ast.parse(path.read_text()))):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_contract_files_are_versioned_json() -> None:
    names = sorted(p.name for p in (ROOT / "data_contracts").iterdir() if not p.name.startswith("."))
    assert names
    assert [n for n in names if not re.fullmatch(r"[a-z0-9_]+\.v[0-9]+\.json", n)] == []


def test_ci_runs_make_test() -> None:
    ci = ROOT / ".ci" / "run"
    commands = [line.strip() for line in ci.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert "make test" in commands
    assert ci.stat().st_mode & 0o111, ".ci/run must be executable"


def test_makefile_has_the_demo_and_test_targets() -> None:
    targets = re.findall(r"^([a-z][a-z0-9_-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert {"demo", "test", "bootstrap"} <= set(targets)


def test_readme_tells_how_to_run_the_demo_and_the_tests() -> None:
    readme = ROOT / "README.md"
    assert readme.exists(), "README.md is missing (pyproject.toml declares it)"
    text = readme.read_text()
    assert "make demo" in text
    assert "make test" in text
