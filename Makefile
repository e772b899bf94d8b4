# The two commands a new user needs are `make run` and `make test`; each installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.PHONY: help deps run demo test lint bench soak clean

help:
	@echo "make run    local host + Azurite + simulated Partner Center and Dynamics 365 on http://127.0.0.1:7071"
	@echo "            (make run CRM=salesforce: the same against a simulated Salesforce org)"
	@echo "make demo   scripted scenario in both directions; exits 0 only if everything converged (CRM=salesforce too)"
	@echo "make test   the whole test suite (unit, integration, end to end)"
	@echo "make lint   ruff"
	@echo "make bench  calls, latency, throughput, storage operations, first share, backfill; both CRMs (CRM=, ARGS=--quick)"
	@echo "make soak   300 referrals under ~30% injected faults; ARGS=--crash also kill -9s the host once"

$(STAMP_PY): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: $(STAMP_PY) $(STAMP_NODE)

# CRM=salesforce points the sandbox at the simulated Salesforce org instead of Dynamics 365.
CRM ?= dynamics

run: deps
	$(PY) -m sandbox.run --crm $(CRM)

demo: deps
	$(PY) -m sandbox.demo --crm $(CRM)

lint: $(STAMP_PY)
	$(PY) -m ruff check .

test: deps lint
	$(PY) -m pytest

# Both CRMs unless CRM= is given on the command line; ARGS=--quick for a smaller run, ARGS="--only calls".
bench: deps
	$(PY) -m bench.run --crm $(if $(filter command line,$(origin CRM)),$(CRM),both) $(ARGS)

soak: deps
	$(PY) -m bench.soak $(ARGS)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .sandbox
