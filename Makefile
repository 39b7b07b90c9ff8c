# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
# TORCH is the torch requirement; CI passes TORCH=torch==2.13.0 (a CPU build) to avoid a multi-GB CUDA wheel.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch
EXTRAS ?= dev,torch,gym,plot,progress,fast,tensorboard
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest fuzz bench clean robustness-doc

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# The main job, small: every arm (uniform, PER, the LaBER variants) on CartPole-v1, 3 seeds of 20k steps each
# with the agent's default settings (about 2 minutes on 2 cores).
DEMO_ARMS ?= uniform,uniform-large,per,laber-mean,laber-lazy,laber-max,per-laber
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/laber compare --env CartPole-v1 --arms $(DEMO_ARMS) --seeds 3 --steps 20000 --jobs 2 --out runs/demo
	@cat runs/demo/summary.md

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# The stateful fuzzer of tests/test_fuzz.py in its long profile: at least 10,000 call sequences (make test runs a
# short one). LABER_FUZZ_SEED=<int> changes the seed.
fuzz: $(STAMP)
	LABER_FUZZ=long $(BIN)/python -m pytest -q tests/test_fuzz.py

# docs/robustness.md, rendered from the malformed-call table of tests/robustness_table.py (test_robustness.py
# fails when it is out of date).
robustness-doc: $(STAMP)
	$(BIN)/python tests/robustness_table.py --write

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
