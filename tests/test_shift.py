"""The quantizer's clamped shift (fixar.gen.lib.shift), simulated in
amaranth.sim against Python's min(p >> s, 2^t): every shift amount the shift
port can carry (beyond the width too), p at random and at the edges of the
clamp (2^t << s and its neighbours, a lone bit at each place); and the
clamp is built without a comparator."""
from __future__ import annotations

import random

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal, unsigned
from amaranth.sim import Simulator

from fixar.gen.lib.shift import shift_right_clamped

WIDTH, SHIFT_BITS = 22, 5


class _Clamp(Elaboratable):
    def __init__(self, t: int):
        self.t = t
        self.p = Signal(unsigned(WIDTH))
        self.s = Signal(unsigned(SHIFT_BITS))
        self.y = Signal(unsigned(t + 1))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(shift_right_clamped(m, self.p, self.s, self.t, "c"))
        return m


def _cases(t: int, rng: random.Random) -> list[tuple[int, int]]:
    full = (1 << WIDTH) - 1
    out = []
    for s in range(1 << SHIFT_BITS):
        edge = (1 << t) << s
        ps = {0, full, *(edge + d for d in (-1, 0, 1)), *(1 << i for i in range(WIDTH)),
              *(rng.randint(0, full) for _ in range(8)), *(rng.randint(0, min(2 * edge, full)) for _ in range(8))}
        out += [(p & full, s) for p in ps if p >= 0]
    return out


@pytest.mark.parametrize("t", [1, 5, 17])
def test_equals_min_of_shift_and_top(t):
    dut, cases = _Clamp(t), _cases(t, random.Random(t))
    sim = Simulator(dut)
    got = []

    async def bench(ctx):
        for p, s in cases:
            ctx.set(dut.p, p)
            ctx.set(dut.s, s)
            await ctx.delay(1e-6)
            got.append(ctx.get(dut.y))
    sim.add_testbench(bench)
    sim.run()
    clamped = 0
    for (p, s), y in zip(cases, got, strict=True):
        assert y == min(p >> s, 1 << t), (p, s, t)
        clamped += (p >> s) > (1 << t)
    assert 0 < clamped < len(cases)


def test_no_comparator():
    dut = _Clamp(5)
    text = rtlil.convert(dut, ports=[dut.p, dut.s, dut.y])
    assert not any(f"cell ${op} " in text for op in ("gt", "ge", "lt", "le", "sub", "add"))
