# frontrun — one entry point for building, testing and demoing.
#   make demo   set everything up, then find a real race and explain it
#   make test   set everything up, then run every test on every interpreter
SHELL := /bin/bash
FRONTRUN_CACHE ?= $(HOME)/.cache/frontrun
export FRONTRUN_CACHE
TOOLS := $(FRONTRUN_CACHE)/tools/bin
WHEEL_DIR := target/wheels
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
DEMO_PYTHON ?= 3.12

# (cpython-tests-subset is part of make test; cpython-tests runs the full list)
.PHONY: cpython-tests-subset all setup pythons wheel install test rust-test ft-check python-test demo bench cpython-tests clean pip-install-check

all: test

pythons:
	scripts/pythons.sh

# One abi3 wheel serves every GIL interpreter 3.10..3.15 (see README "ABI strategy").
wheel: pythons
	rm -rf $(WHEEL_DIR)
	$(TOOLS)/maturin build --release --quiet -i $$(awk '$$1=="3.11"{print $$2}' $(FRONTRUN_CACHE)/pythons.txt) -o $(WHEEL_DIR)

install: wheel
	@while read -r ver interp venv; do \
	  $(TOOLS)/uv pip install --quiet --python $$venv/bin/python --reinstall --no-deps $(WHEEL_DIR)/*.whl || exit 1; \
	done < $(FRONTRUN_CACHE)/pythons.txt

setup: install

# The property tests draw their cases from this seed, so a run is reproducible (set it empty
# to draw new ones). The cases they once failed on are kept in tests/*.proptest-regressions.
PROPTEST_RNG_SEED ?= 1

rust-test:
	cargo fmt --check
	PROPTEST_RNG_SEED=$(PROPTEST_RNG_SEED) cargo test --quiet

# Free-threaded 3.13t/3.14t cannot be installed here; compile-check the bindings for them.
ft-check:
	@for v in 3.13 3.14; do \
	  echo "ft-check: PyO3 bindings for free-threaded $${v}t"; \
	  PYO3_CONFIG_FILE=$(CURDIR)/scripts/pyo3/free-threaded-$$v.cfg CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/ft-$$v \
	    cargo check --quiet --lib --features python || exit 1; \
	done

python-test: install
	$(FRONTRUN_CACHE)/tools/bin/python scripts/test_matrix.py

test: rust-test ft-check pip-install-check python-test cpython-tests-subset

demo: install
	$$(awk '$$1=="$(DEMO_PYTHON)"{print $$3}' $(FRONTRUN_CACHE)/pythons.txt)/bin/python -m frontrun.rewrite examples/bank.py

# CPython's regression tests with the test modules rewritten under policy `all`.
cpython-tests: install
	$(FRONTRUN_CACHE)/tools/bin/python scripts/cpython_regrtests.py

cpython-tests-subset: install
	$(FRONTRUN_CACHE)/tools/bin/python scripts/cpython_regrtests.py --subset

# Criterion (Rust) and the Python benchmark scripts; each prints ratios against a baseline
# measured in the same run.
bench: install
	FRONTRUN_BENCH_PYTHON=$$(awk '$$1=="$(DEMO_PYTHON)"{print $$2}' $(FRONTRUN_CACHE)/pythons.txt) cargo bench
	$(FRONTRUN_CACHE)/tools/bin/python benchmarks/run_all.py

clean:
	rm -rf target

# PEP 517 check: `pip install .` (maturin backend) into a fresh venv of every interpreter.
pip-install-check: pythons
	@while read -r ver interp venv; do \
	  tmp=$$(mktemp -d); \
	  $(TOOLS)/uv venv --quiet -p $$interp $$tmp/venv && \
	  $(TOOLS)/uv pip install --quiet --python $$tmp/venv/bin/python . && \
	  $$tmp/venv/bin/python -c "import frontrun._native as n, sys; print('pip install . ->', sys.version.split()[0], n.__file__.rsplit('/',1)[1])" \
	  || { rm -rf $$tmp; echo "pip install . failed on $$ver"; exit 1; }; \
	  rm -rf $$tmp; \
	done < $(FRONTRUN_CACHE)/pythons.txt
