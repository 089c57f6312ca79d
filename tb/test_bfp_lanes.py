"""The generated BFP lane column (gen/units/bfp_lanes.py) against
fixar.golden.fmac_lanes, bit for bit: the TB, its cocotb tests (module
``fixar.tb.test_bfp_lanes``) and the pytest entries (Verilator and Icarus).

Traces: BFP dot products of real converted tensors at every pair of
mantissa widths, every lane full and with only two vectors, idle cycles
between passes; directed corners (every mantissa at its most negative or
largest value, scales 0 and scale_max, so that the wide sums wrap); raw
random passes (any field in any order, every bit of the activation words
random, so that a width's unused bits must be ignored); and the throughput
run: back-to-back groups at each width pair, whose products per PE per cycle
the formats part reports. FIXAR_GROUPS sets the number of random groups.
"""
from __future__ import annotations

import os
import time

import cocotb
import numpy as np
import pytest

from fixar.config import load
from fixar.config.bfp import BfpFormat, lane_shape
from fixar.golden.bfp import to_bfp
from fixar.golden.fixed import to_unsigned
from fixar.golden.fmac import concat
from fixar.golden.fmac_lanes import FIELDS, group_passes, lane_dot_passes, lane_trace, pack_word
from fixar.sim.rtl import run_module, run_mutated, shipped_rtl
from fixar.tb.base import BenchTB
from fixar.tb.figures import record
from fixar.tb.test_bfp_column import with_bubbles

BENCH = "fixar.tb.test_bfp_lanes"


def dot_trace(cfg, rng: np.random.Generator, m_w: int, m_a: int, outputs: int, groups: int,
              partial: bool = True) -> tuple[dict[str, np.ndarray], int]:
    """W @ X with log-uniform codes: every lane full, then (``partial``) two
    vectors with the other lanes idle; the trace and its multiply-adds."""
    sh = lane_shape(cfg)
    rows, lanes = sh.fmac.rows, sh.lanes(m_a)
    k = rows * groups - int(rng.integers(0, rows // 2))
    mag = lambda shape: np.floor(2.0 ** rng.uniform(0, cfg.pe.act32.bits - 2, shape))  # noqa: E731
    W = (mag((outputs, k)) * rng.choice([-1, 1], (outputs, k))).astype(np.int64)
    X = (mag((k, lanes + 2)) * rng.choice([-1, 1], (k, lanes + 2))).astype(np.int64)
    W[0, :rows] = 0      # an all-zero group
    wt = to_bfp(W, cfg.pe.act32.frac, BfpFormat(m_w, rows), seed=int(rng.integers(1 << 32)), axis=1)
    xt = to_bfp(X, cfg.pe.act32.frac, BfpFormat(m_a, rows), seed=int(rng.integers(1 << 32)), axis=0)
    batches = [list(range(lanes))] + ([[lanes, lanes + 1]] if partial else [])
    parts = [lane_dot_passes(cfg, wt, xt, i, js) for i in range(outputs) for js in batches]
    return concat(parts), k * outputs * sum(len(js) for js in batches)


def corner_trace(cfg) -> dict[str, np.ndarray]:
    """Most negative and largest mantissas in every lane, at scale 0 and at scale_max (the wide sums wrap)."""
    sh = lane_shape(cfg)
    rows, f = sh.fmac.rows, sh.fmac
    parts = []
    for m in cfg.bfp.widths:
        lo, hi = -(1 << (m - 1)), (1 << (m - 1)) - 1
        for wm, am in ((lo, lo), (lo, hi), (hi, hi), (hi, lo)):
            words = [pack_word([am] * sh.lanes(m), m)] * rows
            for scale, clear in ((0, True), (f.scale_max, False), (f.scale_max, False), (1, False)):
                parts.append(group_passes(cfg, [wm] * rows, words, m, m, [scale] * sh.max_lanes, clear))
    return concat(parts)


def raw_trace(cfg, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Any field in any order: passes need not form whole groups; every word bit random."""
    sh = lane_shape(cfg)
    f = sh.fmac
    top = 1 << (f.mant_bits - 1)
    t = {k: rng.integers(0, 2, n) for k in ("w_top", "clear")}
    t["valid"] = (rng.random(n) < 0.9).astype(np.int64)
    t["first"] = (rng.random(n) < 0.2).astype(np.int64)
    t["last"] = (rng.random(n) < 0.3).astype(np.int64)
    t["p"] = rng.integers(0, f.chunks, n)
    t["a_sel"] = rng.integers(0, 1 << max(len(cfg.bfp.widths) - 1, 1).bit_length(), n)
    t["scale"] = rng.integers(0, 1 << f.scale_bits, (n, sh.max_lanes))
    t["wm"] = rng.integers(-top, top, (n, f.rows))
    t["aw"] = rng.integers(0, 1 << sh.word_bits, (n, f.rows))
    return t


class TB(BenchTB):
    """Drives one pass per cycle on falling edges; collects every lane's wide sum whenever acc_valid."""

    IDLE = FIELDS + ("wm", "aw", "scale")

    def __init__(self, dut):
        super().__init__(dut)
        self.shape = lane_shape(self.cfg)
        self.groups = int(os.environ.get("FIXAR_GROUPS", "400"))

    @staticmethod
    def _packed(rows: np.ndarray, bits: int) -> list[int]:
        u = to_unsigned(rows, bits) if bits < 64 else rows
        return [sum(int(v) << (r * bits) for r, v in enumerate(row)) for row in u.tolist()]

    def _acc(self) -> tuple[int, ...]:
        bits = self.shape.fmac.acc_bits
        word = self.dut.acc.value.to_unsigned()
        lanes = ((word >> (lane * bits)) & ((1 << bits) - 1) for lane in range(self.shape.max_lanes))
        return tuple(v - (1 << bits) if v >> (bits - 1) else v for v in lanes)

    async def run(self, trace: dict[str, np.ndarray], label: str, **facts) -> int:
        """Present ``trace`` and compare; returns the cycles from the first pass to the last sum."""
        dut, n, f = self.dut, len(trace["valid"]), self.shape.fmac
        expected = lane_trace(self.cfg, trace)
        cols = {k: trace[k].tolist() for k in FIELDS}
        wm = self._packed(trace["wm"], f.mant_bits)
        aw = self._packed(trace["aw"], self.shape.word_bits)
        scale = self._packed(trace["scale"], f.scale_bits)
        handles = {k: getattr(dut, k) for k in FIELDS}
        got, last_at = [], 0
        start = time.perf_counter()
        for i in range(n + self.latency):
            await self.edge
            if dut.acc_valid.value:
                got.append(self._acc())
                last_at = i
            if i < n:
                for k, h in handles.items():
                    h.value = cols[k][i]
                dut.wm.value, dut.aw.value, dut.scale.value = wm[i], aw[i], scale[i]
            elif i == n:
                handles["valid"].value = 0
        wall = time.perf_counter() - start
        bad = [i for i, (e, g) in enumerate(zip(expected, got)) if e != g]
        for i in bad[:4]:
            self.log.error("%s: sums %d expected %s got %s", label, i, expected[i], got[i])
        assert len(got) == len(expected), f"{label}: {len(got)} sums out, {len(expected)} expected"
        assert not bad, f"{label}: {len(bad)} of {len(expected)} lane sums differ from the golden model"
        self.log.info("%s: %d sums over %d cycles bit-exact", label, len(expected), n)
        record(dut, {"test": label, "sim": cocotb.SIM_NAME, "cycles": last_at, "sums": len(expected),
                     "wall_s": round(wall, 3), **facts})
        return last_at


@cocotb.test()
async def test_dot_products(dut):
    """BFP dot products at every pair of widths, with idle cycles between passes."""
    tb = TB(dut)
    await tb.reset()
    widths = tb.cfg.bfp.widths
    parts = [dot_trace(tb.cfg, tb.rng, m_w, m_a, max(1, tb.groups // 200), 3)[0] for m_w in widths for m_a in widths]
    await tb.run(with_bubbles(concat(parts), tb.rng, 0.1), "dot_products")


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


@cocotb.test()
async def test_throughput(dut):
    """Back-to-back groups of one weight row against full lanes, per width
    pair: the cycles from the first pass to the last sum, with the latency."""
    tb = TB(dut)
    await tb.reset()
    rows = tb.shape.fmac.rows
    for m_w in tb.cfg.bfp.widths:
        for m_a in tb.cfg.bfp.widths:
            trace, products = dot_trace(tb.cfg, tb.rng, m_w, m_a, 1, 128, partial=False)
            cycles = await tb.run(trace, "throughput", m_w=m_w, m_a=m_a, products=products)
            tb.log.info("m_w %d m_a %d: %.2f products per PE per cycle", m_w, m_a, products / (rows * cycles))


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


def _lanes(sim, cfg, rtl_dir, groups, **kwargs):
    return run_module(sim, cfg, rtl_dir, "fixar_bfp_lanes", BENCH, env={"FIXAR_GROUPS": str(groups)}, **kwargs)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_bfp_lanes_bit_exact(sim):
    """The committed rtl/ lane column: dot products, corners, raw passes, throughput."""
    cfg = load("default")
    res = _lanes(sim, cfg, shipped_rtl(), 400 if sim == "verilator" else 200,
                 testcase=None if sim == "verilator" else ["test_dot_products", "test_corners", "test_raw"])
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    assert res.tests == (4 if sim == "verilator" else 3)
    if sim == "verilator":
        runs = [r for r in res.rows if r["test"] == "throughput"]
        assert len(runs) == len(cfg.bfp.widths) ** 2


# the first recombination of multiplier 1's column sum at 4^1 (lane 0's chunk 1 at m_a = 4), made 2^1
PLANTED_OLD = "{ sum1_3[8], sum1_3, 2'h0 }"
PLANTED_NEW = "{ sum1_3[8], sum1_3[8], sum1_3, 1'h0 }"


def test_bench_catches_planted_bug():
    """Recombine a lane's chunks at 2^q instead of 4^q: the dot products must fail."""
    cfg = load("default")
    res = run_mutated(cfg, "fixar_bfp_lanes", BENCH, PLANTED_OLD, PLANTED_NEW,
                      testcase="test_dot_products", env={"FIXAR_GROUPS": "200"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong chunk weight"
