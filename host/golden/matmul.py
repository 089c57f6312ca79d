"""Matrix products exactly as a PE computes them, fast enough to train with.

Each output element is one PE accumulation from a cleared state over the
reduction axis, followed by the PE's output stage (:func:`requantize`).
Because the accumulators are exact (wrapping only modulo 2**acc_bits, which
is associative), the order of the reduction does not matter, so the sums may
come from BLAS.

Plain int64 matmul in numpy has no BLAS and is ~80x slower than float32. We
split each weight into a signed high and an unsigned low 16-bit limb; every
limb x lane product is below 2**32 in magnitude, so a float64 dot product of
K < 2**21 of them is exact (below 2**53). One stacked BLAS call computes all
limb products; the int64 recombination is exact for K < 2**16.
"""
from __future__ import annotations

import numpy as np

from fixar.config import PEConfig, PEMode
from fixar.golden.fixed import I64, requantize, wrap

MAX_REDUCTION = (1 << 16) - 1  # int64 headroom: K * 2**47 < 2**63
LIMB = 16


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
    if v.size and (v.min() < fmt.min_int or v.max() > fmt.max_int):
        raise ValueError(f"{name} holds values outside {fmt} codes [{fmt.min_int}, {fmt.max_int}]")


def exact_matmul_lanes(W, lanes) -> list[np.ndarray]:
    """Exact int64 W @ L for each lane matrix L (entries within +-2**16), one BLAS call."""
    W = np.asarray(W, dtype=I64)
    rows = W.shape[0]
    # Both limbs written straight into one stacked operand (assignment casts
    # to float64 exactly: every limb is below 2**16 in magnitude).
    A = np.empty((2 * rows, W.shape[1]))
    A[:rows] = W >> I64(LIMB)                 # signed high limb
    A[rows:] = W & I64((1 << LIMB) - 1)       # unsigned low limb
    cols = [np.asarray(lane).shape[1] for lane in lanes]
    stacked = A @ np.concatenate(lanes, axis=1, dtype=np.float64)
    out, start = [], 0
    for n in cols:
        block = stacked[:, start:start + n].astype(I64)
        out.append((block[:rows] << I64(LIMB)) + block[rows:])
        start += n
    return out


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
    if mode == PEMode.FXP32:
        # In-range codes: the low lane is the low bits, the high lane the
        # arithmetic shift (what split_lanes computes in general).
        lo = X & I64((1 << cfg.lane_bits) - 1)
        hi = X >> I64(cfg.lane_bits)
        s_lo, s_hi = exact_matmul_lanes(W, [lo, hi])
        return requantize(reduce(s_hi), reduce(s_lo), cfg.lane_bits, cfg.shift32, fmt, rnd, rb)
    if mode == PEMode.FXP16:
        (s,) = exact_matmul_lanes(W, [X])
        return requantize(np.zeros_like(s), reduce(s), 0, cfg.shift16, fmt, rnd, rb)
    raise ValueError(f"unknown PE mode {mode!r}")
