"""numba loops of the golden model's fast multiplier routes
(:mod:`fixar.golden.multiplier_routes`, which reaches this module only when
the golden model's numba kernels are on; its numpy code computes the same
bits on the model's own ``log_mantissa`` and the tests run both). Compiled
on first use, cached on disk.

``log``: a log-sum product as one integer add and one float-to-integer
conversion. Mitchell's multiplier is the old trick of adding two floats'
bit patterns as integers: an operand with sign s, leading one t and F-bit
fraction code f is packed as the float64 bit pattern
``s << 63 | (t + bias) << 52 | f << (52 - F)`` (bias 1023 for the outer
operand, 0 for the inner one). The integer sum of two such words is the
pattern of the float +-2^(ta+tb) (1 + (fa+fb)/2^F) when the fraction sum
does not carry, and of +-2^(ta+tb+1) (1 + (fa+fb-2^F)/2^F) when it does:
the carry runs into the exponent, the signs XOR (the carry out of bit 63
is dropped). That is mant 2^(ta+tb+carry-F) for log_mantissa's (mant,
carry) exactly, so truncating it toward zero (vcvttpd2qq) gives the
model's product, magnitude floored and then signed. MBM adds its
correction C 2^(ta+tb-F) in both cases (log_mantissa halves C when the sum
carries, and the carry doubles it back): a second float, made by adding
the two words' sign and exponent fields and the pattern of C / 2^F, added
before the truncation. Every value involved is a multiple of 2^(ta+tb-F) below
2^(ta+tb+3), so the float sums are exact (F + 3 <= 53 bits; log_route_fits
bounds the products below 2^63). A zero inner entry is the word
``ZERO_INNER`` (its exponent field takes 512 from the outer word's: a float
below 1, which truncates to 0); a zero outer entry is 0 (no valid outer
word is: its exponent field is at least 1023) and is skipped.
tests/test_multipliers.py checks the loop's product against the numpy
route's on every fraction sum, lead sums at both ends, both signs. This
replaced a loop that formed the mantissa and shifted it (about 15
operations per product against 4 for Mitchell: 1.66 -> 0.82 ms for a 128 x
400 @ 400 x 300 product with half the outer entries zero, one thread).

The loop runs i, k, n with n innermost: a row's nonzero outer entries are
listed first and taken four at a time, so one load and store of the
accumulator serves four products (one at a time ran at 1.1 ms).

``log_parallel``: the same rows split over threads with numba's prange,
thread t taking rows t, t + parts, ... (interleaved: the training step's
outer operand is the two lanes side by side, the low lanes' rows denser
than the high ones', so halves would not be even). Each row is one row's
sums (wrapping int64 adds: any order gives the same bits): the bits of
``log``. The threading layer is numba's own ``workqueue`` unless the user
chose one (NUMBA_THREADING_LAYER): it needs neither TBB nor an OpenMP
runtime, works in forked processes (the study's workers), and its threads
sleep between products where GNU OpenMP's spin and take the core that the
step's other work runs on, as OpenBLAS's do (fixar.rl.threads; measured
here: 7.7 ms of CPU spun after each product with ``omp``, none with
``workqueue``). It is not thread-safe: :func:`run_log` takes a lock, so
Python threads calling it wait in turn.
"""
from __future__ import annotations

import os
import threading

import numba
import numpy as np

if not os.environ.get("NUMBA_THREADING_LAYER"):
    numba.config.THREADING_LAYER = "workqueue"
_jit = numba.njit(cache=True, nogil=True)
_SIGN_BIT = np.int64(-(1 << 63))
_EXPONENT = np.int64(52)                 # float64's exponent field starts here
_SIGN_AND_EXPONENT = np.int64(-(1 << 52))
_WINDOW = np.int64((1 << 12) - 1)        # pack's first pass: the window below bit 12 (T <= 10)
ZERO_OUTER = np.int64(0)
ZERO_INNER = np.int64(-(512 << 52))
OUTER_BIAS = 1023
_LAUNCH = threading.Lock()           # the workqueue layer takes one launch at a time


@numba.njit(inline="always")
def _product(u, x, uc, corrected):
    """The signed product of outer word u and inner word x (module docstring);
    with ``corrected`` (a constant in the loop) plus MBM's correction, the
    float whose pattern is uc + (x's sign and exponent), uc being u's sign
    and exponent plus the correction's word (:func:`correction_word`)."""
    v = np.int64(u + x).view(np.float64)
    if corrected:
        v += np.int64(uc + (x & _SIGN_AND_EXPONENT)).view(np.float64)
    return np.int64(v)


@numba.njit(inline="always")
def _log_rows(corrected, cw, outer, inner, out, first, step):
    """Rows first, first + step, ... of ``log``'s product."""
    K = outer.shape[1]
    N = inner.shape[1]
    acc = np.empty(N, np.int64)
    ks = np.empty(K, np.int64)
    for i in range(first, outer.shape[0], step):
        acc[:] = 0
        m = 0
        for k in range(K):
            if outer[i, k] != ZERO_OUTER:
                ks[m] = k
                m += 1
        j = 0
        while j + 4 <= m:
            u0, u1, u2, u3 = outer[i, ks[j]], outer[i, ks[j + 1]], outer[i, ks[j + 2]], outer[i, ks[j + 3]]
            c0, c1 = (u0 & _SIGN_AND_EXPONENT) + cw, (u1 & _SIGN_AND_EXPONENT) + cw
            c2, c3 = (u2 & _SIGN_AND_EXPONENT) + cw, (u3 & _SIGN_AND_EXPONENT) + cw
            r0, r1, r2, r3 = inner[ks[j]], inner[ks[j + 1]], inner[ks[j + 2]], inner[ks[j + 3]]
            for n in range(N):
                acc[n] += ((_product(u0, r0[n], c0, corrected) + _product(u1, r1[n], c1, corrected))
                           + (_product(u2, r2[n], c2, corrected) + _product(u3, r3[n], c3, corrected)))
            j += 4
        for rest in range(j, m):
            u0, r0 = outer[i, ks[rest]], inner[ks[rest]]
            c0 = (u0 & _SIGN_AND_EXPONENT) + cw
            for n in range(N):
                acc[n] += _product(u0, r0[n], c0, corrected)
        out[i, :] = acc


def correction_word(c: float) -> int:
    """The word that, added to an outer word's sign and exponent and an inner
    word's, makes the pattern of c 2^(ta+tb) with the product's sign: c's own
    pattern less the exponent bias (which the outer word carries). c = C / 2^F
    is a short dyadic fraction, so c 2^(ta+tb) is exact; 0 for no correction."""
    if c == 0:
        return 0
    return int(np.float64(c).view(np.int64)) - (OUTER_BIAS << 52)


@_jit
def log(cw, outer, inner, out):
    """out[i, n] = sum_k of the product of packed words outer[i, k] (skipped
    when ZERO_OUTER) and inner[k, n], on the calling thread; cw: MBM's
    :func:`correction_word`, 0 for none."""
    if cw == 0:
        _log_rows(False, cw, outer, inner, out, 0, 1)
    else:
        _log_rows(True, cw, outer, inner, out, 0, 1)


@numba.njit(cache=True, nogil=True, parallel=True)
def log_parallel(cw, outer, inner, out, parts):
    """``log`` with its rows interleaved over ``parts`` prange iterations."""
    for t in numba.prange(parts):
        if cw == 0:
            _log_rows(False, cw, outer, inner, out, t, parts)
        else:
            _log_rows(True, cw, outer, inner, out, t, parts)


def run_log(cw, outer, inner, out, threads: int) -> None:
    """``log`` on ``threads`` threads (at most numba's pool, NUMBA_NUM_THREADS);
    one thread runs ``log`` itself, without the pool."""
    threads = min(threads, numba.config.NUMBA_NUM_THREADS, outer.shape[0])
    if threads < 2:
        log(cw, outer, inner, out)
        return
    with _LAUNCH:
        numba.set_num_threads(threads)
        log_parallel(cw, outer, inner, out, threads)


@numba.njit(inline="always")
def _lead(mag):
    """Position of the leading one of 0 < mag < 2^53 (float64's exponent is exact there)."""
    return (np.float64(mag).view(np.int64) >> 52) - 1023


@numba.njit(inline="always")
def _window_word(v, T, bias, zero):
    """pack's first pass for one entry: sign, exponent and the window in the low bits."""
    mag = abs(v)
    lead = _lead(mag)                   # -1023 for mag = 0, whose word is not used
    word = (mag >> max(lead - T, 0)) | ((lead + bias) << _EXPONENT) | (_SIGN_BIT if v < 0 else 0)
    return zero if mag == 0 else word


@_jit
def pack(V, T, ftab, F, bias, zero, out):
    """The log route's float words of a C-ordered 2-D V into ``out``, ``zero``
    for 0, in two passes: the first, branch-free, is vectorized and leaves
    each entry's window in the low bits; the second replaces it by its
    fraction code. LLVM keeps a table lookup out of a vectorized loop on
    this project's CPU (gathers cost it more than scalar loads), so one
    fused loop ran scalar: 0.21 ms for 120 000 weights, 0.07 in two. Neither
    zero word has low bits, and ftab[0] is 0, so the second pass leaves them
    as they are."""
    for i in range(V.shape[0]):
        for j in range(V.shape[1]):
            out[i, j] = _window_word(V[i, j], T, bias, zero)
    shift = 52 - F
    flat = out.reshape(-1)
    for j in range(flat.shape[0]):
        w = flat[j]
        flat[j] = (w & ~_WINDOW) | (ftab[w & _WINDOW] << shift)


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
