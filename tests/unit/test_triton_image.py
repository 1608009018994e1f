"""The GPU Triton image (infra/images/triton/), checked offline (no Docker daemon here): a
pinned base, pinned pip requirements equal to constraints-triton.txt, and every
third-party module the preprocessing model's code path imports installed by the image."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.infra_checkers import dockerfile_instructions

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "infra" / "images" / "triton"
PREPROCESSING_MODEL = ROOT / "serving" / "triton_repo" / "mammo_preprocessing" / "model.py"
# The NGC release whose server the stub in nvidia-pytriton's wheel was built for
# (pytriton 0.7.0 ships tritonserver 2.51.0 = NGC 24.10): the image swaps in that stub.
NGC_RELEASE_OF_PYTRITON = {"0.7.0": "24.10"}
PIP_OPTIONS_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-d", "--dest", "-i",
                          "--index-url", "--extra-index-url", "--platform", "--python-version"}

# Loads model.py as Triton's Python backend would (its utils module stood in for), runs
# initialize (which preprocesses a ramp), and prints the distributions whose files the
# newly imported modules were loaded from, with those distributions' requirements.
PROBE = """
import importlib.metadata as md, json, os, runpy, sys, sysconfig, types
sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")
before = set(sys.modules)
model = runpy.run_path(sys.argv[1])["TritonPythonModel"]()
params = {"height": {"string_value": "64"}, "width": {"string_value": "48"}}
model.initialize({"model_config": json.dumps({"parameters": params}), "model_name": "p",
                  "model_version": "1"})
owner = {os.path.realpath(d.locate_file(f)): d.metadata["Name"]
         for d in md.distributions() for f in d.files or []}
stdlib = tuple(os.path.realpath(sysconfig.get_paths()[k]) + os.sep for k in ("stdlib", "platstdlib"))
project = os.path.realpath(sys.argv[2]) + os.sep
dists, unowned = set(), set()
for name in set(sys.modules) - before:
    path = getattr(sys.modules[name], "__file__", None)
    if not path or name.startswith("__"):
        continue  # built into the interpreter, a runtime artefact, or __main__'s alias
    path = os.path.realpath(path)
    if path.startswith(project):
        dists.add("radflow")
    elif path in owner:
        dists.add(owner[path])
    elif not path.startswith(stdlib) or "-packages" in path:
        unowned.add(name)
print(json.dumps({"dists": sorted(dists), "unowned": sorted(unowned),
                  "requires": {d: md.requires(d) or [] for d in dists if d != "radflow"}}))
"""


def pins(path: Path) -> dict[str, str]:
    """name -> version of a requirements file whose lines are all `name==version`."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
            assert match, f"{path.name}: {line!r} is not pinned with =="
            found[canonicalize_name(match[1])] = match[2]
    return found


DOCKERFILE = dockerfile_instructions((IMAGE / "Dockerfile").read_text())
CONSTRAINTS = pins(ROOT / "constraints-triton.txt")
COPIED = {args.split()[-1]: args.split()[0] for kw, args in DOCKERFILE
          if kw == "COPY" and not args.startswith("--from")}  # destination -> source


def bases() -> list[str]:
    """Every FROM image that is not an earlier stage of the same file."""
    stages: set[str] = set()
    images = []
    for kw, args in DOCKERFILE:
        if kw == "FROM":
            words = args.split()
            if words[0] not in stages:
                images.append(words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    return images


def pip_calls() -> list[list[str]]:
    """The argument lists of every `pip install` and `pip download` the RUN lines make."""
    calls = []
    for kw, args in DOCKERFILE:
        if kw != "RUN":
            continue
        commands: list[list[str]] = [[]]
        for word in shlex.split(args):
            if word in ("&&", "||", ";"):
                commands.append([])
            else:
                commands[-1].append(word)
        for words in commands:
            for i, word in enumerate(words[:-1]):
                if (word == "pip" or word.endswith("/pip")) and words[i + 1] in ("install", "download"):
                    calls.append(words[i + 1:])
    return calls


def image_requirements() -> dict[str, str]:
    """name -> pinned version of everything the image pip-installs or downloads.

    Raises AssertionError for an unpinned requirement, or a local project not installed --no-deps.
    """
    found: dict[str, str] = {}
    for call in pip_calls():
        words = iter(call[1:])
        for word in words:
            if word in ("-r", "--requirement"):
                source = COPIED.get(next(words))
                assert source, f"pip {call[0]} -r of a file no COPY puts into the image: {call}"
                found.update(pins(ROOT / source))
            elif word in PIP_OPTIONS_WITH_VALUE:
                next(words)
            elif word.startswith("/"):  # a project copied in: its dependencies come from the pins
                assert "--no-deps" in call, f"{word} installed with its dependencies: {call}"
                assert any(dest.rstrip("/") == word.rstrip("/") for dest in COPIED), word
            elif not word.startswith("-"):
                match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", word)
                assert match, f"pip {call[0]} {word!r} is not pinned with =="
                found[canonicalize_name(match[1])] = match[2]
        assert "--no-deps" in call, f"pip {call[0]} without --no-deps may bring unpinned packages: {call}"
    return found


def test_the_base_image_is_the_ngc_triton_pinned_by_tag() -> None:
    images = bases()
    assert images, "no FROM in the Dockerfile"
    for image in images:
        name, _, tag = image.rpartition(":")
        assert "@sha256:" in image or (name and tag), f"{image} is not pinned by tag or digest"
        assert tag != "latest" and "latest" not in image, f"{image} floats"
        assert name == "nvcr.io/nvidia/tritonserver" and re.fullmatch(r"\d\d\.\d\d-py3", tag), image
    assert len(set(images)) == 1, f"stages start from different bases: {images}"
    release = NGC_RELEASE_OF_PYTRITON.get(CONSTRAINTS["nvidia-pytriton"])
    assert images[0].endswith(f":{release}-py3"), (
        f"the image takes the Python-backend stub from nvidia-pytriton "
        f"{CONSTRAINTS['nvidia-pytriton']}, built for NGC {release}, but starts from {images[0]}")


def test_every_pip_requirement_is_pinned_as_in_constraints_triton() -> None:
    required = image_requirements()
    assert "numpy" in required and required["numpy"].startswith("1."), "the 2.5x stub needs numpy < 2"
    for name, version in required.items():
        assert CONSTRAINTS.get(name) == version, (
            f"the image pins {name}=={version}, constraints-triton.txt has {CONSTRAINTS.get(name)}")


def test_the_stub_and_the_interpreter_are_the_python_radflow_requires() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    python = re.search(r'requires-python = ">=(\d+\.\d+),<', text)[1]  # type: ignore[index]
    runs = " ".join(args for kw, args in DOCKERFILE if kw == "RUN")
    assert f"python_backend_stubs/{python}/triton_python_backend_stub" in runs
    assert f"python{python}-venv" in runs and f"libpython{python}" in runs
    assert any(args.endswith("/opt/tritonserver/backends/python/triton_python_backend_stub")
               for kw, args in DOCKERFILE if kw == "COPY")


def test_every_copied_source_exists_in_the_build_context() -> None:
    for kw, args in DOCKERFILE:
        if kw == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def probe() -> dict[str, Any]:
    """PROBE's answer in Triton's environment (.venv-triton, constraints-triton.txt): the
    model imports optional packages (e.g. pydicom's JPEG plugins) only where installed."""
    from pipelines.config import get_settings
    from pipelines.stack.triton import triton_python

    out = subprocess.run([str(triton_python(get_settings())), "-I", "-c", PROBE, str(PREPROCESSING_MODEL),
                          str(ROOT / "pipelines")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_image_installs_every_module_the_preprocessing_model_imports() -> None:
    found = probe()
    assert not found["unowned"], f"imported from files no distribution owns: {found['unowned']}"
    needed = {canonicalize_name(d) for d in found["dists"]} - {"radflow"}
    assert {"numpy", "pydicom"} <= needed, f"the probe saw too little: {sorted(needed)}"
    installed = set(image_requirements())
    missing = sorted(needed - installed)
    assert not missing, f"imported by the preprocessing model, not in the image: {missing}"
    # pip install --no-deps: each installed distribution's own dependencies must be listed too
    env = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
    for name, requires in found["requires"].items():
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                assert canonicalize_name(req.name) in installed, f"{name} needs {req.name}, not in the image"


@pytest.mark.parametrize("line", ["numpy>=1.26", "pydicom", "scipy~=1.17"])
def test_an_unpinned_requirement_is_refused(tmp_path: Path, line: str) -> None:
    (tmp_path / "requirements.txt").write_text(f"{line}\n")
    with pytest.raises(AssertionError, match="not pinned with =="):
        pins(tmp_path / "requirements.txt")
