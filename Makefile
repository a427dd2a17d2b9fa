# The two set-up commands of the README: `make demo` and `make test`.
# Both create the virtualenv at .venv and install what they need themselves.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
VENV_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
BUNDLE := static/dist/mesh-viewer.js static/dist/reading-viewer.js
TEST_VAR_DIR := $(CURDIR)/var/test
PYTEST_ARGS ?=

.PHONY: demo test install frontend lint format clean

install: $(VENV_STAMP) $(BUNDLE)

$(VENV_STAMP): pyproject.toml $(wildcard requirements-peers.txt)
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU wheel from this machine's disk.
	$(PIP) install --quiet -e '.[dev]'
	if [ -s requirements-peers.txt ]; then $(PIP) install --quiet --no-deps -r requirements-peers.txt; fi
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(BUNDLE): $(NPM_STAMP) $(wildcard frontend/*.js)
	npm run -s build

frontend: $(BUNDLE)

demo: install
	$(PY) manage.py demo

test: install
	@mkdir -p $(TEST_VAR_DIR)
	STUDYAPP_VAR_DIR=$(TEST_VAR_DIR) $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var/test .pytest_cache static/dist
