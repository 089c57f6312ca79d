"""The golden model's fast routes (issue 22) bit for bit against the
Python-int references and against the routes they stand for, on both sides
of every exactness bound they are chosen by, with numba's kernels and with
the numpy fallback (FIXAR_NO_NUMBA=1)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import reference as ref
from fixar.config import ActFunc, FixedFormat, PEMode, VecOp, load
from fixar.golden import adam as gadam
from fixar.golden.adam import AdamCodes, adam_numpy, adam_update, adam_update_flat, adam_update_params
from fixar.golden.ddpg import weight_grad
from fixar.golden.fixed import I64, numba_kernels, requantize, requantize_into, wrap
from fixar.golden.layer import linear, transposed
from fixar.golden.matmul import Operands, exact_matmul_lanes, fxp32_sums, operand, rounded_product
from fixar.golden.qat import LayerQuantizers, dequantize16, quantize16
from fixar.golden.vector import soft_update, vector_op

DEFAULT = load("default")



# ----------------------------------------------------------------- products
def ref_product(cfg, W, X, bias, mode, shift=None, fmt=None):
    """Python ints: each output one PE accumulation (FXP32: the unsigned low
    and signed high lane sums, each modulo 2^acc_bits, recombined; FXP16:
    one lane) from the bias at the product's binary point, rounded once."""
    pe = cfg.pe
    L, mask = pe.lane_bits, (1 << pe.lane_bits) - 1
    shift = (pe.shift32 if mode == PEMode.FXP32 else pe.shift16) if shift is None else shift
    fmt = pe.out if fmt is None else fmt
    out = []
    for i, row in enumerate(W.tolist()):
        start = int(bias[i]) << shift
        line = []
        for col in X.T.tolist():
            if mode == PEMode.FXP32:
                lo = ref.signed(start + sum(w * (x & mask) for w, x in zip(row, col)), pe.acc_bits)
                hi = ref.signed(sum(w * (x >> L) for w, x in zip(row, col)), pe.acc_bits)
                line.append(ref.round_shift(hi * (1 << L) + lo, shift, fmt))
            else:
                line.append(ref.round_shift(ref.signed(start + sum(w * x for w, x in zip(row, col)), pe.acc_bits),
                                            shift, fmt))
        out.append(line)
    return out


def lane_route(cfg, W, X, bias, mode):
    """linear()'s product before issue 22: the lanes (fxp32_sums, exact_matmul_lanes)."""
    pe = cfg.pe
    if mode == PEMode.FXP32:
        s_hi, s_lo = fxp32_sums(W, X, pe.lane_bits, pe.acc_bits, start=bias << pe.shift32)
        return requantize(s_hi, s_lo, pe.lane_bits, pe.shift32, pe.out)
    (s,) = exact_matmul_lanes(W, [X])
    return requantize(0, wrap(s + (bias << pe.shift16)[:, None], pe.acc_bits), 0, pe.shift16, pe.out)


def takes_float_route(cfg, W, X, bias, mode) -> bool:
    pe = cfg.pe
    shift = pe.shift32 if mode == PEMode.FXP32 else pe.shift16
    smax = int(np.abs(bias).max()) << shift if bias.size else 0
    return rounded_product(operand(W), operand(X, sums=False), bias << shift, smax, shift, pe.out, pe.acc_bits,
                           pe.lane_bits if mode == PEMode.FXP32 else None) is not None


def _codes(rng, shape, fmt, top=None):
    top = fmt.max_int if top is None else top
    return rng.integers(max(fmt.min_int, -top), top + 1, shape)


def _row_sum(rng, K, total, fmt):
    """K weight codes whose |w| sum to exactly ``total``, spread evenly, signs random."""
    mags = np.full(K, total // K, dtype=I64)
    mags[:total % K] += 1
    assert mags.max() <= fmt.max_int
    return np.where(rng.random(K) < 0.5, -mags, mags)


def _bound_case(cfg, mode, which, inside, seed):
    """(W, X, bias) just inside or just outside the bound of rounded_product
    that binds first: ``exact``, the float64 total below 2^52 (row sum of |w|
    R times max |x|); ``lane``, no accumulator lane can wrap ((R << L) below
    2^(acc - 1) for FXP32, R max |x| for FXP16), with max |x| small enough
    for the exact bound to hold."""
    pe, rng = cfg.pe, np.random.default_rng(seed)
    xf = pe.act32 if mode == PEMode.FXP32 else pe.act16
    if which == "exact":
        xmax = 1 << (xf.bits - 2)
        R = (1 << 52) // xmax
    elif mode == PEMode.FXP32:
        xmax = 1 << min(10, xf.bits - 4)                   # negative x: low lanes near 2^L, which wrap outside
        R = 1 << (pe.acc_bits - 1 - pe.lane_bits)
    else:
        xmax = 1 << (xf.bits - 2)
        R = (1 << (pe.acc_bits - 1)) // xmax
    R -= inside
    K = max(64, 2 * -(-R // pe.weight.max_int))
    W = _codes(rng, (4, K), pe.weight, 99)
    W[1] = _row_sum(rng, K, R, pe.weight)
    X = _codes(rng, (K, 6), xf, xmax)
    X[K // 2, 3] = -xmax
    return W, X, np.zeros(4, dtype=I64)


CASES = [("default", PEMode.FXP32, "exact"), ("default", PEMode.FXP32, "lane"), ("default", PEMode.FXP16, "exact"),
         ("narrow", PEMode.FXP32, "lane"), ("narrow", PEMode.FXP16, "lane")]


@pytest.mark.parametrize("inside", [True, False], ids=["inside", "outside"])
@pytest.mark.parametrize("name,mode,which", CASES, ids=[f"{c}-{m.name}-{w}" for c, m, w in CASES])
def test_linear_across_its_bounds(route, name, mode, which, inside):
    """Just inside a bound linear() takes the float64 route, just outside the
    lanes (which then wrap in the lane cases); either way it equals the
    Python-int PE and the lane route."""
    cfg = load(name)
    W, X, bias = _bound_case(cfg, mode, which, inside, seed=CASES.index((name, mode, which)))
    assert takes_float_route(cfg, W, X, bias, mode) == inside
    got = linear(cfg, W, X, bias, mode=mode)
    assert got.tolist() == ref_product(cfg, W, X, bias, mode)
    assert np.array_equal(got, lane_route(cfg, W, X, bias, mode))


@pytest.mark.parametrize("name", ["default", "narrow"])
def test_bias_start_counts_in_the_bound(route, name):
    """A bias at the format's top adds 2^(bits-1+shift) to every sum: the
    same products take the float route without it and the lanes with it."""
    cfg = load(name)
    pe, rng = cfg.pe, np.random.default_rng(3)
    W = _codes(rng, (6, 40), pe.weight)
    X = _codes(rng, (40, 5), pe.act32, 1 << (pe.act32.bits // 2))
    for bias in (np.zeros(6, dtype=I64), np.full(6, pe.out.max_int), _codes(rng, 6, pe.out)):
        got = linear(cfg, W, X, bias)
        assert got.tolist() == ref_product(cfg, W, X, bias, PEMode.FXP32)
        assert np.array_equal(got, lane_route(cfg, W, X, bias, PEMode.FXP32))


@pytest.mark.parametrize("func", [ActFunc.RELU, ActFunc.IDENTITY, ActFunc.TANH], ids=lambda f: f.name)
def test_layer_outputs_keep_their_operand(route, func):
    """With a gradient computation's Operands, linear() applies ReLU on the
    float route and leaves its output's operand for the next product: the
    output equals linear() without them and the operand is the output's own
    (a tanh output keeps none)."""
    cfg, rng = DEFAULT, np.random.default_rng(13)
    pe = cfg.pe
    W, X = _codes(rng, (30, 20), pe.weight, 1 << 20), _codes(rng, (20, 9), pe.act32, 1 << 22)
    b = _codes(rng, 30, pe.out)
    ops = Operands()
    got = linear(cfg, W, X, b, func, ops=ops)
    assert np.array_equal(got, linear(cfg, W, X, b, func))
    if func != ActFunc.TANH:                # (tanh: tests/test_activation.py)
        want = ref_product(cfg, W, X, b, PEMode.FXP32)
        assert got.tolist() == ([[max(y, 0) for y in row] for row in want] if func == ActFunc.RELU else want)
    kept = ops._memo.get(id(got))
    assert (kept is None) == (func == ActFunc.TANH)
    if kept is not None:
        op = kept[1]
        assert np.array_equal(op.F, got) and (op.lo, op.hi) == (got.min(), got.max()) and op.row is None
        assert ops(got).row == int(np.abs(got).sum(1).max())     # sums asked for: computed then


def test_float_route_is_refused_where_it_cannot_round():
    """Stochastic rounding needs random words: rounded_product declines, and
    linear asks for the operation's seed, from which it draws them."""
    cfg = load("stochastic")
    W, X = np.ones((2, 3), dtype=I64), np.ones((3, 4), dtype=I64)
    assert rounded_product(operand(W), operand(X), None, 0, cfg.pe.shift32, cfg.pe.out, cfg.pe.acc_bits,
                           cfg.pe.lane_bits) is None
    with pytest.raises(ValueError, match="rounding seed"):
        linear(cfg, W, X)


@pytest.mark.parametrize("name", ["default", "narrow"])
@pytest.mark.parametrize("share", [False, True])
def test_transposed_product(route, name, share):
    """W^T D from W's operand (shared with the forward product, as Operands
    does) or its own: the Python-int PE on W^T."""
    cfg = load(name)
    pe, rng = cfg.pe, np.random.default_rng(4)
    for top in (1 << 10, pe.weight.max_int):             # float route, then lanes
        W = _codes(rng, (9, 13), pe.weight, top)
        D = _codes(rng, (9, 6), pe.act32, top)
        got = transposed(cfg, W, D, Wop=operand(W) if share else None)
        assert got.tolist() == ref_product(cfg, W.T.copy(), D, np.zeros(13, dtype=I64), PEMode.FXP32)


@pytest.mark.parametrize("name", ["default", "narrow"])
def test_weight_gradient_across_its_bounds(route, name):
    """dW = D X^T rounded into adam.grad: small codes (float route), full-range
    ones (lanes, with wrapping in narrow's 30-bit accumulators), and a row
    sum times max |x| just below and at 2^52. (narrow's own gradient format
    has more fraction bits than the product, a left shift the reference
    does not model: a 20-bit Q6.14 one here.)"""
    cfg = load(name)
    if name == "narrow":
        cfg = cfg.variant(adam=dataclasses.replace(cfg.adam, grad=FixedFormat(20, 14)))
    pe, gf, rng = cfg.pe, cfg.adam.grad, np.random.default_rng(5)
    shift = pe.weight.frac + pe.act32.frac - gf.frac
    cases = [(_codes(rng, (7, 16), pe.act32, 1 << 12), _codes(rng, (5, 16), pe.act32, 1 << 12)),
             (_codes(rng, (7, 256), pe.act32), _codes(rng, (5, 256), pe.act32))]
    if name == "default":
        for R in ((1 << 22) - 1, 1 << 22):
            D = _codes(rng, (4, 64), pe.act32, 99)
            D[2] = _row_sum(rng, 64, R, pe.act32)
            X = _codes(rng, (3, 64), pe.act32, 1 << 30)
            X[1, 5] = 1 << 30
            cases.append((D, X))
    routes = set()
    for D, X in cases:
        got = weight_grad(cfg, D, X)
        assert got.tolist() == ref_product(cfg, D, X.T.copy(), np.zeros(len(D), dtype=I64), PEMode.FXP32, shift, gf)
        assert np.array_equal(got, requantize(*fxp32_sums(D, X.T, pe.lane_bits, pe.acc_bits), pe.lane_bits, shift, gf))
        routes.add(rounded_product(operand(D), operand(X.T, sums=False), None, 0, shift, gf, pe.acc_bits,
                                   pe.lane_bits) is None)
    assert routes == {True, False}


def test_operand_is_the_same_from_numba_and_numpy(monkeypatch):
    """The one-pass kernel and numpy agree on every field, for C- and
    F-ordered and strided matrices."""
    monkeypatch.delenv("FIXAR_NO_NUMBA", raising=False)
    if numba_kernels() is None:
        pytest.skip("numba cannot be imported here")
    rng = np.random.default_rng(6)
    A = rng.integers(-(1 << 31), 1 << 31, (37, 23))
    for M in (A, A.T, A[::2, 1:], A[:1, :1]):
        monkeypatch.delenv("FIXAR_NO_NUMBA", raising=False)
        fast = operand(M)
        monkeypatch.setenv("FIXAR_NO_NUMBA", "1")
        slow = operand(M)
        assert np.array_equal(fast.F, slow.F) and np.array_equal(fast.F, M)
        assert fast[1:] == slow[1:] == (int(np.abs(M).sum(1).max()), int(np.abs(M).sum(0).max()), M.min(), M.max())



def test_magnitude_lanes_side_by_side_are_the_same_from_numba_and_numpy(monkeypatch):
    """The one-pass kernel's [lo | hi] is numpy's two lanes concatenated, on
    act32 codes with zeros and both extremes, C- and F-ordered and strided."""
    from fixar.golden.matmul import magnitude_lanes
    monkeypatch.delenv("FIXAR_NO_NUMBA", raising=False)
    if numba_kernels() is None:
        pytest.skip("numba cannot be imported here")
    rng = np.random.default_rng(7)
    fmt, L = DEFAULT.pe.act32, DEFAULT.pe.lane_bits
    A = rng.integers(fmt.min_int, fmt.max_int + 1, (37, 23)) >> rng.integers(0, 31, (37, 23))
    A[0, :3] = 0, fmt.min_int, fmt.max_int
    for M in (A, A.T, A[::2, 1:]):
        monkeypatch.delenv("FIXAR_NO_NUMBA", raising=False)
        fast = magnitude_lanes(M, L, side_by_side=True)
        monkeypatch.setenv("FIXAR_NO_NUMBA", "1")
        assert np.array_equal(fast, np.concatenate(magnitude_lanes(M, L), axis=1))
        assert np.array_equal(fast, magnitude_lanes(M, L, side_by_side=True))

# -------------------------------------------------------------------- Adam
def _adam_operands(cfg, rng, n):
    """Codes of every format, log-uniform, with zeros and extremes (as tests/test_adam.py)."""
    ad, wf = cfg.adam, cfg.pe.weight
    sign = lambda: rng.choice([-1, 1], n)
    w = rng.integers(wf.min_int, wf.max_int + 1, n)
    g = (sign() * 2.0 ** rng.uniform(-30, 0, n) * ad.grad.max_int).astype(np.int64)
    m = (sign() * 2.0 ** rng.uniform(-30, 0, n) * ad.m.max_int).astype(np.int64)
    v = (2.0 ** rng.uniform(-60, 0, n) * ad.v.max_int).astype(np.int64)
    g[:4] = [0, ad.grad.max_int, ad.grad.min_int, 1]
    m[:3] = [ad.m.max_int, ad.m.min_int, 0]
    v[:3] = [0, ad.v.max_int, 1]
    return w, g, m, v


def _variant(name):
    """Adam formats that reach the kernel's odd corners: ``rsqrt_short``, a
    mantissa shorter than the table index (numpy's negative shift);
    ``fine_weights``, updates past any weight's range (the saturating branch)."""
    cfg = load("default")
    if name == "rsqrt_short":
        return cfg.variant(adam=dataclasses.replace(cfg.adam, rsqrt_frac=8, rsqrt_table_bits=12))
    if name == "fine_weights":
        pe = dataclasses.replace(cfg.pe, weight=FixedFormat(32, 31), act32=FixedFormat(32, 20))
        return cfg.variant(pe=pe)
    return load(name)


ADAM_CONFIGS = ["default", "adam_rne", "narrow", "rsqrt_short", "fine_weights"]


@pytest.mark.parametrize("name", ADAM_CONFIGS)
def test_adam_routes_match_python_ints(route, name):
    """adam_update (numba's kernel, or the short numpy route) equals the
    definition (adam_numpy) on 4000 weights, and the Python-int reference on
    the first 400, for three step sizes. The two corner configs lie outside
    the short numpy route's bounds and outside what the reference models
    (a table index from a negative shift; a saturated update, which the
    definition sets to the format's top)."""
    cfg = _variant(name)
    codes = AdamCodes.build(cfg, 0.9, 0.999, 1e-8)
    w, g, m, v = _adam_operands(cfg, np.random.default_rng(7), 4000)
    fast = gadam._fast_numpy_fits(cfg, codes, v)
    assert fast == (name not in ("rsqrt_short", "fine_weights"))
    for lr in (1, 214_748, (1 << cfg.adam.lr_frac) - 1):
        got = adam_update(cfg, codes, lr, w, g, m, v)
        want = adam_numpy(cfg, codes, lr, w, g, m, v)
        assert all(np.array_equal(a, b) for a, b in zip(got, want)), lr
        if fast and route == "numpy":       # and the short route itself, as the updater calls it
            out = [np.empty_like(a) for a in (w, m, v)]
            gadam._adam_numpy_fast(cfg, codes, lr, w, g, m, v, *out)
            assert all(np.array_equal(a, b) for a, b in zip(out, want)), lr
        if name in ("rsqrt_short", "fine_weights"):   # beyond what tests/reference.py models
            continue
        for i in range(400):
            want_i = ref.adam_reference(cfg, codes, lr, *(int(a[i]) for a in (w, g, m, v)))
            assert tuple(int(a[i]) for a in got) == want_i, (i, lr)


def test_short_numpy_route_bounds_on_the_second_moment(route):
    """v at its format's ends is inside the short numpy route's bound, one
    beyond either end outside (the definition runs); the bits are the
    definition's either way."""
    cfg = DEFAULT
    ad, codes = cfg.adam, AdamCodes.build(cfg, 0.9, 0.999, 1e-8)
    w, g, m, v = _adam_operands(cfg, np.random.default_rng(8), 500)
    for edge, inside in ((0, True), (ad.v.max_int, True), (-1, False), (ad.v.max_int + 1, False)):
        vv = v.copy()
        vv[7] = edge
        assert gadam._fast_numpy_fits(cfg, codes, vv) == inside
        got = adam_update(cfg, codes, 214_748, w, g, m, vv)
        assert all(np.array_equal(a, b) for a, b in zip(got, adam_numpy(cfg, codes, 214_748, w, g, m, vv)))


def test_short_numpy_route_bounds_on_the_formats():
    """Each format bound of the short numpy route, broken alone, sends the
    update to the definition."""
    cfg = DEFAULT
    ad, codes = cfg.adam, AdamCodes.build(cfg, 0.9, 0.999, 1e-8)
    v = np.array([0, 5, ad.v.max_int])
    assert gadam._fast_numpy_fits(cfg, codes, v)
    assert not gadam._fast_numpy_fits(cfg, dataclasses.replace(codes, e2=0), v)
    assert not gadam._fast_numpy_fits(_variant("rsqrt_short"), codes, v)
    assert not gadam._fast_numpy_fits(_variant("fine_weights"), codes, v)
    wide_g = cfg.variant(adam=dataclasses.replace(ad, grad=FixedFormat(32, 30), m=FixedFormat(32, 30)))
    assert not gadam._fast_numpy_fits(wide_g, AdamCodes.build(wide_g, 0.9, 0.999, 1e-8), v)   # g^2 shrinks into v


def test_adam_of_nothing_is_nothing(route):
    cfg = DEFAULT
    codes, z = AdamCodes.build(cfg, 0.9, 0.999, 1e-8), np.zeros(0, dtype=I64)
    assert all(a.shape == (0,) for a in adam_update(cfg, codes, 1000, z, z, z, z))


def test_adam_rsqrt_below_one_is_an_error_on_every_route(route):
    cfg = DEFAULT
    codes = dataclasses.replace(AdamCodes.build(cfg, 0.9, 0.999, 1e-8), e2=0)
    z = np.zeros(8, dtype=I64)
    with pytest.raises(ValueError, match="rsqrt input must be >= 1"):
        adam_update(cfg, codes, 1000, z, z, z, z)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_adam_on_parameters_in_place_is_the_flat_update(route, threads, monkeypatch):
    """adam_update_params (with numba each parameter where it lies, in chunks
    over the threads, the target's soft update in the same pass) equals
    adam_update_flat on the concatenation followed by SOFT, as the DDPG step
    did before; a parameter that is not C-contiguous takes the concatenating
    route, with the same bits."""
    monkeypatch.setenv("FIXAR_THREADS", threads)
    cfg, tau = DEFAULT, round(0.005 * 2 ** 30)
    codes, rng = AdamCodes.build(cfg, 0.9, 0.999, 1e-8), np.random.default_rng(9)
    shapes = [(300, 400), (300,), (7, 5), (1,)]
    n = sum(int(np.prod(s)) for s in shapes)
    w, g, m, v = _adam_operands(cfg, rng, n)
    params, grads, targets, start = [], [], [], 0
    for s in shapes:
        size = int(np.prod(s))
        params.append(w[start:start + size].reshape(s).copy())
        grads.append(g[start:start + size].reshape(s))
        targets.append(np.clip(params[-1] + rng.integers(-3000, 3000, s), cfg.pe.act32.min_int, cfg.pe.act32.max_int))
        start += size
    want_w, want_m, want_v = adam_update_flat(cfg, codes, 4321, w, g, m, v)
    want_t = [vector_op(cfg, VecOp.SOFT, p, pt, c=tau) for p, pt in
              zip(np.split(want_w, np.cumsum([p.size for p in params])[:-1]), [t.ravel() for t in targets])]
    got_m, got_v = adam_update_params(cfg, codes, 4321, params, grads, m, v, targets, tau)
    assert np.array_equal(np.concatenate([p.ravel() for p in params]), want_w)
    assert np.array_equal(got_m, want_m) and np.array_equal(got_v, want_v)
    assert all(np.array_equal(t.ravel(), want) for t, want in zip(targets, want_t))
    first = shapes[0][0] * shapes[0][1]         # a parameter that is not C-contiguous: the concatenating route
    fortran = [np.asfortranarray(w[:first].reshape(shapes[0])), w[first:].copy()]
    got_m, got_v = adam_update_params(cfg, codes, 4321, fortran, [g[:first].reshape(shapes[0]), g[first:]], m, v)
    assert np.array_equal(np.concatenate([fortran[0].ravel(), fortran[1]]), want_w)
    assert np.array_equal(got_m, want_m) and np.array_equal(got_v, want_v)


# ------------------------------------------------------- soft update, QAT
@pytest.mark.parametrize("name", ["default", "narrow", "wrap"])
def test_soft_update_matches_the_vector_unit(route, name):
    """soft_update in place equals vector_op(SOFT) and, for saturating
    formats, the Python-int reference, from tiny to full-range differences."""
    cfg = load("default") if name == "wrap" else load(name)
    if name == "wrap":
        cfg = cfg.variant(pe=dataclasses.replace(cfg.pe, act32=FixedFormat(32, 20, overflow="wrap")))
    fmt, rng = cfg.pe.act32, np.random.default_rng(10)
    p = rng.integers(fmt.min_int, fmt.max_int + 1, (40, 50))
    pt = np.where(rng.random(p.shape) < 0.5, p + rng.integers(-99, 99, p.shape),
                  rng.integers(fmt.min_int, fmt.max_int + 1, p.shape))
    pt = np.clip(pt, fmt.min_int, fmt.max_int)
    p.flat[:4], pt.flat[:4] = [fmt.max_int, fmt.min_int, 0, fmt.max_int], [fmt.min_int, fmt.max_int, 0, fmt.max_int]
    for c in (round(0.005 * 2 ** 30), 2 ** 30 - 1, 1):
        want = vector_op(cfg, VecOp.SOFT, p, pt, c=c)
        got = pt.copy()
        soft_update(cfg, p, got, c)
        assert np.array_equal(got, want), c
        if fmt.overflow == "saturate":
            assert got.ravel()[:500].tolist() == [ref.vector_reference(cfg, "SOFT", int(a), int(b), False, c)
                                                  for a, b in zip(p.ravel()[:500], pt.ravel()[:500])]


def ref_fake_quantize(cfg, delta, zero, x):
    """QAT's 16-bit value of one input, Python ints: q = floor((x 2^16 + h) / Delta) + z
    clipped to 16 bits (h = Delta // 2 rounding to nearest), then Delta (q - z) / 2^16 rounded into pe.act32."""
    bits = cfg.pe.act16.bits
    half = delta // 2 if cfg.array.quantizer_rounding == "half_up" else 0
    q = min(max((x * (1 << bits) + half) // delta + zero, 0), (1 << bits) - 1)
    return ref.round_shift((q - zero) * delta, bits, cfg.pe.act32)


@pytest.mark.parametrize("rounding", ["half_up", "floor"])
def test_fake_quantize_matches_python_ints(route, rounding):
    """QAT phase 2's input quantizer: the one-pass kernel (float64 division
    corrected to the floor) equals quantize16 then dequantize16 and the
    Python ints, for codes of every size; inputs of 2^36 and more (beyond
    the kernel's float64 bound) go to numpy, with the same bits."""
    cfg = DEFAULT.variant(array=dataclasses.replace(DEFAULT.array, quantizer_rounding=rounding))
    rng = np.random.default_rng(11)
    lq = LayerQuantizers(cfg, 3)
    for i, (lo, hi) in enumerate(((-3 << 20, 5 << 20), (0, 2047 << 20), (-1, 1))):
        lq.track(i, np.array([lo, hi]))
    lq.freeze()
    fmt = cfg.pe.act32
    mags = np.floor(2.0 ** rng.uniform(0, fmt.bits - 1, 3000)).astype(np.int64)
    X = np.where(rng.random(3000) < 0.5, -mags, mags).reshape(60, 50)
    X.flat[:6] = [fmt.max_int, fmt.min_int, 0, 1, -1, lq.delta[0]]
    for i in range(3):
        d, z = lq.delta[i], lq.zero[i]
        for x in (X, X.T, X + (1 << 36), X[:1, :3]):
            got = lq.fake_quantize(i, x)
            assert np.array_equal(got, dequantize16(cfg, d, z, quantize16(cfg, d, z, x)))
            assert got.ravel()[:300].tolist() == [ref_fake_quantize(cfg, d, z, int(v)) for v in x.ravel()[:300]]


# ------------------------------------------------------------- rounding
@pytest.mark.parametrize("fmt", [FixedFormat(32, 20, rounding=r, overflow=o) for r in ("floor", "rne", "zero")
                                 for o in ("saturate", "wrap")], ids=str)
def test_requantize_into_is_requantize(fmt):
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.integers(-(1 << 61), 1 << 61, 3000), rng.integers(-99, 99, 300), [0, -1, 1 << 19]])
    for shift in (1, 14, 30):
        want = [ref.round_shift(int(v), shift, fmt) for v in x]
        assert requantize(0, x, 0, shift, fmt).tolist() == want
        assert requantize_into(x.copy(), shift, fmt, np.empty_like(x)).tolist() == want
