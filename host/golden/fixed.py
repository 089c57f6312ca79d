"""Fixed-point primitives on int64 arrays: the rounding and overflow rules.

Every function here is exact integer arithmetic (numpy int64, whose wrapping
on overflow is used on purpose only where a result is reduced modulo 2**n
afterwards). The hardware's output stage is :func:`requantize`.
"""
from __future__ import annotations

import numpy as np

from fixar.config import FixedFormat

I64 = np.int64


def wrap(v, bits: int, signed: bool = True) -> np.ndarray:
    """Reduce modulo 2**bits into the two's-complement (or unsigned) range."""
    v = np.asarray(v, dtype=I64)
    if bits >= 64:
        return v
    mask = I64((1 << bits) - 1)
    u = v & mask
    if signed:
        half = I64(1 << (bits - 1))
        u = u - ((u & half) << I64(1))
    return u


def saturate(v, fmt: FixedFormat) -> np.ndarray:
    return np.clip(np.asarray(v, dtype=I64), fmt.min_int, fmt.max_int)


def overflow(v, fmt: FixedFormat) -> np.ndarray:
    """Apply ``fmt.overflow`` to integer codes that may lie outside the format."""
    if fmt.overflow == "saturate":
        return saturate(v, fmt)
    return wrap(v, fmt.bits, fmt.signed)


def _bit(v: np.ndarray, k: int) -> np.ndarray:
    return (v >> I64(k)) & I64(1)


def requantize(hi, lo, hi_shift: int, shift: int, fmt: FixedFormat, rnd=None, rnd_bits: int = 0):
    """floor-or-round((hi * 2**hi_shift + lo) / 2**shift), then ``fmt.overflow``.

    The value is given as two int64 parts because a recombined FXP32 sum
    (64 + guard bits) does not fit one int64; both parts must fit in 62 bits.
    Rounding follows ``fmt.rounding``:
      floor       add 0
      rne         add 2**(shift-1) - 1 + (bit ``shift`` of the value)   (ties to even)
      stochastic  add the top ``shift`` bits of the ``rnd_bits``-bit random word
      zero        add 2**shift - 1 to a negative value (truncation toward zero;
                  in hardware only the Adam unit's moments, gen/arith.round_into)
    and then an arithmetic right shift; this is literally what the PE does.

    ``hi`` may be the Python int 0 for a one-part value (most callers): the
    same rule then runs in fewer numpy passes (tests compare both paths).
    """
    if isinstance(hi, int) and hi == 0 and hi_shift == 0 and shift > 0 and fmt.rounding in ("rne", "floor"):
        v = np.asarray(lo, dtype=I64)
        if fmt.rounding == "floor":
            return overflow(v >> I64(shift), fmt)
        q = (v >> I64(shift)) & I64(1)          # the kept LSB: ties go to even
        q += I64((1 << (shift - 1)) - 1)
        q += v
        q >>= I64(shift)
        return overflow(q, fmt)
    hi = np.asarray(hi, dtype=I64)
    lo = np.asarray(lo, dtype=I64)
    hs = I64(hi_shift)
    if shift > 0:
        if fmt.rounding == "floor":
            add = I64(0)
        elif fmt.rounding == "rne":
            if shift >= hi_shift:
                lsb = _bit(hi + (lo >> hs), shift - hi_shift)
            else:
                lsb = _bit(lo, shift)
            add = I64((1 << (shift - 1)) - 1) + lsb
        elif fmt.rounding == "zero":
            negative = (hi + (lo >> hs)) < 0          # the value hi 2^hs + lo, normalised as below
            add = np.where(negative, I64((1 << shift) - 1), I64(0))
        else:  # stochastic
            if rnd is None or rnd_bits < shift:
                raise ValueError(f"stochastic rounding by {shift} bits needs a random word of >= {shift} bits")
            add = np.asarray(rnd, dtype=I64) >> I64(rnd_bits - shift)
        lo = lo + add
    # Normalise to hi * 2**hs + low with 0 <= low < 2**hs; then shift.
    hi = hi + (lo >> hs)
    low = lo & I64((1 << hi_shift) - 1)
    if shift >= hi_shift:
        q = hi >> I64(shift - hi_shift)
    else:
        if fmt.overflow == "saturate":
            # Any |hi| beyond this saturates anyway; clipping keeps the
            # multiply below inside int64 (wrap mode needs no clip: int64
            # wraps modulo 2**64, a multiple of 2**fmt.bits).
            bound = I64(1) << I64(fmt.bits + 1)
            hi = np.clip(hi, -bound, bound)
        q = hi * I64(1 << (hi_shift - shift)) + (low >> I64(shift))
    return overflow(q, fmt)


def quantize(x, fmt: FixedFormat, rnd=None, rnd_bits: int = 0) -> np.ndarray:
    """Real numbers -> integer codes of ``fmt`` (its rounding and overflow rules).

    Scaling by 2**frac is exact in float64, so floor and rne are exact for
    every float64 input; stochastic adds ``rnd`` / 2**rnd_bits of an LSB first.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize NaN or infinity")
    scaled = np.ldexp(x, fmt.frac)
    if fmt.rounding == "floor":
        r = np.floor(scaled)
    elif fmt.rounding == "rne":
        r = np.rint(scaled)  # IEEE round-half-even
    elif fmt.rounding == "zero":
        r = np.trunc(scaled)
    else:
        if rnd is None or rnd_bits <= 0:
            raise ValueError("stochastic quantization needs random words")
        r = np.floor(scaled + np.ldexp(np.asarray(rnd, dtype=np.float64), -rnd_bits))
    limit = 2.0 ** 62
    r = np.clip(r, -limit, limit)  # beyond int64; saturates or wraps as below
    return overflow(r.astype(I64), fmt)


def dequantize(q, fmt: FixedFormat) -> np.ndarray:
    return np.ldexp(np.asarray(q, dtype=np.float64), -fmt.frac)


def to_unsigned(v, bits: int) -> np.ndarray:
    """Two's-complement bit pattern of signed codes (what a bus carries)."""
    return np.asarray(v, dtype=I64) & I64((1 << bits) - 1)


def from_unsigned(u, bits: int) -> np.ndarray:
    return wrap(np.asarray(u, dtype=I64), bits, signed=True)
