# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
# TORCH is the torch requirement; CI passes TORCH=torch==2.13.0 (a CPU build) to avoid a multi-GB CUDA wheel.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch
# What each command installs: the demo only what `laber compare` needs; the tests everything they exercise.
DEMO_EXTRAS ?= torch,gym,plot,progress
TEST_EXTRAS ?= dev,torch,gym,plot,progress,fast,tensorboard,docs,ray,minatar
DOCS_EXTRAS ?= docs
BIN := $(VENV)/bin
# One stamp per install step, so both commands work in either order on one venv. TEST_EXTRAS holds every
# extra of DEMO_EXTRAS and DOCS_EXTRAS, so the test install also stamps theirs.
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: demo demo-setup test lint typecheck pytest package-check docs fuzz bench clean robustness-doc results

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[$(DEMO_EXTRAS)]"
	@touch $(DEMO_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[$(TEST_EXTRAS)]"
	@touch $(TEST_STAMP) $(DEMO_STAMP) $(DOCS_STAMP)

$(DOCS_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(DOCS_EXTRAS)]"
	@touch $(DOCS_STAMP)

# The demo's set-up alone (make demo runs it first when needed).
demo-setup: $(DEMO_STAMP)

# The main job, small: every arm (uniform, PER, the LaBER variants) on CartPole-v1, 3 seeds of 10k steps each
# with the agent's default settings: 21 runs, two at a time (see the README for the measured time).
DEMO_ARMS ?= uniform,uniform-large,per,laber-mean,laber-lazy,laber-max,per-laber
demo: $(DEMO_STAMP)
	rm -rf runs/demo
	$(BIN)/laber compare --env CartPole-v1 --arms $(DEMO_ARMS) --seeds 3 --steps 10000 --jobs 2 --out runs/demo
	@cat runs/demo/summary.md

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks examples docs/results
	$(BIN)/ruff format --check src tests benchmarks examples docs/results

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

# The distributions: python -m build makes the sdist and the wheel (from the sdist), twine check accepts both, the
# sdist holds what it must and nothing it must not, and the wheel, installed into a clean venv with numpy only,
# imports and answers `laber --version` (tests/package_check.py).
package-check: $(TEST_STAMP)
	$(BIN)/python tests/package_check.py

# The documentation site (mkdocs.yml, pages under docs/, the API reference from the docstrings) into site/, built
# strictly: a warning, a broken link or anchor, an unknown cross-reference or a formula that does not render
# fails it (a few seconds). NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: lint typecheck pytest package-check docs

# The stateful fuzzer of tests/test_fuzz.py in its long profile: at least 10,000 call sequences (make test runs a
# short one). LABER_FUZZ_SEED=<int> changes the seed.
fuzz: $(TEST_STAMP)
	LABER_FUZZ=long $(BIN)/python -m pytest -q tests/test_fuzz.py

# docs/robustness.md, rendered from the malformed-call table of tests/robustness_table.py (test_robustness.py
# fails when it is out of date).
robustness-doc: $(TEST_STAMP)
	$(BIN)/python tests/robustness_table.py --write

# The README's campaign tables, every campaign's page and plot, and the MinAtar aggregate, re-made from the
# committed runs (docs/results/*/run-dirs); tests/test_results_doc.py fails when the README's tables are stale.
results: $(TEST_STAMP)
	$(BIN)/python docs/results/publish.py --figures

# The benchmarks side by side with the peers (installed for benchmarking only), written to docs/benchmarks.md with
# the figures docs/figures/bench-*.png (about 15 minutes on the 2-core machine). `benchmarks/run.py --quick` is a
# smoke test of the whole suite (tests/test_benchmarks.py runs it).
bench: $(TEST_STAMP)
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/run.py --write docs/benchmarks.md --figures docs/figures

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
