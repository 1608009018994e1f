# radflow: `make demo` runs the nightly loop end to end; `make test` runs every test.
# Both bootstrap what they need first (venvs, pinned dependencies, Debian packages).

PYTHON ?= python3
VENV := .venv
TRITON_VENV := .venv-triton
STAMP := $(VENV)/.radflow-installed
TRITON_STAMP := $(TRITON_VENV)/.radflow-installed
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.radflow-installed
# The torch build, chosen explicitly (PyPI's Linux torch wheel is a CUDA build with GBs of
# nvidia-* packages): TORCH=cpu (default) from PyTorch's CPU wheel index, TORCH=cuda on GPU
# servers from its CUDA index (TORCH_CUDA=cu128: CUDA 12.8, driver >= 570; another
# PyTorch-published variant of the same version, e.g. cu126 or cu130, works the same way).
# Where PyTorch's index is not reachable, pip falls back to the configured indexes and
# wheel folders (this machine's local torch-2.13.0+cpu wheel).
TORCH ?= cpu
TORCH_VERSION := 2.13.0
TORCH_CUDA ?= cu128
TORCH_VARIANT := $(if $(filter cuda,$(TORCH)),$(TORCH_CUDA),$(if $(filter cpu,$(TORCH)),cpu,$(error TORCH must be cpu or cuda, got '$(TORCH)')))
TORCH_INDEX := https://download.pytorch.org/whl/$(TORCH_VARIANT)
TORCH_STAMP := $(VENV)/.torch-$(TORCH_VARIANT)
# constraints.txt is locked on the CPU build (torch==2.13.0+cpu): the rest of the install
# takes it without its torch line, so that it keeps whichever build the first step chose
NO_TORCH_CONSTRAINTS := $(VENV)/constraints-without-torch.txt
PIP_NET := --timeout 30 --retries 2
# cpu.py is the benchmarks' CPU sampler; sizing.py reads their results (run last by `make bench`)
BENCHES := $(patsubst benchmarks/%.py,%,$(filter-out benchmarks/__init__.py benchmarks/common.py benchmarks/cpu.py benchmarks/sizing.py,$(wildcard benchmarks/*.py)))

.PHONY: bootstrap system-deps demo test test-fast lint typecheck bench lock clean reliability-full reliability-load

bootstrap: system-deps $(STAMP) $(TRITON_STAMP) $(INFRA_STAMP)

system-deps:
	@bash infra/local/bootstrap-system.sh

$(NO_TORCH_CONSTRAINTS): constraints.txt
	@mkdir -p $(VENV)
	grep -v '^torch==' constraints.txt > $@

# One stamp per torch build: changing TORCH reinstalls torch, then the rest against it.
# --no-deps: only torch's own page is asked of PyTorch's index; its dependencies (pinned,
# and the nvidia-* libraries of a CUDA build) come with the project's install below.
$(TORCH_STAMP): $(NO_TORCH_CONSTRAINTS)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	rm -f $(VENV)/.torch-*
	$(VENV)/bin/python -m pip install -q $(PIP_NET) --no-deps --extra-index-url $(TORCH_INDEX) \
		'torch==$(TORCH_VERSION)+$(TORCH_VARIANT)'
	@touch $@

$(STAMP): pyproject.toml $(NO_TORCH_CONSTRAINTS) $(TORCH_STAMP)
	$(VENV)/bin/python -m pip install -q $(PIP_NET) -c $(NO_TORCH_CONSTRAINTS) -e '.[test]'
	@touch $@

# The Python-backend stub runs model.py in an isolated interpreter (PYTHONPATH ignored):
# `pipelines` is installed into Triton's environment, without its dependencies.
$(TRITON_STAMP): constraints-triton.txt pyproject.toml
	@test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install -q --upgrade pip
	$(TRITON_VENV)/bin/python -m pip install -q -r constraints-triton.txt
	$(TRITON_VENV)/bin/python -m pip install -q --no-deps -e .
	@touch $@

# checkov and kubernetes-validate (tests/infra) in their own environment: their pinned
# dependencies conflict with the project's (constraints-infra.txt holds the whole set).
$(INFRA_STAMP): constraints-infra.txt
	@test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install -q --upgrade pip
	$(INFRA_VENV)/bin/python -m pip install -q $(PIP_NET) -r constraints-infra.txt
	@touch $@

demo: bootstrap
	$(VENV)/bin/radflow demo

# Two pytest workers, one test file each at a time (module-scoped stacks stay whole): the
# integration modules mostly wait on services, so two overlap well on two cores. Files go
# out in collection order (tests/conftest.py puts the longest first), not by test count,
# which left the one-test end-to-end file running alone at the end.
test: bootstrap
	$(VENV)/bin/ruff check pipelines dags tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	RADFLOW_KILL_TRIALS=2 $(VENV)/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder \
		--durations=40

# The reliability suite's full runs (docs/reliability.md): 5,000 mutated DICOM files through
# ingest (tests/reliability/test_fuzz_dicom.py; `make test` runs 100 of them) and 10 seeded
# kill -9 trials of each command (tests/reliability/test_kill_trials.py; `make test` runs 2).
reliability-full: bootstrap
	RADFLOW_FUZZ_FILES=5000 $(VENV)/bin/python -m pytest --timeout 0 tests/reliability/test_fuzz_dicom.py
	RADFLOW_KILL_TRIALS=10 $(VENV)/bin/python -m pytest --timeout 0 tests/reliability/test_kill_trials.py

# Load (docs/reliability.md, item 8): a night of 2,000 exams C-STOREd at full speed while it is
# screened, then caught up by the next night's run; peak RSS of every radflow process
# (tests/reliability/test_load.py; `make test` pushes 40). About 45 min and 4 GB in Orthanc.
reliability-load: bootstrap
	RADFLOW_LOAD_EXAMS=2000 $(VENV)/bin/python -m pytest --timeout 0 tests/reliability/test_load.py

test-fast: bootstrap
	$(VENV)/bin/python -m pytest -m "not integration"

lint: $(STAMP)
	$(VENV)/bin/ruff check pipelines dags tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: bootstrap
	@for b in $(BENCHES); do $(VENV)/bin/python -m benchmarks.$$b || exit 1; done
	$(VENV)/bin/python -m benchmarks.sizing

bench-%: bootstrap
	$(VENV)/bin/python -m benchmarks.$*

lock: $(STAMP)
	@test "$(TORCH)" = cpu || { echo "make lock: constraints.txt is locked on the CPU build; run it with TORCH=cpu"; exit 1; }
	$(VENV)/bin/python -m pip freeze --exclude-editable | grep -v '^radflow' > constraints.txt

clean:
	-$(VENV)/bin/radflow stack down
	rm -rf .radflow
