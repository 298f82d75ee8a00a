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

# llama-cpp-python is compiled from source. A native build (-march=native) uses every instruction
# the CPU advertises; a virtual machine may advertise AMX without enabling it, and the build then
# dies at its first AMX instruction. So the default is a portable build (AVX2 on x86-64);
# `make setup LLAMA_CMAKE_ARGS=` builds for this CPU. A change of flags rebuilds it (pip's wheel
# cache does not know the flags, hence --no-cache-dir).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=off
LLAMA_STAMP := $(VENV)/.llama-cpp-$(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | md5sum | cut -c1-8)

$(LLAMA_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-cache-dir --force-reinstall \
		--no-deps 'llama-cpp-python>=0.2.90'
	rm -f $(VENV)/.llama-cpp-*
	touch $@

$(VENV)/.installed: pyproject.toml $(LLAMA_STAMP)
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
