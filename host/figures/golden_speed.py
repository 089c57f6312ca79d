"""How fast is the exact golden matmul compared with plain float32 numpy?"""
from __future__ import annotations

import time

import numpy as np

from fixar.config import FixarConfig, PEMode
from fixar.golden import pe_matmul
from fixar.golden.matmul import direct_is_exact


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_ratio(cfg: FixarConfig, m: int = 300, k: int = 400, n: int = 64, repeats: int = 30) -> dict:
    """Exact FXP32 (m x k) @ (k x n) against float32 of the same shapes (best
    of ``repeats``): full-range codes (the limb route) and codes of trained
    size (the direct route; fixar.golden.matmul)."""
    rng = np.random.default_rng(0)
    pe = cfg.pe
    W = rng.integers(pe.weight.min_int, pe.weight.max_int + 1, (m, k))
    X = rng.integers(pe.act32.min_int, pe.act32.max_int + 1, (k, n))
    Wf, Xf = W.astype(np.float32), X.astype(np.float32)
    t_exact = _best_of(lambda: pe_matmul(pe, W, X, PEMode.FXP32), repeats)
    t_float = _best_of(lambda: Wf @ Xf, repeats)
    # Codes of trained-network size (|w| < 1, |x| < 8 in Q12.20 terms): the
    # direct route (one float64 product) that training mostly takes.
    Wd = rng.integers(-(1 << pe.weight.frac), 1 << pe.weight.frac, (m, k))
    Xd = rng.integers(-(8 << pe.act32.frac), 8 << pe.act32.frac, (k, n))
    if not direct_is_exact(Wd, Xd):
        raise RuntimeError("the direct-route operands are beyond its bound: the figure would be the limb route's")
    t_direct = _best_of(lambda: pe_matmul(pe, Wd, Xd, PEMode.FXP32), repeats)
    return {
        "golden_matmul_ms": round(t_exact * 1e3, 3),
        "float32_matmul_ms": round(t_float * 1e3, 3),
        "golden_matmul_vs_float32_ratio": round(t_exact / t_float, 2),
        "golden_matmul_direct_ms": round(t_direct * 1e3, 3),
        "golden_matmul_direct_vs_float32_ratio": round(t_direct / t_float, 2),
    }
