"""An approximate multiplier in the golden model's layers (issue 24, item 3):
``pe.multiplier`` reaches every array product the golden model computes
(forward, transposed, weight gradient, the PE trace), and each equals the
PE's definition worked out here from the functional model alone, per
product in Python ints: the activation split into its two lanes (in FXP32
|x|'s two halves, each with x's sign; in FXP16 the two signed values),
every weight x lane product by the model, each lane summed modulo
2^acc_bits, one rounding."""
from __future__ import annotations

import numpy as np
import pytest

from fixar.config import ActFunc, PEMode, load
from fixar.config.multipliers import REGISTRY
from fixar.golden.ddpg import bias_grad, weight_grad
from fixar.golden.fixed import requantize, wrap
from fixar.golden.layer import linear, transposed
from fixar.golden.multiplier_routes import separable_rounded
from fixar.golden.pe import pe_trace

APPROXIMATE = [name for name in REGISTRY if name != "exact"]


def _cfg(name: str):
    return load("small").with_multiplier(name)


def _lane_sums(pe, W, X, mode):
    """(hi, lo) accumulators per output, from the model, product by product."""
    prod, L = REGISTRY[pe.multiplier].product, pe.lane_bits
    M, K, B = W.shape[0], W.shape[1], X.shape[1]
    hi, lo = np.zeros((M, B), dtype=np.int64), np.zeros((M, B), dtype=np.int64)
    for i in range(M):
        for n in range(B):
            s_hi = s_lo = 0
            for k in range(K):
                w, x = int(W[i, k]), int(X[k, n])
                if mode == PEMode.FXP16:
                    s_lo += prod(w, x)
                else:               # |x|'s halves, each with x's sign
                    sign, mag = (-1 if x < 0 else 1), abs(x)
                    s_lo += prod(w, sign * (mag & ((1 << L) - 1)))
                    s_hi += prod(w, sign * (mag >> L))
            hi[i, n], lo[i, n] = s_hi, s_lo
    return wrap(hi, pe.acc_bits), lo


def _operands(pe, rng, M, K, B, mode):
    act = pe.act32 if mode == PEMode.FXP32 else pe.act16
    W = rng.integers(-(pe.weight.max_int >> 8), pe.weight.max_int >> 8, (M, K))    # outputs well inside
    X = rng.integers(-(act.max_int >> 6), act.max_int >> 6, (K, B))                  # the output range
    assert (W != 0).all() and (X != 0).all()
    return W, X


@pytest.mark.parametrize("name", APPROXIMATE)
@pytest.mark.parametrize("mode", [PEMode.FXP32, PEMode.FXP16])
def test_forward_and_transposed_products_follow_the_model(name, mode):
    cfg = _cfg(name)
    pe, rng = cfg.pe, np.random.default_rng(7)
    W, X = _operands(pe, rng, 5, 9, 4, mode)
    b = rng.integers(pe.out.min_int // 8, pe.out.max_int // 8, 5)
    shift = pe.shift32 if mode == PEMode.FXP32 else pe.shift16
    hi, lo = _lane_sums(pe, W, X, mode)
    lo = wrap(lo + (b << shift)[:, None], pe.acc_bits)
    want = requantize(hi, lo, pe.lane_bits, shift, pe.out) if mode == PEMode.FXP32 else \
        requantize(0, lo, 0, shift, pe.out)
    assert (linear(cfg, W, X, b, ActFunc.IDENTITY, mode) == want).all()
    exact = linear(load("small"), W, X, b, ActFunc.IDENTITY, mode)
    assert (exact != want).any(), "the approximate multiplier changed nothing: the test would not see it"
    D = X[:5]
    hi_t, lo_t = _lane_sums(pe, W.T, D, mode)
    want_t = requantize(hi_t, wrap(lo_t, pe.acc_bits), pe.lane_bits, shift, pe.out) if mode == PEMode.FXP32 else \
        requantize(0, wrap(lo_t, pe.acc_bits), 0, shift, pe.out)
    assert (transposed(cfg, W, D, ActFunc.IDENTITY, mode) == want_t).all()


@pytest.mark.parametrize("mode", [PEMode.FXP32, PEMode.FXP16])
def test_a_separable_multiplier_rounds_one_product_where_its_bounds_hold(mode):
    """DRUM's products are op(w) op(x): within rounded_product's bounds the
    layer is one float64 product of op(W) and the lanes' mapped values
    recombined; beyond them (full-range codes) the lane route runs. Both
    follow the model product by product; MBM (not separable) has no such route."""
    cfg = _cfg("drum6")
    pe, rng = cfg.pe, np.random.default_rng(13)
    act = pe.act32 if mode == PEMode.FXP32 else pe.act16
    shift = pe.shift32 if mode == PEMode.FXP32 else pe.shift16

    def want(W, X):
        hi, lo = _lane_sums(pe, W, X, mode)
        if mode == PEMode.FXP32:
            return requantize(hi, wrap(lo, pe.acc_bits), pe.lane_bits, shift, pe.out)
        return requantize(0, wrap(lo, pe.acc_bits), 0, shift, pe.out)

    W, X = _operands(pe, rng, 6, 11, 5, mode)
    fast = separable_rounded(pe, W, X, mode == PEMode.FXP16, None, 0, shift, pe.out)
    assert fast is not None and (fast[0] == want(W, X)).all()
    assert separable_rounded(_cfg("mbm").pe, W, X, mode == PEMode.FXP16, None, 0, shift, pe.out) is None
    W = rng.integers(pe.weight.min_int, pe.weight.max_int, (3, 200))      # sums past float64's 2^53
    X = rng.integers(act.min_int, act.max_int, (200, 4))
    assert separable_rounded(pe, W, X, mode == PEMode.FXP16, None, 0, shift, pe.out) is None
    assert (linear(cfg, W, X, None, ActFunc.IDENTITY, mode) == want(W, X)).all()


@pytest.mark.parametrize("name", APPROXIMATE)
def test_weight_gradient_puts_the_error_in_the_weight_port(name):
    """dW = D X^T as the array computes it: D in the weight registers, X's lanes."""
    cfg = _cfg(name)
    pe, gf, rng = cfg.pe, cfg.adam.grad, np.random.default_rng(3)
    D = rng.integers(-(pe.out.max_int >> 8), pe.out.max_int >> 8, (4, 6))
    X = rng.integers(-(pe.act32.max_int >> 6), pe.act32.max_int >> 6, (7, 6))
    hi, lo = _lane_sums(pe, D, X.T, PEMode.FXP32)
    want = requantize(hi, wrap(lo, pe.acc_bits), pe.lane_bits, pe.weight.frac + pe.act32.frac - gf.frac, gf)
    assert (weight_grad(cfg, D, X) == want).all()


def test_pe_trace_multiplies_by_the_model():
    """The PE bench's golden model: one product per cycle by the model."""
    cfg = _cfg("drum6")
    pe, rng = cfg.pe, np.random.default_rng(5)
    n = 64
    w = rng.integers(pe.weight.min_int, pe.weight.max_int, n)
    a = rng.integers(0, 1 << pe.act32.bits, n)
    ones = np.ones(n, dtype=bool)
    y_lo, _ = pe_trace(pe, np.zeros(n), ones, ones, a, w)    # clear every cycle: each output one product
    prod, L = REGISTRY["drum6"].product, pe.lane_bits
    for t in range(n):
        x = int(a[t]) - ((int(a[t]) >> (pe.act32.bits - 1)) << pe.act32.bits)       # the signed word
        sign, mag = (-1 if x < 0 else 1), abs(x)
        hi, lo = prod(int(w[t]), sign * (mag >> L)), prod(int(w[t]), sign * (mag & ((1 << L) - 1)))
        assert y_lo[t] == requantize(np.int64(hi), np.int64(lo), L, pe.shift32, pe.out)


@pytest.mark.parametrize("name", ["exact", "mbm"])
def test_bias_gradient_is_the_product_with_a_row_of_ones(name):
    """The array computes db as D times a row of 1.0 (pe.act32): with the
    exact multiplier that is the plain sum, with MBM every D x 1.0 carries
    the correction (the rtl backend's MBM run showed the difference)."""
    cfg = _cfg(name) if name != "exact" else load("small")
    pe, gf, rng = cfg.pe, cfg.adam.grad, np.random.default_rng(11)
    D = rng.integers(-(pe.out.max_int >> 8), pe.out.max_int >> 8, (5, 8))
    ones = np.full((1, 8), 1 << pe.act32.frac)
    hi, lo = _lane_sums(pe, D, ones.T, PEMode.FXP32) if name != "exact" else (None, None)
    got = bias_grad(cfg, D)
    assert (got == weight_grad(cfg, D, ones)[:, 0]).all()
    if name == "exact":
        assert (got == np.clip(D.sum(axis=1) << (gf.frac - pe.act32.frac), gf.min_int, gf.max_int)).all()
    else:
        want = requantize(hi, wrap(lo, pe.acc_bits), pe.lane_bits, pe.weight.frac + pe.act32.frac - gf.frac, gf)
        assert (got == want[:, 0]).all() and (got != bias_grad(load("small"), D)).any()


def _twos_complement_lanes(X, lane_bits, side_by_side=False):
    """Planted: the exact PE's split (low lane unsigned, high lane signed) fed to an approximate multiplier."""
    X = np.asarray(X, dtype=np.int64)
    lanes = X & np.int64((1 << lane_bits) - 1), X >> np.int64(lane_bits)
    return np.concatenate(lanes, axis=1) if side_by_side else lanes


@pytest.mark.parametrize("name", ["drum6", "mbm"])
def test_ddpg_gradients_stay_near_float64_and_a_twos_complement_split_does_not(name, monkeypatch):
    """The golden DDPG gradients (HalfCheetah's 17 x 6, fixar.figures.golden_ddpg)
    with an approximate multiplier against float64: within a few times the
    multiplier's own error. Planted: the two's-complement lanes, with which
    every small negative operand became two large products that cancel; the
    actor's gradient then came out several times off and HalfCheetah's
    agents never learned (docs/multipliers.md)."""
    from fixar.figures.golden_ddpg import gradient_errors
    from fixar.golden import matmul

    cfg = load("default").with_multiplier(name)
    good = gradient_errors(cfg, obs=17, act=6)
    assert good["critic"] < 0.05 and good["actor"] < 0.15, good
    monkeypatch.setattr(matmul, "magnitude_lanes", _twos_complement_lanes)
    bad = gradient_errors(cfg, obs=17, act=6)
    assert bad["actor"] > 1.0, bad
