# The front door: the same targets for a person and for CI.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SERVICES := registration matching notifications reporting
# Our own packages: installed editable, without dependencies (those come from the lock).
LOCAL    := shared $(addprefix services/,$(SERVICES)) cli
PACKAGES := $(addprefix -e ,$(LOCAL))
PIP    := PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --disable-pip-version-check
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

.PHONY: help install up test lint format lock manifests bench clean

help:  ## List the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements/lock.txt shared/pyproject.toml services/*/pyproject.toml cli/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or newer" \
	    "(or name one: make PYTHON=python3.12 ...)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "C2Future Match needs" \
	    "Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1) (choose one: make PYTHON=python3.11 ...)"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "$(PYTHON) cannot make a virtual" \
	    "environment (no venv or ensurepip module): on Debian or Ubuntu install python3-venv"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes --no-deps -r requirements/lock.txt
	$(PIP) --no-deps --no-build-isolation $(PACKAGES)
	@$(PY) -m pip check || { echo "A dependency above is not in requirements/lock.txt: run make lock"; exit 1; }
	touch $(STAMP)

# WeasyPrint loads Pango when it is imported. Without it (and without apt-get) everything runs
# except the brochure PDF, and this says so each time.
$(PDF_STAMP): $(STAMP)
	@if $(PY) -c 'import weasyprint' 2>/dev/null; then touch $@; else \
	  echo "WeasyPrint cannot load Pango; installing $(PDF_PACKAGES)"; \
	  $(call APT_INSTALL,$(PDF_PACKAGES)) && $(PY) -c 'import weasyprint' && touch $@ \
	  || echo "WARNING: no Pango, so the brochure PDF (reporting's /brochure.pdf) answers 503;" \
	      "everything else runs. Install $(PDF_PACKAGES) to have it."; \
	fi

$(SYSTEM_TOOLS):
	@echo "The tests need $(DEBIAN_PACKAGES) (Debian packages)"
	@$(call APT_INSTALL,$(DEBIAN_PACKAGES))

install: $(STAMP) $(PDF_STAMP) $(SYSTEM_TOOLS)  ## Create .venv with every package and tool, pinned; Chromium and Poppler for tests

up: $(STAMP) $(PDF_STAMP)  ## Run the whole platform on 127.0.0.1 with demo data, until Ctrl-C
	$(VENV)/bin/c2f up

# The suite in a process per core, at most two: one takes the tests on the shared platform, the
# other those that start servers of their own, and both the rest (tests/conftest.py: test_group).
TEST_PROCESSES ?= -n auto --maxprocesses 2

test: $(STAMP) $(PDF_STAMP) $(SYSTEM_TOOLS) lint  ## Lint, then run the whole test suite on its own embedded servers
	$(PY) -m pytest $(TEST_PROCESSES)

lint: $(STAMP)  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared/c2f_shared services/registration/c2f_registration \
	    services/matching/c2f_matching services/notifications/c2f_notifications \
	    services/reporting/c2f_reporting cli/c2f_cli tests bench

format: $(STAMP)  ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Every third-party package with the sha256 of each of its files (docs/operations.md), from the
# pyproject files, dev.txt and the versions in constraints.txt: lock.txt for .venv, and one lock
# per image (deploy/Dockerfile). A new dependency gets its newest version; constraints.txt is
# then rewritten from lock.txt. To upgrade a package, change or delete its line there first.
LOCK = $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--custom-compile-command "make lock" -c requirements/constraints.txt \
	$(foreach p,$(notdir $(LOCAL)),--no-emit-package c2f-$(p))

lock:  ## Resolve requirements/lock*.txt again, with hashes (after changing a dependency)
	@test -x $(VENV)/bin/uv || { echo "make lock runs uv from $(VENV): make install first"; exit 1; }
	$(LOCK) requirements/lock.in requirements/dev.txt -o requirements/lock.txt
	for service in $(SERVICES); do \
	  printf -- '-e ./shared\n-e ./services/%s\nsetuptools\nwheel\n' $$service \
	    | $(LOCK) - -o requirements/lock-$$service.txt || exit 1; \
	done
	{ echo "# Every third-party version, as in requirements/lock.txt (which adds the hashes): written"; \
	  echo "# by make lock. Edit a line (or delete it) and run make lock to upgrade a package."; \
	  sed -n 's/^\([A-Za-z0-9_.-]*==[^ ]*\).*/\1/p' requirements/lock.txt; } > requirements/constraints.new
	cmp -s requirements/constraints.new requirements/constraints.txt \
	  && rm requirements/constraints.new || mv requirements/constraints.new requirements/constraints.txt

# An environment's Kubernetes manifests with your registry's images (the overlays name a
# placeholder registry, set-your-registry.invalid), on standard output:
#   make -s manifests OVERLAY=production REGISTRY=ghcr.io/acme TAG=0.2.0 | kubectl apply -f -
OVERLAY ?= production
PLACEHOLDER_REGISTRY := set-your-registry.invalid
RENDER := deploy/kubernetes/.render

manifests:  ## Render deploy/kubernetes/overlays/$(OVERLAY) with REGISTRY= (required) and TAG= (else the overlay's)
	@test -n "$(REGISTRY)" || { echo "make manifests needs REGISTRY=<your registry>, e.g." \
	    "REGISTRY=ghcr.io/acme (images are REGISTRY/c2future-match/<service>)" >&2; exit 1; }
	@test -f deploy/kubernetes/overlays/$(OVERLAY)/kustomization.yaml || { echo "no overlay" \
	    "deploy/kubernetes/overlays/$(OVERLAY) (OVERLAY=$$(ls deploy/kubernetes/overlays | grep -v '\.md$$' | paste -sd'|'))" >&2; exit 1; }
	@rm -rf $(RENDER) && mkdir -p $(RENDER)
	@{ echo "resources: [../overlays/$(OVERLAY)]"; echo "images:"; \
	  for service in $(SERVICES); do \
	    echo "  - name: $(PLACEHOLDER_REGISTRY)/c2future-match/$$service"; \
	    echo "    newName: $(REGISTRY)/c2future-match/$$service"; \
	    [ -z "$(TAG)" ] || echo "    newTag: \"$(TAG)\""; \
	  done; } > $(RENDER)/kustomization.yaml
	@kubectl kustomize $(RENDER); status=$$?; rm -rf $(RENDER); exit $$status

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
