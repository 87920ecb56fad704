# The two commands of the README do all the set-up: `make demo` and `make test`.
VENV        ?= .venv
CHECKOV_ENV ?= .venv-checkov
PYTHON      ?= python3
PY          := $(VENV)/bin/python
BIN         := $(VENV)/bin
SCRIPTS     := $(wildcard jobs/scripts/*.sh)
PYDIRS      := infra jobs policy bench

.PHONY: install system-deps checkov-env demo test lint typecheck shellcheck pytest render policy bench clean

install: system-deps $(VENV)/.installed

system-deps:
	@bash tools/ensure-system-deps.sh

# pip is upgraded first: the old resolver backtracks for minutes on botocore.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# checkov pins an old boto3, so it lives in a venv of its own.
checkov-env: $(CHECKOV_ENV)/.installed
$(CHECKOV_ENV)/.installed: checkov-constraints.txt
	$(PYTHON) -m venv $(CHECKOV_ENV)
	$(CHECKOV_ENV)/bin/pip install -q --upgrade pip
	$(CHECKOV_ENV)/bin/pip install -q -c checkov-constraints.txt checkov
	touch $@

demo: install
	$(BIN)/pgbackup demo

test: install checkov-env lint typecheck shellcheck pytest

lint:
	$(BIN)/ruff check $(PYDIRS) tests
	$(BIN)/ruff format --check $(PYDIRS) tests

typecheck:
	$(BIN)/mypy $(PYDIRS)

shellcheck:
	shellcheck -x $(SCRIPTS)

pytest:
	CHECKOV=$(CURDIR)/$(CHECKOV_ENV)/bin/checkov $(BIN)/pytest -n 2 -q

render: install
	$(BIN)/pgbackup --stack staging render --out build/render/staging
	$(BIN)/pgbackup --stack production render --out build/render/production

policy: install
	$(BIN)/pgbackup --stack staging policy
	$(BIN)/pgbackup --stack production policy

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
