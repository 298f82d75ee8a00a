# Quickstart: `make demo` (a local mesh answering a prompt), `make test` and `make bench`.
# `make lab` boots board-like machines for the playbook (root; docs/lab.md), `make lab-down` stops them.
# Every target installs what it needs, idempotently, and skips what is already there.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODEL  ?= smollm2-135m-instruct-q4_1
# The same version the Ansible role builds on boards (llama_cpp_python_version).
LLAMA_CPP_VERSION ?= 0.3.36
PYTEST_ARGS ?=
LAB_BOARDS ?= 3
# Build flags of llama-cpp-python when set (scripts/ensure-llama-wheel.sh has the default).
ifdef LLAMA_CMAKE_ARGS
export LLAMA_CMAKE_ARGS
endif

.PHONY: setup mosquitto rabbitmq faketime venv model demo test faults bench lab lab-down clean

setup: mosquitto rabbitmq faketime venv model

mosquitto:
	@scripts/ensure-mosquitto.sh

# The clustered broker of the hub topology's tests and demo; its packaged service is never started.
rabbitmq:
	@scripts/ensure-rabbitmq.sh

# Runs an agent with its wall clock stepped (the clock-step fault test).
faketime:
	@scripts/ensure-faketime.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/ensure-llama-wheel.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	wheels=$$(scripts/ensure-llama-wheel.sh $(BIN)/python $(LLAMA_CPP_VERSION)) && \
	  $(BIN)/python -m pip install --quiet --force-reinstall --no-deps "$$wheels"/llama_cpp_python-*.whl
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

model: venv
	$(BIN)/edge-agent models fetch $(MODEL)

demo: setup
	$(BIN)/edge-agent demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fault matrix, long scenarios included; rewrites the table in docs/reliability.md.
faults: setup
	DMOA_RELIABILITY_TABLE=docs/reliability.md $(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

# The performance benchmarks (docs/performance.md, which it rewrites); BENCH_ARGS=--quick for a short run.
BENCH_ARGS ?=
bench: setup
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lab: setup
	$(BIN)/python -m lab up --boards $(LAB_BOARDS)

lab-down:
	$(PYTHON) -m lab down

clean:
	rm -rf $(VENV) .pytest_cache .mesh
