"""The generated fMAC column (gen/units/bfp_column.py) against
fixar.golden.fmac, bit for bit: the TB, its cocotb tests (module
``fixar.tb.test_bfp_column``) and the pytest entries (Verilator and Icarus).

Traces: BFP dot products of real converted tensors at every pair of
mantissa widths, with idle cycles between passes (G and the wide sum must
hold); directed corners (every mantissa at its most negative value, the
largest scale, so that the wide sum wraps); and raw random passes (any chunk,
top flag, first/last/clear and scale in any order, G wrapping too).
FIXAR_GROUPS sets the number of random groups (default 2 000).
"""
from __future__ import annotations

import os
import time

import cocotb
import numpy as np
import pytest

from fixar.config import load
from fixar.config.bfp import BfpFormat, fmac_shape
from fixar.golden.bfp import to_bfp
from fixar.golden.fixed import to_unsigned
from fixar.golden.fmac import FIELDS, column_trace, concat, dot_passes, group_passes
from fixar.sim.rtl import run_module, run_mutated, shipped_rtl
from fixar.tb.base import BenchTB
from fixar.tb.figures import record

BENCH = "fixar.tb.test_bfp_column"


def with_bubbles(trace: dict[str, np.ndarray], rng: np.random.Generator, prob: float) -> dict[str, np.ndarray]:
    """``trace`` with idle cycles (valid = 0, other inputs random) after some passes."""
    n = len(trace["valid"])
    idle = rng.random(n) < prob
    order = np.concatenate([np.arange(n), np.flatnonzero(idle) + 0.5])
    out = {}
    for k, v in trace.items():
        filler = rng.integers(0, 2, (int(idle.sum()),) + v.shape[1:]) * v.max(initial=0) if k != "valid" \
            else np.zeros(int(idle.sum()), dtype=np.int64)
        out[k] = np.concatenate([v, filler.astype(np.int64)])[np.argsort(order, kind="stable")]
    return out


def dot_product_trace(cfg, rng: np.random.Generator, outputs: int) -> dict[str, np.ndarray]:
    """W @ X over a few groups for every (m_w, m_a), log-uniform codes."""
    sh = fmac_shape(cfg)
    frac = cfg.pe.act32.frac
    parts = []
    for m_w in cfg.bfp.widths:
        for m_a in cfg.bfp.widths:
            k = sh.rows * int(rng.integers(1, 4)) - int(rng.integers(0, sh.rows // 2))
            mag = lambda shape: np.floor(2.0 ** rng.uniform(0, cfg.pe.act32.bits - 2, shape))  # noqa: E731
            W = (mag((outputs, k)) * rng.choice([-1, 1], (outputs, k))).astype(np.int64)
            X = (mag((k, 2)) * rng.choice([-1, 1], (k, 2))).astype(np.int64)
            W[0, :sh.rows] = 0      # an all-zero group
            wt = to_bfp(W, frac, BfpFormat(m_w, sh.rows), seed=int(rng.integers(1 << 32)), axis=1)
            xt = to_bfp(X, frac, BfpFormat(m_a, sh.rows), seed=int(rng.integers(1 << 32)), axis=0)
            parts += [dot_passes(cfg, wt, xt, i, j) for i in range(outputs) for j in range(2)]
    return concat(parts)


def corner_trace(cfg) -> dict[str, np.ndarray]:
    """Most negative mantissas (the largest G), at scale 0 and at scale_max (the wide sum wraps)."""
    sh = fmac_shape(cfg)
    parts = []
    for m in cfg.bfp.widths:
        lo, hi = -(1 << (m - 1)), (1 << (m - 1)) - 1
        for wm, am in ((lo, lo), (lo, hi), (hi, hi), (hi, lo)):
            for scale, clear in ((0, True), (sh.scale_max, False), (sh.scale_max, False), (1, False)):
                parts.append(group_passes(sh, [wm] * sh.rows, [am] * sh.rows, m, m, scale, clear))
    return concat(parts)


def raw_trace(cfg, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Any field in any order: passes need not form whole groups."""
    sh = fmac_shape(cfg)
    top = 1 << (sh.mant_bits - 1)
    t = {k: rng.integers(0, 2, n) for k in ("valid", "w_top", "a_top", "clear")}
    t["valid"] = (rng.random(n) < 0.9).astype(np.int64)
    t["first"] = (rng.random(n) < 0.2).astype(np.int64)
    t["last"] = (rng.random(n) < 0.3).astype(np.int64)
    t["p"], t["q"] = rng.integers(0, sh.chunks, n), rng.integers(0, sh.chunks, n)
    t["scale"] = rng.integers(0, 1 << sh.scale_bits, n)
    t["wm"], t["am"] = rng.integers(-top, top, (n, sh.rows)), rng.integers(-top, top, (n, sh.rows))
    return t


class TB(BenchTB):
    """Drives one pass per cycle on falling edges; collects the wide sum whenever acc_valid."""

    IDLE = FIELDS + ("wm", "am")

    def __init__(self, dut):
        super().__init__(dut)
        self.shape = fmac_shape(self.cfg)
        self.groups = int(os.environ.get("FIXAR_GROUPS", "2000"))

    def _packed(self, rows: np.ndarray) -> list[int]:
        bits = self.shape.mant_bits
        u = to_unsigned(rows, bits)
        return [sum(int(v) << (r * bits) for r, v in enumerate(row)) for row in u.tolist()]

    async def run(self, trace: dict[str, np.ndarray], label: str) -> None:
        dut, n = self.dut, len(trace["valid"])
        expected = column_trace(self.cfg, trace)
        cols = {k: trace[k].tolist() for k in FIELDS}
        wm, am = self._packed(trace["wm"]), self._packed(trace["am"])
        handles = {k: getattr(dut, k) for k in FIELDS}
        h_wm, h_am, acc, acc_valid = dut.wm, dut.am, dut.acc, dut.acc_valid
        got = []
        start = time.perf_counter()
        for i in range(n + self.latency):
            await self.edge
            if acc_valid.value:
                got.append(acc.value.to_signed())
            if i < n:
                for k, h in handles.items():
                    h.value = cols[k][i]
                h_wm.value, h_am.value = wm[i], am[i]
            elif i == n:
                handles["valid"].value = 0
        wall = time.perf_counter() - start
        bad = [i for i, (e, g) in enumerate(zip(expected, got)) if e != g]
        for i in bad[:8]:
            self.log.error("%s: sum %d expected %d got %d", label, i, expected[i], got[i])
        assert len(got) == len(expected), f"{label}: {len(got)} sums out, {len(expected)} expected"
        assert not bad, f"{label}: {len(bad)} of {len(expected)} wide sums differ from the golden model"
        self.log.info("%s: %d sums over %d cycles bit-exact", label, len(expected), n)
        record(dut, {"test": label, "sim": cocotb.SIM_NAME, "cycles": n, "sums": len(expected),
                     "wall_s": round(wall, 3)})


@cocotb.test()
async def test_dot_products(dut):
    """BFP dot products at every pair of widths, with idle cycles between passes."""
    tb = TB(dut)
    await tb.reset()
    outputs = max(1, tb.groups // 500)
    await tb.run(with_bubbles(dot_product_trace(tb.cfg, tb.rng, outputs), tb.rng, 0.1), "dot_products")


@cocotb.test()
async def test_corners(dut):
    tb = TB(dut)
    await tb.reset()
    await tb.run(corner_trace(tb.cfg), "corners")


@cocotb.test()
async def test_raw(dut):
    tb = TB(dut)
    await tb.reset()
    await tb.run(raw_trace(tb.cfg, tb.rng, tb.groups * 4), "raw")


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


def _column(sim, cfg, rtl_dir, groups, **kwargs):
    return run_module(sim, cfg, rtl_dir, "fixar_bfp_column", BENCH, env={"FIXAR_GROUPS": str(groups)}, **kwargs)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_bfp_column_bit_exact(sim):
    """The committed rtl/ fMAC column: dot products, corners, raw passes."""
    cfg = load("default")
    res = _column(sim, cfg, shipped_rtl(), 2000 if sim == "verilator" else 500)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    assert res.tests == 3


def test_bench_catches_planted_bug():
    """Weigh each pass by 2^(p + q) instead of 4^(p + q): the dot products must fail."""
    cfg = load("default")
    res = run_mutated(cfg, "fixar_bfp_column", BENCH, "2'h2 * pos3", "2'h1 * pos3",
                      testcase="test_dot_products", env={"FIXAR_GROUPS": "500"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong chunk weight"
