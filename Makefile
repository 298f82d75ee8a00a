# Quickstart: `make demo` (a local mesh answering a prompt) and `make test`.
# Every target installs what it needs, idempotently, and skips what is already there.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODEL  ?= smollm2-135m-instruct-q4_1
PYTEST_ARGS ?=

.PHONY: setup mosquitto venv model demo test clean

setup: mosquitto venv model

mosquitto:
	@scripts/ensure-mosquitto.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

model: venv
	$(BIN)/edge-agent models fetch $(MODEL)

demo: setup
	$(BIN)/edge-agent demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mesh
