"""The generated PE against the golden model, bit for bit: the TB, its cocotb
tests (run inside the simulator, module ``fixar.tb.test_pe``) and the pytest
entries that build the PE and run them (Verilator and Icarus).

Environment of the cocotb tests (besides :mod:`fixar.tb.base`'s):
FIXAR_VECTORS (random vectors per mode, default 100 000), FIXAR_BENCH_JSON
(where figures are appended).
"""
from __future__ import annotations

import dataclasses
import os
import time

import cocotb
import numpy as np
import pytest
from cocotb import Param

from fixar.config import MULTIPLIERS, PEMode, load
from fixar.golden.fixed import to_unsigned
from fixar.golden.pe import pe_trace
from fixar.sim.rtl import generated, run_module, run_mutated, shipped_rtl
from fixar.tb.base import BenchTB
from fixar.tb.figures import record
from fixar.tb.pe_vectors import concat, corners, random_trace

BENCH = "fixar.tb.test_pe"


class TB(BenchTB):
    """Drives one input per cycle on falling edges and samples outputs there."""

    IDLE = ("mode", "acc_en", "clear", "a", "w")
    RESET_EDGES = 3

    def __init__(self, dut):
        super().__init__(dut)
        self.pe = self.cfg.pe
        self.vectors = int(os.environ.get("FIXAR_VECTORS", "100000"))
        self.stochastic = self.pe.out.rounding == "stochastic"
        if self.stochastic:   # the random words exist only on a stochastically rounding PE
            self.IDLE = (*self.IDLE, "rnd_lo", "rnd_hi")

    async def run(self, trace: dict[str, np.ndarray], label: str) -> None:
        """Drive ``trace`` (already reset), compare every output, record speed."""
        dut, cfg, lat = self.dut, self.pe, self.latency
        n = len(trace["a"])
        exp_lo, exp_hi = pe_trace(cfg, trace["mode"], trace["acc_en"], trace["clear"],
                                  trace["a"], trace["w"], trace["rnd_lo"], trace["rnd_hi"])
        w_bits = to_unsigned(trace["w"], cfg.weight.bits)
        cols = [trace["mode"].tolist(), trace["acc_en"].tolist(), trace["clear"].tolist(),
                trace["a"].tolist(), w_bits.tolist()]
        rnd = [trace["rnd_lo"].tolist(), trace["rnd_hi"].tolist()]
        got_lo = [0] * n
        got_hi = [0] * n
        # handles fetched once: the loop below is the bench's whole cost
        h_mode, h_en, h_clr, h_a, h_w = dut.mode, dut.acc_en, dut.clear, dut.a, dut.w
        h_rlo = dut.rnd_lo if self.stochastic else None
        h_rhi = dut.rnd_hi if self.stochastic else None
        y_lo, y_hi = dut.y_lo, dut.y_hi
        edge = self.edge
        start = time.perf_counter()
        for i in range(n + lat):
            await edge
            if i >= lat:
                got_lo[i - lat] = y_lo.value.to_unsigned()
                got_hi[i - lat] = y_hi.value.to_unsigned()
            if i < n:
                h_mode.value = cols[0][i]
                h_en.value = cols[1][i]
                h_clr.value = cols[2][i]
                h_a.value = cols[3][i]
                h_w.value = cols[4][i]
                if h_rlo is not None:
                    h_rlo.value = rnd[0][i]
                    h_rhi.value = rnd[1][i]
        wall = time.perf_counter() - start
        self._compare(trace, label, exp_lo, exp_hi, np.array(got_lo), np.array(got_hi))
        record(dut, {"test": label, "sim": cocotb.SIM_NAME, "vectors": n, "cycles": n + lat,
                     "wall_s": round(wall, 3), "cycles_per_s": round((n + lat) / wall, 1)})

    def _compare(self, trace, label, exp_lo, exp_hi, got_lo, got_hi) -> None:
        bits = self.pe.out.bits
        e_lo, e_hi = to_unsigned(exp_lo, bits), to_unsigned(exp_hi, bits)
        bad = np.flatnonzero((e_lo != got_lo) | (e_hi != got_hi))
        for i in bad[:8]:
            self.log.error(
                "%s: vector %d mode=%s acc_en=%d clear=%d a=0x%x w=%d -> expected (0x%x, 0x%x) got (0x%x, 0x%x)",
                label, i, PEMode(int(trace["mode"][i])).name, trace["acc_en"][i], trace["clear"][i],
                trace["a"][i], trace["w"][i], e_lo[i], e_hi[i], got_lo[i], got_hi[i])
        assert len(bad) == 0, f"{label}: {len(bad)} of {len(e_lo)} outputs differ from the golden model"
        self.log.info("%s: %d vectors bit-exact", label, len(e_lo))


def coverage(cfg, trace, exp_lo, exp_hi) -> dict[str, int]:
    """How often the expected outputs hit the cases the bench must exercise."""
    out = cfg.out
    y = np.concatenate([exp_lo, exp_hi[trace["mode"] == PEMode.FXP16]])
    return {"at_max": int(np.sum(y == out.max_int)), "at_min": int(np.sum(y == out.min_int))}


# ---------------------------------------------------------------- cocotb tests

@cocotb.test()
async def test_corners(dut):
    """Directed corners in both modes, back to back (they share one reset)."""
    tb = TB(dut)
    await tb.reset()
    trace = concat(corners(tb.pe, PEMode.FXP32, tb.rng), corners(tb.pe, PEMode.FXP16, tb.rng))
    exp_lo, exp_hi = pe_trace(tb.pe, trace["mode"], trace["acc_en"], trace["clear"],
                              trace["a"], trace["w"], trace["rnd_lo"], trace["rnd_hi"])
    if tb.pe.out.overflow == "saturate":
        # The corners must reach both saturation limits, else they test less than they claim.
        cov = coverage(tb.pe, trace, exp_lo, exp_hi)
        assert cov["at_max"] > 0 and cov["at_min"] > 0, f"corner coverage missing: {cov}"
    await tb.run(trace, "corners")


# The random traces, by figure label: (fixed mode, or None for random modes
# per sum; probability of a switch mid-sum per cycle; share of FIXAR_VECTORS).
RANDOM = {
    "random_fxp32": (PEMode.FXP32, 0.0, 1.0),
    "random_fxp16": (PEMode.FXP16, 0.0, 1.0),
    "random_mode_switch": (None, 0.02, 0.1),
}


@cocotb.test()
@cocotb.parametrize(label=[Param(label, name=label) for label in RANDOM])
async def test_random(dut, label: str):
    tb = TB(dut)
    await tb.reset()
    mode, switch_prob, share = RANDOM[label]
    n = max(int(tb.vectors * share), 1000)
    await tb.run(random_trace(tb.pe, n, tb.rng, mode, switch_prob), label)


# ---------------------------------------------------------------- pytest entries

VECTORS = int(os.environ.get("FIXAR_VECTORS", "100000"))

pytestmark = pytest.mark.sim


def _pe(sim, cfg, rtl_dir, tag, vectors, testcase=None):
    return run_module(sim, cfg, rtl_dir, "fixar_pe", BENCH, tag=tag,
                      testcase=testcase, env={"FIXAR_VECTORS": str(vectors)})


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_pe_default_bit_exact(sim):
    """The committed rtl/ PE, 100 000 random vectors per mode plus corners."""
    cfg = load("default")
    res = _pe(sim, cfg, shipped_rtl(), cfg.digest, VECTORS)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    assert res.tests == 4


@pytest.mark.parametrize("name", ["narrow", "stochastic"])
def test_pe_variant_bit_exact(name):
    """Other widths, floor/wrap and stochastic rounding: nothing is hard-wired."""
    cfg = load(name)
    res = _pe("verilator", cfg, generated(cfg), cfg.digest, 20_000)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_pe_with_the_whole_product_in_dsps_bit_exact():
    """pe.lut_product_bits = 0: the exact product left whole to the DSPs
    (four a PE) instead of one DSP and a LUT product per lane; same bits."""
    base = load("default")
    cfg = base.variant(name="default_dsp_only", pe=dataclasses.replace(base.pe, lut_product_bits=0))
    res = _pe("verilator", cfg, generated(cfg), cfg.digest, 4_000)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    assert res.tests == 4


# MBM (the table kind with a correction) in CI; the other kinds' circuits are checked against their
# models in Amaranth's simulator (tests/test_multipliers.py), here in the PE with `-m slow`
@pytest.mark.parametrize(("name", "sim"), [pytest.param(m, "verilator", marks=[] if m == "mbm" else [pytest.mark.slow])
                                           for m in MULTIPLIERS if m != "exact"]
                         + [pytest.param("mbm", "icarus", marks=[pytest.mark.slow])])
def test_pe_approximate_multiplier_bit_exact(name, sim):
    """The PE built with each approximate multiplier (LUT circuits) against
    the golden PE, whose products come from the multiplier's functional model."""
    cfg = load("default").with_multiplier(name)
    res = _pe(sim, cfg, generated(cfg), cfg.digest, 4_000 if sim == "verilator" else 1_000)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    assert res.tests == 4


@pytest.mark.slow
def test_pe_million_vectors():
    cfg = load("default")
    res = _pe("verilator", cfg, shipped_rtl(), cfg.digest, 1_000_000)
    assert res.passed


def test_bench_catches_planted_bug():
    """Change one saturation constant in the generated Verilog: the bench must fail."""
    cfg = load("default")
    bits, max_int = cfg.pe.out.bits, cfg.pe.out.max_int
    # The first positive limit the output saturates to (Amaranth writes it in decimal).
    res = run_mutated(cfg, "fixar_pe", BENCH, f"{bits}'d{max_int};", f"{bits}'d{max_int - 1};",
                      testcase="test_corners", env={"FIXAR_VECTORS": "1000"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong saturation limit"
