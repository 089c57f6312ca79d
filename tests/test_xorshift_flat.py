"""The generator's flat xorshift32 (one XOR per bit for k steps at once)
against the golden model's step-by-step stream, on random states."""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from fixar.config import PrngConfig
from fixar.gen.lib.xorshift import advance_masks, advanced
from fixar.golden.prng import stream

SEEDS = np.random.default_rng(5).integers(1, 2**32, 64, dtype=np.uint64).astype(np.uint32)


def _flat(state: int, k: int) -> int:
    return sum((bin(state & mask).count("1") & 1) << i for i, mask in enumerate(advance_masks(k)))


def test_masks_equal_the_golden_stream_for_every_draw_the_vector_unit_makes():
    golden = stream(PrngConfig(), 32, seeds=SEEDS)          # golden[k - 1]: k steps on
    for k in range(1, 33):
        assert [_flat(int(s), k) for s in SEEDS] == [int(x) for x in golden[k - 1]], f"k = {k}"


def test_the_circuit_computes_the_masks():
    state, out = Signal(32), Signal(32)
    k = 7
    sim = Simulator(_Comb(state, out, k))
    seen = []

    async def bench(ctx):
        for s in SEEDS[:8]:
            ctx.set(state, int(s))
            seen.append(ctx.get(out))
    sim.add_testbench(bench)
    sim.run()
    assert seen == [int(x) for x in stream(PrngConfig(), k, seeds=SEEDS[:8])[k - 1]]


class _Comb(Elaboratable):
    def __init__(self, state, out, k):
        self.state, self.out, self.k = state, out, k

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.out.eq(advanced(self.state, self.k))
        return m
