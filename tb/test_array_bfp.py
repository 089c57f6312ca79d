"""The array's BFP front (``bfp.in_array``; gen/units/array_bfp.py, the
core's weight converter; docs/bfp.md "BFP in the array") against the
golden model, bit for bit and cycle for cycle: cocotb tests (module
``fixar.tb.test_array_bfp``, on test_array's TB) and the pytest entries
(the small config, 2 cores of 4 x 4, with BFP groups of 4 and the front built).

Each BFP operation's expected outputs are fixar.golden.layer.linear on
fixar.golden.bfp.bfp_quantize of W (along its inputs) and of X (along the
reduction), the seeds jenkins32(base + conv) and jenkins32(base + conv + 1)
as the compiler's executor takes them; its cycles the cycle model's.
FIXAR_CASES sets the number of random operations (default 300; the pytest
entries 150 under Verilator and 16 under Icarus, the latter in make
test-slow: CI time).
"""
from __future__ import annotations

import dataclasses
import os

import cocotb
import numpy as np
import pytest

from fixar.compiler.array_ops import LayerOp, describe, weight_rows
from fixar.config import ActFunc, GStore, load, weight_groups
from fixar.config.bfp import BFP_CONV_BITS, BFP_STREAMS
from fixar.golden.bfp import bfp_quantize
from fixar.golden.noise import jenkins32
from fixar.sim.rtl import generated, run_module
from fixar.tb.test_array import PRIMES, TB, random_grad_op, random_op

BENCH = "fixar.tb.test_array_bfp"
MASK32 = 0xFFFFFFFF


def bfp_config():
    """The small array with the BFP front (config small_bfp: groups of one PE column)."""
    return load("small_bfp")


class BfpTB(TB):
    """test_array's TB, giving each operation fresh seed-stream bases."""

    def __init__(self, dut):
        super().__init__(dut)
        self.bases = [0] * BFP_STREAMS

    async def execute(self, op: LayerOp, label: str):
        self.bases = [int(b) for b in self.rng.integers(0, 1 << 32, BFP_STREAMS)]
        self.dut.bfp_bases.value = sum(b << (32 * i) for i, b in enumerate(self.bases))
        return await super().execute(op, label)

    def golden(self, op: LayerOp, W, X, b):
        if not op.bfp:
            return super().golden(op, W, X, b)
        cfg, base = self.cfg, self.bases[op.bfp_stream]
        seed = [int(jenkins32(np.uint32((base + op.bfp_conv + n) & MASK32))) for n in (0, 1)]
        # each operand along its product's reduction: W X, W^T D, D X^T
        axis_w, axis_x = (1, 1) if op.grad else (0, 0) if op.transpose else (1, 0)
        frac_w = cfg.pe.act32.frac if op.grad else cfg.pe.weight.frac
        Wc = bfp_quantize(W, frac_w, cfg.bfp.format(op.bfp_w), seed[0], axis=axis_w) if op.bfp_w else W
        Xc = bfp_quantize(X, cfg.pe.act32.frac, cfg.bfp.format(op.bfp_x), seed[1], axis=axis_x) if op.bfp_x else X
        return super().golden(op, Wc, Xc, b)


def random_bfp_op(tb: TB) -> LayerOp:
    """A random BFP product: forward (any shape, batch, parallelism mode,
    function), transposed or a weight gradient, any pair of widths (an
    operand used as it is too), any seed stream and conversion number."""
    cfg, rng = tb.cfg, tb.rng
    R, C, N = cfg.array.rows, cfg.array.cols, cfg.array.cores
    dim = lambda hi: int(rng.choice(PRIMES)) if rng.random() < 0.5 else int(rng.integers(1, hi + 1))  # noqa: E731
    M, K = dim(3 * C), dim(3 * R)
    fields = bfp_fields(tb)
    u = rng.random()
    if u < 0.2:       # dW = D X^T over whole groups of the batch per core
        grad = random_grad_op(tb, M, min(K, cfg.array.psum_slots))
        batch = N * R * int(rng.integers(1, 5))
        return dataclasses.replace(grad, batch=batch, gstore=GStore.WEIGHT if rng.random() < 0.5 else GStore.NONE,
                                   b_base=0, **fields)
    intra = bool(rng.random() < 0.25)
    transpose = u < 0.45
    batch = 1 if intra else int(rng.integers(1, 4)) if rng.random() < 0.3 else int(rng.integers(1, 2 * R * N + 1))
    op = LayerOp(M=M, K=K, batch=batch, func=ActFunc(int(rng.integers(3))), intra_layer=intra, transpose=transpose,
                 bias=not transpose and bool(rng.random() < 0.8), **fields)
    d = describe(cfg, op)
    (_, rows0), (start1, rows1) = weight_groups(cfg)
    pick = lambda free: int(rng.integers(0, min(free, 1000) + 1))  # noqa: E731
    group = int(rng.integers(0, 2))
    w_base = (start1 if group else 0) + pick((rows1 if group else rows0) - weight_rows(cfg, M, K))
    x_free = cfg.memory.act_words_per_core // R - d.n_kt * d.slots
    return dataclasses.replace(op, w_base=w_base, x_base=pick(x_free), b_base=pick(cfg.memory.bias_words // C - d.n_ot))


def bfp_fields(tb: TB) -> dict:
    """Random widths (one operand in five used as it is: width 0, e.g. a
    host-converted deployed network's weights), seed stream and conversion."""
    cfg, rng = tb.cfg, tb.rng
    w_x = [int(rng.choice(cfg.bfp.widths)) if rng.random() < 0.8 else 0 for _ in range(2)]
    if not any(w_x):
        w_x[int(rng.integers(2))] = int(rng.choice(cfg.bfp.widths))
    return {"bfp_w": w_x[0], "bfp_x": w_x[1], "bfp_stream": int(rng.integers(BFP_STREAMS)),
            "bfp_conv": int(rng.integers(1 << BFP_CONV_BITS))}


async def run_ops(tb: BfpTB, n: int, fxp_share: float) -> None:
    for case in range(n):
        op = random_bfp_op(tb) if tb.rng.random() >= fxp_share else random_op(tb)
        W, X, b = tb.random_operands(op)
        await tb.load(op, W, X, b)
        kind = f"BFP w{op.bfp_w}x{op.bfp_x}" if op.bfp else op.mode.name
        await tb.check(op, W, X, b, f"case {case} ({kind}, {op.M}x{op.K}, B={op.batch}, "
                                    f"{'intra-layer' if op.intra_layer else 'intra-batch'}, {op.func.name})")


@cocotb.test()
async def test_bfp_products(dut):
    """Random BFP forward products back to back, each bit-exact and cycle-exact."""
    tb = BfpTB(dut)
    await tb.reset()
    n = int(os.environ.get("FIXAR_CASES", "300"))
    await run_ops(tb, n, 0.0)
    tb.record("bfp_products", n)


@cocotb.test()
async def test_bfp_among_other_products(dut):
    """BFP products between the array's other operations (FXP32, FXP16,
    transposed, gradients): the front changes nothing else, before or after."""
    tb = BfpTB(dut)
    await tb.reset()
    n = max(20, int(os.environ.get("FIXAR_CASES", "300")) // 3)
    await run_ops(tb, n, 0.5)
    tb.record("bfp_among_other_products", n)


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


# (Icarus in make test-slow: CI time)
@pytest.mark.parametrize("sim", ["verilator", pytest.param("icarus", marks=pytest.mark.slow)])
def test_array_bfp_bit_exact_and_cycle_exact(sim):
    cfg = bfp_config()
    cases = os.environ.get("FIXAR_CASES", "150" if sim == "verilator" else "16")
    res = run_module(sim, cfg, generated(cfg, array=True), "fixar_array", BENCH, env={"FIXAR_CASES": cases})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    assert res.tests == 2


def _planted(tag: str):
    """The BFP bench's first test on a BFP array generated now (with whatever a
    test planted): one core of small_bfp's, whose build takes half the time (CI)."""
    from fixar.gen.emit import emit
    from fixar.sim.runner import BUILD_ROOT
    small = bfp_config()
    cfg = small.variant(name="small_bfp_1core", array=dataclasses.replace(small.array, cores=1))
    out = BUILD_ROOT / "planted_bug" / f"array_bfp_{tag}"
    emit(cfg, out, array=True)
    return run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-{tag}",
                      testcase="test_bfp_products", env={"FIXAR_CASES": "12"})


def test_bench_catches_items_keyed_by_the_next_batch_entry(monkeypatch):
    """Each item's random words keyed as the next batch entry's (b + 1): the products must differ."""
    from fixar.gen.units import array_bfp
    real = array_bfp.item_groups

    def shifted(m, cfg, d, t, j, k_tile, pipe):
        return real(m, cfg, d, t + 1, j, k_tile, pipe)
    monkeypatch.setattr(array_bfp, "item_groups", shifted)
    res = _planted("item-key")
    assert res.tests == 1 and res.failed == 1, "the bench did not notice items keyed one batch entry off"
