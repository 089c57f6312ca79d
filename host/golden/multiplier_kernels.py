"""numba loops of the golden model's fast multiplier routes
(:mod:`fixar.golden.multiplier_routes`, which reaches this module only when
the golden model's numba kernels are on; its numpy code computes the same
bits and the tests run both). Compiled on first use, cached on disk.

``log``: i, k, n with n innermost, one outer word in a register while an
inner row streams. Each product is the model's: ``_mantissa`` (in
``take_back``) is the config's ``log_mantissa`` itself, compiled and
inlined, and the loop's ``_shifted_mantissa`` is the same value shifted by
the carry, with fewer operations (tests/test_multipliers.py checks it
against ``log_mantissa`` on every fraction sum). The sign and the zero flag
are selects, which LLVM turns into masked vector operations (AVX-512) or
blends (AVX2, tried with NUMBA_CPU_NAME=haswell): both ran faster than the
earlier xor-and-subtract and the masks that kept shifts logical (a 128 x
400 @ 400 x 300 product with half the outer entries zero, one thread:
Mitchell 2.23 -> 1.65 ms, MBM 2.66 -> 1.77). One packed stream instead of
four field arrays: the loop was bound by loading them (2.5 ms instead of
3.0 for a 64 x 400 @ 400 x 300 product, one thread).

``log_parallel``: the same rows split over threads with numba's prange,
thread t taking rows t, t + parts, ... (interleaved: the training step's
outer operand is the two lanes side by side, the low lanes' rows denser
than the high ones', so halves would not be even). Each row is one row's
sums in the same order whichever thread makes it: the bits of ``log``.
The threading layer is numba's own ``workqueue`` unless the user chose one
(NUMBA_THREADING_LAYER): it needs neither TBB nor an OpenMP runtime, works
in forked processes (the study's workers), and its threads sleep between
products where GNU OpenMP's spin and take the core that the step's other
work runs on, as OpenBLAS's do (fixar.rl.threads; measured here: 7.7 ms of
CPU spun after each product with ``omp``, none with ``workqueue``). It is
not thread-safe: :func:`run_log` takes a lock, so Python threads calling it
wait in turn.
"""
from __future__ import annotations

import os
import threading

import numba
import numpy as np

from fixar.config.multipliers import log_mantissa

if not os.environ.get("NUMBA_THREADING_LAYER"):
    numba.config.THREADING_LAYER = "workqueue"
_jit = numba.njit(cache=True, nogil=True)
# A module-level global, not a closure variable: numba's disk cache keys a
# function by its closure too, and a dispatcher made per process never matches.
_mantissa = numba.njit(inline="always")(log_mantissa)
_POSITIVE = np.int64(0x7FFF_FFFF_FFFF_FFFF)
_SIGN_BIT = np.int64(-(1 << 63))     # packed words' sign: adding two XORs them (the carry leaves)
_FRACTION = np.int64(0xFF_FFFF)      # packed words' fraction field
_ZERO_FLAG = np.int64(1 << 40)       # a zero inner entry (multiplier_routes.ZERO_INNER)
_LAUNCH = threading.Lock()           # the workqueue layer takes one launch at a time


@numba.njit(inline="always")
def _shifted_mantissa(s, one, correction):
    """mant << carry for (mant, carry) = log_mantissa(s, F, corr), s < 2^(F+1)
    a fraction sum, one = 2^F, correction = corr << (F - 6) (0 for corr = 0).
    Without a carry (s < 2^F) mant = 2^F + s + correction; with one,
    s = 2^F + r and mant = 2^F + r + correction / 2 (log_mantissa's halved
    correction: exact for F >= 7, which log_route_fits asks), so
    mant << 1 = 2 s + correction. No variable shift by the carry: that shift
    and the correction's were a third of the loop's time."""
    return s + (s if s >= one else one) + correction


@numba.njit(inline="always")
def _log_rows(F, corr, masked, zero, outer, inner, out, first, step):
    """Rows first, first + step, ... of ``log``'s product."""
    K = outer.shape[1]
    N = inner.shape[1]
    one = np.int64(1) << F
    correction = (corr << (F - 6)) if corr else 0
    acc = np.empty(N, np.int64)
    for i in range(first, outer.shape[0], step):
        acc[:] = 0
        for k in range(K):
            u = outer[i, k]
            if u == zero:
                continue
            row = inner[k]
            for n in range(N):
                w = u + row[n]
                # log_route_fits keeps mant << (ta + tb + carry) below 2^63
                p = (_shifted_mantissa(w & 0xFF_FFFF, one, correction) << ((w >> 24) & 0xFF)) >> F
                if masked:                      # a constant: no branch in the loop
                    p = 0 if w & _ZERO_FLAG else p
                acc[n] += -p if w < 0 else p
        out[i, :] = acc


@numba.njit(inline="always")
def _log_variants(F, corr, masked, zero, outer, inner, out, first, step):
    # The branches make the constants the loop sees: corr = 0 (Mitchell)
    # takes the correction's shift and add out of it.
    if corr == 0:
        if masked:
            _log_rows(F, 0, True, zero, outer, inner, out, first, step)
        else:
            _log_rows(F, 0, False, zero, outer, inner, out, first, step)
    elif masked:
        _log_rows(F, corr, True, zero, outer, inner, out, first, step)
    else:
        _log_rows(F, corr, False, zero, outer, inner, out, first, step)


@_jit
def log(F, corr, masked, zero, outer, inner, out):
    """out[i, n] = sum_k of the product of packed words outer[i, k] (skipped
    when ``zero``: a zero entry) and inner[k, n] (0 for a flagged zero inner
    entry when ``masked``), on the calling thread."""
    _log_variants(F, corr, masked, zero, outer, inner, out, 0, 1)


@numba.njit(cache=True, nogil=True, parallel=True)
def log_parallel(F, corr, masked, zero, outer, inner, out, parts):
    """``log`` with its rows interleaved over ``parts`` prange iterations."""
    for t in numba.prange(parts):
        _log_variants(F, corr, masked, zero, outer, inner, out, t, parts)


def run_log(F, corr, masked, zero, outer, inner, out, threads: int) -> None:
    """``log`` on ``threads`` threads (at most numba's pool, NUMBA_NUM_THREADS);
    one thread runs ``log`` itself, without the pool."""
    threads = min(threads, numba.config.NUMBA_NUM_THREADS, outer.shape[0])
    if threads < 2:
        log(F, corr, masked, zero, outer, inner, out)
        return
    with _LAUNCH:
        numba.set_num_threads(threads)
        log_parallel(F, corr, masked, zero, outer, inner, out, threads)


@numba.njit(inline="always")
def _lead(mag):
    """Position of the leading one of 0 < mag < 2^53 (float64's exponent is exact there)."""
    return (np.float64(mag).view(np.int64) >> 52) - 1023


@_jit
def take_back(F, corr, zero, outer, X, out):
    """out[i, n] -= the product of outer[i, k] with the operand 1 (none for
    ``zero``) for every zero X[k, n]: ``log`` read those inner entries, packed
    as 0, as the operand 1. They are few: a row of X is scanned for one
    first (0.016 ms for 120 000 entries with one zero, against 0.25 for
    numpy's compare, nonzero and scatter, and 0.07 for a branch per entry)."""
    for k in range(X.shape[0]):
        row = X[k]
        seen = False
        for n in range(row.shape[0]):           # a reduction without a branch: vectorized
            seen |= row[n] == 0
        if not seen:
            continue
        for n in range(row.shape[0]):
            if row[n] != 0:
                continue
            for i in range(outer.shape[0]):
                u = outer[i, k]
                if u == zero:
                    continue
                mant, carry = _mantissa(u & 0xFF_FFFF, F, corr)
                p = ((mant << (((u >> 24) & 0xFF) + carry)) & _POSITIVE) >> F
                out[i, n] -= -p if u < 0 else p


@_jit
def pack(V, T, ftab, zero, out):
    """packed_fields (the window split of fixar.golden.multipliers.split), in
    two passes: the first, branch-free, is vectorized and leaves each entry's
    window in the fraction field; the second replaces it by its fraction
    code. LLVM keeps a table lookup out of a vectorized loop on this
    project's CPU (gathers cost it more than scalar loads), so one fused
    loop ran scalar: 0.21 ms for 120 000 weights, 0.07 in two. ``zero``
    has nothing in the fraction field and ftab[0] is 0, so the second pass
    leaves it as it is."""
    for j in range(V.shape[0]):
        v = V[j]
        mag = abs(v)
        lead = _lead(mag)                       # -1023 for mag = 0, whose word is not used
        word = (mag >> max(lead - T, 0)) | (lead << 24) | (_SIGN_BIT if v < 0 else 0)
        out[j] = zero if mag == 0 else word
    for j in range(V.shape[0]):
        w = out[j]
        out[j] = (w & ~_FRACTION) | ftab[w & _FRACTION]


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
