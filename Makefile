# radflow: `make demo` runs the nightly loop end to end; `make test` runs every test.
# Both bootstrap what they need first (venvs, pinned dependencies, Debian packages).

PYTHON ?= python3
VENV := .venv
TRITON_VENV := .venv-triton
STAMP := $(VENV)/.radflow-installed
TRITON_STAMP := $(TRITON_VENV)/.radflow-installed
BENCHES := $(patsubst benchmarks/%.py,%,$(filter-out benchmarks/__init__.py benchmarks/common.py,$(wildcard benchmarks/*.py)))

.PHONY: bootstrap system-deps demo test test-fast lint typecheck bench lock clean

bootstrap: system-deps $(STAMP) $(TRITON_STAMP)

system-deps:
	@bash infra/local/bootstrap-system.sh

$(STAMP): pyproject.toml constraints.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e '.[test]'
	@touch $@

# The Python-backend stub runs model.py in an isolated interpreter (PYTHONPATH ignored):
# `pipelines` is installed into Triton's environment, without its dependencies.
$(TRITON_STAMP): constraints-triton.txt pyproject.toml
	@test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install -q --upgrade pip
	$(TRITON_VENV)/bin/python -m pip install -q -r constraints-triton.txt
	$(TRITON_VENV)/bin/python -m pip install -q --no-deps -e .
	@touch $@

demo: bootstrap
	$(VENV)/bin/radflow demo

# Two pytest workers, one test file each at a time (module-scoped stacks stay whole): the
# integration modules mostly wait on services, so two overlap well on two cores.
test: bootstrap
	$(VENV)/bin/ruff check pipelines dags tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile --durations=25

test-fast: bootstrap
	$(VENV)/bin/python -m pytest -m "not integration"

lint: $(STAMP)
	$(VENV)/bin/ruff check pipelines dags tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: bootstrap
	@for b in $(BENCHES); do $(VENV)/bin/python -m benchmarks.$$b || exit 1; done

bench-%: bootstrap
	$(VENV)/bin/python -m benchmarks.$*

lock: $(STAMP)
	$(VENV)/bin/python -m pip freeze --exclude-editable | grep -v '^radflow' > constraints.txt

clean:
	-$(VENV)/bin/radflow stack down
	rm -rf .radflow
