"""The number-format registry: the config's names, the golden model's exact
half and the generator's Amaranth half (simulated here) agree entry by entry,
and the array's stochastic-rounding words agree between the two halves."""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from fixar.config import OVERFLOWS, QUANTIZER_ROUNDINGS, ROUNDINGS, FixedFormat
from fixar.gen.lib import arith, noise
from fixar.golden import fixed
from fixar.golden.noise import jenkins32
from fixar.golden.qat import QUANTIZER_ADDENDS


def _simulate(build, inputs: list[dict]) -> list[int]:
    """Drive a combinational circuit ``build(m) -> (ports, out)`` with each
    dict of port values and read ``out``."""
    m = Module()
    ports, out = build(m)
    got = []

    async def bench(ctx):
        for values in inputs:
            for name, v in values.items():
                ctx.set(ports[name], v)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_both_halves_cover_exactly_the_configs_names():
    assert set(arith.ROUNDERS) == set(ROUNDINGS) == set(fixed.ROUNDERS)
    assert set(arith.OVERFLOWS) == set(OVERFLOWS) == set(fixed.OVERFLOWS)
    assert set(arith.QUANTIZER_ADDENDS) == set(QUANTIZER_ROUNDINGS) == set(QUANTIZER_ADDENDS)


def _cases(width: int, rnd_bits: int, rng: random.Random) -> list[dict]:
    """Every value of a narrow signed width, each with a random word."""
    return [{"v": v, "r": rng.randrange(1 << rnd_bits)} for v in range(-(1 << (width - 1)), 1 << (width - 1))]


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("overflow", OVERFLOWS)
def test_generator_half_equals_golden_half_exhaustively(rounding, overflow):
    """Every 12-bit value shifted by 3 into a 5-bit format (so both overflow
    directions and every tie occur, and floors beyond the generator's narrowing
    to 7 bits before the rounding's carry), in Amaranth's simulator and in numpy."""
    fmt = FixedFormat(5, 2, rounding=rounding, overflow=overflow)
    width, shift, rnd_bits = 12, 3, 6
    cases = _cases(width, rnd_bits, random.Random(7))

    def build(m):
        v, r = Signal(signed(width)), Signal(rnd_bits)
        return {"v": v, "r": r}, arith.requantize(m, v, shift, fmt, "x", r)

    got = _simulate(build, cases)
    v = np.array([c["v"] for c in cases])
    r = np.array([c["r"] for c in cases])
    want = fixed.requantize(np.zeros_like(v), v, 0, shift, fmt, r, rnd_bits)
    assert got == want.tolist()
    assert want.min() == fmt.min_int and want.max() == fmt.max_int or overflow == "wrap"


def test_a_planted_rounding_difference_is_seen():
    """The comparison above fails when one half's entry is changed: ties to
    odd instead of even in the generator."""
    fmt = FixedFormat(5, 2, rounding="rne")
    cases = _cases(10, 6, random.Random(7))
    saved = arith.ROUNDERS["rne"]
    arith.ROUNDERS["rne"] = lambda value, shift, rnd: saved(value, shift, rnd) + 1 - 2 * value[shift]
    try:
        def build(m):
            v = Signal(signed(10))
            return {"v": v}, arith.requantize(m, v, 3, fmt, "x")
        got = _simulate(build, [{"v": c["v"]} for c in cases])
    finally:
        arith.ROUNDERS["rne"] = saved
    v = np.array([c["v"] for c in cases])
    want = fixed.requantize(0, v, 0, 3, fmt)
    assert got != want.tolist()


def test_noise_hash_halves_agree():
    """gen/lib/noise (simulated) and golden/noise (numpy) on random words,
    and both against the hash written out in Python ints."""
    def by_ints(a):
        M = 0xFFFF_FFFF
        a = ((a + 0x7ED55D16) + (a << 12)) & M
        a = ((a ^ 0xC761C23C) ^ (a >> 19)) & M
        a = ((a + 0x165667B1) + (a << 5)) & M
        a = ((a + 0xD3A2646C) ^ (a << 9)) & M
        a = ((a + 0xFD7046C5) + (a << 3)) & M
        return ((a ^ 0xB55A4F09) ^ (a >> 16)) & M

    rng = random.Random(3)
    words = [0, 1, 0xFFFF_FFFF, 0x8000_0000] + [rng.randrange(1 << 32) for _ in range(300)]

    def build(m):
        a = Signal(32)
        return {"a": a}, noise.hash_rounds(m, a, 0, len(noise.ROUNDS), "t")

    got = _simulate(build, [{"a": w} for w in words])
    assert got == [by_ints(w) for w in words] == jenkins32(np.array(words, dtype=np.uint32)).tolist()


def test_stochastic_rounding_is_unbiased_over_seeds():
    """For one output, the word is uniform over seeds: the mean of many
    roundings of 0.3 LSB comes out near 0.3."""
    from fixar.golden.noise import rounding_words
    fmt = FixedFormat(16, 0, rounding="stochastic")
    words = np.array([rounding_words(s, 1, 1, 8)[0, 0] for s in range(4000)])
    y = fixed.requantize(0, np.full(4000, 77), 0, 8, fmt, words, 8)    # 77 / 256 = 0.30 LSB
    assert abs(y.mean() - 77 / 256) < 0.03
    assert dataclasses.replace(fmt, rounding="rne").needs_random is False and fmt.needs_random
