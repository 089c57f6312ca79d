"""Fast golden routes for multipliers whose model declares a structure
(``fixar.config.multipliers.Kind``): the same bits as the model, a few
times faster than the table route (docs/multipliers.md, "Fast routes").

Separable (DRUM): model(a, b) = operand(a) operand(b), so a matrix of
approximate products is an exact product of the mapped matrices, which the
golden model's exact BLAS route computes. The operand map is vectorized the
table route's way: operand(a) = operand(M) << E for a's window M and shift E
(the map is built by calling the model's own ``operand`` on every window).

Log-sum (Mitchell, MBM): the product of a and b is
``(mant << (ta + tb + carry)) >> F`` with (mant, carry) =
``log_mantissa(fa + fb, F, corr)`` (``fixar.config.multipliers.log_product``),
so the route needs each operand's fraction code and leading one once (per
matrix, not per product). The numba route packs them as floats' bit
patterns, whose integer sum is the product before its truncation
(fixar.golden.multiplier_kernels says why that is the model's value):
per product an add and a conversion, no table gathers. The numpy route
(no numba) packs the fields plainly and runs the model's own
``log_mantissa`` on arrays; the tests tie the two together. The loop skips
the zero entries of its outer operand, and the operand with more zeros is
made the outer one (ReLU outputs are half zeros); log-sum models are
symmetric, so out^T = X^T (x) W^T gives the same bits.
"""
from __future__ import annotations

import functools

import numpy as np

from fixar.config import PEConfig
from fixar.config.multipliers import Multiplier, get, leading_one, log_mantissa
from fixar.golden import matmul
from fixar.golden.adam import loop_threads
from fixar.golden.fixed import I64, numba_kernels
from fixar.golden.matmul import operand, rounded_product
from fixar.golden.multipliers import exact_product, split

# Entries of the (M, K, N) block of products the numpy log route forms at once.
_BLOCK = 1 << 18
# Products below this many run on one thread. With the float-word loop a
# training step at B = 64 (400-300: products up to 7.7 M) ran faster with its
# loops on one thread than on two on this project's 2-core VM (Mitchell
# 19.7-21.8 ms against 21.6-25.8, MBM 22.6-24.8 against 24.6-30.3; the two
# vCPUs share more than a core's worth: two busy processes each ran 15-40 %
# slower than one alone), where the older loop, with four times the
# arithmetic per product, had gained from the second thread.
_PARALLEL_PRODUCTS = 1 << 24


# --- separable ---------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _operand_table(spec: Multiplier) -> np.ndarray:
    op = spec.operand
    return np.array([op(m) for m in range(1 << (spec.table_bits + 1))], dtype=I64)


def mapped(V: np.ndarray, spec: Multiplier) -> np.ndarray:
    """sign(v) operand(|v|) of each entry, through the window table."""
    kernels = _numba_kernels()
    if kernels is not None:
        V = np.ascontiguousarray(V, dtype=I64)
        out = np.empty(V.shape, I64)
        kernels.mapped(V.reshape(-1), spec.table_bits, _operand_table(spec), out.reshape(-1))
        return out
    s, M, E = split(V, spec.table_bits)
    return s * (_operand_table(spec)[M] << E)


def separable_matmul(W: np.ndarray, X: np.ndarray, spec: Multiplier) -> np.ndarray:
    A, B = mapped(W, spec), mapped(X, spec)
    return exact_product(A, B)


def separable_rounded(pe: PEConfig, W: np.ndarray, X: np.ndarray, packed: bool, start, smax: int, shift: int,
                      fmt, relu: bool = False, keep: bool = False):
    """A whole product of the PE with a separable multiplier, rounded into
    ``fmt``, as :func:`fixar.golden.matmul.rounded_product` gives it (y and,
    with ``keep``, y's operand), or None where its bounds do not hold or
    the multiplier is not separable (then the caller's lane route runs).
    ``packed``: X is FXP16 codes (one lane); else FXP32 codes whose
    sign-magnitude lanes the PE multiplies apart.

    Why one product serves both lanes: with op(a) op(b) per product, the
    lanes' sums are A op(hi) and A op(lo) for A = op(W), and when neither
    lane's accumulator can wrap (rounded_product's own bound, op(lane) being
    below 2^lane_bits) the rounding sees only hi 2^L + lo = A (op(hi) 2^L +
    op(lo)): one exact product of A and the recombined mapped lanes."""
    spec = get(pe.multiplier)
    if spec.operand is None or spec.table_bits is None:
        return None
    A = mapped(W, spec)
    if packed:
        B, lane_bits = mapped(X, spec), None
    else:
        lo, hi = matmul.magnitude_lanes(X, pe.lane_bits)     # the lane split's one definition
        B, lane_bits = (mapped(hi, spec) << I64(pe.lane_bits)) + mapped(lo, spec), pe.lane_bits
    return rounded_product(operand(A), operand(B, sums=False), start, smax, shift, fmt, pe.acc_bits, lane_bits,
                           relu=relu, keep=keep)


# --- log-sum -----------------------------------------------------------------

# The numpy route's packed operand: its fields in one int64, so that adding
# two packed words adds the fractions (bits 0-23: F <= 17, so no carry
# out), adds the leading ones (bits 24-31) and XORs the signs (bit 63: the
# carry out of it is dropped). A zero outer entry is ``_NUMPY_ZERO`` (bit
# 40, otherwise unused), a zero inner entry 0, whose products the route
# masks. (The numba route packs floats' bit patterns instead:
# fixar.golden.multiplier_kernels.)
_LEAD, _SIGN = 24, 63
_NUMPY_ZERO = 1 << 40
_FRAC_MASK = (1 << _LEAD) - 1


@functools.lru_cache(maxsize=16)
def _fraction_table(spec: Multiplier) -> np.ndarray:
    form = spec.log
    return np.array([0] + [form.fraction(m, leading_one(m)) for m in range(1, 1 << (spec.table_bits + 1))],
                    dtype=I64)


def packed_fields(V: np.ndarray, spec: Multiplier, zero: int) -> np.ndarray:
    """The numpy route's packed words of V (fraction | leading one << 24 | negative << 63), ``zero`` for 0."""
    s, M, E = split(V, spec.table_bits)
    lead = np.frexp(M.astype(np.float64))[1].astype(I64) - 1 + E
    return np.where(s != 0, _fraction_table(spec)[M] | (lead << _LEAD) | ((s < 0).astype(I64) << I64(_SIGN)), zero)


def float_words(V: np.ndarray, spec: Multiplier, outer: bool) -> np.ndarray:
    """The numba route's float words of a 2-D V (fixar.golden.multiplier_kernels).
    A transposed V is copied first: numpy's transposing copy and packing the
    copy took 0.17 ms for a 400 x 300 view, packing through the strides
    0.32 (and 0.36 in tiles that stay in the L1 cache, which do not vectorize)."""
    kernels = _numba_kernels()
    V = np.ascontiguousarray(V)
    out = np.empty(V.shape, I64)
    bias, zero = (kernels.OUTER_BIAS, kernels.ZERO_OUTER) if outer else (0, kernels.ZERO_INNER)
    kernels.pack(V, spec.table_bits, _fraction_table(spec), spec.log.bits, bias, zero, out)
    return out


def correction_word(spec: Multiplier) -> int:
    """The numba loop's word for the model's correction C / 2^F = corr / 64 (MBM's; 0 for none)."""
    return _numba_kernels().correction_word(spec.log.corr / 64)


def _unpacked_products(w: np.ndarray, spec: Multiplier) -> np.ndarray:
    """Signed products of summed packed words, the model's own mantissa on arrays (the numpy route)."""
    F, corr = spec.log.bits, spec.log.corr
    mant, carry = log_mantissa(w & _FRAC_MASK, F, corr)
    mag = (mant << (((w >> _LEAD) & 0xFF) + carry)) >> F
    return np.where(w < 0, -mag, mag)


def log_route_fits(W: np.ndarray, X: np.ndarray, spec: Multiplier, largest: tuple[int, int] | None = None) -> bool:
    """The route's int64 intermediate, mantissa << (ta + tb) with a mantissa
    below 2^(F + 3), stays below 2^63 for these operands' widths, the
    fraction sum fits its field, and a correction has the F >= 7 fraction
    bits that halve it exactly (the numba loop's shifted mantissa relies on
    it, as the model's log_mantissa does). ``largest``: max |W| and max |X|
    where the caller has them."""
    lw, lx = (_largest(W), _largest(X)) if largest is None else largest
    top = lw.bit_length() + lx.bit_length() - 2
    form = spec.log
    return top + form.bits + 3 <= 63 and form.bits < _LEAD - 1 and (form.corr == 0 or form.bits >= 7)


def _largest(V: np.ndarray) -> int:
    """max |v|, at least 1 (min and max: no temporary |V|)."""
    return max(-int(V.min()), int(V.max()), 1) if V.size else 1


def log_matmul(W: np.ndarray, X: np.ndarray, spec: Multiplier,
               nonzero: tuple[int | None, int | None] = (None, None)) -> np.ndarray:
    """sum_k model(W[i, k], X[k, n]) for a log-sum model; ``nonzero``: the
    operands' numbers of nonzero entries where the caller has counted them."""
    out = np.empty((W.shape[0], X.shape[1]), dtype=I64)
    if not W.size or not X.size:
        return np.zeros_like(out)
    nonzero_w, nonzero_x = (np.count_nonzero(V) if n is None else n for V, n in zip((W, X), nonzero))
    transposed = nonzero_x < nonzero_w
    if transposed:   # the sparser operand outside: its zeros are skipped (out written through its transpose)
        W, X, out, nonzero_w = X.T, W.T, out.T, nonzero_x
    kernels = _numba_kernels()
    if kernels is None:
        out[...] = _numpy_log_matmul(packed_fields(W, spec, _NUMPY_ZERO), packed_fields(X, spec, 0), X != 0, spec)
    else:
        kernels.run_log(correction_word(spec), float_words(W, spec, outer=True), float_words(X, spec, outer=False), out,
                        loop_threads() if nonzero_w * X.shape[1] >= _PARALLEL_PRODUCTS else 1)
    return out.T if transposed else out


def _numpy_log_matmul(outer: np.ndarray, inner: np.ndarray, nonzero: np.ndarray, spec: Multiplier) -> np.ndarray:
    out = np.zeros((outer.shape[0], inner.shape[1]), dtype=I64)
    kb = max(1, _BLOCK // (outer.shape[0] * inner.shape[1]))
    for k0 in range(0, outer.shape[1], kb):
        k = slice(k0, min(k0 + kb, outer.shape[1]))
        u = outer[:, k, None]
        p = _unpacked_products(u + inner[None, k, :], spec)
        out += np.where((u != _NUMPY_ZERO) & nonzero[None, k, :], p, 0).sum(axis=1)
    return out


def _numba_kernels():
    """:mod:`fixar.golden.multiplier_kernels`, or None where the golden model runs numpy."""
    if numba_kernels() is None:
        return None
    from fixar.golden import multiplier_kernels
    return multiplier_kernels
