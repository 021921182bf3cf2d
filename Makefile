# The README's two commands are `make book` and `make test`. Both create the isolated
# environment in .venv on first use and reuse it afterwards: the install is redone only
# when pyproject.toml changes (the stamp file below records the last install).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.siautil-installed
# torch reads these: one thread per process and passive waiting avoid a ~10x collapse
# when another process shares the cores (measured on a 2-core machine).
export OMP_WAIT_POLICY ?= PASSIVE
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1

.PHONY: setup book test ci chapter clean-book

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_env.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup_env.sh
	touch $(STAMP)

## Command one: sample the default profile's runs (resumable), execute every chapter with
## papermill, and build the book into _build/html.
book: $(STAMP)
	$(BIN)/siautil grid --profile default

## Command two: the test suite.
test: $(STAMP)
	$(BIN)/python -m pytest

## One chapter with overridden parameters, e.g.
##   make chapter NAME=theory ARGS="-p n_joints 20"
chapter: $(STAMP)
	$(BIN)/siautil book --chapter $(NAME) $(ARGS)

clean-book:
	rm -rf _build book/*.ipynb
