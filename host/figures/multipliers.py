"""Figures of the approximate multipliers (issue 24): their error on the PE's
operands and the golden model's speed with them.

* ``mult_<name>_mean_rel_err`` / ``mult_<name>_bias``: mean of
  |p - x y| / |x y| and of (p - x y) / (x y) over random signed operand
  pairs of the PE's weight x lane product (``pe.weight.bits`` x
  ``pe.lane_bits``: 32 x 16 by default), each uniform over its two's-complement
  codes, pairs with a zero factor left out. Sign-magnitude makes the signed
  relative error that of the magnitudes, so the bias is the magnitude's.
  Uniform codes are almost all large (a leading one near the top), where
  a truncated array is at its best; ``..._loguniform`` repeats both with
  every bit length equally likely, nearer the spread of a network's codes.
* ``approx_golden_matmul_vs_exact_ratio_<name>``: time of the golden
  model's approximate product (``fixar.golden.multipliers.approx_matmul``)
  over its exact lane product (``fixar.golden.matmul.exact_matmul_lanes``,
  float64 BLAS) for a 300 x 400 @ 400 x 64 product, best of ``repeats``,
  the two timed alternately; weights of trained size (|w| < 1.0 in Q12.20),
  lanes uniform 16-bit codes. Whether numba ran is in ``..._numba`` (1 or 0).
  ``..._cpu_ratio_<name>``: the same with process CPU time (all threads:
  BLAS runs on both cores, the numba loop on one), which load from other
  processes on the machine distorts less than the wall clock.
"""
from __future__ import annotations

import functools
import time

import numpy as np

from fixar.config import DEFAULT, MULTIPLIERS, FixarConfig
from fixar.golden.fixed import numba_kernels
from fixar.golden.matmul import exact_matmul_lanes
from fixar.golden.multipliers import approx_matmul, approx_multiply


def _operands(rng, bits: int, n: int, log_uniform: bool) -> np.ndarray:
    if not log_uniform:
        return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), n)
    mag = np.floor(2.0 ** rng.uniform(0, bits - 1, n)).astype(np.int64)   # bit length uniform
    return np.where(rng.random(n) < 0.5, -mag, mag)


def error_figures(cfg: FixarConfig = DEFAULT, samples: int = 200_000, seed: int = 0) -> dict:
    """Mean relative error and bias of every multiplier on the PE's weight x lane operands."""
    wa, wb = cfg.pe.weight.bits, cfg.pe.lane_bits
    figs = {}
    for suffix, log_uniform in (("", False), ("_loguniform", True)):
        rng = np.random.default_rng(seed)
        a, b = _operands(rng, wa, samples, log_uniform), _operands(rng, wb, samples, log_uniform)
        keep = (a != 0) & (b != 0)
        a, b = a[keep], b[keep]
        exact = a.astype(np.float64) * b
        for name in MULTIPLIERS:
            rel = (approx_multiply(a, b, name, (wa, wb)) - a * b) / exact     # int64 difference: exact
            figs[f"mult_{name}_mean_rel_err{suffix}"] = float(f"{np.abs(rel).mean():.6g}")
            figs[f"mult_{name}_bias{suffix}"] = float(f"{rel.mean():.6g}")
    return figs


def speed_figures(cfg: FixarConfig = DEFAULT, shape: tuple[int, int, int] = (300, 400, 64),
                  repeats: int = 10) -> dict:
    """Approximate golden matmul time against the exact one, per multiplier."""
    m, k, n = shape
    rng = np.random.default_rng(1)
    wa, wb = cfg.pe.weight.bits, cfg.pe.lane_bits
    W = rng.integers(-(1 << cfg.pe.weight.frac), 1 << cfg.pe.weight.frac, (m, k))
    X = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), (k, n))
    figs = {"approx_golden_matmul_numba": int(numba_kernels() is not None)}
    exact_matmul_lanes(W, [X])
    for name in MULTIPLIERS:
        approx_matmul(W, X, name, (wa, wb))       # tables, numba compilation: not timed
        runs = {"exact": functools.partial(exact_matmul_lanes, W, [X]),
                "approx": functools.partial(approx_matmul, W, X, name, (wa, wb))}
        wall, cpu = dict.fromkeys(runs, np.inf), dict.fromkeys(runs, np.inf)
        for _ in range(repeats):                  # alternately, so that load on the machine hits both
            for which, fn in runs.items():
                t, c = time.perf_counter(), time.process_time()
                fn()
                wall[which] = min(wall[which], time.perf_counter() - t)
                cpu[which] = min(cpu[which], time.process_time() - c)
        figs[f"approx_golden_matmul_ms_{name}"] = round(wall["approx"] * 1e3, 3)
        figs[f"approx_golden_matmul_vs_exact_ratio_{name}"] = round(wall["approx"] / wall["exact"], 2)
        figs[f"approx_golden_matmul_vs_exact_cpu_ratio_{name}"] = round(cpu["approx"] / max(cpu["exact"], 1e-9), 2)
    return figs


def multiplier_figures(cfg: FixarConfig = DEFAULT, samples: int = 200_000, shape=(300, 400, 64),
                       repeats: int = 10) -> dict:
    """Every figure above, one dict (what `make bench` merges into summary.json)."""
    return {**error_figures(cfg, samples), **speed_figures(cfg, shape, repeats)}
