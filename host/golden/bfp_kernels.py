"""numba kernel of fixar.golden.bfp's code -> BFP -> code conversion
(optional: numba may be absent; :func:`fixar.golden.bfp.bfp_quantize` then
runs its numpy code).

:func:`bfp_codes` is the numpy route written as loops over scalars on the
canonical rows x reduction view: the group exponents and the per-tensor
base, then per element the random word (Jenkins' hash of seed XOR key in
int64 arithmetic masked to 32 bits), the rounding to the group's LSB
(``_nearest`` / ``_stochastic`` / ``_left`` of bfp.py, with their shift
clips), the mantissa's saturation and the code it stands for. Shift counts
are clipped as the numpy code clips them, so no shift is outside 0..63.
The numpy route raises when a value is no code of the format; the kernel
returns False there and the caller takes the numpy route for its message.
tests/test_bfp_train.py compares both routes on random tensors of every
width, rounding and group size.
"""
from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)
M32 = 0xFFFFFFFF


@_jit
def _jenkins32(a):
    """fixar.golden.noise.jenkins32 on one word, in int64 masked to 32 bits
    (every intermediate stays below 2^46; numba would turn uint64 mixed with
    int literals into float64)."""
    a = ((a + 0x7ED55D16) + (a << 12)) & M32
    a = ((a ^ 0xC761C23C) ^ (a >> 19)) & M32
    a = ((a + 0x165667B1) + (a << 5)) & M32
    a = ((a + 0xD3A2646C) ^ (a << 9)) & M32
    a = ((a + 0xFD7046C5) + (a << 3)) & M32
    a = ((a ^ 0xB55A4F09) ^ (a >> 16)) & M32
    return a


@_jit
def _bit_length(x):
    n = 0
    while x > 0:
        x >>= 1
        n += 1
    return n


@_jit
def _mantissa(q, s, m, stochastic, w, R):
    """bfp.mantissas for one code q at group shift s (before saturation)."""
    if s > 0:
        if stochastic:
            r = min(s, R)
            k = min(s - r, 63)
            return ((q >> k) + (w >> (R - r))) >> r
        s = min(s, 63)
        return (q + ((1 << (s - 1)) - 1) + ((q >> s) & 1)) >> s
    lim = 1 << m
    return min(max(q, -lim), lim) << min(-s, 54)


@_jit
def bfp_codes(q2, frac, g, min_off, max_off, m, stochastic, R, seed, out):
    """q2: (rows, n) int64 codes; writes the BFP codes into ``out`` (same
    shape). Returns False where the numpy route would raise."""
    rows, n = q2.shape
    n_groups = (n + g - 1) // g
    E = np.empty((rows, n_groups), dtype=np.int64)
    nonzero = np.zeros((rows, n_groups), dtype=np.bool_)
    top_e, any_nonzero = 0, False
    for r in range(rows):
        for gi in range(n_groups):
            top = 0
            for j in range(gi * g, min(n, (gi + 1) * g)):
                top = max(top, abs(q2[r, j]))
            E[r, gi] = _bit_length(top) - 1 - frac
            if top > 0:
                nonzero[r, gi] = True
                top_e = E[r, gi] if not any_nonzero else max(top_e, E[r, gi])
                any_nonzero = True
    base = top_e - max_off if any_nonzero else 0
    lo_m, hi_m = -(1 << (m - 1)), (1 << (m - 1)) - 1
    for r in range(rows):
        for gi in range(n_groups):
            off = min(max(E[r, gi] - base, min_off), max_off) if nonzero[r, gi] else min_off
            s = base + off + frac - (m - 2)
            for e in range(g):
                j = gi * g + e
                if j >= n:
                    break
                w = 0
                if stochastic:
                    key = ((r * n_groups + gi) * g + e) & M32
                    w = _jenkins32(np.int64(seed ^ key)) >> (32 - R)
                mant = min(max(_mantissa(q2[r, j], s, m, stochastic, w, R), lo_m), hi_m)
                # BfpTensor.codes(): back to a code at the group's LSB 2^s
                if s >= 0:
                    left = min(s, 62 - m)
                    if s > left and mant != 0:
                        return False
                    out[r, j] = mant << left
                else:
                    right = min(-s, 63)
                    down = mant >> right
                    if (down << right) != mant:
                        return False
                    out[r, j] = down
    return True
