# emotune: `make quickstart` (install, then the main job on the built-in corpus) and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := ffmpeg espeak-ng sox chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup apt test quickstart clean

setup: apt $(STAMP)

# System tools, installed only when one is missing (so a second `make setup` takes no time).
apt:
	@missing=""; for c in ffmpeg espeak-ng sox chromium; do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; fi

# The virtual environment is rebuilt only when a requirements file changes.
$(STAMP): requirements.txt requirements-nodeps.txt requirements-ray.txt pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (emotune needs Python 3.11)"; exit 1; }
	[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the CPU build, so nothing later can pull a CUDA torch
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q -r requirements-ray.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

quickstart: setup
	$(BIN)/emotune quickstart

clean:
	rm -rf $(VENV) runs .pytest_cache
