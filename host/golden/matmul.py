"""Matrix products exactly as a PE computes them, fast enough to train with.

Each output element is one PE accumulation from a cleared state over the
reduction axis, followed by the PE's output stage (:func:`requantize`).
Because the accumulators are exact (wrapping only modulo 2**acc_bits, which
is associative), the order of the reduction does not matter, so the sums may
come from BLAS.

Plain int64 matmul in numpy has no BLAS and is ~80x slower than float32.
Two exact routes through float64 BLAS, chosen per call from the operands:

* direct: when every output's sum of |w x| is below 2**52 (checked from the
  row sums of |W| and the largest |x|), each product and every partial sum
  in any order is an integer float64 holds exactly, so one float64 product
  is the exact integer result. Trained networks' codes are small (weights
  and activations of a few units in Q12.20), so this is the usual case;
* limbs: otherwise each weight is split into a signed high and an unsigned
  low 16-bit limb; every limb x lane product is below 2**32 in magnitude, so
  a float64 dot product of K < 2**21 of them is exact (below 2**53). One
  stacked BLAS call computes all limb products; the int64 recombination is
  exact for K < 2**16.

An FXP32 product's two lane sums (:func:`fxp32_sums`) need not be formed
separately when neither accumulator can wrap: the rounding stage only sees
hi * 2**lane_bits + lo, so one product W @ X (direct route) gives the same
bits with a quarter of the limb route's arithmetic.

:func:`rounded_product` goes one step further for the layers and weight
gradients of training: when the float64 total W @ X + start is exact and no
accumulator can wrap, the output stage's rounding of that integer by 2**shift
is done on the float64 total itself (a power-of-two scaling and
floor/rint/trunc are exact there), skipping the int64 lanes altogether.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fixar.config import PEConfig, PEMode
from fixar.golden.fixed import I64, ROUNDERS, numba_kernels, overflow, requantize, wrap

MAX_REDUCTION = (1 << 16) - 1  # int64 headroom: K * 2**47 < 2**63
LIMB = 16
DIRECT_BOUND = 2.0 ** 52       # below 2**53 with room for the bound's own float rounding


def _check(W: np.ndarray, X: np.ndarray) -> None:
    if W.ndim != 2 or X.ndim != 2:
        raise ValueError(f"expected 2-D operands, got {W.shape} and {X.shape}")
    if W.shape[1] != X.shape[0]:
        raise ValueError(f"inner dimensions differ: {W.shape} @ {X.shape}")
    if W.shape[1] > MAX_REDUCTION:
        raise ValueError(
            f"reduction length {W.shape[1]} exceeds the golden model's exact range ({MAX_REDUCTION})"
        )


def _check_codes(name: str, v: np.ndarray, fmt) -> None:
    if v.size:
        _check_range(name, v.min(), v.max(), fmt)


def _check_range(name: str, lo, hi, fmt) -> None:
    if lo < fmt.min_int or hi > fmt.max_int:
        raise ValueError(f"{name} holds values outside {fmt} codes [{fmt.min_int}, {fmt.max_int}]")


def _row_abs_max(W: np.ndarray) -> int:
    """max over rows of sum |W_ik| (exact in int64: K * 2**31 < 2**63)."""
    return int(np.abs(W).sum(axis=1).max()) if W.size else 0


def _abs_max(V: np.ndarray):
    """max |V| as a Python number (int for integer arrays: exact, no int64 overflow in the bound arithmetic)."""
    return np.abs(V).max().item() if V.size else 0


def _direct_bound_holds(row_abs_max, abs_max) -> bool:
    """The direct route's condition from max_i sum_k |W_ik| and max |V|:
    every output's partial sums, in any order, stay below 2**52."""
    return float(row_abs_max) * float(abs_max) < DIRECT_BOUND


def direct_is_exact(W, V) -> bool:
    """Whether float64 W @ V equals the integer product."""
    return _direct_bound_holds(_row_abs_max(np.asarray(W, dtype=I64)), _abs_max(np.asarray(V, dtype=I64)))


def _split(stacked: np.ndarray, cols: list[int]) -> list[np.ndarray]:
    out, start = [], 0
    for n in cols:
        out.append(stacked[:, start:start + n])
        start += n
    return out


def exact_matmul_lanes(W, lanes) -> list[np.ndarray]:
    """Exact int64 W @ L for each lane matrix L (entries within +-2**16), one BLAS call."""
    W = np.asarray(W, dtype=I64)
    rows = W.shape[0]
    cols = [np.asarray(lane).shape[1] for lane in lanes]
    V = np.concatenate(lanes, axis=1, dtype=np.float64)
    if _direct_bound_holds(_row_abs_max(W), _abs_max(V)):
        return [b.astype(I64) for b in _split(W.astype(np.float64) @ V, cols)]
    # Both limbs written straight into one stacked operand (assignment casts
    # to float64 exactly: every limb is below 2**16 in magnitude).
    A = np.empty((2 * rows, W.shape[1]))
    A[:rows] = W >> I64(LIMB)                 # signed high limb
    A[rows:] = W & I64((1 << LIMB) - 1)       # unsigned low limb
    out = []
    for block in _split(A @ V, cols):
        block = block.astype(I64)
        out.append((block[:rows] << I64(LIMB)) + block[rows:])
    return out


def fxp32_sums(W, X, lane_bits: int, acc_bits: int, start=None) -> tuple[np.ndarray, np.ndarray]:
    """An FXP32 product's two accumulators as the rounding stage takes them:
    (hi, lo) with hi = W @ (X >> lane_bits) and lo = start + W @ (X's low
    lane_bits), each modulo 2**acc_bits (two's complement), as the PE's lanes
    hold them. ``start``: per-row start value of the low lane (a bias at the
    product's binary point) or None.

    When no accumulator can wrap (row sum of |W| times 2**lane_bits plus the
    largest |start| below 2**(acc_bits - 1)) and one float64 product is exact,
    the pair returned is (total >> lane_bits, total & (2**lane_bits - 1)) of
    the exact total instead: the same hi * 2**lane_bits + lo, which is all
    :func:`fixar.golden.fixed.requantize` depends on."""
    W = np.asarray(W, dtype=I64)
    X = np.asarray(X, dtype=I64)
    st = np.zeros(W.shape[0], dtype=I64) if start is None else np.asarray(start, dtype=I64)
    row = _row_abs_max(W)
    if (row << lane_bits) + _abs_max(st) < (1 << (acc_bits - 1)) and _direct_bound_holds(row, _abs_max(X)):
        total = (W.astype(np.float64) @ X.astype(np.float64)).astype(I64) + st[:, None]
        return total >> I64(lane_bits), total & I64((1 << lane_bits) - 1)
    s_lo, s_hi = exact_matmul_lanes(W, [X & I64((1 << lane_bits) - 1), X >> I64(lane_bits)])
    return wrap(s_hi, acc_bits), wrap(s_lo + st[:, None], acc_bits)


def pe_matmul(cfg: PEConfig, W, X, mode: PEMode = PEMode.FXP32, rnd=None) -> np.ndarray:
    """Y = requantize(W @ X) with PE semantics; codes in, codes of ``cfg.out`` out.

    W: (M, K) weight codes.  X: (K, N) activation codes -- ``cfg.act32``
    words in FXP32 mode, ``cfg.act16`` values in FXP16 mode (two of them share
    one PE, one per lane; each output is still one lane's sum).
    rnd: (M, N) random words for stochastic rounding.
    """
    W = np.asarray(W, dtype=I64)
    X = np.asarray(X, dtype=I64)
    _check(W, X)
    _check_codes("W", W, cfg.weight)
    _check_codes("X", X, cfg.act32 if mode == PEMode.FXP32 else cfg.act16)
    fmt, rb = cfg.out, cfg.rnd_bits
    K = W.shape[1]
    # Sums of at most 2**guard_bits products cannot wrap the accumulator, so
    # the modulo step can be skipped without changing a bit.
    reduce = (lambda v: v) if K <= (1 << cfg.guard_bits) else (lambda v: wrap(v, cfg.acc_bits))
    if cfg.multiplier != "exact":
        s_hi, s_lo = approx_lane_sums(cfg, W, X, mode)
        if mode == PEMode.FXP32:
            return requantize(s_hi, s_lo, cfg.lane_bits, cfg.shift32, fmt, rnd, rb)
        return requantize(0, s_lo, 0, cfg.shift16, fmt, rnd, rb)
    if mode == PEMode.FXP32:
        # In-range codes: the low lane is the low bits, the high lane the
        # arithmetic shift (what split_lanes computes in general).
        s_hi, s_lo = fxp32_sums(W, X, cfg.lane_bits, cfg.acc_bits)
        return requantize(s_hi, s_lo, cfg.lane_bits, cfg.shift32, fmt, rnd, rb)
    if mode == PEMode.FXP16:
        (s,) = exact_matmul_lanes(W, [X])
        return requantize(0, reduce(s), 0, cfg.shift16, fmt, rnd, rb)
    raise ValueError(f"unknown PE mode {mode!r}")


def magnitude_lanes(X, lane_bits: int, side_by_side: bool = False):
    """An FXP32 activation's lanes for an approximate multiplier: |x| split
    into its low and high ``lane_bits``, each carrying x's sign, so that
    x = hi * 2**lane_bits + lo with lo and hi of x's sign. The exact PE's
    two's-complement split (low lane unsigned, high lane signed) gives a
    small negative x as -2**lane_bits plus a large low lane: two products
    that cancel, and an approximate multiplier's error on each (relative
    to w 2**lane_bits) swamped the small product (the DDPG actor's gradient
    came out 4-14 times off; docs/multipliers.md). Sign-magnitude products
    (every model is) keep each lane's error relative to its own part of |x|.
    Returns (lo, hi), or with ``side_by_side`` one array [lo | hi] (one
    product takes both lanes: approx_lane_sums), in one numba pass where
    numba runs."""
    X = np.asarray(X, dtype=I64)
    k = numba_kernels()
    if side_by_side and k is not None and X.ndim == 2:
        out = np.empty((X.shape[0], 2 * X.shape[1]), dtype=I64)
        k.magnitude_lanes(X, lane_bits, out)
        return out
    mag, neg = np.abs(X), X < 0
    lo, hi = mag & I64((1 << lane_bits) - 1), mag >> I64(lane_bits)
    lanes = np.where(neg, -lo, lo), np.where(neg, -hi, hi)
    return np.concatenate(lanes, axis=1) if side_by_side else lanes


def approx_lane_sums(cfg: PEConfig, W, X, mode: PEMode, start=None) -> tuple[np.ndarray, np.ndarray]:
    """The accumulators (hi, lo) of a product whose PE multiplies with the
    approximate ``cfg.multiplier`` (docs/multipliers.md): each lane's
    products by the multiplier's functional model (through
    :func:`fixar.golden.multipliers.approx_matmul`), the lanes kept apart as
    the PE keeps them, each sum modulo 2**acc_bits. FXP32: |x|'s two halves
    with x's sign (:func:`magnitude_lanes`), recombined by the output stage;
    FXP16: X's act16 values in the low lane (hi is 0). ``start``: per-row start
    value of the low lane (the bias), or None. None of the exact routes'
    shortcuts apply: an approximate w x hi and w x lo are not one product."""
    from fixar.golden.multipliers import approx_matmul  # it imports this module

    W, X = np.asarray(W, dtype=I64), np.asarray(X, dtype=I64)
    L = cfg.lane_bits
    widths = (cfg.weight.bits, L + 1)       # the PE's multiplier ports: weight x lane (one extra bit)
    st = 0 if start is None else np.asarray(start, dtype=I64)[:, None]
    # every approximate product fits the exact one's width (tests/test_multipliers.py), so the
    # exact route's no-wrap bound holds: at most 2^guard_bits of them, plus the start, cannot wrap
    top = (W.shape[1] << (cfg.product_bits - 1)) + (0 if start is None else int(np.abs(st).max(initial=0)))
    reduce = (lambda v: v) if top < 1 << (cfg.acc_bits - 1) else (lambda v: wrap(v, cfg.acc_bits))
    if mode == PEMode.FXP16:
        return np.zeros((W.shape[0], X.shape[1]), dtype=I64), reduce(approx_matmul(W, X, cfg.multiplier, widths) + st)
    # both lanes in one product (side by side): each weight is prepared once for the two
    lanes = approx_matmul(W, magnitude_lanes(X, L, side_by_side=True), cfg.multiplier, widths)
    lo, hi = lanes[:, :X.shape[1]], lanes[:, X.shape[1]:]
    return reduce(hi), reduce(lo + st)


class Operand(NamedTuple):
    """An int64 matrix as :func:`rounded_product` takes it: its float64 copy,
    the largest row and column sums of |a| (Python ints; None when not
    computed) and its smallest and largest entries."""

    F: np.ndarray
    row: int | None
    col: int | None
    lo: int
    hi: int

    @property
    def T(self) -> Operand:
        """The transpose's (a backward product's weights): no copy."""
        return Operand(self.F.T, self.col, self.row, self.lo, self.hi)


def operand(A: np.ndarray, sums: bool = True) -> Operand:
    """:class:`Operand` of a 2-D int64 array; ``sums=False`` when the row and
    column sums are not needed (numpy then skips them). One numba pass when
    the matrix or its transpose is C-contiguous; numpy otherwise."""
    k = numba_kernels()
    if k is not None and A.size and A.ndim == 2:
        if A.flags.c_contiguous:
            return Operand(*k.operand(A))
        if A.T.flags.c_contiguous:
            return Operand(*k.operand(A.T)).T
    if not A.size:
        return Operand(A.astype(np.float64), 0, 0, 0, 0)
    if not sums:
        return Operand(A.astype(np.float64), None, None, A.min(), A.max())
    a = np.abs(A)     # int64 sums: exact (K * 2**31 < 2**63)
    return Operand(A.astype(np.float64), int(a.sum(axis=1).max()), int(a.sum(axis=0).max()), A.min(), A.max())


class Operands:
    """:func:`operand` of each matrix one gradient computation multiplies,
    computed once: a weight matrix's serves its forward and its backward
    product, a layer output's comes with the product that made it
    (:func:`rounded_product`'s ``keep``) and serves the next layer and the
    weight gradient. Keyed by identity (the matrices are kept alive here),
    so one must live only while no matrix it has seen changes."""

    def __init__(self):
        self._memo: dict[int, tuple[np.ndarray, Operand]] = {}

    def __call__(self, A: np.ndarray, sums: bool = True) -> Operand:
        hit = self._memo.get(id(A))
        if hit is None or hit[0] is not A or (sums and hit[1].row is None):
            hit = self._memo[id(A)] = (A, operand(A, sums))
        return hit[1]

    def keep(self, A: np.ndarray, op: Operand) -> None:
        self._memo[id(A)] = (A, op)


def rounded_product(W: Operand, X: Operand, start, smax: int, shift: int, fmt, acc_bits: int,
                    lane_bits: int | None, relu: bool = False, keep: bool = False):
    """(y, yop): y = requantize(0, W @ X + start[:, None], 0, shift, fmt),
    then max(y, 0) with ``relu``, from one float64 product, and with ``keep``
    y's own :class:`Operand` (without sums; None where it cannot be had for
    free), as the next product takes it; or None where that is not the PE's
    result or not exact: then the caller's lane route runs. ``W``, ``X``:
    operands of the int64 codes (W's row sums are needed); ``start``:
    per-row int64 start values and ``smax`` their largest magnitude, or None
    and 0; ``lane_bits`` for an FXP32 product (its lanes must not wrap),
    None for an FXP16 one (one lane each).

    The conditions: the float64 total is exact (sum |w x| plus |start| below
    2**52 in every row), no accumulator lane wraps (so the lanes' rounding
    sees the plain total; the same test as :func:`fxp32_sums`), a rounding
    with no random words, a right shift, and, when saturating, a format whose
    limits float64 holds. Then floor/rint/trunc of total * 2**-shift is the
    PE's rounding of the integer total and the clip its saturation."""
    (Wf, row, _, _, _), (Xf, _, _, xlo, xhi) = W, X
    rule = ROUNDERS[fmt.rounding]
    if rule.float_round is None or shift < 0 or (fmt.overflow == "saturate" and fmt.bits > 53):
        return None
    xmax = max(-int(xlo), int(xhi))
    lane = (row << lane_bits) + smax if lane_bits is not None else row * xmax + smax
    if not (lane < (1 << (acc_bits - 1)) and float(row) * float(xmax) + float(smax) < DIRECT_BOUND):
        return None
    T = Wf @ Xf
    k = numba_kernels()
    if k is not None and T.size:
        y = np.empty(T.shape, dtype=I64)
        F = np.empty(T.shape if keep else (0, 0))
        lo, hi = k.round_total(T, np.zeros(T.shape[0], dtype=I64) if start is None else start, 2.0 ** -shift,
                               *k.fmt_params(fmt), relu, y, F)
        return y, Operand(F, None, None, lo, hi) if keep else None
    if start is not None:
        T += start.astype(np.float64)[:, None]
    T *= 2.0 ** -shift
    rule.float_round(T, out=T)
    if fmt.overflow == "wrap":
        y = overflow(T.astype(I64), fmt)
        return (np.maximum(y, 0) if relu else y), None
    np.clip(T, fmt.min_int, fmt.max_int, out=T)
    if relu:
        np.maximum(T, 0.0, out=T)
    return T.astype(I64), Operand(T, None, None, T.min(), T.max()) if keep and T.size else None
