"""Fully-connected layer as the array computes it: Y = act(W X + b).

Every output element is one exact wide sum (each lane modulo 2**acc_bits,
as in the PE), the bias enters that sum as its start value shifted to the
product's binary point, the result is rounded once into ``pe.out`` and then
goes through the activation unit. No tiling, core count or parallelism
mode changes a bit of it (docs/array.md).
"""
from __future__ import annotations

import numpy as np

from fixar.config import ActFunc, FixarConfig, PEMode
from fixar.golden.activation import activate
from fixar.golden.fixed import I64, requantize, wrap
from fixar.golden.matmul import _check, _check_codes, exact_matmul_lanes, fxp32_sums


def linear(cfg: FixarConfig, W, X, bias=None, func: ActFunc = ActFunc.IDENTITY,
           mode: PEMode = PEMode.FXP32) -> np.ndarray:
    """W: (M, K) weight codes; X: (K, B) act32 codes (FXP32) or act16 codes
    (FXP16); bias: (M,) codes of ``pe.out`` or None. Returns (M, B) codes."""
    pe = cfg.pe
    W = np.asarray(W, dtype=I64)
    X = np.asarray(X, dtype=I64)
    _check(W, X)
    _check_codes("W", W, pe.weight)
    _check_codes("X", X, pe.act32 if mode == PEMode.FXP32 else pe.act16)
    b = np.zeros(W.shape[0], dtype=I64) if bias is None else np.asarray(bias, dtype=I64)
    if b.shape != (W.shape[0],):
        raise ValueError(f"bias has shape {b.shape}, expected ({W.shape[0]},)")
    _check_codes("bias", b, pe.out)
    L = pe.lane_bits
    if mode == PEMode.FXP32:
        s_hi, s_lo = fxp32_sums(W, X, L, pe.acc_bits, start=b << I64(pe.shift32))
        y = requantize(s_hi, s_lo, L, pe.shift32, pe.out)
    elif mode == PEMode.FXP16:
        (s,) = exact_matmul_lanes(W, [X])
        s = wrap(s + (b << I64(pe.shift16))[:, None], pe.acc_bits)
        y = requantize(0, s, 0, pe.shift16, pe.out)
    else:
        raise ValueError(f"unknown PE mode {mode!r}")
    return activate(cfg, func, y)


def transposed(cfg: FixarConfig, W, D, func: ActFunc = ActFunc.IDENTITY,
               mode: PEMode = PEMode.FXP32) -> np.ndarray:
    """W^T D, backpropagation's data product, from the same (M, K) W the forward
    product uses: D is (M, B), the result (K, B). No bias; same exact sum,
    single rounding and activation as :func:`linear`."""
    return linear(cfg, np.asarray(W).T, D, None, func, mode)
