# The two commands: `make run` (set up + serve with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install install-run run test test-fast e2e screenshots fuzz bench lint migrate schema seed stop clean

# Two stamps: `make run` needs the app and the embedded servers (`local` extra); tests, lint and benches
# need the `dev` extra too (pytest, Playwright, ruff). The dev stamp implies the run stamp.
RUN_STAMP := $(VENV)/.installed-run-stamp
PIP := $(BIN)/pip install --quiet --disable-pip-version-check --no-compile -c constraints.txt
# --no-compile: pip would byte-compile every installed module (torch alone has thousands) up front, ~1/3 of
# the install; Python compiles what is imported, on first import, instead.

install: $(STAMP)

install-run: $(RUN_STAMP)

COMMA := ,

# torch first, pinned to the CPU build on this machine's disk: a bare "torch" would pull a multi-GB CUDA build.
# Each step says what it does, so a first run that takes a minute is not mistaken for a hang.
define install_steps
started=$$(date +%s); \
echo "[install] setting up .venv, once: about a minute with the packages cached, several minutes without"; \
test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || exit 1; \
echo "[install] 1/2 torch (CPU build)…"; \
$(PIP) torch==2.13.0 || exit 1; \
echo "[install] 2/2 the portal with extras [$(1)]: Django, Celery, psycopg, sentence-transformers…"; \
$(PIP) -e '.[$(1)]' || exit 1; \
echo "[install] done in $$(( $$(date +%s) - started )) s"
endef

$(STAMP): pyproject.toml constraints.txt
	@$(call install_steps,local$(COMMA)dev)
	@touch $(RUN_STAMP) $(STAMP)

$(RUN_STAMP): pyproject.toml constraints.txt
	@$(call install_steps,local)
	@touch $(RUN_STAMP)

run: install-run
	$(BIN)/python -m portal.launcher

# Three pytest-xdist workers on this 2-core machine (the suite mostly waits on live servers): 7 min 23 s for
# 2,969 tests (BENCHMARKS.md, "suite"); each worker has its own test database, Redis db and key prefix
# (portal/settings/test.py). `PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 3

test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

test-fast: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not e2e"

e2e: install
	$(BIN)/python -m pytest -m e2e

# The browser tests, leaving a full-page screenshot of every page walked in test-results/screenshots/.
screenshots: install
	PORTAL_SCREENSHOTS=1 $(BIN)/python -m pytest -m e2e

# Schemathesis over every API operation with a fresh random seed; `make test` runs the same test, derandomized, with 3.
FUZZ_EXAMPLES ?= 25
fuzz: install
	PORTAL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PORTAL_FUZZ_RANDOM=1 $(BIN)/python -m pytest tests/portal/test_openapi_fuzz.py -p no:cacheprovider -s -q --timeout=3600

bench: install
	$(PIP) -e '.[local,dev,bench]'
	$(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check .

migrate: install
	$(BIN)/python manage.py migrate

# After adding or editing a migration: rewrite the snapshot `make run` loads into an empty database.
schema: install
	$(BIN)/python manage.py schema_snapshot

seed: install
	$(BIN)/python manage.py seed_demo

stop: install
	$(BIN)/python -m portal.embedded stop

clean:
	rm -rf $(VENV) staticfiles
