"""Fixed-point Adam, bit-exact: what the accelerator's Adam unit computes
(docs/adam.md has the derivation and the error figures).

Per weight, with integer codes (formats from ``cfg.adam``):

    g  <- clip(g, -G, G)                                  G = adam.grad_limit: g^2 fits v
    m  <- rne((B1 * m + C1 * g) >> cf)                    first moment, format m
    v  <- rne((B2 * v + C2 * g2) >> cf)                   second moment, format v (unsigned)
          g2 = g^2 in v's format (saturating)
    y, s = rsqrt(v + E2)                                  1/sqrt(v + eps^2) = y * 2^-rf * 2^s
    P  = rne((m * y) >> rf)                               m / sqrt(.) before the exponent, format m
    d  = rne(P * L * 2^s)  in the weight's format         L: this step's step size lr_t
    w  <- saturate(w - d)

B1, C1, B2, C2 are beta1, 1 - beta1, beta2, 1 - beta2 with ``coef_frac``
fraction bits, E2 = eps^2 in v's format; rsqrt normalises its input to a
mantissa in [1, 4) and an even exponent, seeds from a table and refines with
Newton steps (all floors, so defined to the bit). The bias correction is
folded into the per-step size lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t),
which the host computes with IEEE float64 operations in a fixed order (so
every machine gets the same code) and sends with each update; eps then sits
inside the square root (Adam's "eps hat" form).
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import math
from dataclasses import dataclass

import numpy as np

from fixar.config import ConfigError, FixarConfig
from fixar.golden.fixed import I64, requantize, saturate


def scalar_code(where: str, name: str, value: float, frac: int, rel: float) -> int:
    """A positive hyper-parameter as an integer with ``frac`` fraction bits,
    rejected when the nearest code is zero or more than ``rel`` off."""
    c = int(np.rint(np.ldexp(value, frac)))
    if c < 1 or abs(c * 2.0 ** -frac - value) > rel * abs(value):
        raise ConfigError(f"{where}: {name} = {value!r} cannot be represented with {frac} fraction bits "
                          f"(nearest code {c} = {c * 2.0 ** -frac:.6g}, more than {rel:.1%} off)")
    return c


@dataclass(frozen=True)
class AdamCodes:
    """Hyper-parameters as the Adam unit's integer codes (checked representable)."""

    b1: int
    c1: int
    b2: int
    c2: int
    e2: int

    @classmethod
    def build(cls, cfg: FixarConfig, beta1: float, beta2: float, eps: float) -> "AdamCodes":
        ad = cfg.adam
        cf = ad.coef_frac
        code = lambda name, value, frac, rel: scalar_code("adam", name, value, frac, rel)

        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0 < b < 1:
                raise ConfigError(f"adam: {name} = {b!r} must be in (0, 1)")
        if not eps > 0:
            raise ConfigError(f"adam: eps = {eps!r} must be positive")
        return cls(b1=code("beta1", beta1, cf, 1e-3), c1=code("1 - beta1", 1 - beta1, cf, 1e-3),
                   b2=code("beta2", beta2, cf, 1e-3), c2=code("1 - beta2", 1 - beta2, cf, 1e-3),
                   e2=code("eps^2", eps * eps, ad.v.frac, 2 ** -5))


class StepSize:
    """The per-step size lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t) as a code
    with ``adam.lr_frac`` fraction bits. beta^t are running float64 products
    (one multiply per step), so the sequence is the same on every machine;
    ``state``/``from_state`` let a checkpoint resume it exactly."""

    def __init__(self, cfg: FixarConfig, lr: float, beta1: float, beta2: float):
        if not 0 < lr < 1:
            raise ConfigError(f"adam: lr = {lr!r} must be in (0, 1)")
        self.frac = cfg.adam.lr_frac
        if lr * 0.5 < 2.0 ** -self.frac * 1000:
            raise ConfigError(f"adam: lr = {lr!r} is too small for {self.frac} fraction bits "
                              f"(needs lr >= {2000 * 2.0 ** -self.frac:.3g} to keep 10 significant bits)")
        self.lr, self.beta1, self.beta2 = float(lr), float(beta1), float(beta2)
        self.t, self.p1, self.p2 = 0, 1.0, 1.0

    def next(self) -> int:
        self.t += 1
        self.p1 *= self.beta1
        self.p2 *= self.beta2
        lr_t = self.lr * math.sqrt(1.0 - self.p2) / (1.0 - self.p1)
        code = int(np.rint(np.ldexp(lr_t, self.frac)))
        if code >= 1 << (self.frac + 1):  # the Adam unit's step-size port is UQ1.<lr_frac>
            raise ConfigError(f"adam: the bias-corrected step size {lr_t:.6g} at step {self.t} is >= 2, "
                              f"beyond the step-size format (lr {self.lr}, beta1 {self.beta1}, beta2 {self.beta2})")
        return code

    def state(self) -> dict:
        return {"t": self.t, "p1": self.p1, "p2": self.p2}

    def load(self, state: dict) -> None:
        self.t, self.p1, self.p2 = int(state["t"]), float(state["p1"]), float(state["p2"])


def rsqrt_table(cfg: FixarConfig) -> np.ndarray:
    return _table(cfg.adam)


@functools.lru_cache(maxsize=8)
def _table(adam) -> np.ndarray:
    t = np.asarray(adam.rsqrt_table(), dtype=I64)
    t.setflags(write=False)     # shared between calls
    return t


def rsqrt(cfg: FixarConfig, x) -> tuple[np.ndarray, np.ndarray]:
    """1 / sqrt(x * 2^-v.frac) for integer codes x >= 1, as (y, s) with the
    value y * 2^-rsqrt_frac * 2^s, y in (2^(rf-1), 2^rf]."""
    ad = cfg.adam
    rf, T = ad.rsqrt_frac, ad.rsqrt_table_bits
    x = np.asarray(x, dtype=I64)
    if x.size and x.min() < 1:
        raise ValueError("rsqrt input must be >= 1 (eps^2 is added first)")
    e = _bit_length(x) - 1                         # x = 2^e * (1 + f)
    k = e - ad.v.frac                              # value = 2^k * (1 + f)
    odd = k & 1
    kk = k - odd                                   # even exponent
    # mantissa in [1, 4) with rf fraction bits: x normalised (floor), doubled when k is odd
    sh = e - rf
    m = np.where(sh >= 0, x >> np.maximum(sh, 0), x << np.maximum(-sh, 0))
    m <<= odd
    # table index: the mantissa's top bits below its leading one (one more bit when doubled), then the half
    half = T - 1
    idx = m >> (odd + (rf - half))
    idx &= (1 << half) - 1
    idx += odd << half
    y = rsqrt_table(cfg)[idx]
    three = I64(3 << rf)
    for _ in range(ad.rsqrt_newton):               # y <- y (3 - m y^2) / 2, every product floored
        t = y * y
        t >>= rf
        t *= m
        t >>= rf
        np.subtract(three, t, out=t)
        t *= y
        t >>= rf + 1
        y = t
    return y, -(kk // 2)


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of positive int64 codes below 2^62, exactly: the float64
    exponent, corrected where rounding to 53 bits carried into the next power of two."""
    e = np.frexp(x.astype(np.float64))[1].astype(I64)
    return e - ((x >> (e - 1)) == 0)


def _rne_shift(q: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """Round-half-even of q / 2^sh for per-element shifts sh >= 1."""
    sh = np.asarray(sh, dtype=I64)
    add = (I64(1) << (sh - 1)) - 1 + ((q >> sh) & 1)
    return (q + add) >> sh


def square_into_v(cfg: FixarConfig, g: np.ndarray) -> np.ndarray:
    """g^2 in the second moment's format (exact when it fits, else saturated)."""
    ad = cfg.adam
    d = ad.v.frac - 2 * ad.grad.frac
    g2 = g * g                                     # < 2^62 for a 32-bit g
    if d >= 0:
        limit = I64(ad.v.max_int >> d)
        return np.where(g2 > limit, I64(ad.v.max_int), g2 << I64(d))
    return saturate(requantize(0, g2, 0, -d, ad.v), ad.v)


def adam_update(cfg: FixarConfig, codes: AdamCodes, lr_code: int, w, g, m, v):
    """One Adam update of weight codes ``w`` with gradient codes ``g``; returns (w, m, v)."""
    ad, wf = cfg.adam, cfg.pe.weight
    w, g, m, v = (np.asarray(a, dtype=I64) for a in (w, g, m, v))
    cf, rf = ad.coef_frac, ad.rsqrt_frac
    # both moments see the same gradient, clipped where its square would saturate v
    g = np.clip(g, -ad.grad_limit, ad.grad_limit)
    # first moment: both terms have m's fraction bits + cf; one rounding
    m = requantize(0, codes.b1 * m + codes.c1 * (g << I64(ad.m.frac - ad.grad.frac)), 0, cf, ad.m)
    # second moment, split in 31-bit limbs so every product fits int64
    g2 = square_into_v(cfg, g)
    lim = I64((1 << 31) - 1)
    hi = codes.b2 * (v >> I64(31)) + codes.c2 * (g2 >> I64(31))
    lo = codes.b2 * (v & lim) + codes.c2 * (g2 & lim)
    v = requantize(hi, lo, 31, cf, ad.v)
    y, s = rsqrt(cfg, v + I64(codes.e2))
    p = requantize(0, m * y, 0, rf, ad.m)
    q = p * I64(lr_code)                            # m.frac + lr_frac fraction bits, times 2^s
    sh = ad.m.frac + ad.lr_frac - wf.frac - s
    d = _rne_shift(q, np.maximum(sh, 1))
    d = np.where(sh < 1, np.sign(q) * I64(wf.max_int), d)  # an update beyond any weight saturates
    return saturate(w - d, wf), m, v


# Adam is element-wise, so chunks of a flat parameter vector can run on
# separate threads (numpy releases the GIL in its loops) with the same bits.
_PARALLEL_MIN = 1 << 16
_POOL, _POOL_PID = None, None    # a forked child (the study's workers) makes its own pool


def golden_threads() -> int:
    """Threads the golden model may use: $FIXAR_THREADS, else the machine's
    cores (at most 8). Parallel runs (the reward study's workers) set it so
    that their threads together do not outnumber the cores."""
    env = os.environ.get("FIXAR_THREADS")
    if env is None:
        return min(os.cpu_count() or 1, 8)
    if not env.isdigit() or int(env) < 1:
        raise ValueError(f"FIXAR_THREADS = {env!r}: must be a positive integer")
    return int(env)


def adam_update_flat(cfg: FixarConfig, codes: AdamCodes, lr_code: int, w, g, m, v):
    """:func:`adam_update` on flat vectors, split across the machine's cores
    when the vector is long; the result is identical to one call."""
    global _POOL, _POOL_PID
    n, workers = len(w), golden_threads()
    if workers < 2 or n < _PARALLEL_MIN:
        return adam_update(cfg, codes, lr_code, w, g, m, v)
    if _POOL is None or _POOL_PID != os.getpid():
        _POOL, _POOL_PID = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fixar-adam"), os.getpid()
    cuts = np.linspace(0, n, workers + 1).astype(int)
    parts = list(_POOL.map(lambda ab: adam_update(cfg, codes, lr_code, *(x[ab[0]:ab[1]] for x in (w, g, m, v))),
                           zip(cuts[:-1], cuts[1:])))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
