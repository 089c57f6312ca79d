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
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from fixar.config import ConfigError, FixarConfig
from fixar.golden.fixed import I64, numba_kernels, requantize, requantize_into, saturate, wrap
from fixar.golden.vector import soft_update


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
    def build(cls, cfg: FixarConfig, beta1: float, beta2: float, eps: float) -> AdamCodes:
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
    """One Adam update of weight codes ``w`` with gradient codes ``g``; returns (w, m, v).
    Arrays of one shape with no stochastic moment go through numba's kernel
    (:func:`fixar.golden.kernels.adam`, the same operations) where numba is
    there, else through :func:`_adam_numpy_fast` where its bounds hold;
    anything else through :func:`adam_numpy`, the definition. All give the
    same bits."""
    w, g, m, v = (np.asarray(a, dtype=I64) for a in (w, g, m, v))
    k = numba_kernels()
    if not _fast_routes_fit(cfg) or not w.shape == g.shape == m.shape == v.shape or (
            k is None and not _fast_numpy_fits(cfg, codes, v)):
        return adam_numpy(cfg, codes, lr_code, w, g, m, v)
    out = tuple(np.empty(w.shape, dtype=I64) for _ in range(3))
    flat = [np.ascontiguousarray(a).reshape(-1) for a in (w, g, m, v)] + [o.reshape(-1) for o in out]
    if k is None:
        _adam_numpy_fast(cfg, codes, lr_code, *flat)
    else:
        _kernel(k, cfg, codes, lr_code)(*flat)
    return out


def _fast_routes_fit(cfg: FixarConfig) -> bool:
    """The kernel and the short numpy route round with the formats' rules
    but have no random words (the definition raises for a stochastic
    moment, as it always did)."""
    return not (cfg.adam.m.needs_random or cfg.adam.v.needs_random)


def _kernel(k, cfg: FixarConfig, codes: AdamCodes, lr_code: int, tau: int = 0):
    """numba's update with its constants bound: a function (w, g, m, v, w_out,
    m_out, v_out, pt=None) of flat int64 vectors that writes the update into
    the outputs (w_out may be w; the others must not overlap) and then, given
    a target network's ``pt``, moves it toward w_out by the vector unit's
    SOFT with coefficient ``tau``, in the same pass where it can."""
    ad, wf = cfg.adam, cfg.pe.weight
    mr, mlo, mhi, mbits, _, mwrap = k.fmt_params(ad.m)
    vr, vlo, vhi, vbits, _, vwrap = k.fmt_params(ad.v)
    P = np.array([ad.grad_limit, codes.b1, codes.c1, codes.b2, codes.c2, codes.e2, lr_code, ad.m.frac - ad.grad.frac,
                  ad.coef_frac, mr, mlo, mhi, mbits, mwrap, ad.v.frac - 2 * ad.grad.frac, vr, vlo, vhi, vbits, vwrap,
                  ad.v.frac, ad.rsqrt_frac, ad.rsqrt_table_bits - 1, ad.rsqrt_newton, wf.min_int, wf.max_int,
                  ad.m.frac + ad.lr_frac - wf.frac], dtype=I64)
    table, Q, none = rsqrt_table(cfg), k.soft_params(cfg, tau), np.empty(0, dtype=I64)
    fused = not cfg.pe.act32.needs_random      # else soft_update raises, as SOFT always did

    def run(w, g, m, v, w_out, m_out, v_out, pt=None) -> None:
        if k.adam(w, g, m, v, table, P, w_out, m_out, v_out, pt if fused and pt is not None else none, Q):
            raise ValueError("rsqrt input must be >= 1 (eps^2 is added first)")
        if pt is not None and not fused:
            soft_update(cfg, w_out, pt, tau)
    return run


def adam_numpy(cfg: FixarConfig, codes: AdamCodes, lr_code: int, w, g, m, v):
    """:func:`adam_update` in numpy (the definition the kernel follows)."""
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


def _fast_numpy_fits(cfg: FixarConfig, codes: AdamCodes, v: np.ndarray) -> bool:
    """The bounds under which :func:`_adam_numpy_fast` is :func:`adam_numpy`:
    some second moments, all within v's codes (so B2 v + C2 g^2 >= 0, where
    rounding toward zero is a floor), g^2 shifted, not shrunk, into v's
    format, rsqrt inputs in [1, 2^62) with a table index that is a right
    shift of the mantissa, the high limb's shift inside int64, and the
    weight update's shift in [1, 62] for every input (no saturating update)."""
    ad, wf = cfg.adam, cfg.pe.weight
    base = ad.m.frac + ad.lr_frac - wf.frac       # the update's shift is base + (k >> 1), k in [-v.frac, 61 - v.frac]
    return (ad.v.frac >= 2 * ad.grad.frac and ad.rsqrt_frac >= ad.rsqrt_table_bits - 1 and codes.e2 >= 1
            and ad.v.max_int + codes.e2 < 1 << 62 and (codes.b2 + codes.c2) << (ad.v.bits - ad.coef_frac) < 1 << 62
            and base + (-ad.v.frac >> 1) >= 1 and base + ((61 - ad.v.frac) >> 1) <= 62
            and v.size > 0 and 0 <= v.min() and v.max() <= ad.v.max_int)


def _adam_numpy_fast(cfg: FixarConfig, codes: AdamCodes, lr_code: int, w, g, m, v, w_out, m_out, v_out) -> None:
    """:func:`adam_numpy` into the outputs in about half the numpy passes,
    mostly in place, where :func:`_fast_numpy_fits` holds; the comments say
    the identities that make it equal."""
    ad, wf = cfg.adam, cfg.pe.weight
    cf, rf = ad.coef_frac, ad.rsqrt_frac
    g = np.clip(g, -ad.grad_limit, ad.grad_limit)
    a = np.multiply(g, I64(codes.c1 << (ad.m.frac - ad.grad.frac)), out=m_out)   # C1 (g << k), modulo 2^64 alike
    b = np.multiply(m, I64(codes.b1))
    a += b
    m = requantize_into(a, cf, ad.m, b)             # m_out
    # |g| <= grad_limit: g^2 << d never exceeds v's top, so square_into_v's saturation is a no-op
    g *= g
    g <<= I64(ad.v.frac - 2 * ad.grad.frac)
    # the limbs as in adam_numpy; hi 2^31 + lo >= 0, and floor((hi 2^31 + lo) / 2^cf) = (hi << (31 - cf)) + (lo >> cf)
    lim = I64((1 << 31) - 1)
    hi = np.right_shift(v, I64(31), out=b)
    hi *= I64(codes.b2)
    c = g >> I64(31)
    c *= I64(codes.c2)
    hi += c
    lo = np.bitwise_and(v, lim, out=c)
    lo *= I64(codes.b2)
    g &= lim
    g *= I64(codes.c2)
    lo += g
    if ad.v.rounding == "rne":                      # bit cf of the total is bit cf of lo (cf < 31)
        np.right_shift(lo, I64(cf), out=g)
        g &= I64(1)
        g += I64((1 << (cf - 1)) - 1)
        lo += g
    lo >>= I64(cf)
    hi <<= I64(31 - cf)
    hi += lo
    if ad.v.overflow == "saturate":
        v = np.clip(hi, ad.v.min_int, ad.v.max_int, out=v_out)
    else:
        v_out[...] = wrap(hi, ad.v.bits, ad.v.signed)
        v = v_out
    y, k = _rsqrt_fast(cfg, np.add(v, I64(codes.e2), out=hi), lo, g)   # b, c, g are y's and k's now
    # the shift is base - s with s = -(kk // 2) = -(k >> 1) (kk = k - odd is even), all in [1, 62]
    k >>= I64(1)
    k += I64(ad.m.frac + ad.lr_frac - wf.frac)
    q = requantize_into(m * y, rf, ad.m, y)
    q *= I64(lr_code)
    d = k - I64(1)
    np.left_shift(I64(1), d, out=d)
    d -= I64(1)
    np.right_shift(q, k, out=y)
    y &= I64(1)
    d += y
    d += q
    d >>= k
    np.subtract(w, d, out=d)
    np.clip(d, wf.min_int, wf.max_int, out=w_out)


def _rsqrt_fast(cfg: FixarConfig, x: np.ndarray, e: np.ndarray, scratch: np.ndarray):
    """rsqrt(cfg, x) as (y, k) with k = e - v.frac (s = -(k >> 1)), for
    1 <= x < 2^62; ``e``, ``scratch``: arrays of x's shape it may overwrite."""
    ad = cfg.adam
    rf, half = ad.rsqrt_frac, ad.rsqrt_table_bits - 1
    # e = bit length - 1 from the float64 exponent, corrected only where float64 rounds (x >= 2^53)
    np.right_shift(x.astype(np.float64).view(I64), I64(52), out=e)
    e -= I64(1023)
    if x.max() >= 1 << 53:
        e -= (x >> e) == 0
    # the floored mantissa floor(x 2^(rf - e)): x << (62 - e) is exact (x < 2^(e+1)), then a floor shift
    mant = np.subtract(I64(62), e, out=scratch)
    np.left_shift(x, mant, out=mant)
    mant >>= I64(62 - rf)
    k = np.subtract(e, I64(ad.v.frac), out=e)
    odd = np.bitwise_and(k, I64(1), out=x)
    # the table index: (mant << odd) >> (odd + rf - half) is mant >> (rf - half)
    idx = mant >> I64(rf - half)
    idx &= I64((1 << half) - 1)
    np.left_shift(odd, I64(half), out=odd)
    idx |= odd
    np.right_shift(odd, I64(half), out=odd)
    mant <<= odd
    y = rsqrt_table(cfg).take(idx)
    three = I64(3 << rf)
    for _ in range(ad.rsqrt_newton):
        t = np.multiply(y, y, out=idx)
        t >>= I64(rf)
        t *= mant
        t >>= I64(rf)
        np.subtract(three, t, out=t)
        t *= y
        t >>= I64(rf + 1)
        y, idx = t, y
    return y, k


# Adam is element-wise, so chunks of a flat parameter vector can run on
# separate threads (numpy and the numba kernel release the GIL) with the same bits.
_PARALLEL_MIN = 1 << 16
_POOL, _POOL_PID = None, None    # a forked child (the study's workers) makes its own pool
# The user's thread settings for BLAS and OpenMP (fixar.rl.threads leaves BLAS alone when one is set).
USER_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


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


def loop_threads() -> int:
    """Threads for the golden model's parallel numba loops (the log-sum
    multipliers' products, fixar.golden.multiplier_kernels): $FIXAR_THREADS
    when set, else the user's OPENBLAS_NUM_THREADS / OMP_NUM_THREADS /
    MKL_NUM_THREADS (the smallest; the Ray study sets all of them to a run's
    CPUs), else :func:`golden_threads`. fixar.rl.threads says why a user's
    BLAS setting counts here too."""
    if os.environ.get("FIXAR_THREADS") is None:
        user = [os.environ.get(name, "") for name in USER_THREAD_ENV]
        counts = [int(v) for v in user if v.isdigit() and int(v) > 0]
        if counts:
            return min(counts)
    return golden_threads()


def adam_update_flat(cfg: FixarConfig, codes: AdamCodes, lr_code: int, w, g, m, v):
    """:func:`adam_update` on flat vectors, split across the machine's cores
    when the vector is long; the result is identical to one call."""
    n, workers = len(w), golden_threads()
    if workers < 2 or n < _PARALLEL_MIN:
        return adam_update(cfg, codes, lr_code, w, g, m, v)
    cuts = np.linspace(0, n, workers + 1).astype(int)
    chunk = lambda ab: adam_update(cfg, codes, lr_code, *(x[ab[0]:ab[1]] for x in (w, g, m, v)))
    parts = list(_pool(workers).map(chunk, zip(cuts[:-1], cuts[1:])))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def run_parallel(workers: int, tasks: list, fn) -> list:
    """fn(task) for each task on the golden model's pool of ``workers``
    threads (for kernels that release the GIL); results in task order."""
    return list(_pool(workers).map(fn, tasks))


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_PID
    if _POOL is None or _POOL_PID != os.getpid():
        _POOL, _POOL_PID = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fixar-adam"), os.getpid()
    return _POOL


def adam_update_params(cfg: FixarConfig, codes: AdamCodes, lr_code: int, params: list[np.ndarray],
                       grads: list[np.ndarray], m, v, targets: list[np.ndarray] | None = None, tau: int = 0):
    """:func:`adam_update_flat` on the concatenation of ``params`` (updated in
    place) and of ``grads``, with flat moments ``m``, ``v``; returns the new
    (m, v). Given a target network's ``targets``, each then moves toward its
    updated parameter by the vector unit's SOFT with coefficient ``tau``
    (:func:`fixar.golden.vector.soft_update`). With numba each parameter is
    updated where it lies (no concatenation), in chunks spread over the
    golden threads, and the soft update runs in the same pass; numpy works
    on the concatenation (a call per parameter would cost more in numpy's
    per-call overhead than the copies)."""
    k, n = numba_kernels(), sum(p.size for p in params)
    targets = [None] * len(params) if targets is None else targets
    m, v = np.ascontiguousarray(m, dtype=I64), np.ascontiguousarray(v, dtype=I64)
    in_place = lambda a: a.dtype == I64 and a.flags.c_contiguous
    if (k is None or not _fast_routes_fit(cfg) or not m.shape == v.shape == (n,)
            or not all(in_place(p) and p.size == g.size and (pt is None or in_place(pt) and pt.shape == p.shape)
                       for p, g, pt in zip(params, grads, targets))):
        flat_p, flat_g = (np.concatenate([a.ravel() for a in arrays]) for arrays in (params, grads))
        new_p, m, v = adam_update_flat(cfg, codes, lr_code, flat_p, flat_g, m, v)
        start = 0
        for p, pt in zip(params, targets):
            p[...] = new_p[start:start + p.size].reshape(p.shape)
            start += p.size
            if pt is not None:
                soft_update(cfg, p, pt, tau)
        return m, v
    m_out, v_out = np.empty_like(m), np.empty_like(v)
    workers = golden_threads() if n >= _PARALLEL_MIN else 1
    step = -(-n // workers)
    tasks, start = [], 0
    for p, g, pt in zip(params, grads, targets):
        w, g = p.reshape(-1), np.ascontiguousarray(g, dtype=I64).reshape(-1)
        pt = None if pt is None else pt.reshape(-1)
        for a in range(0, p.size, step):      # each route reads w[i] before it writes it
            b = min(a + step, p.size)
            flat = slice(start + a, start + b)
            tasks.append((w[a:b], g[a:b], m[flat], v[flat], w[a:b], m_out[flat], v_out[flat],
                          None if pt is None else pt[a:b]))
        start += p.size
    run = _kernel(k, cfg, codes, lr_code, tau)
    list(_pool(workers).map(lambda t: run(*t), tasks) if workers > 1 else (run(*t) for t in tasks))
    return m_out, v_out
