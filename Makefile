# Two commands for a fresh machine: `make up` (run the platform) and `make test` (run the suite).
VENV ?= .venv
PYTHON ?= python3.11
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up test test-quick lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[runner,frontend,local,dev]'
	@sh scripts/install-system-deps.sh
	@touch $(STAMP)

up: install
	$(VENV)/bin/leadersboard up

test: install
	$(PY) -m pytest -ra

test-quick: install
	$(PY) -m pytest -ra -m "not slow"

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
