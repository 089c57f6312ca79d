"""fixar.golden.fixed.quantize against exact rational arithmetic (Python
ints) over the whole float64 range: wrapping is modulo 2**bits however large
the input (it used to clip at 2**62 first, so 2**42 + 2**-10 in Q12.20 wrapped
to 0 instead of 1024), saturation reaches the format's bounds, 64-bit formats
included."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from fixar.config import FixedFormat
from fixar.golden.fixed import quantize


def exact(x: float, fmt: FixedFormat) -> int:
    v = Fraction(x) * 2 ** fmt.frac
    if fmt.rounding == "floor":
        q = math.floor(v)
    elif fmt.rounding == "zero":
        q = math.trunc(v)
    else:                                   # rne: Python's round() ties to even
        q = round(v)
    if fmt.overflow == "saturate":
        return min(max(q, fmt.min_int), fmt.max_int)
    q %= 1 << fmt.bits
    return q - (1 << fmt.bits) if fmt.signed and q >= 1 << (fmt.bits - 1) else q


def test_the_issue_example():
    assert int(quantize(2.0 ** 42 + 2.0 ** -10, FixedFormat(32, 20, overflow="wrap"))) == 1024


FORMATS = [FixedFormat(32, 20, overflow="wrap"), FixedFormat(16, 15, overflow="wrap"),
           FixedFormat(32, 20, rounding="floor", overflow="wrap"), FixedFormat(24, 8, rounding="zero", overflow="wrap"),
           FixedFormat(64, 0, overflow="wrap"), FixedFormat(64, 10, rounding="floor", overflow="wrap"),
           FixedFormat(63, 0, overflow="wrap"), FixedFormat(20, 4, signed=False, overflow="wrap"),
           FixedFormat(32, 20), FixedFormat(64, 0), FixedFormat(63, 3, rounding="floor"),
           FixedFormat(40, 8, signed=False)]


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_quantize_is_exact_for_every_magnitude(fmt):
    rng = np.random.default_rng(7)
    mant = rng.uniform(-2, 2, 3000)
    xs = np.ldexp(mant, rng.integers(-30, 1000, mant.size))        # up to ~2**1000
    edges = [2.0 ** 62, -(2.0 ** 62), 2.0 ** 63, -(2.0 ** 63), 2.0 ** 64, 2.0 ** 64 - 2048, -(2.0 ** 64),
             2.0 ** 42 + 2.0 ** -10, -(2.0 ** 42 + 2.0 ** -10), 2.0 ** 63 - 1024, 0.5, -0.5, 1.5, 0.0, 1e300, -1e300]
    xs = np.concatenate([xs, np.ldexp(np.array(edges), -fmt.frac), np.array(edges)])
    got = quantize(xs, fmt)
    assert got.dtype == np.int64
    wrong = [(x, int(g), exact(x, fmt)) for x, g in zip(xs.tolist(), got.tolist()) if int(g) != exact(x, fmt)]
    assert not wrong, wrong[:5]
