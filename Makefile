# Two set-up commands for a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are installed together from the index (torchvision wheels are built
# against the CUDA build of torch; that build runs fine on a CPU).
TORCH_PINS := torch==2.14.1 torchvision==0.29.2

.PHONY: install demo test lint bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_PINS)
	$(VENV)/bin/pip install -q -e ".[dev]" $(TORCH_PINS)
	touch $@

demo: install
	WANDB_MODE=$${WANDB_MODE:-offline} $(PY) scripts/train.py

test: install
	$(VENV)/bin/ruff check src tests scripts benchmarks
	WANDB_MODE=offline $(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests scripts benchmarks

bench: install
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/explain.py
	$(PY) benchmarks/metrics.py
