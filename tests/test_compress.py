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


@pytest.mark.parametrize("width", [5, 76])
def test_carry_select_add_is_the_wrapped_sum(width):
    """The two-half add equals a + b modulo 2^width (signed) where the lower
    half carries out and where it does not, at the extremes and at random."""
    from fixar.gen.lib.compress import carry_select_add
    m = Module()
    a, b = Signal(signed(width - 1), name="a"), Signal(signed(width - 2), name="b")
    total = carry_select_add(m, a, b, width, "t")
    lo_a, hi_a = _extremes(signed(width - 1))
    lo_b, hi_b = _extremes(signed(width - 2))
    rng = random.Random(width)
    cases = [(x, y) for x in (lo_a, -1, 0, 1, hi_a) for y in (lo_b, -1, 0, 1, hi_b)]     # widths >= 4: 1 fits
    cases += [(rng.randint(lo_a, hi_a), rng.randint(lo_b, hi_b)) for _ in range(500)]
    carries = set()

    async def bench(ctx):
        for x, y in cases:
            ctx.set(a, x)
            ctx.set(b, y)
            want = (x + y + (1 << (width - 1))) % (1 << width) - (1 << (width - 1))
            assert ctx.get(total) == want, (x, y)
            carries.add(((x + y) >> (width // 2)) != (x >> (width // 2)) + (y >> (width // 2)))
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert carries == {False, True}, "the lower half never carried, or always did"
