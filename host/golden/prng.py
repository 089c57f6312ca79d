"""xorshift32 (Marsaglia 2003): the hardware PRNG, bit for bit.

One step:  x ^= x << 13;  x ^= x >> 17;  x ^= x << 5   (all modulo 2**32).
The output of a step is the new state. Vectorized over many independent
generators (one per PE row or column) that step together.
"""
from __future__ import annotations

import numpy as np

from fixar.config import PrngConfig

U32 = np.uint32


def step(state: np.ndarray) -> np.ndarray:
    x = np.asarray(state, dtype=U32)
    x = x ^ (x << U32(13))
    x = x ^ (x >> U32(17))
    return x ^ (x << U32(5))


def stream(cfg: PrngConfig, n: int, seeds=None) -> np.ndarray:
    """The first ``n`` outputs, shape (n,) or (n, len(seeds)) for several generators."""
    state = np.asarray(cfg.seed if seeds is None else seeds, dtype=U32)
    if np.any(state == 0):
        raise ValueError("xorshift32 has a zero fixed point: seeds must be non-zero")
    out = np.empty((n,) + state.shape, dtype=U32)
    for i in range(n):
        state = step(state)
        out[i] = state
    return out
