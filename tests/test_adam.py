"""Fixed-point Adam (fixar.golden.adam): bit-exact against a Python-int
reference, rsqrt accuracy, tracking of float64 Adam, and clear errors for
hyper-parameters the formats cannot represent."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import reference as ref
from fixar.config import ConfigError, load
from fixar.golden.adam import AdamCodes, StepSize, adam_update, rsqrt
from fixar.golden.fixed import dequantize, quantize

CFG = load("default")


def test_rsqrt_is_accurate_over_the_whole_range():
    ad = CFG.adam
    rng = np.random.default_rng(0)
    x = np.unique(np.concatenate([np.arange(1, 64), (2.0 ** rng.uniform(0, ad.v.bits, 20000)).astype(np.int64),
                                  [ad.v.max_int]]))
    y, s = rsqrt(CFG, x)
    got = np.ldexp(y.astype(np.float64), s - ad.rsqrt_frac)
    want = 1 / np.sqrt(np.ldexp(x.astype(np.float64), -ad.v.frac))
    assert np.max(np.abs(got / want - 1)) < 2.0 ** -27


def _moments_rounded(rounding: str):
    ad = CFG.adam
    return CFG.variant(adam=dataclasses.replace(ad, m=dataclasses.replace(ad.m, rounding=rounding),
                                                v=dataclasses.replace(ad.v, rounding=rounding)))


@pytest.mark.parametrize("rounding", ["rne", "zero"])
def test_adam_update_matches_python_int_reference(rounding):
    cfg = _moments_rounded(rounding)
    ad = cfg.adam
    codes = AdamCodes.build(cfg, 0.9, 0.999, 1e-8)
    rng = np.random.default_rng(1)
    n = 3000
    w = rng.integers(cfg.pe.weight.min_int, cfg.pe.weight.max_int + 1, n)
    scale = 2.0 ** rng.uniform(-30, 0, n)
    g = (rng.choice([-1, 1], n) * scale * ad.grad.max_int).astype(np.int64)
    g[:4] = [0, ad.grad.max_int, ad.grad.min_int, 1]
    m = (rng.choice([-1, 1], n) * 2.0 ** rng.uniform(-30, 0, n) * ad.m.max_int).astype(np.int64)
    v = (2.0 ** rng.uniform(-60, 0, n) * ad.v.max_int).astype(np.int64)
    v[:3] = [0, ad.v.max_int, 1]
    for lr_code in (1, 214_748, (1 << ad.lr_frac) - 1):
        got = adam_update(cfg, codes, lr_code, w, g, m, v)
        for i in range(n):
            want = ref.adam_reference(cfg, codes, lr_code, int(w[i]), int(g[i]), int(m[i]), int(v[i]))
            assert (int(got[0][i]), int(got[1][i]), int(got[2][i])) == want, (i, lr_code)


def test_moments_rounded_toward_zero_decay_to_zero():
    """With g = 0 from some step on, a moment rounded to nearest sticks at a
    few LSB and keeps moving the weight by a fixed fraction of the step size;
    rounded toward zero, m and v reach 0 and the weight stops (docs/adam.md)."""
    lr = 214_748                                     # 1e-4 in UQ0.31
    moved = {}
    for rounding in ("rne", "zero"):
        cfg = _moments_rounded(rounding)
        codes = AdamCodes.build(cfg, 0.9, 0.999, 1e-8)
        w, m, v = (np.zeros(1, dtype=np.int64) for _ in range(3))
        w, m, v = adam_update(cfg, codes, lr, w, np.array([1000], dtype=np.int64), m, v)   # one gradient
        for _ in range(20_000):
            w_before = w
            w, m, v = adam_update(cfg, codes, lr, w, np.zeros(1, dtype=np.int64), m, v)
        moved[rounding] = (int(m[0]), int(v[0]), int(w[0] - w_before[0]))
    assert moved["zero"] == (0, 0, 0)
    assert moved["rne"][0] != 0 and moved["rne"][2] != 0, moved     # the deadband the fix removes


@pytest.mark.parametrize("sigma", [1e-4, 1e-3, 1e-2, 1e-1])
def test_fixed_point_adam_tracks_float64_adam(sigma):
    """200 steps on noisy gradients of typical sizes: the weight trajectory stays
    within a few weight LSBs per step of float64 Adam of the same form."""
    ad, wf = CFG.adam, CFG.pe.weight
    rng = np.random.default_rng(2)
    n, steps, lr, b1, b2, eps = 500, 200, 1e-4, 0.9, 0.999, 1e-8
    codes = AdamCodes.build(CFG, b1, b2, eps)
    sched = StepSize(CFG, lr, b1, b2)
    w0 = rng.uniform(-0.5, 0.5, n)
    wq = quantize(w0, wf)
    mq = np.zeros(n, np.int64)
    vq = np.zeros(n, np.int64)
    wf64, m64, v64 = dequantize(wq, wf), np.zeros(n), np.zeros(n)
    bias = rng.normal(0, sigma, n)
    for t in range(1, steps + 1):
        g = bias + rng.normal(0, sigma, n)
        gq = quantize(g, ad.grad)
        wq, mq, vq = adam_update(CFG, codes, sched.next(), wq, gq, mq, vq)
        gd = dequantize(gq, ad.grad)
        m64 = b1 * m64 + (1 - b1) * gd
        v64 = b2 * v64 + (1 - b2) * gd * gd
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        wf64 = wf64 - lr_t * m64 / np.sqrt(v64 + eps * eps)
    moved = np.abs(wf64 - dequantize(quantize(w0, wf), wf))
    err = np.abs(dequantize(wq, wf) - wf64)
    # each step's update is rounded to the weight's LSB once
    # each step rounds its update once (<= 0.5 LSB); measured ~16 LSB after 200 steps
    assert np.max(err) <= steps * 0.25 * wf.lsb
    assert np.median(err / np.maximum(moved, wf.lsb)) < 2e-3


def test_step_size_sequence_is_resumable():
    a = StepSize(CFG, 1e-4, 0.9, 0.999)
    first = [a.next() for _ in range(50)]
    b = StepSize(CFG, 1e-4, 0.9, 0.999)
    b.load(a.state())
    assert [b.next() for _ in range(5)] == [a.next() for _ in range(5)]
    assert first[0] == int(np.rint(1e-4 * np.sqrt(0.001) / 0.1 * 2.0 ** CFG.adam.lr_frac))


@pytest.mark.parametrize("kw, message", [
    (dict(beta1=0.9, beta2=0.999, eps=1e-12), "eps\\^2 = .* cannot be represented"),
    (dict(beta1=0.9, beta2=1 - 1e-8, eps=1e-8), "1 - beta2 = .* cannot be represented"),
    (dict(beta1=1.0, beta2=0.999, eps=1e-8), "beta1 = 1.0 must be in"),
])
def test_unrepresentable_hyper_parameters_are_rejected(kw, message):
    with pytest.raises(ConfigError, match=message):
        AdamCodes.build(CFG, **kw)


def test_too_small_learning_rate_is_rejected():
    with pytest.raises(ConfigError, match="lr = 1e-09 is too small"):
        StepSize(CFG, 1e-9, 0.9, 0.999)


def test_step_size_beyond_its_format_is_rejected():
    """A bias-corrected step size of 2 or more does not fit the unit's UQ1.31 port."""
    steps = StepSize(load("default"), 0.9, 0.999, 0.1)   # lr sqrt(1 - 0.1) / (1 - 0.999) = 854 at t = 1
    with pytest.raises(ConfigError, match="beyond the step-size format"):
        steps.next()


def test_adam_split_across_threads_is_the_same_update():
    """adam_update_flat runs chunks of a long vector on several threads: the
    bits must equal one adam_update call (odd length: uneven chunks)."""
    from fixar.golden.adam import _PARALLEL_MIN, adam_update_flat
    cfg = load("default")
    codes = AdamCodes.build(cfg, 0.9, 0.999, 1e-8)
    rng = np.random.default_rng(21)
    n = 3 * _PARALLEL_MIN + 7
    w = rng.integers(-(1 << 22), 1 << 22, n)
    g = rng.integers(-(1 << 20), 1 << 20, n)
    m = rng.integers(-(1 << 18), 1 << 18, n)
    v = rng.integers(0, 1 << 44, n)
    whole = adam_update(cfg, codes, 12_345, w, g, m, v)
    split = adam_update_flat(cfg, codes, 12_345, w, g, m, v)
    for a, b in zip(whole, split):
        assert np.array_equal(a, b)


def test_golden_threads_come_from_the_environment(monkeypatch):
    """FIXAR_THREADS sizes the golden model's thread pool (one thread: the
    same bits); a value that is not a positive integer is an error."""
    from fixar.golden.adam import _PARALLEL_MIN, adam_update_flat, golden_threads
    cfg = load("default")
    codes = AdamCodes.build(cfg, 0.9, 0.999, 1e-8)
    rng = np.random.default_rng(22)
    n = 2 * _PARALLEL_MIN
    w, g = rng.integers(-(1 << 22), 1 << 22, n), rng.integers(-(1 << 20), 1 << 20, n)
    m, v = rng.integers(-(1 << 18), 1 << 18, n), rng.integers(0, 1 << 44, n)
    monkeypatch.setenv("FIXAR_THREADS", "1")
    assert golden_threads() == 1
    for a, b in zip(adam_update(cfg, codes, 777, w, g, m, v), adam_update_flat(cfg, codes, 777, w, g, m, v)):
        assert np.array_equal(a, b)
    for bad in ("0", "two", "-3"):
        monkeypatch.setenv("FIXAR_THREADS", bad)
        with pytest.raises(ValueError, match="FIXAR_THREADS"):
            golden_threads()


def test_loop_threads_take_the_users_setting(monkeypatch):
    """The golden model's parallel numba loops: FIXAR_THREADS first, else the
    smallest of the user's BLAS / OpenMP thread counts (the Ray study sets
    them all), else golden_threads (the machine's cores)."""
    from fixar.golden.adam import golden_threads, loop_threads
    for name in ("FIXAR_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert loop_threads() == golden_threads()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert loop_threads() == 1
    monkeypatch.setenv("FIXAR_THREADS", "2")
    assert loop_threads() == 2


def test_gradient_is_clipped_where_its_square_would_saturate_v():
    """g^2 of the largest gradients does not fit adam.v: were only the square to
    saturate, v would stop at its top while m kept growing, and m / sqrt(v)
    would pass Adam's bound (trained actors saw 9; float Adam stays below
    about 3). Under a constant gradient Adam moves a weight by lr each step;
    with the full-scale gradient it must still do so, not 16x faster."""
    ad = CFG.adam
    G = ad.grad_limit
    d = ad.v.frac - 2 * ad.grad.frac
    assert (G * G) << d <= ad.v.max_int < ((G + 1) * (G + 1)) << d
    codes = AdamCodes.build(CFG, 0.9, 0.999, 1e-8)
    sched = StepSize(CFG, 1e-4, 0.9, 0.999)
    one = lambda x: np.array([x], dtype=np.int64)
    w, m, v = one(0), one(0), one(0)
    wc, mc, vc = one(0), one(0), one(0)
    for _ in range(300):
        lr = sched.next()
        w, m, v = adam_update(CFG, codes, lr, w, one(ad.grad.max_int), m, v)
        wc, mc, vc = adam_update(CFG, codes, lr, wc, one(G), mc, vc)
    assert (int(w[0]), int(m[0]), int(v[0])) == (int(wc[0]), int(mc[0]), int(vc[0]))   # clipped to G
    moved = -int(w[0]) * CFG.pe.weight.lsb
    expected = 300 * 1e-4            # lr per step: lr_t's bias correction cancels m's and v's
    assert abs(moved - expected) < 0.01 * expected, (moved, expected)
