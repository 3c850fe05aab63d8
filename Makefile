# Two commands for a fresh machine: `make up` (run the platform) and `make test` (run the suite).
VENV ?= .venv
PYTHON ?= python3.11
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up test test-slow test-all lint bench clean

install: $(STAMP)

# The system packages too: bubblewrap for the job sandbox, and Chromium with its fonts for the web tests, so
# that `make test` on a fresh machine runs the whole suite, as CI does (.ci/run is only `make test` + lint).
$(STAMP): pyproject.toml scripts/install-system-deps.sh scripts/install-browser.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[runner,frontend,local,dev]'
	@sh scripts/install-system-deps.sh
	@bash scripts/install-browser.sh
	@touch $(STAMP)

up: install
	$(VENV)/bin/leadersboard up

# `make test` runs everything but the suites marked slow (whole-stack chaos, hostile jobs, benchmarks through
# the stack, browser tours of MLflow): about 20 minutes on 2 cores. CI (.ci/run) runs `make test-slow` too.
test: install
	$(PY) -m pytest -ra -m "not slow" --durations=15

test-slow: install
	$(PY) -m pytest -ra -m slow --durations=15

test-all: install
	$(PY) -m pytest -ra --durations=25

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The quick benches of bench/README.md (a few minutes; they start their own stack). The 1 GiB upload
# (bench/upload_throughput.py) and the padim runner overhead take much longer: run those by hand.
bench: install
	$(PY) bench/dispatch.py latency --jobs 200
	$(PY) bench/dispatch.py throughput --events 500
	$(PY) bench/runner_overhead.py --repeat 5

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
