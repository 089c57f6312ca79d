"""Approximate multipliers in the golden model, fast: ApproxTrain's lookup
table adapted to integers, derived from the functional models of
:mod:`fixar.config.multipliers` (the one definition of each multiplier).

The table route (any model with ``table_bits``; the registry's Mitchell,
MBM and DRUM declare a structure and take the faster routes of
:mod:`fixar.golden.multiplier_routes` instead): with T = ``table_bits``,
an operand magnitude v with leading one at t is split into a window
M = v >> E and a shift E = max(t - T, 0): M is v itself when v has at most
T + 1 bits (so small operands stay exact) and otherwise its top T + 1 bits
(the leading one and T bits below it: ApproxTrain's mantissa index). The
table holds the model's magnitude of every pair of windows, 2^(2T + 2)
entries (ApproxTrain's 2^(2m) for the normal operands, plus the windows of
operands narrower than T + 1 bits, which a float would call subnormal), and

    product = sign(a) sign(b) table[M(a), M(b)] << (E(a) + E(b)).

This is the model's exact result whenever the model depends only on an
operand's top T + 1 bits and is scaled by a power of two exactly above that
(``fixar.config.multipliers.KINDS``; docs/multipliers.md shows it for each,
tests/test_multipliers.py compares every route with the model per product).

The truncated array does not scale that way (its dropped columns sit at fixed
positions), so it takes a bit-plane route instead: sum_j 2^j (W masked at
column p - j) @ (bit j of X), all planes below p as one exact float64 BLAS
product of stacked operands and one exact product for the planes at p and
above (:func:`_truncated_matmul`).

Sums are int64 and wrap modulo 2^64, as the int64 routes of the golden model
do: modulo 2^acc_bits after that is the PE's business (wrapping is
associative, so the order does not matter).
"""
from __future__ import annotations

import functools

import numpy as np

from fixar.config.multipliers import Multiplier, get
from fixar.golden.fixed import I64, numba_kernels
from fixar.golden.matmul import MAX_REDUCTION, exact_matmul_lanes

# Entries of the (M, K, N) block of products the numpy route forms at once.
_BLOCK = 1 << 18
# Table bits T beyond which building the table (2^(2T+2) model calls) takes
# too long; it also keeps a signed index (2T + 3 bits) in the low 32 bits of
# the numba route's packed lane operand.
MAX_TABLE_BITS = 10


@functools.lru_cache(maxsize=16)
def table(multiplier: Multiplier) -> np.ndarray:
    """The model's magnitudes of all pairs of (T + 1)-bit windows, flat, with
    index (M(a) << (T + 1)) | M(b): built by calling the model, nothing else."""
    T = multiplier.table_bits
    if T is None:
        raise ValueError(f"{multiplier.name}: the table route does not apply to a {multiplier.kind} multiplier")
    if T > MAX_TABLE_BITS:
        raise ValueError(f"{multiplier.name}: a table of 2^{2 * T + 2} entries is too large (T <= {MAX_TABLE_BITS})")
    n = 1 << (T + 1)
    mag = multiplier.magnitude
    return np.array([mag(a, b) for a in range(n) for b in range(n)], dtype=I64)


def _bit_length(mag: np.ndarray) -> np.ndarray:
    """Bit length of int64 magnitudes below 2^53 (float64's exponent is exact there)."""
    return np.frexp(mag.astype(np.float64))[1].astype(I64)


def split(V: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sign, window M, shift E) of each entry of V for table bits T."""
    V = np.asarray(V, dtype=I64)
    mag = np.abs(V)
    E = np.maximum(_bit_length(mag) - 1 - T, 0)
    return np.sign(V), mag >> E, E


def _check(W: np.ndarray, X: np.ndarray, widths: tuple[int, int]) -> tuple[tuple[int, int | None], ...]:
    """The operands checked; returns each one's :func:`_check_codes`."""
    if W.ndim != 2 or X.ndim != 2 or W.shape[1] != X.shape[0]:
        raise ValueError(f"expected (M, K) @ (K, N) operands, got {W.shape} and {X.shape}")
    if W.shape[1] > MAX_REDUCTION:      # the exact BLAS routes' bound (fixar.golden.matmul)
        raise ValueError(f"reduction length {W.shape[1]} exceeds the golden model's exact range ({MAX_REDUCTION})")
    return _check_codes("W", W, widths[0]), _check_codes("X", X, widths[1])


def _check_codes(name: str, V: np.ndarray, w: int) -> tuple[int, int | None]:
    """V checked as ``w``-bit signed codes; returns its largest magnitude (at
    least 1) and its number of nonzero entries where one numba pass gave
    both (None otherwise)."""
    # 33 bits at most: magnitudes stay below 2^32 (the bit-plane route's bound)
    if not 2 <= w <= 33:
        raise ValueError(f"{name}: operand width {w} is outside 2..33")
    if not V.size:
        return 1, 0
    kernels = numba_kernels() if V.flags.c_contiguous else None
    lo, hi, nonzero = kernels.code_stats(V) if kernels is not None else (V.min(), V.max(), None)
    if lo < -(1 << (w - 1)) or hi >= 1 << (w - 1):
        raise ValueError(f"{name} holds values outside {w}-bit signed codes")
    return max(-int(lo), int(hi), 1), nonzero


def approx_multiply(A, B, multiplier, widths: tuple[int, int]) -> np.ndarray:
    """Element-wise products (broadcast) of signed codes A (``widths[0]`` bits)
    and B (``widths[1]`` bits) by the named multiplier."""
    spec = get(multiplier)
    A, B = np.broadcast_arrays(np.asarray(A, dtype=I64), np.asarray(B, dtype=I64))
    _check_codes("A", A, widths[0])
    _check_codes("B", B, widths[1])
    if spec.kind == "exact":
        return A * B
    if spec.table_bits is not None:
        T = spec.table_bits
        sa, ma, ea = split(A, T)
        sb, mb, eb = split(B, T)
        return sa * sb * (table(spec)[(ma << (T + 1)) | mb] << (ea + eb))
    if spec.kind == "truncated":
        p = spec.kwargs["p"]
        a, b = np.abs(A), np.abs(B)
        total = np.zeros(A.shape, dtype=I64)
        for j in range(int(_bit_length(b).max(initial=0))):
            keep = max(p - j, 0)
            total += ((b >> j) & 1) * (((a >> keep) << keep) << j)
        return np.sign(A) * np.sign(B) * total
    raise ValueError(f"{spec.name}: no golden route for a {spec.kind} multiplier")


def approx_matmul(W, X, multiplier, widths: tuple[int, int]) -> np.ndarray:
    """int64 sums of approximate products: out[i, n] = sum_k mult(W[i, k], X[k, n]),
    W of ``widths[0]``-bit and X of ``widths[1]``-bit signed codes (the PE's
    weight and lane), modulo 2^64. Bit-exact with the functional model."""
    spec = get(multiplier)
    W, X = np.asarray(W, dtype=I64), np.asarray(X, dtype=I64)
    (largest_w, nonzero_w), (largest_x, nonzero_x) = _check(W, X, widths)
    if spec.kind == "exact":
        return exact_product(W, X)
    from fixar.golden import multiplier_routes as fast  # it imports this module
    if spec.operand is not None and spec.table_bits is not None:
        return fast.separable_matmul(W, X, spec)
    if spec.log is not None and spec.table_bits is not None and fast.log_route_fits(W, X, spec,
                                                                                    (largest_w, largest_x)):
        return fast.log_matmul(W, X, spec, (nonzero_w, nonzero_x))
    if spec.table_bits is not None:
        return table_matmul(W, X, spec)
    if spec.kind == "truncated":
        return _truncated_matmul(W, X, spec.kwargs["p"])
    raise ValueError(f"{spec.name}: no golden route for a {spec.kind} multiplier")


def exact_product(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Exact int64 A @ B (modulo 2^64): the limb route of exact_matmul_lanes
    (BLAS) when its float64 sums stay below 2^53 (A's 16-bit limbs times B),
    else numpy's int64 product."""
    K = A.shape[1]
    limb = max((int(np.abs(A).max(initial=0)) >> 16) + 1, 1 << 16)
    if K <= MAX_REDUCTION and limb * int(np.abs(B).max(initial=0)) * max(K, 1) < 1 << 53:
        (out,) = exact_matmul_lanes(A, [B])
        return out
    return A @ B


@functools.lru_cache(maxsize=16)
def signed_table(spec: Multiplier) -> np.ndarray:
    """The table and its negation, one flat array: entry (s << 2(T+1)) | (M(a) << (T+1)) | M(b)
    is (-1)^s table[M(a), M(b)], so the product's sign is an XOR into the index.
    int32 when the entries fit (they do for the registry: windows of at most
    9 bits): half the cache footprint, and the gathers run twice as fast."""
    tab = table(spec)
    both = np.concatenate([tab, -tab])
    return both.astype(np.int32) if np.abs(tab).max(initial=0) < 1 << 31 else both


def table_matmul(W: np.ndarray, X: np.ndarray, spec: Multiplier) -> np.ndarray:
    T = spec.table_bits
    out = np.zeros((W.shape[0], X.shape[1]), dtype=I64)
    if not W.size or not X.size:
        return out
    tab = signed_table(spec)
    kernels = _numba_table_kernels() if numba_kernels() is not None else None
    if kernels is not None:
        table_kernel, split_kernel = kernels
        W, X = np.ascontiguousarray(W), np.ascontiguousarray(X)
        row, ew = np.empty(W.shape, I64), np.empty(W.shape, I64)
        col, ex = np.empty(X.shape, np.uint32), np.empty(X.shape, I64)
        split_kernel(W.reshape(-1), T, T + 1, -1, row.reshape(-1), ew.reshape(-1))
        split_kernel(X.reshape(-1), T, 0, 0, col.reshape(-1), ex.reshape(-1))
        by_rows(lambda a, b: table_kernel(tab, row[a:b], ew[a:b], col, ex, out[a:b]), W.shape[0], W.size * X.shape[1])
        return out
    # Index fields: the sign above the two windows; XOR of a weight's and a
    # lane's fields is then the signed table's index of their product.
    sw, mw, ew = split(W, T)
    sx, mx, ex = split(X, T)
    sign_bit = I64(1 << (2 * T + 2))
    row = np.where(sw < 0, sign_bit, 0) | (mw << (T + 1))
    col = np.where(sx < 0, sign_bit, 0) | mx
    # numpy: blocks of the reduction axis, each an (M, kb, N) gather from the table
    kb = max(1, _BLOCK // (W.shape[0] * X.shape[1]))
    for k0 in range(0, W.shape[1], kb):
        k1 = min(k0 + kb, W.shape[1])
        prod = tab[row[:, k0:k1, None] ^ col[None, k0:k1, :]].astype(I64) << (ew[:, k0:k1, None] + ex[None, k0:k1, :])
        out += prod.sum(axis=1)
    return out


# Products below this many table lookups run on one thread (a thread's start costs more).
_PARALLEL_LOOKUPS = 1 << 20


def by_rows(run, rows: int, lookups: int) -> None:
    """run(a, b) for row ranges that split 0..rows across the golden model's
    threads (fixar.golden.adam's pool; the numba kernel releases the GIL).
    Each output row is one row's sums, in the same order whichever thread
    makes it, so the bits are those of one call."""
    from fixar.golden.adam import golden_threads, run_parallel

    workers = min(golden_threads(), rows)
    if workers < 2 or lookups < _PARALLEL_LOOKUPS:
        run(0, rows)
        return
    cuts = np.linspace(0, rows, workers + 1).astype(int)
    run_parallel(workers, [(a, b) for a, b in zip(cuts[:-1], cuts[1:])], lambda ab: run(*ab))


@functools.cache
def _numba_table_kernels():
    """The table route as numba loops (compiled on first use, cached on
    disk): the same int64 products and wrapping sums as the numpy route, so
    the same bits. ``split`` makes each operand's index field and shift in
    one pass. ``table`` loops i, k, n with n innermost: one weight's index
    field and shift stay in registers while a lane row streams; the gathers
    and the shift-and-add are two loops over scratch rows the kernel owns
    (no aliasing with the arguments), so LLVM vectorizes the second (one
    fused loop ran 1.3x slower, scalar); unsigned indices spare numba's
    negative-index select."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def split_kernel(V, T, pos, zero, field, shift):
        # field: (sign << 2(T+1)) | (M << pos), or ``zero`` for v = 0; shift: E
        sign_bit = 1 << (2 * T + 2)
        for j in range(V.shape[0]):
            v = V[j]
            mag = abs(v)
            if mag == 0:
                field[j], shift[j] = zero, 0
                continue
            t = (np.float64(mag).view(np.int64) >> 52) - 1023     # exact below 2^53
            e = max(t - T, 0)
            field[j] = ((mag >> e) << pos) | (sign_bit if v < 0 else 0)
            shift[j] = e

    @numba.njit(cache=True, nogil=True)
    def table_kernel(tab, row, ew, col, ex, out):
        # row[i, k]: the weight's index field, -1 for w = 0 (its products are 0)
        M, K = row.shape
        N = col.shape[1]
        acc = np.zeros(N, np.int64)
        prod = np.empty(N, np.int64)
        for i in range(M):
            acc[:] = 0
            for k in range(K):
                r = row[i, k]
                if r < 0:
                    continue
                ru, e, ci, ei = np.uint32(r), ew[i, k], col[k], ex[k]
                for n in range(N):
                    prod[n] = tab[ru ^ ci[n]]
                for n in range(N):
                    acc[n] += prod[n] << (e + ei[n])
            out[i, :] = acc
    return table_kernel, split_kernel


def _truncated_matmul(W: np.ndarray, X: np.ndarray, p: int) -> np.ndarray:
    """sum_k sign(w) sign(x) trunc_p(|w|, |x|) by bit planes of |x|. Below p,
    plane j keeps the columns i >= p - j of |w|: 2^j (|w| >> (p-j) << (p-j))
    = 2^p (|w| >> (p-j)), so all those planes are one float64 product of
    [|w| >> p, ..., |w| >> 1] (side by side) with the stacked planes, times
    2^p; exact while every partial sum stays below 2^53 (entries below 2^32,
    at most 2^21 of them per block of the reduction). At p and above every
    column is kept: one exact product W (|X| >> p) << p."""
    sw, sx = np.sign(W), np.sign(X)
    a, b = np.abs(W), np.abs(X)
    out = np.zeros((W.shape[0], X.shape[1]), dtype=I64)
    planes = min(p, int(_bit_length(b).max(initial=0)))
    kb = max(1, (1 << 21) // max(planes, 1))
    for k0 in range(0, W.shape[1], kb) if planes else ():
        k1 = min(k0 + kb, W.shape[1])
        n = k1 - k0
        A = np.empty((W.shape[0], planes * n))      # float64; assignment converts exactly
        B = np.empty((planes * n, X.shape[1]))
        for j in range(planes):
            A[:, j * n:(j + 1) * n] = sw[:, k0:k1] * (a[:, k0:k1] >> (p - j))
            B[j * n:(j + 1) * n] = sx[k0:k1] * ((b[k0:k1] >> j) & 1)
        out += (A @ B).astype(I64) << p
    if planes == p:
        (high,) = exact_matmul_lanes(W, [sx * (b >> p)])
        out += high << p
    return out
