# pmbot: `make run` starts the embedded default, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint typecheck pytest bench lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

run: venv
	$(BIN)/pmbot migrate
	$(BIN)/pmbot serve

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

# Tests run in one worker process per core (at most four); an idle worker takes tests
# queued for a busy one.
pytest: venv
	$(BIN)/pytest -q -n auto --maxprocesses=4 --dist worksteal

test: lint typecheck pytest

bench: venv
	$(BIN)/python bench/ack_latency.py --quick

# Re-pin every dependency after changing pyproject.toml.
lock: venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^pmbot' > requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
