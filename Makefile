# The front door: the same targets for a person and for CI.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PACKAGES := -e shared -e services/registration -e services/matching \
            -e services/notifications -e services/reporting -e cli
STAMP  := $(VENV)/.installed
# Browser tests drive Debian's Chromium with Playwright (no browser is downloaded); PDF tests
# read pages with Poppler (pdftotext, pdftoppm). WeasyPrint uses the Pango that comes with them.
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/pdftoppm
DEBIAN_PACKAGES := chromium poppler-utils
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install up test lint format bench clean

help:  ## List the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements/constraints.txt requirements/dev.txt shared/pyproject.toml \
          services/*/pyproject.toml cli/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt \
	    setuptools wheel
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation \
	    -c requirements/constraints.txt $(PACKAGES) -r requirements/dev.txt
	touch $(STAMP)

$(SYSTEM_TOOLS):
	@command -v apt-get >/dev/null || { echo "The tests need $(DEBIAN_PACKAGES) (Debian packages)"; exit 1; }
	$(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) >/dev/null \
	    || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) >/dev/null; }

install: $(STAMP) $(SYSTEM_TOOLS)  ## Create .venv with every package and tool, pinned; Chromium and Poppler for tests

up: $(STAMP) $(SYSTEM_TOOLS)  ## Run the whole platform on 127.0.0.1 with demo data, until Ctrl-C
	$(VENV)/bin/c2f up

test: $(STAMP) $(SYSTEM_TOOLS) lint  ## Lint, then run the whole test suite on its own embedded servers
	$(PY) -m pytest

lint: $(STAMP)  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared/c2f_shared services/registration/c2f_registration \
	    services/matching/c2f_matching services/notifications/c2f_notifications \
	    services/reporting/c2f_reporting cli/c2f_cli tests bench

format: $(STAMP)  ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)  ## Run the benchmarks under bench/
	$(PY) bench/flow.py
	$(PY) bench/registration.py
	$(PY) bench/matching_scale.py
	$(PY) bench/eval_matching.py
	$(PY) bench/scheduling.py
	$(PY) bench/notifications.py
	$(PY) bench/reporting.py
	$(PY) bench/load.py
	$(PY) bench/crashes.py

clean:  ## Remove the virtual environment and local stack data
	rm -rf $(VENV) .c2f
