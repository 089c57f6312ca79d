"""numba loops of the golden model's fast multiplier routes
(:mod:`fixar.golden.multiplier_routes`, which reaches this module only when
the golden model's numba kernels are on; its numpy code computes the same
bits and the tests run both). Compiled on first use, cached on disk.

``log``: i, k, n with n innermost, one outer word in a register while an
inner row streams. ``_mantissa`` is the config's ``log_mantissa`` itself,
compiled and inlined. The masks (the fraction sum's, and the sign bit
cleared before ``>> F``) let LLVM see non-negative values and use logical
shifts, which AVX2 has for 64-bit lanes (arithmetic ones it lacks); the sign
by xor-and-subtract keeps the loop free of branches, so it is vectorized.
One packed stream instead of four field arrays: the loop was bound by
loading them (2.5 ms instead of 3.0 for a 64 x 400 @ 400 x 300 product with
half the outer entries zero, one thread).
"""
from __future__ import annotations

import numba
import numpy as np

from fixar.config.multipliers import log_mantissa

_jit = numba.njit(cache=True, nogil=True)
# A module-level global, not a closure variable: numba's disk cache keys a
# function by its closure too, and a dispatcher made per process never matches.
_mantissa = numba.njit(inline="always")(log_mantissa)
_POSITIVE = np.int64(0x7FFF_FFFF_FFFF_FFFF)
_SIGN_BIT = np.int64(-(1 << 63))     # packed words' sign: adding two XORs them (the carry leaves)


@numba.njit(inline="always")
def _log_loop(F, corr, masked, zero, outer, inner, out):
    M, K = outer.shape
    N = inner.shape[1]
    acc = np.zeros(N, np.int64)
    for i in range(M):
        acc[:] = 0
        for k in range(K):
            u = outer[i, k]
            if u == zero:
                continue
            row = inner[k]
            for n in range(N):
                w = u + row[n]
                mant, carry = _mantissa(w & 0xFF_FFFF, F, corr)
                p = ((mant << (((w >> 24) & 0xFF) + carry)) & _POSITIVE) >> F
                if masked:                      # a constant: no branch in the loop
                    p &= ((w >> 40) & 1) - 1    # 0 for a zero inner entry (its flag, bit 40)
                g = w >> 63                     # -1 for a negative product: one compare in AVX2
                acc[n] += (p ^ g) - g
        out[i, :] = acc


@_jit
def log(F, corr, masked, zero, outer, inner, out):
    """out[i, n] = sum_k of the product of packed words outer[i, k] (skipped
    when ``zero``: a zero entry) and inner[k, n] (0 for a flagged zero inner
    entry when ``masked``). The branches make the constants the loop sees:
    corr = 0 (Mitchell) takes the correction's shift and add out of it."""
    if corr == 0:
        if masked:
            _log_loop(F, 0, True, zero, outer, inner, out)
        else:
            _log_loop(F, 0, False, zero, outer, inner, out)
    elif masked:
        _log_loop(F, corr, True, zero, outer, inner, out)
    else:
        _log_loop(F, corr, False, zero, outer, inner, out)


@numba.njit(inline="always")
def _lead(mag):
    """Position of the leading one of 0 < mag < 2^53 (float64's exponent is exact there)."""
    return (np.float64(mag).view(np.int64) >> 52) - 1023


@_jit
def with_one(F, corr, zero, outer, out):
    """The product of each packed outer word with the operand 1 (0 for ``zero``)."""
    for j in range(outer.shape[0]):
        u = outer[j]
        if u == zero:
            out[j] = 0
            continue
        mant, carry = _mantissa(u & 0xFF_FFFF, F, corr)
        p = ((mant << (((u >> 24) & 0xFF) + carry)) & _POSITIVE) >> F
        out[j] = -p if u < 0 else p


@_jit
def pack(V, T, ftab, zero, out):
    """packed_fields in one pass (the window split of fixar.golden.multipliers.split)."""
    for j in range(V.shape[0]):
        v = V[j]
        mag = abs(v)
        if mag == 0:
            out[j] = zero
            continue
        lead = _lead(mag)
        out[j] = ftab[mag >> max(lead - T, 0)] | (lead << 24) | (_SIGN_BIT if v < 0 else 0)


@_jit
def mapped(V, T, optab, out):
    """sign(v) optab[M] << E of each entry (the separable route's operand map)."""
    for j in range(V.shape[0]):
        v = V[j]
        mag = abs(v)
        if mag == 0:
            out[j] = 0
            continue
        e = max(_lead(mag) - T, 0)
        m = optab[mag >> e] << e
        out[j] = -m if v < 0 else m
