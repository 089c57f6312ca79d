"""cocotb bench: the generated PE against the golden model, bit for bit.

Run through :mod:`fixar.sim.runner` (pytest: tb/test_pe.py). Reads from the
environment: FIXAR_CONFIG_JSON (the config the RTL was generated from),
FIXAR_LATENCY (from the generator's manifest), FIXAR_VECTORS (random vectors
per mode, default 100 000), FIXAR_BENCH_JSON (where to append figures).
The seed is cocotb's (COCOTB_RANDOM_SEED, set by the runner from FIXAR_SEED).
"""
from __future__ import annotations

import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from fixar.config import FixarConfig, PEMode
from fixar.golden.fixed import to_unsigned
from fixar.golden.pe import pe_trace
from fixar.tb.figures import record
from fixar.tb.pe_vectors import concat, corners, random_trace


class TB:
    """Drives one input per cycle on falling edges and samples outputs there,
    which is race-free on every simulator."""

    def __init__(self, dut):
        self.dut = dut
        self.cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"]).pe
        self.latency = int(os.environ["FIXAR_LATENCY"])
        self.vectors = int(os.environ.get("FIXAR_VECTORS", "100000"))
        self.stochastic = self.cfg.out.rounding == "stochastic"
        self.rng = np.random.default_rng(cocotb.RANDOM_SEED)
        self.log = dut._log

    async def reset(self) -> None:
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        for name in ("mode", "acc_en", "clear", "a", "w"):
            getattr(dut, name).value = 0
        if self.stochastic:
            dut.rnd_lo.value = 0
            dut.rnd_hi.value = 0
        dut.rst.value = 1
        for _ in range(3):
            await FallingEdge(dut.clk)
        dut.rst.value = 0

    async def run(self, trace: dict[str, np.ndarray], label: str) -> None:
        """Drive ``trace`` (already reset), compare every output, record speed."""
        dut, cfg, lat = self.dut, self.cfg, self.latency
        n = len(trace["a"])
        exp_lo, exp_hi = pe_trace(cfg, trace["mode"], trace["acc_en"], trace["clear"],
                                  trace["a"], trace["w"], trace["rnd_lo"], trace["rnd_hi"])
        w_bits = to_unsigned(trace["w"], cfg.weight.bits)
        cols = [trace["mode"].tolist(), trace["acc_en"].tolist(), trace["clear"].tolist(),
                trace["a"].tolist(), w_bits.tolist()]
        rnd = [trace["rnd_lo"].tolist(), trace["rnd_hi"].tolist()]
        got_lo = [0] * n
        got_hi = [0] * n
        h_mode, h_en, h_clr, h_a, h_w = dut.mode, dut.acc_en, dut.clear, dut.a, dut.w
        h_rlo = dut.rnd_lo if self.stochastic else None
        h_rhi = dut.rnd_hi if self.stochastic else None
        y_lo, y_hi = dut.y_lo, dut.y_hi
        edge = FallingEdge(dut.clk)
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
        self._record(label, n, n + lat, wall)

    def _compare(self, trace, label, exp_lo, exp_hi, got_lo, got_hi) -> None:
        bits = self.cfg.out.bits
        e_lo, e_hi = to_unsigned(exp_lo, bits), to_unsigned(exp_hi, bits)
        bad = np.flatnonzero((e_lo != got_lo) | (e_hi != got_hi))
        for i in bad[:8]:
            self.log.error(
                "%s: vector %d mode=%s acc_en=%d clear=%d a=0x%x w=%d -> expected (0x%x, 0x%x) got (0x%x, 0x%x)",
                label, i, PEMode(int(trace["mode"][i])).name, trace["acc_en"][i], trace["clear"][i],
                trace["a"][i], trace["w"][i], e_lo[i], e_hi[i], got_lo[i], got_hi[i])
        assert len(bad) == 0, f"{label}: {len(bad)} of {len(e_lo)} outputs differ from the golden model"
        self.log.info("%s: %d vectors bit-exact", label, len(e_lo))

    def _record(self, label: str, vectors: int, cycles: int, wall: float) -> None:
        record(self.dut, {"test": label, "sim": cocotb.SIM_NAME, "vectors": vectors, "cycles": cycles,
                          "wall_s": round(wall, 3), "cycles_per_s": round(cycles / wall, 1)})


def coverage(cfg, trace, exp_lo, exp_hi) -> dict[str, int]:
    """How often the expected outputs hit the cases the bench must exercise."""
    out = cfg.out
    y = np.concatenate([exp_lo, exp_hi[trace["mode"] == PEMode.FXP16]])
    return {"at_max": int(np.sum(y == out.max_int)), "at_min": int(np.sum(y == out.min_int))}


@cocotb.test()
async def test_corners(dut):
    """Directed corners in both modes, back to back (they share one reset)."""
    tb = TB(dut)
    await tb.reset()
    trace = concat(corners(tb.cfg, PEMode.FXP32, tb.rng), corners(tb.cfg, PEMode.FXP16, tb.rng))
    exp_lo, exp_hi = pe_trace(tb.cfg, trace["mode"], trace["acc_en"], trace["clear"],
                              trace["a"], trace["w"], trace["rnd_lo"], trace["rnd_hi"])
    if tb.cfg.out.overflow == "saturate":
        # The corners must reach both saturation limits, else they test less than they claim.
        cov = coverage(tb.cfg, trace, exp_lo, exp_hi)
        assert cov["at_max"] > 0 and cov["at_min"] > 0, f"corner coverage missing: {cov}"
    await tb.run(trace, "corners")


async def _random(dut, mode: PEMode | None, label: str, switch_prob: float = 0.0, share: float = 1.0):
    tb = TB(dut)
    await tb.reset()
    n = max(int(tb.vectors * share), 1000)
    trace = random_trace(tb.cfg, n, tb.rng, mode, switch_prob)
    await tb.run(trace, label)


@cocotb.test()
async def test_random_fxp32(dut):
    await _random(dut, PEMode.FXP32, "random_fxp32")


@cocotb.test()
async def test_random_fxp16(dut):
    await _random(dut, PEMode.FXP16, "random_fxp16")


@cocotb.test()
async def test_random_mode_switch(dut):
    """Random modes per sum, switching mid-sum now and then (a tenth of the vectors)."""
    await _random(dut, None, "random_mode_switch", switch_prob=0.02, share=0.1)
