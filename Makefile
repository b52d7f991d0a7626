# callsight — set-up, demo and tests. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
SUPERSET_VENV := .venv-superset
PIP_FLAGS ?= --disable-pip-version-check -q
export CALLSIGHT_SUPERSET_VENV ?= $(CURDIR)/$(SUPERSET_VENV)

.PHONY: help venvs demo test test-fast lint dbt-docs dq-docs bench bench-extract bench-quality superset-lock clean clean-demo

help:
	@echo "make demo    - set up, generate demo data, run the nightly job, serve Superset :8088 and Dagster :3000"
	@echo "make test    - set up and run the test suite"
	@echo "make lint    - ruff + sqlfluff"
	@echo "make dq-docs - data-quality suites on the published warehouse -> GX Data Docs in CALLSIGHT_HOME"
	@echo "make bench   - benchmark at scale beside bare DuckDB and pandas (ROWS=\"1000000 10000000\"), table + JSON"
	@echo "make clean   - remove virtual environments and build artefacts (keeps CALLSIGHT_HOME)"

# Pipeline env: from pyproject.toml (editable, with dev extras).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade "pip>=24,<27"
	$(VENV)/bin/pip install $(PIP_FLAGS) -e ".[dev,mssql]"
	touch $@

# Superset env: from the pinned requirements (Superset pins SQLAlchemy 1.4 / pandas 2.1).
$(SUPERSET_VENV)/.installed: superset/requirements.txt
	$(PYTHON) -m venv $(SUPERSET_VENV)
	$(SUPERSET_VENV)/bin/pip install $(PIP_FLAGS) --upgrade "pip>=24,<27"
	$(SUPERSET_VENV)/bin/pip install $(PIP_FLAGS) -r superset/requirements.txt
	touch $@

venvs: $(VENV)/.installed $(SUPERSET_VENV)/.installed

demo: venvs
	$(VENV)/bin/callsight demo

# Two pytest-xdist workers; tests/conftest.py groups them (a module stays in one worker, the modules
# using the shared Superset server in one) and puts the heavy groups first. Much of a test waits on
# Superset, dbt or the browser, so two workers share the 2 cores well (three are slower: docs/performance.md).
# TEST_WORKERS=0: one process.
# The TEST_DURATIONS slowest tests are listed at the end (0: all): the suite should stay well under 30 minutes.
TEST_WORKERS ?= 2
TEST_DURATIONS ?= 30
test: venvs
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=$(TEST_DURATIONS)

test-fast: venvs
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup -m "not superset and not slow"

lint: $(VENV)/.installed
	$(VENV)/bin/pytest -q tests/test_lint.py

dbt-docs: $(VENV)/.installed
	$(VENV)/bin/callsight dbt-docs --serve

# Great Expectations Data Docs of the published warehouse, written to CALLSIGHT_HOME/data_quality/docs.
dq-docs: $(VENV)/.installed
	$(VENV)/bin/callsight dq-docs

# Benchmark at scale (issue #10): generated journals of ROWS rows (default 1M; ROWS="1000000 10000000"),
# full build, incremental night, extract, chart latency and load, beside bare DuckDB and pandas.
# BENCH_FLAGS=--skip-superset leaves out the charts. Table on stdout, JSON in bench-results/.
ROWS ?= 1000000
bench: venvs
	$(VENV)/bin/python -m bench $(foreach r,$(ROWS),--rows $(r)) $(BENCH_FLAGS)

# Extract throughput and peak memory at 1M rows (SQLite, and PostgreSQL on loopback when running).
bench-extract: $(VENV)/.installed
	$(VENV)/bin/python bench/bench_extract.py --rows $${ROWS:-1000000}

# Time and peak memory of the data-quality suites with ROWS legs in the raw journal and fct_calls.
bench-quality: $(VENV)/.installed
	$(VENV)/bin/python bench/bench_quality.py --rows $${ROWS:-1000000}

# Re-resolve the Superset environment from superset/requirements.in and pin it.
superset-lock:
	rm -rf /tmp/callsight-superset-lock && $(PYTHON) -m venv /tmp/callsight-superset-lock
	/tmp/callsight-superset-lock/bin/pip install $(PIP_FLAGS) -r superset/requirements.in
	( echo "# Pinned Superset environment: generated from requirements.in with 'pip freeze' in a fresh venv."; \
	  echo "# Regenerate: make superset-lock"; /tmp/callsight-superset-lock/bin/pip freeze ) > superset/requirements.txt

clean:
	rm -rf $(VENV) $(SUPERSET_VENV) dbt_project/target dbt_project/logs dbt_project/dbt_packages .pytest_cache

clean-demo:
	rm -rf $${CALLSIGHT_HOME:-var}
