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
from fixar.golden.matmul import (
    Operand,
    Operands,
    _check,
    _check_range,
    approx_lane_sums,
    exact_matmul_lanes,
    fxp32_sums,
    operand,
    rounded_product,
)
from fixar.golden.multiplier_routes import separable_rounded
from fixar.golden.noise import rounding_words


def linear(cfg: FixarConfig, W, X, bias=None, func: ActFunc = ActFunc.IDENTITY,
           mode: PEMode = PEMode.FXP32, Wop: Operand | None = None, ops: Operands | None = None,
           rnd_seed: int | None = None) -> np.ndarray:
    """W: (M, K) weight codes; X: (K, B) act32 codes (FXP32) or act16 codes
    (FXP16); bias: (M,) codes of ``pe.out`` or None. Returns (M, B) codes.
    The product takes :func:`fixar.golden.matmul.rounded_product` where its
    bounds hold, else the lanes (the same bits). ``Wop``: operand(W) where the
    caller has it; ``ops``: the operands of a gradient computation, which
    gives W's and X's and keeps the output's. ``rnd_seed``: the operation's
    seed when ``pe.out`` rounds stochastically (fixar.golden.noise)."""
    pe = cfg.pe
    W = np.asarray(W, dtype=I64)
    X = np.asarray(X, dtype=I64)
    _check(W, X)
    if Wop is None:
        Wop = operand(W) if ops is None else ops(W)
    Xop = operand(X, sums=False) if ops is None else ops(X, sums=False)
    if W.size:
        _check_range("W", Wop.lo, Wop.hi, pe.weight)
    if X.size:
        _check_range("X", Xop.lo, Xop.hi, pe.act32 if mode == PEMode.FXP32 else pe.act16)
    b = np.zeros(W.shape[0], dtype=I64) if bias is None else np.asarray(bias, dtype=I64)
    if b.shape != (W.shape[0],):
        raise ValueError(f"bias has shape {b.shape}, expected ({W.shape[0]},)")
    blo, bhi = (int(b.min()), int(b.max())) if b.size else (0, 0)
    _check_range("bias", blo, bhi, pe.out)
    if mode not in (PEMode.FXP32, PEMode.FXP16):
        raise ValueError(f"unknown PE mode {mode!r}")
    L = pe.lane_bits
    shift = pe.shift32 if mode == PEMode.FXP32 else pe.shift16
    start = b << I64(shift)
    rnd = None
    if pe.out.needs_random:
        if rnd_seed is None:
            raise ValueError(f"pe.out rounds {pe.out.rounding}: the layer needs its operation's rounding seed")
        rnd = rounding_words(rnd_seed, W.shape[0], X.shape[1], pe.rnd_bits)
    # the float route applies ReLU itself and, for the next product, gives its output's operand
    relu, keep = func == ActFunc.RELU, ops is not None and func != ActFunc.TANH
    if pe.multiplier != "exact":
        fast = separable_rounded(pe, W, X, mode == PEMode.FXP16, start, max(-blo, bhi) << shift, shift, pe.out,
                                 relu, keep)
        if fast is None:
            s_hi, s_lo = approx_lane_sums(pe, W, X, mode, start)
            if mode == PEMode.FXP32:
                return activate(cfg, func, requantize(s_hi, s_lo, L, shift, pe.out, rnd, pe.rnd_bits))
            return activate(cfg, func, requantize(0, s_lo, 0, shift, pe.out, rnd, pe.rnd_bits))
    else:
        fast = rounded_product(Wop, Xop, start, max(-blo, bhi) << shift, shift, pe.out, pe.acc_bits,
                               L if mode == PEMode.FXP32 else None, relu=relu, keep=keep)
    if fast is None and mode == PEMode.FXP32:
        s_hi, s_lo = fxp32_sums(W, X, L, pe.acc_bits, start=start)
        return activate(cfg, func, requantize(s_hi, s_lo, L, shift, pe.out, rnd, pe.rnd_bits))
    if fast is None:
        (s,) = exact_matmul_lanes(W, [X])
        return activate(cfg, func, requantize(0, wrap(s + start[:, None], pe.acc_bits), 0, shift, pe.out, rnd,
                                              pe.rnd_bits))
    y, yop = fast
    if func == ActFunc.TANH:
        return activate(cfg, func, y)
    if yop is not None:
        ops.keep(y, yop)
    return y


def transposed(cfg: FixarConfig, W, D, func: ActFunc = ActFunc.IDENTITY,
               mode: PEMode = PEMode.FXP32, Wop: Operand | None = None, rnd_seed: int | None = None) -> np.ndarray:
    """W^T D, backpropagation's data product, from the same (M, K) W the forward
    product uses: D is (M, B), the result (K, B). No bias; same exact sum,
    single rounding and activation as :func:`linear`. ``Wop``: operand(W)."""
    return linear(cfg, np.asarray(W).T, D, None, func, mode, None if Wop is None else Wop.T, rnd_seed=rnd_seed)
