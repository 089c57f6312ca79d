"""The vectorized golden model against slow Python-int references."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import reference as ref
from fixar.config import FixedFormat, PEMode, load
from fixar.golden import dequantize, pe_matmul, pe_trace, quantize, requantize
from fixar.golden.matmul import direct_is_exact, fxp32_sums
from fixar.golden.prng import stream
from fixar.tb.pe_vectors import concat, corners, random_trace

CONFIGS = ["default", "narrow", "stochastic"]
FORMATS = [FixedFormat(32, 20, rounding=r, overflow=o)
           for r in ("floor", "rne", "stochastic", "zero") for o in ("saturate", "wrap")]


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@pytest.mark.parametrize("hi_shift,shift", [(16, 20), (0, 15), (16, 4), (8, 10), (0, 0)])
def test_requantize_matches_python_ints(fmt, hi_shift, shift, route):
    """Both routes (a two-part value takes one numba pass where numba runs),
    flat and as a 2-D view that is not contiguous (the lane sums' case)."""
    rng = np.random.default_rng(1)
    n = 4000
    big = 1 << 57
    hi = np.concatenate([rng.integers(-big, big, n), rng.integers(-40, 40, n), [0, -1, 1, big - 1, -big]])
    lo = np.concatenate([rng.integers(-big, big, n), rng.integers(-(1 << 22), 1 << 22, n),
                         [0, 1 << 19, -(1 << 19), 3 << 19, 0]])
    if hi_shift == 0:
        hi = np.zeros_like(hi)
    rnd = rng.integers(0, 1 << 20, len(hi))
    got = requantize(hi, lo, hi_shift, shift, fmt, rnd, 20)
    want = [ref.round_shift(int(h) * (1 << hi_shift) + int(low), shift, fmt, int(r), 20)
            for h, low, r in zip(hi, lo, rnd)]
    assert got.tolist() == want
    cut = len(hi) // 2 * 2
    hi2, lo2, rnd2 = (a[:cut].reshape(-1, 2).T for a in (hi, lo, rnd))      # (2, n/2) views, F-ordered
    assert requantize(hi2, lo2, hi_shift, shift, fmt, rnd2, 20).T.ravel().tolist() == want[:cut]
    if hi_shift == 0:     # a one-part value given as hi = 0 (the fast path for floor and rne)
        assert requantize(0, lo, 0, shift, fmt, rnd, 20).tolist() == want


def test_rne_ties_go_to_even():
    fmt = FixedFormat(16, 0)
    got = requantize(0, np.array([1, 3, 5, -1, -3, 2, 7]), 0, 1, fmt)  # x / 2
    assert got.tolist() == [0, 2, 2, 0, -2, 1, 4]


@pytest.mark.parametrize("name", CONFIGS)
def test_pe_trace_matches_cycle_reference(name):
    cfg = load(name).pe
    rng = np.random.default_rng(2)
    trace = concat(corners(cfg, PEMode.FXP32, rng), corners(cfg, PEMode.FXP16, rng),
                   random_trace(cfg, 3000, rng, None, switch_prob=0.05))
    y_lo, y_hi = pe_trace(cfg, *(trace[k] for k in ("mode", "acc_en", "clear", "a", "w", "rnd_lo", "rnd_hi")))
    ports = ("mode", "acc_en", "clear", "a", "w", "rnd_lo", "rnd_hi")
    want = ref.pe_step_outputs(cfg, *(trace[k].tolist() for k in ports))
    assert list(zip(y_lo.tolist(), y_hi.tolist())) == want


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("mode", list(PEMode), ids=lambda m: m.name)
@pytest.mark.parametrize("route", ["limbs", "direct"])
def test_pe_matmul_matches_python_ints(name, mode, route):
    """Both exact routes (fixar.golden.matmul): full-range codes of the
    default formats take the limb route; codes of trained-network size (a few
    units) the direct one."""
    cfg = load(name).pe
    rng = np.random.default_rng(3)
    act = cfg.act32 if mode == PEMode.FXP32 else cfg.act16
    M, K, N = 7, 33, 5
    if route == "limbs":
        W = rng.integers(cfg.weight.min_int, cfg.weight.max_int + 1, (M, K))
        X = rng.integers(act.min_int, act.max_int + 1, (K, N))
        W[0, :] = cfg.weight.min_int  # extreme rows: exactness at the limits
        X[:, 0] = act.min_int
    else:
        w_max, x_max = cfg.weight.max_int >> 10, act.max_int >> 6
        W = rng.integers(-w_max, w_max + 1, (M, K))
        X = rng.integers(-x_max, x_max + 1, (K, N))
    if route == "direct":
        assert direct_is_exact(W, X)
    rnd = rng.integers(0, 1 << cfg.rnd_bits, (M, N))
    got = pe_matmul(cfg, W, X, mode, rnd)
    L = cfg.lane_bits
    for i in range(M):
        for j in range(N):
            if mode == PEMode.FXP32:
                # One 32x32 MAC per term: the word's value is the signed code.
                s_lo = ref.signed(sum(int(W[i, k]) * (int(X[k, j]) & ((1 << L) - 1)) for k in range(K)), cfg.acc_bits)
                s_hi = ref.signed(sum(int(W[i, k]) * (int(X[k, j]) >> L) for k in range(K)), cfg.acc_bits)
                want = ref.round_shift(s_hi * (1 << L) + s_lo, cfg.shift32, cfg.out, int(rnd[i, j]), cfg.rnd_bits)
            else:
                s = ref.signed(sum(int(W[i, k]) * int(X[k, j]) for k in range(K)), cfg.acc_bits)
                want = ref.round_shift(s, cfg.shift16, cfg.out, int(rnd[i, j]), cfg.rnd_bits)
            assert got[i, j] == want, (i, j)


def test_fxp32_matmul_is_a_true_32bit_product():
    """With a wide enough output, FXP32 equals the rounded exact real product."""
    cfg = load("default").pe
    wide = dataclasses.replace(cfg, out=FixedFormat(58, 20, rounding="floor"))
    rng = np.random.default_rng(4)
    W = rng.integers(-(1 << 31), 1 << 31, (4, 16))
    X = rng.integers(-(1 << 31), 1 << 31, (16, 3))
    exact = [[sum(int(W[i, k]) * int(X[k, j]) for k in range(16)) >> cfg.shift32 for j in range(3)] for i in range(4)]
    assert pe_matmul(wide, W, X).tolist() == exact


def test_matmul_rejects_out_of_range_codes_and_shapes():
    cfg = load("default").pe
    with pytest.raises(ValueError, match="outside"):
        pe_matmul(cfg, np.array([[1 << 31]]), np.array([[1]]))
    with pytest.raises(ValueError, match="outside"):
        pe_matmul(cfg, np.array([[1]]), np.array([[1 << 15]]), PEMode.FXP16)
    with pytest.raises(ValueError, match="inner dimensions"):
        pe_matmul(cfg, np.ones((2, 3), dtype=np.int64), np.ones((4, 1), dtype=np.int64))


def test_quantize_round_trip_and_saturation():
    fmt = load("default").pe.act32
    x = np.array([0.0, 1.0, -1.0, 0.3, 1e9, -1e9, fmt.lsb / 2, 3 * fmt.lsb / 2])
    q = quantize(x, fmt)
    assert q.tolist()[:4] == [0, 1 << 20, -(1 << 20), round(0.3 * (1 << 20))]
    assert q[4] == fmt.max_int and q[5] == fmt.min_int
    assert q[6] == 0 and q[7] == 2  # ties to even
    assert np.all(np.abs(dequantize(q[:4], fmt) - x[:4]) <= fmt.lsb / 2)
    with pytest.raises(ValueError, match="NaN"):
        quantize(np.array([np.nan]), fmt)


def test_prng_stream_matches_scalar_xorshift():
    cfg = load("default").prng
    x, want = cfg.seed, []
    for _ in range(100):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        want.append(x)
    assert stream(cfg, 100).tolist() == want


@pytest.mark.parametrize("mode", list(PEMode), ids=lambda m: m.name)
def test_pe_matmul_wraps_long_reductions_like_the_accumulator(mode):
    """Beyond 2**guard_bits terms the lane sums wrap modulo 2**acc_bits (narrow: 64 terms).
    The output saturates here, so a missing wrap would show (with a wrapping
    output narrower than acc_bits - shift it would not)."""
    narrow = load("narrow").pe
    cfg = dataclasses.replace(narrow, out=dataclasses.replace(narrow.out, overflow="saturate"))
    act = cfg.act32 if mode == PEMode.FXP32 else cfg.act16
    K = 5 * (1 << cfg.guard_bits) + 3
    rng = np.random.default_rng(6)
    W = np.where(rng.random((3, K)) < 0.8, cfg.weight.min_int,
                 rng.integers(cfg.weight.min_int, cfg.weight.max_int + 1, (3, K)))
    X = np.where(rng.random((K, 2)) < 0.8, act.min_int, rng.integers(act.min_int, act.max_int + 1, (K, 2)))
    got = pe_matmul(cfg, W, X, mode)
    L = cfg.lane_bits
    for i in range(3):
        for j in range(2):
            if mode == PEMode.FXP32:
                s_lo = ref.signed(sum(int(W[i, k]) * (int(X[k, j]) & ((1 << L) - 1)) for k in range(K)), cfg.acc_bits)
                s_hi = ref.signed(sum(int(W[i, k]) * (int(X[k, j]) >> L) for k in range(K)), cfg.acc_bits)
                want = ref.round_shift(s_hi * (1 << L) + s_lo, cfg.shift32, cfg.out)
            else:
                s = ref.signed(sum(int(W[i, k]) * int(X[k, j]) for k in range(K)), cfg.acc_bits)
                want = ref.round_shift(s, cfg.shift16, cfg.out)
            assert got[i, j] == want, (i, j)


@pytest.mark.parametrize("scale", [8, 4, 2, 1, 0])
def test_fxp32_sums_routes_agree_on_every_bit_up_to_the_bound(scale):
    """fxp32_sums returns the lane accumulators (limb route) or a normalised
    pair of the same value (direct route); rounding sees only the value, so
    both must give the same requantized codes. Operands shrink by 2**scale
    bits from full range, walking the route choice across its bound."""
    from fixar.golden.matmul import exact_matmul_lanes
    cfg = load("default").pe
    rng = np.random.default_rng(12 + scale)
    M, K, N, L = 9, 400, 16, cfg.lane_bits
    W = rng.integers(cfg.weight.min_int >> (3 * scale), (cfg.weight.max_int >> (3 * scale)) + 1, (M, K))
    X = rng.integers(cfg.act32.min_int >> (2 * scale), (cfg.act32.max_int >> (2 * scale)) + 1, (K, N))
    start = rng.integers(-(1 << 50), 1 << 50, M)
    hi, lo = fxp32_sums(W, X, L, cfg.acc_bits, start)
    s_lo, s_hi = exact_matmul_lanes(W, [X & ((1 << L) - 1), X >> L])  # the lanes, always
    from fixar.golden.fixed import wrap
    want = requantize(wrap(s_hi, cfg.acc_bits), wrap(s_lo + start[:, None], cfg.acc_bits), L, cfg.shift32, cfg.out)
    assert np.array_equal(requantize(hi, lo, L, cfg.shift32, cfg.out), want)
    if scale >= 4:
        assert direct_is_exact(W, X)    # the bound is reached: the direct route ran
