"""Golden fully-connected layer: exact sums, bias as the sum's start, one rounding."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from fixar.config import ActFunc, PEMode, load
from fixar.golden import pe_matmul
from fixar.golden.activation import activate
from fixar.golden.layer import linear


@pytest.mark.parametrize("name", ["small", "narrow"])
@pytest.mark.parametrize("mode", list(PEMode), ids=lambda m: m.name)
def test_linear_matches_python_ints(name, mode):
    cfg = load(name)
    pe = cfg.pe
    act = pe.act32 if mode == PEMode.FXP32 else pe.act16
    rng = np.random.default_rng(7)
    M, K, B = 5, 19, 3
    W = rng.integers(pe.weight.min_int, pe.weight.max_int + 1, (M, K))
    X = rng.integers(act.min_int, act.max_int + 1, (K, B))
    b = rng.integers(pe.out.min_int, pe.out.max_int + 1, M)
    got = linear(cfg, W, X, b, ActFunc.IDENTITY, mode)
    L = pe.lane_bits
    for i in range(M):
        for j in range(B):
            if mode == PEMode.FXP32:
                lo = ref.signed(sum(int(W[i, k]) * (int(X[k, j]) & ((1 << L) - 1)) for k in range(K))
                                + (int(b[i]) << pe.shift32), pe.acc_bits)
                hi = ref.signed(sum(int(W[i, k]) * (int(X[k, j]) >> L) for k in range(K)), pe.acc_bits)
                want = ref.round_shift(hi * (1 << L) + lo, pe.shift32, pe.out)
            else:
                s = ref.signed(sum(int(W[i, k]) * int(X[k, j]) for k in range(K)) + (int(b[i]) << pe.shift16),
                               pe.acc_bits)
                want = ref.round_shift(s, pe.shift16, pe.out)
            assert got[i, j] == want, (i, j)


def test_linear_without_bias_is_the_pe_matmul_then_activation():
    cfg = load("default")
    rng = np.random.default_rng(8)
    W = rng.integers(-(1 << 22), 1 << 22, (13, 29))
    X = rng.integers(-(1 << 22), 1 << 22, (29, 4))
    for func in ActFunc:
        assert np.array_equal(linear(cfg, W, X, None, func), activate(cfg, func, pe_matmul(cfg.pe, W, X)))


def test_linear_rejects_bad_bias():
    cfg = load("default")
    with pytest.raises(ValueError, match="bias has shape"):
        linear(cfg, np.ones((3, 2), dtype=np.int64), np.ones((2, 1), dtype=np.int64), np.ones(4, dtype=np.int64))
