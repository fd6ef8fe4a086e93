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

# The Kubernetes scenarios (marked k8s) against the cluster of $KUBECONFIG, in a namespace of
# their own (docs/kubernetes.md, "Tests"). Skips, with their reasons, are listed at the end.
test-k8s: install
	@test -n "$$KUBECONFIG" || { echo "test-k8s runs against a real cluster: set KUBECONFIG" >&2; exit 2; }
	$(BIN)/python -m pytest -p no:cacheprovider -m k8s -rs tests/k8s $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/serving_latency.py
	$(BIN)/python bench/router.py

clean:
	rm -rf $(VENV) var
