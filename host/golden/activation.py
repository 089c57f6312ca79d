"""Activation unit: identity, ReLU and a piecewise-linear tanh, on codes of ``pe.out``.

tanh, for an input code x with F = out.frac fraction bits:
  t    = |x|                      (|min_int| saturates to max_int)
  if t >= 2**(range_log2 + F):    mag = T[last]
  else:  k = t >> s,  r = t mod 2**s,   with s = F - segments_log2
         mag = T[k] + ((T[k+1] - T[k]) * r + 2**(s-1)) >> s   (round half up; no add when s = 0)
  y    = -mag if x < 0 else mag
T is ActivationConfig.tanh_table(F). Every value fits the output format
(|y| <= 2**F <= max_int), so no saturation is needed after the unit.
"""
from __future__ import annotations

import functools

import numpy as np

from fixar.config import ActFunc, FixarConfig
from fixar.golden.fixed import I64


def relu(x) -> np.ndarray:
    return np.maximum(np.asarray(x, dtype=I64), 0)


def tanh(cfg: FixarConfig, x) -> np.ndarray:
    out, act = cfg.pe.out, cfg.activation
    F, seg = out.frac, act.tanh_segments_log2
    s = F - seg
    table = _tanh_table(act, F)
    x = np.asarray(x, dtype=I64)
    t = np.minimum(np.abs(x), out.max_int)
    inside = t < (I64(1) << I64(act.tanh_range_log2 + F))
    k = np.where(inside, t >> I64(s), len(table) - 1)
    r = np.where(inside, t & I64((1 << s) - 1), 0)
    y0 = table[k]
    d = table[np.minimum(k + 1, len(table) - 1)] - y0
    half = I64(1 << (s - 1)) if s > 0 else I64(0)
    mag = y0 + ((d * r + half) >> I64(s))
    return np.where(x < 0, -mag, mag)


@functools.lru_cache(maxsize=8)
def _tanh_table(act, frac: int) -> np.ndarray:
    """The table as int64, built once per config (257 math.tanh calls each time cost more than the unit)."""
    t = np.asarray(act.tanh_table(frac), dtype=I64)
    t.setflags(write=False)     # shared between calls
    return t


def activate(cfg: FixarConfig, func: ActFunc, x) -> np.ndarray:
    if func == ActFunc.IDENTITY:
        return np.asarray(x, dtype=I64)
    if func == ActFunc.RELU:
        return relu(x)
    if func == ActFunc.TANH:
        return tanh(cfg, x)
    raise ValueError(f"unknown activation function {func!r}")


def activate_trace(cfg: FixarConfig, func, x) -> np.ndarray:
    """Per-element functions (the unit's ``func`` port may change every cycle).
    The unused code 3 of the 2-bit port passes the input through, like IDENTITY."""
    func = np.asarray(func)
    x = np.asarray(x, dtype=I64)
    return np.select([func == ActFunc.RELU, func == ActFunc.TANH], [relu(x), tanh(cfg, x)], x)


def tanh_max_abs_error(cfg: FixarConfig) -> float:
    """Largest |tanh_unit(x) - tanh(x)| over a dense sweep of inputs (in real units)."""
    out = cfg.pe.out
    lo = -(1 << (cfg.activation.tanh_range_log2 + out.frac + 1))
    codes = np.unique(np.concatenate([
        np.linspace(max(lo, out.min_int), min(-lo, out.max_int), 2_000_001).astype(I64),
        np.arange(-(1 << out.frac), 1 << out.frac, 1 << max(0, out.frac - 12), dtype=I64),
    ]))
    got = tanh(cfg, codes) * 2.0 ** -out.frac
    return float(np.max(np.abs(got - np.tanh(codes * 2.0 ** -out.frac))))
