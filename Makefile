# Quickstart: `make demo` (a local mesh answering a prompt) and `make test`.
# `make lab` boots board-like machines for the playbook (root; docs/lab.md), `make lab-down` stops them.
# Every target installs what it needs, idempotently, and skips what is already there.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODEL  ?= smollm2-135m-instruct-q4_1
PYTEST_ARGS ?=
LAB_BOARDS ?= 3

.PHONY: setup mosquitto venv model demo test lab lab-down clean

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

lab: setup
	$(BIN)/python -m lab up --boards $(LAB_BOARDS)

lab-down:
	$(PYTHON) -m lab down

clean:
	rm -rf $(VENV) .pytest_cache .mesh
