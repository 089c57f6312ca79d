"""How fast is the exact golden matmul compared with plain float32 numpy?"""
from __future__ import annotations

import time

import numpy as np

from fixar.config import FixarConfig, PEMode
from fixar.golden import pe_matmul


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_ratio(cfg: FixarConfig, m: int = 300, k: int = 400, n: int = 64, repeats: int = 30) -> dict:
    """Exact FXP32 (m x k) @ (k x n) against float32 of the same shapes (best of ``repeats``)."""
    rng = np.random.default_rng(0)
    pe = cfg.pe
    W = rng.integers(pe.weight.min_int, pe.weight.max_int + 1, (m, k))
    X = rng.integers(pe.act32.min_int, pe.act32.max_int + 1, (k, n))
    Wf, Xf = W.astype(np.float32), X.astype(np.float32)
    t_exact = _best_of(lambda: pe_matmul(pe, W, X, PEMode.FXP32), repeats)
    t_float = _best_of(lambda: Wf @ Xf, repeats)
    return {
        "golden_matmul_ms": round(t_exact * 1e3, 3),
        "float32_matmul_ms": round(t_float * 1e3, 3),
        "golden_matmul_vs_float32_ratio": round(t_exact / t_float, 2),
    }
