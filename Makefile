# One-line aliases; CI calls the same targets. Every target creates the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo run test test-compose lint bench-load bench-api reliability scale-up scale-down bench-scale clean

$(STAMP): solution/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'solution[test]'
	touch $(STAMP)

demo: $(STAMP)  ## embedded PostgreSQL + bundled demo data, served on http://127.0.0.1:5000
	$(BIN)/movies demo

run: $(STAMP)  ## serve whatever data is loaded
	$(BIN)/movies serve

test: $(STAMP)  ## the whole suite on real PostgreSQL (embedded unless DATABASE_URL is set)
	solution/scripts/system-packages.sh
	$(BIN)/ruff check solution
	$(BIN)/ruff format --check solution
	cd solution && ../$(BIN)/pytest

test-compose: $(STAMP)  ## the integration tests against the compose db service (needs Docker)
	cd solution && ../$(BIN)/pytest --compose tests/integration

lint: $(STAMP)
	$(BIN)/ruff check solution && $(BIN)/ruff format --check solution

bench-load: $(STAMP)  ## scale 1.0 synthetic load: wall seconds and peak RSS
	$(BIN)/python solution/bench/bench_load.py

bench-api: $(STAMP)  ## requests/s and p99 per query shape against the framework's ceiling
	$(BIN)/python solution/bench/bench_api.py

reliability: $(STAMP)  ## reload under traffic, killed loads, corrupt input, DB restart, sustained load, caches, slow exports
	$(BIN)/python solution/bench/reliability.py

scale-up: $(STAMP)  ## primary + 2 streaming replicas, pgbouncers, 2 API replicas, nginx, redis (.data/scale)
	$(BIN)/python solution/scale/topology.py up

scale-down:  ## stop every process scale-up started (its data stays in .data/scale)
	-$(BIN)/python solution/scale/topology.py down

bench-scale: $(STAMP)  ## the scale-out topology under load: spread, cache, reload, failures, limits
	$(BIN)/python solution/scale/bench_scale.py

clean: scale-down  ## stop the embedded database, remove the venv and every local data folder
	-$(BIN)/movies stop-db
	rm -rf $(VENV) .data
