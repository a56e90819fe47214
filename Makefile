# The front door: the same targets for a person and for CI.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PACKAGES := -e shared -e services/registration -e services/matching \
            -e services/notifications -e services/reporting -e cli
STAMP  := $(VENV)/.installed
# The platform itself needs Pango (WeasyPrint's PDF brochures) and nothing else from the system.
PDF_STAMP := $(VENV)/.pdf-libraries
PDF_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
# Only the tests need these: browser tests drive Debian's Chromium with Playwright (no browser
# is downloaded); PDF tests read pages with Poppler (pdftotext, pdftoppm).
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/pdftoppm
DEBIAN_PACKAGES := chromium poppler-utils
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# apt-get with its messages shown; once more after refreshing stale package lists.
APT_INSTALL = ( command -v apt-get >/dev/null \
	  || { echo "apt-get not found: install $(1) with your system's package manager"; exit 1; }; \
	$(SUDO) apt-get install -y -qq --no-install-recommends $(1) \
	  || { echo "apt-get install failed; refreshing the package lists and trying again"; \
	       $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(1); } )

.PHONY: help install up test lint format bench clean

help:  ## List the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements/constraints.txt requirements/dev.txt shared/pyproject.toml \
          services/*/pyproject.toml cli/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or newer" \
	    "(or name one: make PYTHON=python3.12 ...)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "C2Future Match needs" \
	    "Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1) (choose one: make PYTHON=python3.11 ...)"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "$(PYTHON) cannot make a virtual" \
	    "environment (no venv or ensurepip module): on Debian or Ubuntu install python3-venv"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt \
	    setuptools wheel
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation \
	    -c requirements/constraints.txt $(PACKAGES) -r requirements/dev.txt
	touch $(STAMP)

# WeasyPrint loads Pango when it is imported. Without it (and without apt-get) everything runs
# except the brochure PDF, and this says so each time.
$(PDF_STAMP): $(STAMP)
	@if $(PY) -c 'import weasyprint' 2>/dev/null; then touch $@; else \
	  echo "WeasyPrint cannot load Pango; installing $(PDF_PACKAGES)"; \
	  $(call APT_INSTALL,$(PDF_PACKAGES)) && $(PY) -c 'import weasyprint' && touch $@ \
	  || echo "WARNING: no Pango, so the brochure PDF (reporting's /brochure.pdf) will fail;" \
	      "everything else runs. Install $(PDF_PACKAGES) to have it."; \
	fi

$(SYSTEM_TOOLS):
	@echo "The tests need $(DEBIAN_PACKAGES) (Debian packages)"
	@$(call APT_INSTALL,$(DEBIAN_PACKAGES))

install: $(STAMP) $(PDF_STAMP) $(SYSTEM_TOOLS)  ## Create .venv with every package and tool, pinned; Chromium and Poppler for tests

up: $(STAMP) $(PDF_STAMP)  ## Run the whole platform on 127.0.0.1 with demo data, until Ctrl-C
	$(VENV)/bin/c2f up

test: $(STAMP) $(PDF_STAMP) $(SYSTEM_TOOLS) lint  ## Lint, then run the whole test suite on its own embedded servers
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
