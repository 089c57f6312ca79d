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
from fixar.golden.pe import split_lanes

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
    # Limbs by float arithmetic (exact: |W| < 2**32 and 2**-16 scaling is
    # exact), written straight into one stacked operand: fewer passes than
    # integer shifts, masks, casts and a vstack.
    w = W.astype(np.float64)
    A = np.empty((2 * rows, W.shape[1]))
    np.floor(w * 2.0 ** -LIMB, out=A[:rows])   # signed high limb
    np.subtract(w, A[:rows] * 2.0 ** LIMB, out=A[rows:])  # low limb in [0, 2**16)
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
    if mode == PEMode.FXP32:
        lo, hi = split_lanes(X, PEMode.FXP32, cfg.lane_bits)
        s_lo, s_hi = exact_matmul_lanes(W, [lo, hi])
        s_lo, s_hi = wrap(s_lo, cfg.acc_bits), wrap(s_hi, cfg.acc_bits)
        return requantize(s_hi, s_lo, cfg.lane_bits, cfg.shift32, fmt, rnd, rb)
    if mode == PEMode.FXP16:
        (s,) = exact_matmul_lanes(W, [X])
        s = wrap(s, cfg.acc_bits)
        return requantize(np.zeros_like(s), s, 0, cfg.shift16, fmt, rnd, rb)
    raise ValueError(f"unknown PE mode {mode!r}")
