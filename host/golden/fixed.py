"""Fixed-point primitives on int64 arrays: the rounding and overflow rules.

Every function here is exact integer arithmetic (numpy int64, whose wrapping
on overflow is used on purpose only where a result is reduced modulo 2**n
afterwards). The hardware's output stage is :func:`requantize`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fixar.config import FixedFormat

I64 = np.int64
_KERNELS = None     # fixar.golden.kernels once imported, False when it cannot be


def numba_kernels():
    """:mod:`fixar.golden.kernels` (numba-compiled loops, the same bits as the
    numpy code), or None when numba cannot be imported or the environment
    sets FIXAR_NO_NUMBA=1 (read at every call, so tests can switch); the
    callers then run numpy. Imported on first use: numba takes a fifth of a
    second to load."""
    global _KERNELS
    if os.environ.get("FIXAR_NO_NUMBA", "0") not in ("", "0"):
        return None
    if _KERNELS is None:
        try:
            from fixar.golden import kernels
            _KERNELS = kernels
        except ImportError:   # no numba, or one that does not fit this numpy
            _KERNELS = False
    return _KERNELS or None


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


# ---------------------------------------------------------------- the registry
# The golden model's half of the number-format registry (the generator's is
# fixar.gen.lib.arith; they never import each other and meet in the config's
# names, fixar.config.ROUNDINGS and OVERFLOWS; tests/test_formats.py checks
# both cover exactly those names and agree value for value).

OVERFLOWS: dict[str, Callable] = {
    "saturate": saturate,
    "wrap": lambda v, fmt: wrap(v, fmt.bits, fmt.signed),
}


@dataclass(frozen=True)
class Rounding:
    """One rounding rule: floor((v + addend) / 2**shift), the addend from
    ``addend(bit, negative, shift, rnd, rnd_bits)`` where ``bit(k)`` gives
    bit k of the value and ``negative()`` its sign. The faster routes a rule
    allows are facets of the same entry: ``add_into`` (the addend added in
    place to a one-part value), ``float_round`` (the float64 function equal to
    the rule on an exactly held total times 2**-shift) and ``kernel_code``
    (fixar.golden.kernels' code); None where a rule has no such route."""

    addend: Callable
    add_into: Callable | None = None
    float_round: Callable | None = None
    kernel_code: int | None = None


def _rne_into(x, shift, scratch):
    np.right_shift(x, I64(shift), out=scratch)      # the kept LSB: ties go to even
    scratch &= I64(1)
    scratch += I64((1 << (shift - 1)) - 1)
    x += scratch


def _zero_into(x, shift, scratch):
    np.right_shift(x, I64(63), out=scratch)         # -1 where negative: add 2**shift - 1 there
    scratch &= I64((1 << shift) - 1)
    x += scratch


def _stochastic(bit, negative, shift, rnd, rnd_bits):
    if rnd is None or rnd_bits < shift:
        raise ValueError(f"stochastic rounding by {shift} bits needs a random word of >= {shift} bits")
    return np.asarray(rnd, dtype=I64) >> I64(rnd_bits - shift)     # its top ``shift`` bits


ROUNDERS: dict[str, Rounding] = {
    "floor": Rounding(lambda bit, negative, shift, rnd, rnd_bits: I64(0),
                      lambda x, shift, scratch: None, np.floor, 0),
    "rne": Rounding(lambda bit, negative, shift, rnd, rnd_bits: I64((1 << (shift - 1)) - 1) + bit(shift),
                    _rne_into, np.rint, 1),
    "zero": Rounding(lambda bit, negative, shift, rnd, rnd_bits: np.where(negative(), I64((1 << shift) - 1), I64(0)),
                     _zero_into, np.trunc, 2),
    "stochastic": Rounding(_stochastic),
}


def overflow(v, fmt: FixedFormat) -> np.ndarray:
    """Apply ``fmt.overflow`` to integer codes that may lie outside the format."""
    return OVERFLOWS[fmt.overflow](v, fmt)


def _bit(v: np.ndarray, k: int) -> np.ndarray:
    return (v >> I64(k)) & I64(1)


def requantize(hi, lo, hi_shift: int, shift: int, fmt: FixedFormat, rnd=None, rnd_bits: int = 0):
    """round((hi * 2**hi_shift + lo) / 2**shift) by ``fmt.rounding``, then ``fmt.overflow``.

    The value is given as two int64 parts because a recombined FXP32 sum
    (64 + guard bits) does not fit one int64; both parts must fit in 62 bits.
    The rounding's addend (the registry above: floor 0; rne 2**(shift-1) - 1
    plus bit ``shift``; zero 2**shift - 1 where negative; stochastic the top
    ``shift`` bits of the ``rnd_bits``-bit random word) is added, then the
    value shifted right arithmetically: literally what the output stages do.

    ``hi`` may be the Python int 0 for a one-part value (most callers): the
    same rule then runs in fewer numpy passes (tests compare both paths).
    A two-part value (the approximate multipliers' lane sums) runs through
    one numba pass where numba runs and the rounding needs no random words
    (fixar.golden.kernels.requantize2: the same steps per entry), instead
    of numpy's dozen.
    """
    rule = ROUNDERS[fmt.rounding]
    if isinstance(hi, int) and hi == 0 and hi_shift == 0 and shift > 0:
        v = np.asarray(lo, dtype=I64)
        q = v + rule.addend(lambda k: _bit(v, k), lambda: v < 0, shift, rnd, rnd_bits)
        q >>= I64(shift)
        return overflow(q, fmt)
    hi = np.asarray(hi, dtype=I64)
    lo = np.asarray(lo, dtype=I64)
    k = numba_kernels()
    if k is not None and shift > 0 and rule.kernel_code is not None and max(hi.ndim, lo.ndim) > 0:
        hi, lo = np.broadcast_arrays(hi, lo)
        out = np.empty(hi.shape, dtype=I64)
        k.requantize2(np.ascontiguousarray(hi).reshape(-1), np.ascontiguousarray(lo).reshape(-1), hi_shift, shift,
                      *k.fmt_params(fmt), out.reshape(-1))
        return out
    hs = I64(hi_shift)
    if shift > 0:
        def bit(k):
            return _bit(hi + (lo >> hs), k - hi_shift) if k >= hi_shift else _bit(lo, k)
        lo = lo + rule.addend(bit, lambda: (hi + (lo >> hs)) < 0, shift, rnd, rnd_bits)
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


def requantize_into(x: np.ndarray, shift: int, fmt: FixedFormat, scratch: np.ndarray) -> np.ndarray:
    """requantize(0, x, 0, shift, fmt) for a rounding with an in-place route
    and shift >= 1, computed in the int64 array x itself, which is returned
    (``scratch``: an int64 array of x's shape it may overwrite). The same
    steps as requantize's one-part path, without its temporaries."""
    rule = ROUNDERS[fmt.rounding]
    if rule.add_into is None:
        raise ValueError(f"requantize_into: {fmt.rounding} rounding needs random words")
    rule.add_into(x, shift, scratch)
    x >>= I64(shift)
    if fmt.overflow == "saturate":
        return np.clip(x, fmt.min_int, fmt.max_int, out=x)
    x[...] = wrap(x, fmt.bits, fmt.signed)
    return x


def quantize(x, fmt: FixedFormat, rnd=None, rnd_bits: int = 0) -> np.ndarray:
    """Real numbers -> integer codes of ``fmt`` (its rounding and overflow rules).

    Scaling by 2**frac is exact in float64, so floor and rne are exact for
    every float64 input; stochastic adds ``rnd`` / 2**rnd_bits of an LSB first.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize NaN or infinity")
    scaled = np.ldexp(x, fmt.frac)
    rule = ROUNDERS[fmt.rounding]
    if rule.float_round is not None:      # floor, rint (IEEE round-half-even), trunc
        r = rule.float_round(scaled)
    else:                                 # a rounding with random words
        if rnd is None or rnd_bits <= 0:
            raise ValueError("stochastic quantization needs random words")
        r = np.floor(scaled + np.ldexp(np.asarray(rnd, dtype=np.float64), -rnd_bits))
    # r holds integers, some maybe beyond int64; reduce them exactly before the cast
    top = 2.0 ** 63
    if fmt.overflow == "wrap":
        # fmod of float64 integers is exact (IEEE), and 2**bits is a float: the
        # result is congruent to r modulo 2**bits, |result| < 2**bits
        span = 2.0 ** fmt.bits
        r = np.fmod(r, span)
        if fmt.bits == 64:    # into int64's range, still modulo 2**64 (exact: Sterbenz)
            r = np.where(r >= top, r - span, np.where(r < -top, r + span, r))
        return wrap(r.astype(I64), fmt.bits, fmt.signed)
    # saturate: beyond int64 is beyond every format here, so those go to the bounds directly
    q = np.clip(r, -top, np.nextafter(top, 0)).astype(I64)
    hi = I64(min(fmt.max_int, (1 << 63) - 1))     # (an unsigned 64-bit format's top is beyond int64)
    return saturate(np.where(r >= top, hi, np.where(r < -top, I64(fmt.min_int), q)), fmt)


def dequantize(q, fmt: FixedFormat) -> np.ndarray:
    return np.ldexp(np.asarray(q, dtype=np.float64), -fmt.frac)


def to_unsigned(v, bits: int) -> np.ndarray:
    """Two's-complement bit pattern of signed codes (what a bus carries)."""
    return np.asarray(v, dtype=I64) & I64((1 << bits) - 1)


def from_unsigned(u, bits: int) -> np.ndarray:
    return wrap(np.asarray(u, dtype=I64), bits, signed=True)
