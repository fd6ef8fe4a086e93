# The two commands of the README: `make demo` runs the product, `make test` runs every test.
# Both install what they need into .venv first (Python 3.11+ is the only prerequisite).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: install demo test test-k8s lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m demo $(ARGS)

test: install
	$(BIN)/python -m tests.run

test-k8s: install
	$(BIN)/python -m pytest -m k8s tests/k8s

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/serving_latency.py
	$(BIN)/python bench/router.py

clean:
	rm -rf $(VENV) var
