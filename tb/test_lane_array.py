"""The generated lane array (gen/units/bfp_lane_array.py) against
fixar.golden.lane_array, bit for bit, and against the cycle model
(fixar.config.timing.lane_array_layer_cycles) cycle for cycle: the TB, its
cocotb tests (module ``fixar.tb.test_lane_array``) and the pytest entries.

Layers of random shapes (outputs, inputs and vectors that fill no whole
tile, group or pass) at every pair of mantissa widths, with log-uniform
codes converted to BFP (so that exponents, and scales, spread) and an
all-zero group; runs back to back; every product of BFP training steps
(forward, transposed and weight-gradient, both networks, every width: the
operands fixar.golden.bfp_train records); and, with FIXAR_LANE_LAYERS, the
given layers (the HAQ policies' layers, fixar.haq.verify).
"""
from __future__ import annotations

import dataclasses
import json
import os

import cocotb
import numpy as np
import pytest

from fixar.compiler.lane_array import LaneLayer, lay_out, read_back
from fixar.config import load
from fixar.config.bfp import BfpFormat, lane_array_shape
from fixar.figures.lane_products import step_products
from fixar.golden.bfp import to_bfp
from fixar.golden.fmac import wrap
from fixar.golden.lane_array import layer_sums
from fixar.sim.rtl import generated, run_module, run_mutated
from fixar.tb.base import BenchTB
from fixar.tb.figures import record

BENCH = "fixar.tb.test_lane_array"
# the training steps whose products the bench runs: networks obs-5-3-act, batch 5, four sweep steps
# (2, 4, 6, 8 bits), so that on two columns outputs, vectors and the batch's groups all end mid-tile
PRODUCT_NETS = {"obs_dim": 3, "act_dim": 1, "hidden": (5, 3), "batch": 5, "steps": 4, "sweep": True}


def random_layer(cfg, rng: np.random.Generator, outputs: int, inputs: int, batch: int, m_w: int, m_a: int):
    """BFP operands of a layer of log-uniform codes, one all-zero weight group."""
    rows = lane_array_shape(cfg).lanes.fmac.rows
    mag = lambda shape: np.floor(2.0 ** rng.uniform(0, cfg.pe.act32.bits - 2, shape))  # noqa: E731
    W = (mag((outputs, inputs)) * rng.choice([-1, 1], (outputs, inputs))).astype(np.int64)
    X = (mag((batch, inputs)) * rng.choice([-1, 1], (batch, inputs))).astype(np.int64)
    W[0, :min(rows, inputs)] = 0
    w = to_bfp(W, cfg.pe.act32.frac, BfpFormat(m_w, rows), seed=int(rng.integers(1 << 32)), axis=1)
    a = to_bfp(X, cfg.pe.act32.frac, BfpFormat(m_a, rows), seed=int(rng.integers(1 << 32)), axis=1)
    return w, a


class TB(BenchTB):
    IDLE = ("w_we", "a_we", "start", "tiles", "groups", "passes", "last_lanes", "w_sel", "a_sel")

    def __init__(self, dut):
        super().__init__(dut)
        self.shape = lane_array_shape(self.cfg)

    async def load(self, layer: LaneLayer) -> None:
        for we, addr, data, words in ((self.dut.w_we, self.dut.w_addr, self.dut.w_data, layer.w_words),
                                      (self.dut.a_we, self.dut.a_addr, self.dut.a_data, layer.a_words)):
            we.value = 1
            for n, word in enumerate(words):
                addr.value, data.value = n, word
                await self.edge
            we.value = 0

    async def run(self, layer: LaneLayer) -> tuple[list[list[int]], int]:
        """Start ``layer``; (the rows handed out, the cycles from start to the last one)."""
        dut = self.dut
        for name in ("tiles", "groups", "passes", "last_lanes", "w_sel", "a_sel"):
            getattr(dut, name).value = getattr(layer, name)
        dut.start.value = 1
        await self.edge
        dut.start.value = 0
        assert dut.busy.value == 1, "the lane array did not take the run"
        bits, rows, cycles = self.shape.lanes.fmac.acc_bits, [], 1
        limit = 4 * layer.cycles + 100
        while dut.busy.value and cycles < limit:
            if dut.out_valid.value:
                word = dut.out_sum.value.to_unsigned()
                rows.append([wrap(word >> (c * bits), bits) for c in range(self.shape.columns)])
                last = cycles
            await self.edge
            cycles += 1
        assert not dut.busy.value, f"the lane array still busy after {limit} cycles"
        return rows, last

    async def check(self, w, a, label: str, **facts) -> int:
        layer = lay_out(self.cfg, w, a)
        await self.load(layer)
        rows, cycles = await self.run(layer)
        got, expected = read_back(self.cfg, layer, rows), layer_sums(self.cfg, w, a)
        bad = [(i, j) for i in range(layer.outputs) for j in range(layer.batch) if got[i][j] != expected[i][j]]
        for i, j in bad[:4]:
            self.log.error("%s: output %d, vector %d: expected %d got %d", label, i, j, expected[i][j], got[i][j])
        assert not bad, f"{label}: {len(bad)} of {layer.outputs * layer.batch} sums differ from the golden model"
        assert cycles == layer.cycles, f"{label}: {cycles} cycles, the cycle model says {layer.cycles}"
        record(self.dut, {"test": label, "sim": cocotb.SIM_NAME, "outputs": layer.outputs,
                          "inputs": w.shape[1], "batch": layer.batch, "m_w": w.fmt.mantissa_bits,
                          "m_a": a.fmt.mantissa_bits, "cycles": cycles, **facts})
        return cycles


@cocotb.test()
async def test_layers(dut):
    """A layer of random shape at every pair of widths, bit- and cycle-exact."""
    tb = TB(dut)
    await tb.reset()
    cols, rows = tb.shape.columns, tb.shape.lanes.fmac.rows
    for m_w in tb.cfg.bfp.widths:
        for m_a in tb.cfg.bfp.widths:
            lanes = tb.shape.lanes.lanes(m_a)
            shape = (int(tb.rng.integers(1, 2 * cols + 2)), int(tb.rng.integers(1, 3 * rows + 1)),
                     int(tb.rng.integers(1, 2 * lanes + 2)))
            await tb.check(*random_layer(tb.cfg, tb.rng, *shape, m_w, m_a), "layer")


@cocotb.test()
async def test_back_to_back(dut):
    """Runs started the cycle after the last one ends, the memories rewritten
    between; one vector (an actor acting) hands out one lane a tile."""
    tb = TB(dut)
    await tb.reset()
    cols = tb.shape.columns
    for m_w, m_a, outputs, batch in ((8, 2, 3, 5), (2, 8, 3, 5), (4, 4, 3, 5), (6, 2, 2 * cols + 1, 1)):
        await tb.check(*random_layer(tb.cfg, tb.rng, outputs, 40, batch, m_w, m_a), "back_to_back")


@cocotb.test()
async def test_training_products(dut):
    """Every product of BFP training steps of small networks, bit- and cycle-exact."""
    tb = TB(dut)
    await tb.reset()
    for p in step_products(tb.cfg, **PRODUCT_NETS):
        await tb.check(p.w, p.a, "training_product", kind=p.kind, layer=p.layer)


@cocotb.test()
async def test_given_layers(dut):
    """FIXAR_LANE_LAYERS: [[outputs, inputs, batch, m_w, m_a, label], ...], random codes."""
    tb = TB(dut)
    await tb.reset()
    for outputs, inputs, batch, m_w, m_a, label in json.loads(os.environ.get("FIXAR_LANE_LAYERS", "[]")):
        await tb.check(*random_layer(tb.cfg, tb.rng, outputs, inputs, batch, m_w, m_a), label)


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


def bench_config():
    """The small config with one core of 2 x 2 PEs: two lane columns, which
    build in a fraction of small's eight's time; the layers' shapes follow
    the columns, so every tile, pass and group boundary is still crossed."""
    small = load("small")
    return small.variant(name="small_lanes", array=dataclasses.replace(small.array, cores=1, rows=2, cols=2))


def _run(sim: str, **kwargs):
    cfg = bench_config()
    return run_module(sim, cfg, generated(cfg, lanes=True), "fixar_bfp_lane_array", BENCH, **kwargs)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_lane_array_bit_exact(sim):
    """Two lane columns: every width pair, back to back, a training step's
    products at every width; sums and cycles exact."""
    res = _run(sim, testcase=["test_layers", "test_back_to_back", "test_training_products"])
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    assert res.tests == 3
    widths = bench_config().bfp.widths
    assert len([r for r in res.rows if r["test"] == "layer"]) == len(widths) ** 2
    products = [r for r in res.rows if r["test"] == "training_product"]
    assert len(products) == len(step_products(bench_config(), **PRODUCT_NETS))
    assert {(r["kind"], r["m_w"]) for r in products} == {(k, m) for k in ("forward", "transposed", "gradient")
                                                          for m in widths}


# each lane's scale is s_w + its own s_a; planted: column 0's lane 0 takes lane 1's s_a
PLANTED_OLD = "scale0_0 = $signed(lane_wmem_a_data[135:128]) + $signed(lane_amem_a_data[519:512])"
PLANTED_NEW = "scale0_0 = $signed(lane_wmem_a_data[135:128]) + $signed(lane_amem_a_data[527:520])"


def test_bench_catches_planted_bug():
    cfg = bench_config()
    res = run_mutated(cfg, "fixar_bfp_lane_array", BENCH, PLANTED_OLD, PLANTED_NEW,
                      src_dir=generated(cfg, lanes=True), testcase="test_layers")
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a lane's wrong exponent"
