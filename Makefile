# qrpc developer commands.  Every target builds .venv from scratch when needed,
# so `make test` and `make demo` work on a fresh machine with only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml plugins/*/pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: install demo test style types imports pytest bench bench-full fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	for p in plugins/*/; do if [ -f "$$p/pyproject.toml" ]; then $(BIN)/python -m pip install --quiet -e "$$p[test]" || exit 1; fi; done
	touch $@

demo: install
	$(BIN)/python examples/demo.py

style: install
	$(BIN)/ruff check src tests benchmarks examples plugins
	$(BIN)/ruff format --check src tests benchmarks examples plugins

types: install
	$(BIN)/mypy

imports: install  # the architecture contract (pyproject.toml [tool.importlinter])
	$(BIN)/lint-imports

pytest: install
	PYTHONASYNCIODEBUG=1 $(BIN)/python -m pytest tests plugins $(PYTEST_ARGS)

test: style types imports pytest

bench: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks --quick --out benchmarks/results

bench-full: install
	$(BIN)/python -m pip install --quiet -e ".[bench,bench-alternatives]"
	$(BIN)/python -m benchmarks --out benchmarks/results

# Coverage-guided fuzzing (tests/fuzz): each target for FUZZ_SECONDS, seeded from the
# checked-in corpus; new inputs and crashes go to FUZZ_DIR, never to tests/fuzz/corpus.
FUZZ_SECONDS ?= 60
FUZZ_DIR ?= $(or $(TMPDIR),/tmp)/qrpc-fuzz

fuzz: install
	$(BIN)/python -m pip install --quiet -e ".[fuzz]"
	for t in decoder hello link; do \
		mkdir -p $(FUZZ_DIR)/$$t/new $(FUZZ_DIR)/$$t/artifacts && \
		$(BIN)/python -m tests.fuzz.run $$t -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=$(FUZZ_DIR)/$$t/artifacts/ \
			$(FUZZ_DIR)/$$t/new tests/fuzz/corpus/$$t || exit 1; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
