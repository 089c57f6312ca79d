"""numba kernels for the golden model's hot loops (optional: numba may be absent).

``adam``, ``soft`` and ``relu_mask`` are the numpy code they stand for,
written as loops over scalars: the same int64 operations in the same order,
so the bits are the same by construction (int64 wraps in both; a shift by a
computed amount goes through :func:`_shr` / :func:`_shl`, which return
numpy's result for counts outside 0..63, where a plain shift would be
undefined). ``round_total`` and ``fake_quantize`` compute in float64 where
that is exact (the conditions are in their docstrings and checked by their
callers or the kernel itself); ``operand`` only converts. Callers reach this
module through :func:`fixar.golden.fixed.numba_kernels`, which returns None
when numba cannot be imported or FIXAR_NO_NUMBA=1, and then run the numpy
code; tests run both routes. Kernels are compiled on first use (5 s in all)
and cached on disk (``cache=True``); ``nogil`` lets the Adam pool run them on
several threads.

Rounding codes (the registry's ``kernel_code``): 0 floor, 1 rne, 2 zero. Stochastic rounding
needs random words that none of these callers has: they keep the numpy
route for it, which raises the error it always raised.
"""
from __future__ import annotations

import functools

import numba
import numpy as np

from fixar.golden.fixed import ROUNDERS

_jit = numba.njit(cache=True, nogil=True)


@functools.lru_cache(maxsize=64)
def fmt_params(fmt) -> tuple[int, int, int, int, int, int]:
    """(rounding code, min, max, bits, signed, wrap) of a FixedFormat, as the kernels take it."""
    return (ROUNDERS[fmt.rounding].kernel_code, fmt.min_int, fmt.max_int, fmt.bits, int(fmt.signed),
            int(fmt.overflow == "wrap"))


def soft_params(cfg, c: int) -> np.ndarray:
    """Q of :func:`_soft1`: the vector unit's SOFT with coefficient c on pe.act32."""
    return np.array((c, cfg.vector.coef_frac, *fmt_params(cfg.pe.act32)), dtype=np.int64)


@_jit
def _shr(x, n):
    """numpy's x >> n: for n outside 0..63, 0 or -1 by the sign of x."""
    if 0 <= n < 64:
        return x >> n
    return -1 if x < 0 else 0


@_jit
def _shl(x, n):
    """numpy's x << n: 0 for n outside 0..63."""
    if 0 <= n < 64:
        return x << n
    return 0


@_jit
def _overflow(q, lo, hi, bits, signed, wrap):
    """fixed.overflow: saturate to [lo, hi], or wrap modulo 2^bits."""
    if not wrap:
        return min(max(q, lo), hi)
    if bits >= 64:
        return q
    u = q & ((1 << bits) - 1)
    if signed:
        u -= (u & (1 << (bits - 1))) << 1
    return u


@_jit
def _rq1(x, shift, rnd, lo, hi, bits, signed, wrap):
    """fixed.requantize(0, x, 0, shift, fmt) for shift >= 1 (one-part value)."""
    if rnd == 1:
        x += (1 << (shift - 1)) - 1 + ((x >> shift) & 1)
    elif rnd == 2 and x < 0:
        x += (1 << shift) - 1
    return _overflow(x >> shift, lo, hi, bits, signed, wrap)


@_jit
def _rq2(hi, lo, hs, shift, rnd, fmin, fmax, bits, signed, wrap):
    """fixed.requantize(hi, lo, hs, shift, fmt) for shift >= 1, step by step."""
    if rnd == 1:
        lsb = ((hi + (lo >> hs)) >> (shift - hs)) & 1 if shift >= hs else (lo >> shift) & 1
        lo += (1 << (shift - 1)) - 1 + lsb
    elif rnd == 2 and hi + (lo >> hs) < 0:
        lo += (1 << shift) - 1
    hi = hi + (lo >> hs)
    low = lo & ((1 << hs) - 1)
    if shift >= hs:
        q = hi >> (shift - hs)
    else:
        if not wrap:
            bound = 1 << (bits + 1)
            hi = min(max(hi, -bound), bound)
        q = hi * (1 << (hs - shift)) + (low >> shift)
    return _overflow(q, fmin, fmax, bits, signed, wrap)


@_jit
def requantize2(hi, lo, hs, shift, rnd, fmin, fmax, bits, signed, wrap, out):
    """fixed.requantize(hi, lo, hs, shift, fmt) of flat arrays, shift >= 1."""
    for j in range(out.shape[0]):
        out[j] = _rq2(hi[j], lo[j], hs, shift, rnd, fmin, fmax, bits, signed, wrap)


@_jit
def _soft1(a, b, Q):
    """vector_op(SOFT, a, b, c) of one element; Q: (c, coef_frac, *fmt_params(pe.act32))."""
    lo, hi = Q[3], Q[4]
    return min(max(b + _rq1((a - b) * Q[0], Q[1], Q[2], lo, hi, Q[5], Q[6], Q[7]), lo), hi)


@_jit
def adam(w, g, m, v, table, P, w_out, m_out, v_out, pt, Q):
    """fixar.golden.adam.adam_update into w_out, m_out, v_out (P: the
    constants adam._kernel packs), then, when ``pt`` is not empty, the
    target network's soft update pt <- SOFT(w_out, pt) (Q: see _soft1).
    Returns 1 when some rsqrt input was below 1 (the caller raises as rsqrt does).
    Blocks of 512 weights, each step one simple loop over the block, so that
    LLVM vectorizes them (one fused loop does not, and runs 3x slower); no
    loop writes an array it reads from another argument, since w_out may be
    w and LLVM then falls back to scalar code."""
    (gl, b1, c1, b2, c2, e2, lr, gsh, cf, mr, mmin, mmax, mbits, mwrap, d, vr, vmin, vmax, vbits, vwrap, vfrac,
     rf, half, newton, wmin, wmax, base) = (P[0], P[1], P[2], P[3], P[4], P[5], P[6], P[7], P[8], P[9], P[10], P[11],
                                           P[12], P[13], P[14], P[15], P[16], P[17], P[18], P[19], P[20], P[21],
                                           P[22], P[23], P[24], P[25], P[26])
    lim, three, bad, n, block = (1 << 31) - 1, 3 << rf, 0, w.shape[0], 512
    scratch = np.empty((5, block), np.int64)
    X, E, Y, S, idx = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    for start in range(0, n, block):
        # views of the block, indexed from 0: an index numba cannot prove
        # non-negative gets a wraparound select, and LLVM then gathers
        size = min(block, n - start)
        wb, gb, mb, vb = w[start:start + size], g[start:start + size], m[start:start + size], v[start:start + size]
        wo, mo, vo = w_out[start:start + size], m_out[start:start + size], v_out[start:start + size]
        for j in range(size):                      # clip; first moment; g^2 in v's format
            gi = min(max(gb[j], -gl), gl)
            mo[j] = _rq1(b1 * mb[j] + c1 * (gi << gsh), cf, mr, mmin, mmax, mbits, 1, mwrap)
            g2 = gi * gi
            if d >= 0:
                X[j] = vmax if g2 > (vmax >> d) else g2 << d
            else:
                X[j] = min(max(_rq1(g2, -d, vr, vmin, vmax, vbits, 0, vwrap), vmin), vmax)
        for j in range(size):                      # second moment in 31-bit limbs; rsqrt's input
            hi = b2 * (vb[j] >> 31) + c2 * (X[j] >> 31)
            lo = b2 * (vb[j] & lim) + c2 * (X[j] & lim)
            vo[j] = _rq2(hi, lo, 31, cf, vr, vmin, vmax, vbits, 0, vwrap)
            X[j] = vo[j] + e2
        for j in range(size):                      # bit length - 1, as adam._bit_length (float64 exponent)
            bad |= X[j] < 1
            x = max(X[j], 1)
            e = (np.float64(x).view(np.int64) >> 52) - 1022
            E[j] = e - ((x >> (e - 1)) == 0) - 1
        for j in range(size):                      # mantissa in [1, 4), table index, exponent
            x, e = max(X[j], 1), E[j]
            k = e - vfrac
            odd = k & 1
            sh = e - rf
            mm = (_shr(x, sh) if sh >= 0 else _shl(x, -sh)) << odd
            X[j] = mm
            idx[j] = (_shr(mm, odd + (rf - half)) & ((1 << half) - 1)) + (odd << half)
            S[j] = -((k - odd) >> 1)               # -(kk // 2): an arithmetic shift is floor division
        for j in range(size):
            Y[j] = table[idx[j]]
        for _ in range(newton):
            for j in range(size):
                y = Y[j]
                t = ((y * y) >> rf) * X[j] >> rf
                Y[j] = ((three - t) * y) >> (rf + 1)
        for j in range(size):                      # P, the step, the weight (into E: w_out may be w)
            q = _rq1(mo[j] * Y[j], rf, mr, mmin, mmax, mbits, 1, mwrap) * lr
            sh = base - S[j]
            c = max(sh, 1)
            dw = _shr(q + _shl(1, c - 1) - 1 + (_shr(q, c) & 1), c)
            if sh < 1:                             # beyond any weight: saturates
                dw = wmax * ((q > 0) - (q < 0))
            E[j] = min(max(wb[j] - dw, wmin), wmax)
        for j in range(size):
            wo[j] = E[j]
        if pt.shape[0]:
            ptb = pt[start:start + size]
            for j in range(size):
                ptb[j] = _soft1(E[j], ptb[j], Q)
    return bad


@_jit
def soft(p, pt, Q):
    """pt <- vector_op(SOFT, p, pt, c): saturate(pt + scale(p - pt, c)), in place (Q: see _soft1)."""
    for i in range(pt.shape[0]):
        pt[i] = _soft1(p[i], pt[i], Q)


@_jit
def relu_mask(a, b, top, out):
    """vector_op(RELU_MASK, a, b, limit=top) of flat arrays: a where 0 < b < top, else 0."""
    for i in range(a.shape[0]):
        out[i] = a[i] if 0 < b[i] < top else 0


@_jit
def magnitude_lanes(X, L, out):
    """out = [lo | hi] of fixar.golden.matmul.magnitude_lanes: |x|'s low and
    high L bits side by side, each with x's sign (one pass for numpy's eight)."""
    B = X.shape[1]
    mask = (1 << L) - 1
    for i in range(X.shape[0]):
        for j in range(B):
            x = X[i, j]
            mag = abs(x)
            lo, hi = mag & mask, mag >> L
            out[i, j] = -lo if x < 0 else lo
            out[i, B + j] = -hi if x < 0 else hi


@_jit
def fake_quantize(X, bits, half, delta, zero, rnd, lo, hi, fbits, signed, wrap, out):
    """qat.dequantize16(quantize16(X)) of a flat X into out, in one pass.
    The floor division n // delta runs in float64 with one correction step,
    exact while |n| < 2^53: an x with |x| >= 2^(52 - bits) breaks that, and
    then the kernel returns 1 and the caller runs numpy instead."""
    top, lim, bad = (1 << bits) - 1, 1 << (52 - bits), 0
    for i in range(X.shape[0]):
        x = X[i]
        bad |= abs(x) >= lim
        n = (x << bits) + half
        q = np.int64(np.floor(np.float64(n) / delta))
        r = n - q * delta
        q += (r >= delta) - (r < 0)
        q = min(max(q + zero, 0), top)
        out[i] = _rq1((q - zero) * delta, bits, rnd, lo, hi, fbits, signed, wrap)
    return bad


@_jit
def code_stats(V):
    """(min, max, number of nonzero entries) of an int64 array in one pass
    (numpy takes three: the approximate products' operand checks and their
    choice of outer operand)."""
    flat = V.reshape(-1)
    lo, hi, nonzero = flat[0], flat[0], 0
    for j in range(flat.shape[0]):
        v = flat[j]
        lo = min(lo, v)
        hi = max(hi, v)
        nonzero += v != 0
    return lo, hi, nonzero


@_jit
def operand(W):
    """A non-empty C-contiguous int64 matrix as float64, with the largest row
    and the largest column sum of |w| (int64: exact) and its smallest and
    largest entries, in one pass."""
    M, K = W.shape
    F = np.empty((M, K), np.float64)
    cols = np.zeros(K, np.int64)
    lo, hi, row = W[0, 0], W[0, 0], 0
    for i in range(M):
        r = 0
        for j in range(K):
            w = W[i, j]
            F[i, j] = w
            a = abs(w)
            r += a
            cols[j] += a
            lo, hi = min(lo, w), max(hi, w)
        row = max(row, r)
    return F, row, cols.max(), lo, hi


@_jit
def round_total(T, start, scale, rnd, lo, hi, bits, signed, wrap, relu, out, F):
    """out = overflow(round((T + start) * scale)), then max(out, 0) with
    ``relu``, for an exact integer-valued float64 total T (M x N), a per-row
    int64 start (float64 holds it exactly) and a power-of-two scale; when F
    is not empty it gets out as float64. Returns out's smallest and largest
    codes."""
    M, N = T.shape
    keep, mn, mx = F.shape[0] > 0, hi, lo
    for i in range(M):
        s = np.float64(start[i])
        for j in range(N):
            x = (T[i, j] + s) * scale
            x = np.rint(x) if rnd == 1 else (np.floor(x) if rnd == 0 else np.trunc(x))
            if wrap:
                q = _overflow(np.int64(x), lo, hi, bits, signed, wrap)
            else:
                q = np.int64(min(max(x, lo), hi))
            if relu:
                q = max(q, 0)
            out[i, j] = q
            mn, mx = min(mn, q), max(mx, q)
            if keep:
                F[i, j] = q
    return mn, mx
