"""Accuracy of the fixed-point Adam unit (golden model) against float64."""
from __future__ import annotations

import numpy as np

from fixar.config import FixarConfig
from fixar.golden.adam import AdamCodes, StepSize, adam_update, rsqrt
from fixar.golden.fixed import dequantize, quantize


def rsqrt_max_rel_error(cfg: FixarConfig, samples: int = 200_000) -> float:
    ad = cfg.adam
    x = np.unique((2.0 ** np.random.default_rng(0).uniform(0, ad.v.bits, samples)).astype(np.int64))
    y, s = rsqrt(cfg, x)
    got = np.ldexp(y.astype(np.float64), s - ad.rsqrt_frac)
    return float(np.max(np.abs(got * np.sqrt(np.ldexp(x.astype(np.float64), -ad.v.frac)) - 1)))


def trajectory_error(cfg: FixarConfig, sigma: float = 1e-3, steps: int = 200, n: int = 2000,
                     lr: float = 1e-4, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> dict:
    """Fixed-point vs float64 Adam (same eps-hat form) on noisy gradients:
    worst error in weight LSBs and the median error relative to the distance moved."""
    ad, wf = cfg.adam, cfg.pe.weight
    rng = np.random.default_rng(2)
    codes, sched = AdamCodes.build(cfg, b1, b2, eps), StepSize(cfg, lr, b1, b2)
    wq = quantize(rng.uniform(-0.5, 0.5, n), wf)
    w0 = dequantize(wq, wf)
    mq, vq = np.zeros(n, np.int64), np.zeros(n, np.int64)
    w64, m64, v64 = w0.copy(), np.zeros(n), np.zeros(n)
    bias = rng.normal(0, sigma, n)
    for t in range(1, steps + 1):
        gq = quantize(bias + rng.normal(0, sigma, n), ad.grad)
        wq, mq, vq = adam_update(cfg, codes, sched.next(), wq, gq, mq, vq)
        g = dequantize(gq, ad.grad)
        m64 = b1 * m64 + (1 - b1) * g
        v64 = b2 * v64 + (1 - b2) * g * g
        w64 = w64 - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m64 / np.sqrt(v64 + eps * eps)
    err = np.abs(dequantize(wq, wf) - w64)
    moved = np.maximum(np.abs(w64 - w0), wf.lsb)
    return {"adam_vs_float64_max_err_lsb_200_steps": round(float(np.max(err) / wf.lsb), 2),
            "adam_vs_float64_median_rel_err_200_steps": float(f"{np.median(err / moved):.3g}")}
