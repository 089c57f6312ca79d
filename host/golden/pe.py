"""Cycle-by-cycle model of one dual-mode PE, vectorized over a whole input trace.

Per input cycle t (the hardware shows the result LATENCY cycles later):
  lanes    lo = a[lane_bits-1:0]   (unsigned in FXP32 mode, signed in FXP16 mode)
           hi = a[2*lane_bits-1:lane_bits] (signed)
           (an approximate multiplier in FXP32: |a|'s two halves, each with a's sign)
  products p_lo = w * lo,  p_hi = w * hi            (by pe.multiplier: exact or approximate)
  accums   acc = (clear ? 0 : acc) + (acc_en ? p : 0), each lane modulo 2**acc_bits
  output   FXP32: y_lo = requantize(acc_hi * 2**lane_bits + acc_lo, shift32), y_hi = 0
           FXP16: y_lo = requantize(acc_lo, shift16), y_hi = requantize(acc_hi, shift16)
The accumulators do not know the mode; switching mode in the middle of an
accumulation mixes products of both kinds, and the output reads them in the
mode of the newest input. That is defined here and checked in RTL.
"""
from __future__ import annotations

import numpy as np

from fixar.config import PEConfig, PEMode
from fixar.golden.fixed import I64, requantize, wrap
from fixar.golden.matmul import magnitude_lanes
from fixar.golden.multipliers import approx_multiply


def split_lanes(a, mode, lane_bits: int):
    """Split activation words into (lo, hi) lane values for the given modes."""
    a = np.asarray(a, dtype=I64)
    mask = I64((1 << lane_bits) - 1)
    lo_u = a & mask
    lo_s = wrap(lo_u, lane_bits, signed=True)
    lo = np.where(np.asarray(mode) == PEMode.FXP16, lo_s, lo_u)
    hi = wrap(a >> I64(lane_bits), lane_bits, signed=True)
    return lo, hi


def _segment_sums(contrib: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """Running sums of ``contrib`` that restart at every cycle where ``clear`` is set.

    int64 cumsum may wrap on long traces; the differences are still exact
    modulo 2**64, and the caller reduces modulo 2**acc_bits (a divisor).
    """
    total = np.cumsum(contrib, dtype=I64)
    before = total - contrib  # running sum up to, not including, cycle t
    idx = np.arange(len(contrib))
    start = np.maximum.accumulate(np.where(clear, idx, 0))
    # Before the first clear the accumulator runs from its reset value, zero.
    base = np.where(clear[start], before[start], I64(0))
    return total - base


def _products(cfg: PEConfig, w: np.ndarray, lane: np.ndarray) -> np.ndarray:
    """weight x lane by the PE's multiplier (exact: two's complement)."""
    if cfg.multiplier == "exact":
        return w * lane
    return approx_multiply(w, lane, cfg.multiplier, (cfg.weight.bits, cfg.lane_bits + 1))


def pe_trace(cfg: PEConfig, mode, acc_en, clear, a, w, rnd_lo=None, rnd_hi=None):
    """Outputs (y_lo, y_hi) as signed codes of ``cfg.out``, one per input cycle."""
    mode = np.asarray(mode, dtype=I64)
    acc_en = np.asarray(acc_en, dtype=bool)
    clear = np.asarray(clear, dtype=bool)
    w = np.asarray(w, dtype=I64)
    lo, hi = split_lanes(a, mode, cfg.lane_bits)
    if cfg.multiplier != "exact":           # FXP32: |a| in the lanes, with a's sign (magnitude_lanes)
        m_lo, m_hi = magnitude_lanes(wrap(np.asarray(a, dtype=I64), 2 * cfg.lane_bits, signed=True), cfg.lane_bits)
        fxp32 = mode != PEMode.FXP16
        lo, hi = np.where(fxp32, m_lo, lo), np.where(fxp32, m_hi, hi)
    p_lo, p_hi = _products(cfg, w, lo), _products(cfg, w, hi)
    acc_lo = wrap(_segment_sums(np.where(acc_en, p_lo, 0), clear), cfg.acc_bits)
    acc_hi = wrap(_segment_sums(np.where(acc_en, p_hi, 0), clear), cfg.acc_bits)

    fmt, rb = cfg.out, cfg.rnd_bits
    zeros = np.zeros_like(acc_lo)
    y32 = requantize(acc_hi, acc_lo, cfg.lane_bits, cfg.shift32, fmt, rnd_lo, rb)
    y16_lo = requantize(zeros, acc_lo, 0, cfg.shift16, fmt, rnd_lo, rb)
    y16_hi = requantize(zeros, acc_hi, 0, cfg.shift16, fmt, rnd_hi, rb)
    packed = mode == PEMode.FXP16
    return np.where(packed, y16_lo, y32), np.where(packed, y16_hi, zeros)
