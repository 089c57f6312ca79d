"""Block floating point (BFP), the golden half: fixed-point codes -> BFP, exactly.

The rules (docs/bfp.md has the reasons):

* Input: int64 codes ``q`` of a fixed-point format with ``frac`` fraction
  bits, |q| < 2**62. The reduction ``axis`` is cut into groups of ``g``
  values; the tensor is viewed as rows x reduction (the axis moved last, the
  other axes flattened in C order) and a short last group is padded with
  zeros, which never change its exponent and are dropped again.
* Exponent: E = floor(log2(max |x|)) of the group's largest value, exact from
  the bit length of its largest code (E = bitlen - 1 - frac). It is stored as
  an offset from a per-tensor base in ``exp_bits`` signed bits. By default
  base = (largest E of the tensor) - max_offset, so the tensor's top group
  gets the top offset and an offset can only saturate at the bottom: a group
  more than 2**exp_bits - 1 binades below the top is given the lowest
  exponent, which is larger than its own, so its mantissas get coarser and
  may round to 0 (never overflow). An all-zero group gets the lowest offset.
  With an explicit ``base`` an offset may also saturate at the top; the
  group's mantissas then saturate.
* Mantissa: signed m-bit two's complement, LSB weight 2**(E_g - (m - 2)),
  where E_g = base + offset: the largest magnitude lands in [2**(m-2), 2**(m-1)).
  mant = floor(x / LSB + w / 2**R) (stochastic; w the element's R-bit random
  word) or round-half-even(x / LSB) (nearest), then saturated to
  [-2**(m-1), 2**(m-1) - 1]: a positive value that rounds up to 2**(m-1)
  becomes 2**(m-1) - 1 (the exponent is not bumped: that would re-round the
  whole group).
* Random words: the top R bits of fixar.golden.noise.jenkins32(seed XOR key),
  key = the element's index in the padded rows x groups x g layout modulo
  2**32, i.e. (row * n_groups + group) * g + element; for g a power of two
  that is (flat group index << log2 g) | element, a counter in hardware.

Every step is int64 arithmetic on codes; ``tests/test_bfp.py`` checks it
against a Python Fraction reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixar.config import FixedFormat
from fixar.config.bfp import MANTISSA_WIDTHS, BfpFormat
from fixar.golden.fixed import I64, numba_kernels, quantize
from fixar.golden.noise import U32, jenkins32

MAX_CODE = (1 << 62) - 1    # headroom: a code plus a rounding addend stays inside int64
MAX_BASE = 1 << 20          # an explicit base beyond any sane exponent is a caller's bug
DEFAULT_FORMAT = BfpFormat()


@dataclass(frozen=True)
class BfpTensor:
    """A tensor in BFP: mantissas (rows, n_groups, g) padded with zeros and
    offsets (rows, n_groups) of the canonical rows x reduction view, the
    per-tensor ``base``, and what it takes to restore the original layout."""

    mant: np.ndarray
    offset: np.ndarray
    base: int
    fmt: BfpFormat
    frac: int
    shape: tuple[int, ...]
    axis: int

    @property
    def lsb_exp(self) -> np.ndarray:
        """(rows, n_groups) real exponent of each group's mantissa LSB."""
        return self.base + self.offset - (self.fmt.mantissa_bits - 2)

    def _restore(self, grouped_values: np.ndarray) -> np.ndarray:
        rows, groups, g = grouped_values.shape
        flat = grouped_values.reshape(rows, groups * g)
        n = self.shape[self.axis]
        moved = tuple(s for i, s in enumerate(self.shape) if i != self.axis) + (n,)
        return np.moveaxis(flat[:, :n].reshape(moved), -1, self.axis)

    def values(self) -> np.ndarray:
        """Real values, float64 (exact: at most 8 significant bits each)."""
        v = np.ldexp(self.mant.astype(np.float64), self.lsb_exp[:, :, None])
        return self._restore(v)

    def codes(self, frac: int | None = None) -> np.ndarray:
        """int64 codes with ``frac`` fraction bits (default: the input's).
        Exact or ValueError: with the per-tensor base every value is a code of
        the input's format (a group whose LSB is finer than a code's kept the
        codes unrounded)."""
        f = self.frac if frac is None else frac
        sh = np.broadcast_to((self.lsb_exp + f)[:, :, None], self.mant.shape)
        left = np.clip(sh, 0, 62 - self.fmt.mantissa_bits)
        if np.any((sh > left) & (self.mant != 0)):
            raise ValueError(f"BFP values beyond int64 codes with {f} fraction bits")
        right = np.clip(-sh, 0, 63)
        down = self.mant >> right
        if np.any((down << right) != self.mant):
            raise ValueError(f"BFP values below the LSB of codes with {f} fraction bits")
        out = np.where(sh >= 0, self.mant << left, down)
        return self._restore(out)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values, exactly (a binary search of
    shifts: float64's frexp would round values above 2**53)."""
    x = np.asarray(x, dtype=I64).copy()
    n = np.zeros_like(x)
    for s in (32, 16, 8, 4, 2, 1):
        big = x >= (I64(1) << I64(s))
        n += big * I64(s)
        x = np.where(big, x >> I64(s), x)
    return n + (x > 0)


def rows_view(q, axis: int) -> np.ndarray:
    """The canonical (rows, n) view: the reduction axis last, the rest flattened."""
    q = np.moveaxis(np.asarray(q, dtype=I64), axis, -1)
    return q.reshape(int(np.prod(q.shape[:-1])), q.shape[-1])


def grouped(q2: np.ndarray, g: int) -> np.ndarray:
    """(rows, n) -> (rows, ceil(n / g), g), the short last group zero-padded."""
    rows, n = q2.shape
    groups = -(-n // g)
    padded = np.zeros((rows, groups * g), dtype=I64)
    padded[:, :n] = q2
    return padded.reshape(rows, groups, g)


def bfp_words(seed: int, rows: int, groups: int, g: int, bits: int) -> np.ndarray:
    """(rows, groups, g) random words of ``bits`` bits (module docstring)."""
    if not 0 <= seed < 1 << 32:
        raise ValueError(f"BFP rounding seed {seed} is not a 32-bit word")
    key = np.arange(rows * groups * g, dtype=np.uint64) & np.uint64(0xFFFFFFFF)
    h = jenkins32(U32(seed) ^ key.astype(U32))
    return (h >> U32(32 - bits)).astype(I64).reshape(rows, groups, g)


def group_exponents(groups: np.ndarray, frac: int) -> tuple[np.ndarray, np.ndarray]:
    """(E, nonzero): floor(log2(max |x|)) of each group (any value where the
    group is all zero) and which groups have a nonzero value."""
    top = np.abs(groups).max(axis=-1)
    return bit_length(top) - 1 - frac, top > 0


def tensor_base(E: np.ndarray, nonzero: np.ndarray, fmt: BfpFormat) -> int:
    """Default per-tensor base: the largest exponent gets the top offset (0 when all is zero)."""
    return int(E[nonzero].max()) - fmt.max_offset if nonzero.any() else 0


def _left(q: np.ndarray, n: np.ndarray, m: int) -> np.ndarray:
    """q * 2**n for n >= 0 into m-bit mantissas: any |q| >= 2**m saturates
    anyway for n >= 1, and for n > 54 every nonzero q does, so clipping both
    keeps int64 exact without changing the saturated result."""
    return np.clip(q, -(1 << m), 1 << m) << np.minimum(n, 54)


def _nearest(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Round-half-even of q / 2**s, s >= 1 (s clipped to 63: beyond it every
    |q| < 2**62 rounds to 0 either way)."""
    s = np.minimum(s, 63)
    return (q + ((I64(1) << (s - 1)) - 1) + ((q >> s) & 1)) >> s


def _stochastic(q: np.ndarray, s: np.ndarray, w: np.ndarray, R: int) -> np.ndarray:
    """floor(q / 2**s + w / 2**R), s >= 1. With r = min(s, R) kept noise bits
    and k = s - r: floor((floor(q / 2**k) + floor(w / 2**(R - r))) / 2**r),
    the same integer (floor of a floor), every step inside int64."""
    r = np.minimum(s, R)
    k = np.minimum(s - r, 63)
    return ((q >> k) + (w >> (R - r))) >> r


def mantissas(groups: np.ndarray, shift: np.ndarray, fmt: BfpFormat, words: np.ndarray | None) -> np.ndarray:
    """Round each code to its group's LSB (2**shift codes) and saturate."""
    s = np.broadcast_to(shift[:, :, None], groups.shape)
    pos = np.maximum(s, 1)
    if fmt.rounding == "nearest":
        rounded = _nearest(groups, pos)
    else:
        rounded = _stochastic(groups, pos, words, fmt.rnd_bits)
    exact = _left(groups, np.maximum(-s, 0), fmt.mantissa_bits)
    return np.clip(np.where(s > 0, rounded, exact), fmt.min_mantissa, fmt.max_mantissa)


def to_bfp(q, frac: int, fmt: BfpFormat, seed: int = 0, axis: int = -1, base: int | None = None) -> BfpTensor:
    """Convert int64 codes with ``frac`` fraction bits into ``fmt``, groups
    along ``axis``. ``seed``: the tensor's rounding seed (stochastic only);
    ``base``: the per-tensor exponent base, default from the tensor."""
    q = np.atleast_1d(np.asarray(q, dtype=I64))
    if q.size and (int(q.max()) > MAX_CODE or int(q.min()) < -MAX_CODE):
        raise ValueError(f"BFP input codes must lie within +-(2**62 - 1); got {int(q.min())}..{int(q.max())}")
    if base is not None and not -MAX_BASE <= base <= MAX_BASE:
        raise ValueError(f"BFP base {base} is outside +-{MAX_BASE}")
    axis = axis % q.ndim
    groups = grouped(rows_view(q, axis), fmt.group)
    E, nonzero = group_exponents(groups, frac)
    b = tensor_base(E, nonzero, fmt) if base is None else int(base)
    offset = np.where(nonzero, np.clip(E - b, fmt.min_offset, fmt.max_offset), fmt.min_offset).astype(I64)
    shift = b + offset + frac - (fmt.mantissa_bits - 2)      # the mantissa LSB in code units (log2)
    words = None
    if fmt.rounding == "stochastic":
        words = bfp_words(seed, groups.shape[0], groups.shape[1], fmt.group, fmt.rnd_bits)
    mant = mantissas(groups, shift, fmt, words)
    return BfpTensor(mant, offset, b, fmt, frac, q.shape, axis)


def bfp_quantize(q, frac: int, fmt: BfpFormat, seed: int = 0, axis: int = -1) -> np.ndarray:
    """Codes -> BFP -> codes of the same format: the BFP value of every code,
    exact (with the per-tensor base a BFP value is always such a code). One
    numba pass (fixar.golden.bfp_kernels) where numba runs, with the same bits."""
    q = np.asarray(q, dtype=I64)
    k = _kernels()
    if k is not None and q.size and q.ndim:
        if int(q.max()) > MAX_CODE or int(q.min()) < -MAX_CODE or not 0 <= seed < 1 << 32:
            return to_bfp(q, frac, fmt, seed, axis).codes().reshape(q.shape)     # its error message
        moved = np.moveaxis(q, axis % q.ndim, -1)
        q2 = np.ascontiguousarray(moved.reshape(-1, moved.shape[-1]))
        out = np.empty_like(q2)
        if k.bfp_codes(q2, frac, fmt.group, fmt.min_offset, fmt.max_offset, fmt.mantissa_bits,
                       fmt.rounding == "stochastic", fmt.rnd_bits, seed, out):
            return np.moveaxis(out.reshape(moved.shape), -1, axis % q.ndim)
    return to_bfp(q, frac, fmt, seed, axis).codes().reshape(q.shape)


def _kernels():
    """fixar.golden.bfp_kernels, or None where fixar.golden.fixed.numba_kernels
    says numba is off or missing."""
    if numba_kernels() is None:
        return None
    from fixar.golden import bfp_kernels
    return bfp_kernels


def fast_r(q, frac: int, lo: BfpFormat, hi: BfpFormat, seed: int = 0, axis: int = -1) -> float:
    """FAST's precision criterion r(X) = sum |BFP_hi(X) - BFP_lo(X)| / |sum BFP_lo(X)|,
    both conversions from the same seed (the same random words). Exact integer
    sums on codes, one division at the end; inf when the denominator is 0 and
    the numerator is not, 0 when both are."""
    a = bfp_quantize(q, frac, lo, seed, axis)
    b = bfp_quantize(q, frac, hi, seed, axis)
    num, den = _exact_sum(np.abs(b - a)), abs(_exact_sum(a))
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    return num / den


def _exact_sum(v: np.ndarray) -> int:
    """Sum of int64 values as a Python int: numpy's where it cannot wrap."""
    if v.size == 0:
        return 0
    if int(np.abs(v).max()) * v.size < 1 << 62:
        return int(v.sum())
    return sum(int(x) for x in v.ravel())


def _normal_codes(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, int]:
    """N(0, 1) samples as Q12.20 codes (FXP32 of the default config) and their frac."""
    src = FixedFormat(32, 20)
    return quantize(np.random.default_rng(seed).standard_normal(shape), src), src.frac


def conversion_rel_err(fmt: BfpFormat = DEFAULT_FORMAT, shape: tuple[int, int] = (256, 256), seed: int = 1,
                       widths: tuple[int, ...] = MANTISSA_WIDTHS) -> dict:
    """Figures bfp_conversion_rel_err_m{2,4,6,8} (``fmt``'s rounding) and
    bfp_conversion_rel_err_nearest_m*: the RMS error of converting N(0, 1)
    values held as Q12.20 codes, relative to their RMS."""
    x, frac = _normal_codes(shape, seed)
    ref = x.astype(np.float64)
    norm = float(np.sqrt(np.mean(ref * ref)))
    out = {}
    for rounding, key in ((fmt.rounding, "bfp_conversion_rel_err_m"), ("nearest", "bfp_conversion_rel_err_nearest_m")):
        for m in widths:
            f = BfpFormat(m, fmt.group, fmt.exp_bits, rounding, fmt.rnd_bits)
            err = bfp_quantize(x, frac, f, seed).astype(np.float64) - ref
            out[f"{key}{m}"] = float(f"{np.sqrt(np.mean(err * err)) / norm:.4g}")
    return out


def relu_bias(fmt: BfpFormat = DEFAULT_FORMAT, shape: tuple[int, int] = (256, 256), seed: int = 1,
              widths: tuple[int, ...] = MANTISSA_WIDTHS) -> dict:
    """Figures bfp_relu_bias_m{2,4,6,8}: the mean conversion error of |N(0, 1)|
    values (all non-negative, as ReLU outputs are) relative to their mean.
    Stochastic rounding is unbiased except where a group's largest positive
    value rounds up to 2**(m-1) and saturates; this measures that."""
    x, frac = _normal_codes(shape, seed)
    x = np.abs(x)
    out = {}
    for m in widths:
        err = bfp_quantize(x, frac, fmt.with_mantissa(m), seed).astype(np.float64) - x
        out[f"bfp_relu_bias_m{m}"] = float(f"{err.mean() / x.mean():.3g}")
    return out
