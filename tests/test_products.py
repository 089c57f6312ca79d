"""Wide products as DSP-sized partial products and a registered adder tree
(fixar.gen.lib.products), simulated in amaranth.sim against Python's
integers: exact for every signedness and width the units use, ready exactly
1 + fixar.config.timing.product_levels cycles after the operands, one new
product per cycle; and the latency arithmetic the cycle model relies on."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Elaboratable, Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from fixar.config.timing import DSP_PORTS, partial_products, product_levels
from fixar.gen.lib import products
from fixar.gen.lib.pipe import Schedule, Timed


class _Product(Elaboratable):
    """y = a * b (+ addend through tree_sum) from one Schedule, the operands
    entering as unit inputs (stage 0)."""

    def __init__(self, a_shape, b_shape, addend: int = 0):
        self.a, self.b = Signal(a_shape), Signal(b_shape)
        self.addend = addend
        self.y = Signal(signed(len(self.a) + len(self.b) + 2))
        self.ready = None

    def elaborate(self, platform):
        m = Module()
        sched = Schedule(m)
        a, b = Timed(self.a, 0), Timed(self.b, 0)
        if self.addend:
            terms = [(sched.reg(f"pp{i}", signed(len(x) + len(y) + 1), lambda u, v: u * v, Timed(x, 0),
                                Timed(y, 0)), k) for i, (x, y, k) in enumerate(products.partial_terms(self.a, self.b))]
            out = products.tree_sum(sched, "t", terms, len(self.a) + len(self.b) + 1, self.addend)
        else:
            out = products.product(sched, "p", a, b)
        self.ready = out.at
        m.d.comb += self.y.eq(out.value)
        return m


def _values(shape, rng: random.Random, n: int) -> list[int]:
    lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed else (0, (1 << shape.width) - 1)
    return [lo, hi, 0, -1 if shape.signed else 1] + [rng.randint(lo, hi) for _ in range(n)]


def _run(dut: _Product, pairs: list[tuple[int, int]]) -> list[int]:
    """One pair per cycle in; the output of each, read ``dut.ready`` cycles on."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    got: list[int] = []

    async def bench(ctx):
        for k in range(len(pairs) + 8):
            if k < len(pairs):
                ctx.set(dut.a, pairs[k][0])
                ctx.set(dut.b, pairs[k][1])
            await ctx.tick()
            # after k + 1 edges the input of cycle k + 1 - ready shows
            i = k + 1 - dut.ready
            if 0 <= i < len(pairs):
                got.append(ctx.get(dut.y))
    sim.add_testbench(bench)
    sim.run()
    return got


SHAPES = [  # (a, b): the vector unit's x c, b^2 and a (1 - b^2), Adam's v and Newton products, the quantizer's
    (signed(33), unsigned(31)), (signed(22), signed(22)), (signed(32), signed(23)),
    (unsigned(31), unsigned(60)), (unsigned(31), unsigned(31)), (signed(31), signed(36)),
    (unsigned(48), unsigned(50)), (signed(18), unsigned(33)), (unsigned(5), signed(7)),
]


@pytest.mark.parametrize("a_shape,b_shape", SHAPES, ids=lambda s: f"{'s' if s.signed else 'u'}{s.width}")
def test_products_are_exact_and_ready_when_the_timing_says(a_shape, b_shape):
    rng = random.Random(a_shape.width * 100 + b_shape.width)
    av, bv = _values(a_shape, rng, 40), _values(b_shape, rng, 40)
    pairs = [(x, y) for x in av[:4] for y in bv[:4]] + list(zip(av, bv))
    dut = _Product(a_shape, b_shape)
    got = _run(dut, pairs)
    assert dut.ready == 1 + product_levels(a_shape.width, b_shape.width)
    assert got == [x * y for x, y in pairs]


def test_an_addend_rides_in_the_first_add():
    shape_a, shape_b, addend = signed(20), unsigned(31), 1 << 25
    rng = random.Random(3)
    pairs = list(zip(_values(shape_a, rng, 30), _values(shape_b, rng, 30)))
    dut = _Product(shape_a, shape_b, addend)
    got = _run(dut, pairs)
    assert dut.ready == 1 + product_levels(shape_a.width, shape_b.width, addend=True)
    assert got == [x * y + addend for x, y in pairs]


def test_partial_product_counts_follow_the_dsp_ports():
    wide, narrow = DSP_PORTS
    # one DSP up to 26 x 17 unsigned; the wide operand goes on the wide port
    assert partial_products(wide - 1, narrow - 1) == 1 and product_levels(wide - 1, narrow - 1) == 0
    assert partial_products(60, 31) == partial_products(31, 60) == 6 and product_levels(31, 60) == 3
    assert partial_products(wide, narrow - 1) == 2 and product_levels(wide, narrow - 1) == 1
    for a, b in ((33, 31), (48, 50), (5, 7), (64, 64)):
        n = len(products.partial_terms(Signal(a), Signal(b)))
        assert n == partial_products(a, b), (a, b)


def test_a_quantizer_too_wide_for_the_cores_pipeline_is_a_config_error():
    """pe.out of 40 bits makes n / Delta's magic-number product need 4 adder
    levels after its DSPs; the core's quantizer has QUANTIZER_MAGIC_LEVELS (3)."""
    import dataclasses

    from fixar.config import ConfigError, load
    from fixar.gen.units.core import ArrayCore
    cfg = load("default")
    wide = cfg.variant(name="wide_out", pe=dataclasses.replace(cfg.pe, out=dataclasses.replace(cfg.pe.out, bits=40)))
    with pytest.raises(ConfigError, match="QAT quantizer's n / Delta's magic-number product"):
        ArrayCore.check(wide)


def test_an_array_too_short_for_the_partial_sum_write_back_is_a_config_error():
    """The core writes a partial sum back PSUM_WRITE_BEHIND cycles after it
    read it, and a slot's items come every max(batch, rows) cycles: rows at
    or below that distance would read a stale sum, so the generator refuses."""
    import dataclasses

    from fixar.config import ConfigError, load
    from fixar.config.timing import PSUM_WRITE_BEHIND
    from fixar.gen.units.core import ArrayCore
    cfg = load("small")
    ArrayCore.check(cfg)                  # small's rows are enough
    n = PSUM_WRITE_BEHIND
    mem = cfg.memory
    short = cfg.variant(name="short", array=dataclasses.replace(cfg.array, rows=n, cols=n), memory=dataclasses.replace(
        mem, **{f: getattr(mem, f) // 4 * n for f in ("weight_words", "grad_words", "bias_words",
                                                     "act_words_per_core", "xt_words_per_core")}))
    with pytest.raises(ConfigError, match=f"rows must be at least {n + 1}"):
        ArrayCore.check(short)
