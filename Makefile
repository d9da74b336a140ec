# The two commands a newcomer needs: `make demo` and `make test`. Both do all set-up themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OT     := $(BIN)/ordertrack

.PHONY: help setup system-deps stack-up stack-down demo compose-demo compose-down lint test unit bench-producer bench-landing bench-marts bench-e2e chaos clean

help:
	@echo "make demo   - set up, start the local stack, generate a workload, run the main job (run-once), show the result and the dq checks"
	@echo "make test   - set up, run make lint, start the local stack, run the whole test suite (unit + integration)"
	@echo "make lint   - ruff and mypy only"
	@echo "make unit   - only the fast tests that need no service"
	@echo "make stack-down - stop the local stack"
	@echo "make compose-demo - the same pipeline as containers: build the images, docker-compose up, a demo workload, the marts' counts"
	@echo "make compose-down - remove the compose stack (containers, network, volumes) and stop the engine it started"
	@echo "make bench-e2e - the whole path on a generated history (1M rows) and each hop alone: rows/s, ratios, peak memory"

system-deps:
	@scripts/install-system-deps.sh

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,mysqlclient]'
	@touch $@

setup: system-deps $(BIN)/.installed

stack-up: setup
	$(OT) stack up

stack-down:
	@[ -x $(OT) ] && $(OT) stack down || true

demo: stack-up
	$(OT) topics create
	$(OT) generate --history-days 0.25 --orders-per-minute 30 --seed 42
	$(OT) source counts
	$(OT) run-once
	$(OT) lag
	$(OT) dq run || echo "open data-quality exceptions: see ordertrack exceptions list"

# The pipeline as containers (docker-compose.yml) on a Docker engine found running or started here.
compose-demo: setup
	$(OT) stack compose demo

compose-down:
	@if [ -x $(OT) ]; then $(OT) stack compose down; fi

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# The suite needs Kafka Connect too (binlog CDC tests); `make demo` does not.
test: setup lint
	$(OT) stack up --connect
	$(BIN)/pytest

unit: setup
	$(BIN)/pytest -m "not integration"

bench-producer: stack-up
	$(BIN)/python bench/producer_throughput.py --rows 1000000

bench-landing: stack-up
	$(BIN)/python bench/landing_throughput.py --rows 500000

bench-e2e: stack-up
	$(BIN)/python bench/end_to_end.py --rows 1000000

bench-marts: setup
	$(BIN)/python bench/mart_merge.py --mart-rows 1000000 10000000 --batch 200000

# The fault harness on its own private stack (other ports, .stack/chaos): `make chaos DURATION=30m`.
chaos: setup
	$(BIN)/python -m bench.chaos --duration $(or $(DURATION),30m)

clean: stack-down
	rm -rf .stack $(VENV)
