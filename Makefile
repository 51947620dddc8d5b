# Two commands for a fresh machine: `make demo` runs a rollout on the embedded simulator,
# `make test` runs the checks and the tests. Each sets up what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: demo test lint typecheck unit clean bench

$(STAMP): pyproject.toml requirements.txt requirements-core.txt requirements-dev.txt requirements-cli.txt \
		requirements-learning.txt requirements-report.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tools,dev]'
	touch $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded): installed only when
# missing, and the package lists refreshed first only when apt knows no candidate for it.
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	apt-cache policy chromium | grep -q 'Candidate: [0-9]' || apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

# Azurite (the Table storage emulator the store tests start on a free port), from package-lock.json
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/shadow-rollout simulate

lint: $(STAMP)
	$(BIN)/ruff check .

# The trainer app is checked on its own: its module is also named function_app.
typecheck: $(STAMP)
	$(BIN)/mypy shared functions function_app.py
	$(BIN)/mypy trainer/function_app.py

test: lint typecheck $(NODE_STAMP) $(CHROMIUM)
	$(BIN)/pytest

# The committed benchmark (bench/results/): the held-out families (never trained or validated on), then the
# scale runs. About 20 minutes on 2 shared cores.
bench: $(STAMP)
	$(BIN)/shadow-rollout bench --scenarios bench/heldout-families --strategies all --seeds 1 --good-seeds 40 \
		--good-seed-strategies shadow-predictive --out bench/results/heldout/bench.json.gz \
		--report bench/results/heldout/report
	$(BIN)/shadow-rollout bench-scale --out bench/results/scale.json
	$(BIN)/shadow-rollout bench-import --out bench/results/import.json

clean:
	rm -rf $(VENV) node_modules tests/output .pytest_cache .mypy_cache .ruff_cache *.egg-info
