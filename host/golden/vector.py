"""The vector unit, bit-exact: element-wise steps of the DDPG update on
``pe.act32`` codes (docs/vector.md). :mod:`fixar.golden.ddpg` is written in
these operations, so the training step and the hardware share one definition.

Rules (F = act32 fraction bits, cf = vector.coef_frac, one = 2^F):
  scale(x, c)  = saturate(rne(x c / 2^cf))
  ADD          saturate(a + b)
  SUB          saturate(a - b)
  SCALE        scale(a, c)
  TD           saturate(a + (flag ? 0 : scale(b, c)))
  SOFT         saturate(b + scale(a - b, c))          (a - b unsaturated)
  RELU_MASK    0 < b < limit ? a : 0   (limit: the top of b's quantizer: a clipped
               input passes no error, the clipped straight-through estimator;
               mask_no_limit(cfg) where nothing clips)
  DTANH        saturate(rne(a (one - rne(b' b' / 2^F)) / 2^F)),  b' = clip(b, -one, one),
               but b' = one where |b| >= limit (limit: the smallest |value| a saturated
               tanh, +-one, takes on b's quantizer grid: there the derivative is 0, as
               it is at +-one itself; mask_no_limit(cfg) where b is not quantized)
  NOISE        clip(a + n, -one, one), n = (u c + 2^(cf + H - F - 1)) >> (cf + H - F)
               where u = (sum of the four H-bit halves of two PRNG words) - 2^(H+1),
               H = prng.width / 2; elements take PRNG words in order.
"""
from __future__ import annotations

import numpy as np

from fixar.config import FixarConfig, VecOp, mask_no_limit
from fixar.golden.fixed import I64, numba_kernels, requantize, requantize_into, saturate
from fixar.golden.prng import step as xorshift_step


def scale(cfg: FixarConfig, x, c: int) -> np.ndarray:
    x = np.asarray(x, dtype=I64)
    return requantize(0, x * I64(c), 0, cfg.vector.coef_frac, cfg.pe.act32)


def vector_op(cfg: FixarConfig, op: VecOp, a, b=0, flag=False, c: int = 0, limit: int | None = None) -> np.ndarray:
    """One element-wise operation (not NOISE, which carries PRNG state: :func:`noise_add`).
    ``limit`` is RELU_MASK's and DTANH's (None: :func:`fixar.config.mask_no_limit`)."""
    fmt = cfg.pe.act32
    a, b = np.asarray(a, dtype=I64), np.asarray(b, dtype=I64)
    one = I64(1 << fmt.frac)
    if op == VecOp.ADD:
        return saturate(a + b, fmt)
    if op == VecOp.SUB:
        return saturate(a - b, fmt)
    if op == VecOp.SCALE:
        return scale(cfg, a, c)
    if op == VecOp.TD:
        return saturate(a + np.where(flag, 0, scale(cfg, b, c)), fmt)
    if op == VecOp.SOFT:
        return saturate(b + scale(cfg, a - b, c), fmt)
    top = mask_no_limit(cfg) if limit is None else int(limit)
    if not 0 <= top <= mask_no_limit(cfg):
        raise ValueError(f"{op.name} limit {top}: must be in [0, 2^{cfg.pe.act32.bits - 1}]")
    if op == VecOp.RELU_MASK:
        k = numba_kernels()
        if k is not None and a.shape == b.shape:
            out = np.empty(a.shape, dtype=I64)
            k.relu_mask(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1), top,
                        out.reshape(-1))
            return out
        return a * ((b > 0) & (b < top))        # times 0 or 1: np.where is 4x slower on int64
    if op == VecOp.DTANH:
        bc = np.where((b >= top) | (b <= -top), one, np.clip(b, -one, one))
        d = one - requantize(0, bc * bc, 0, fmt.frac, fmt)
        return requantize(0, a * d, 0, fmt.frac, fmt)
    raise ValueError(f"vector op {op!r} is not element-wise here (NOISE: use noise_add)")


def soft_update(cfg: FixarConfig, p: np.ndarray, pt: np.ndarray, c: int) -> None:
    """pt[...] = SOFT(p, pt) with coefficient ``c`` for p and pt of one shape:
    a target network's update, in place (numba's loop where it can run, else
    numpy; the same bits)."""
    fmt, k = cfg.pe.act32, numba_kernels()
    if (k is not None and not fmt.needs_random and p.shape == pt.shape and pt.dtype == I64
            and pt.flags.c_contiguous):
        k.soft(np.ascontiguousarray(p, dtype=I64).reshape(-1), pt.reshape(-1), k.soft_params(cfg, c))
        return
    if fmt.needs_random:
        pt[...] = vector_op(cfg, VecOp.SOFT, p, pt, c=c)      # raises: scale() has no random words
        return
    d = np.subtract(p, pt, dtype=I64)
    d *= I64(c)
    d = requantize_into(d, cfg.vector.coef_frac, fmt, np.empty_like(d))
    d += pt
    np.clip(d, fmt.min_int, fmt.max_int, out=pt)


def noise(cfg: FixarConfig, state: int, n: int, c: int) -> tuple[np.ndarray, int]:
    """n noise codes (mean 0, standard deviation c / 2^cf / sqrt(3) ... times sqrt(3):
    the host passes c = sigma sqrt(3)); returns them and the new PRNG state."""
    H = cfg.prng.width // 2
    shift = cfg.vector.coef_frac + H - cfg.pe.act32.frac
    mask = (1 << H) - 1
    out = np.empty(n, dtype=I64)
    s = np.uint32(state)
    for i in range(n):
        u = 0
        for _ in range(2):
            s = xorshift_step(s)
            w = int(s)
            u += (w >> H) + (w & mask)
        out[i] = ((u - (2 << H)) * c + (1 << (shift - 1))) >> shift
    return out, int(s)


def noise_add(cfg: FixarConfig, a, state: int, c: int) -> tuple[np.ndarray, int]:
    """NOISE: clip(a + noise, -1, 1) and the new PRNG state."""
    a = np.asarray(a, dtype=I64)
    n, state = noise(cfg, state, a.size, c)
    one = I64(1 << cfg.pe.act32.frac)
    return np.clip(a + n.reshape(a.shape), -one, one), state
