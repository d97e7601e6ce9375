# The two commands: `make run` (set up + serve with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-fast e2e fuzz bench lint migrate schema seed stop clean

install: $(STAMP)

# torch first, pinned to the CPU build on this machine's disk: a bare "torch" would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[local,dev]'
	@touch $(STAMP)

run: install
	$(BIN)/python -m portal.launcher

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not e2e"

e2e: install
	$(BIN)/python -m pytest -m e2e

# Schemathesis over every API operation with a fresh random seed; `make test` runs the same test, derandomized, with 3.
FUZZ_EXAMPLES ?= 25
fuzz: install
	PORTAL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PORTAL_FUZZ_RANDOM=1 $(BIN)/python -m pytest tests/portal/test_openapi_fuzz.py -p no:cacheprovider -s -q --timeout=3600

bench: install
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
