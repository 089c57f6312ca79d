"""Carry-save reduction (fixar.gen.lib.compress), simulated in amaranth.sim
against Python's integers: for 0 to 17 terms of mixed signedness, the pair
it leaves sums to the terms' sum modulo 2^width, at the extremes and at
random; and it builds no carry chain (no add cell) however many terms."""
from __future__ import annotations

import random

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from fixar.gen.lib.compress import carry_save

WIDTH = 20


class _Reduce(Elaboratable):
    def __init__(self, shapes: list):
        self.terms = [Signal(s, name=f"x{i}") for i, s in enumerate(shapes)]
        self.s = Signal(unsigned(WIDTH))
        self.k = Signal(unsigned(WIDTH))

    def elaborate(self, platform):
        m = Module()
        s, k = carry_save(m, self.terms, WIDTH, "cs")
        m.d.comb += [self.s.eq(s), self.k.eq(k)]
        return m


def _shapes(n: int) -> list:
    # narrower and wider than WIDTH, both signednesses: the array's products are
    # signed and narrower than the sum, but the function claims any term
    return [(signed(14), unsigned(9), signed(WIDTH + 3), unsigned(WIDTH))[i % 4] for i in range(n)]


def _extremes(shape) -> tuple[int, int]:
    return ((-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed
            else (0, (1 << shape.width) - 1))


def _vectors(shapes: list, rng: random.Random) -> list[list[int]]:
    lo = [_extremes(s)[0] for s in shapes]
    hi = [_extremes(s)[1] for s in shapes]
    mixed = [_extremes(s)[i % 2] for i, s in enumerate(shapes)]
    return [lo, hi, mixed] + [[rng.randint(*_extremes(s)) for s in shapes] for _ in range(30)]


def _pairs(dut: _Reduce, vectors: list[list[int]]) -> list[tuple[int, int]]:
    sim = Simulator(dut)
    got = []

    async def bench(ctx):
        for v in vectors:
            for sig, x in zip(dut.terms, v):
                ctx.set(sig, x)
            await ctx.delay(1e-6)
            got.append((ctx.get(dut.s), ctx.get(dut.k)))
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("n", range(18))
def test_the_pair_sums_to_the_terms_modulo_the_width(n):
    shapes = _shapes(n)
    vectors = _vectors(shapes, random.Random(n))
    mask = (1 << WIDTH) - 1
    for v, (s, k) in zip(vectors, _pairs(_Reduce(shapes), vectors), strict=True):
        assert (s + k) & mask == sum(v) & mask, (n, v)


def test_no_carry_chain_is_built():
    dut = _Reduce(_shapes(16))
    text = rtlil.convert(dut, ports=[*dut.terms, dut.s, dut.k])
    assert "$add" not in text and "$sub" not in text
    assert "$xor" in text
