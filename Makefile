# Two entry points (see README): `make demo` runs the main job, `make test` runs the checks (CI).
# `make test-fast` is the edit loop: lint and the tests not marked slow or browser, no installs.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: setup browser demo test test-fast lint

setup:
	$(PIP) install -e ".[dev]"

browser:
	bash .ci/install_browser.sh

demo: setup
	lsms demo --out runs/demo --overwrite

lint:
	$(PYTHON) -m ruff check src tests benchmarks

test: setup browser lint
	$(PYTHON) -m pytest

test-fast: lint
	$(PYTHON) -m pytest -m "not slow and not browser"
