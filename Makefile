# Two commands do all set-up on a fresh machine:
#   make run    create .venv, install babi-dnc, then run the main job (copy-task sanity check, a short
#               training run with live progress, the 20-task report of the shipped DNC and LSTM, a story)
#   make test   create .venv, install babi-dnc with its test tools, then lint and run the whole test suite
#               (the tests of the real files and the shipped models run where DATA finds the bAbI folder)
# Options: PYTHON=python3.11  TORCH="torch==2.13.0"  DATA=/path/to/tasks_1-20_v1-2 (default: $BABI_DNC_DATA,
# then a local ../shared copy if there is one, else the Hugging Face Hub).

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(or $(BABI_DNC_DATA),$(wildcard ../shared/data/babi/tasks_1-20_v1-2))
DATA_OPT := $(if $(DATA),--data-dir $(DATA),)
RUNS ?= runs

.PHONY: setup run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps dnc==1.1.0  # the peer for `bench --vs-peer` (its flann need is optional)
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/babi-dnc copy --out $(RUNS)/copy --restart  # a fresh check each time
	$(BIN)/babi-dnc train --model dnc --preset small --set en-10k --tasks 1 $(DATA_OPT) --max-minutes 6 --out $(RUNS)/dnc-small-t1 --resume
	$(BIN)/babi-dnc eval pretrained:dnc pretrained:lstm $(DATA_OPT) --report $(RUNS)/report
	$(BIN)/babi-dnc chat pretrained:dnc --story stories/02-two-supporting-facts.txt

test: setup
	$(BIN)/ruff check .
	BABI_DNC_DATA="$(DATA)" $(BIN)/python -m pytest -q  # the real-data tests find DATA (tests/conftest.py)

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
