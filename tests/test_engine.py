"""The host's side of the training engine (fixar.engine): the QAT
quantizer's division constants, and the packing round trips."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fixar.config import load
from fixar.engine import EngineHost, quantizer_words
from fixar.golden.qat import dequantize16, quantize16
from fixar.rl.golden_backend import GoldenBackend
from fixar.rl.hyper import Hyper

CFG = load("small")
NB = CFG.pe.out.bits - 1 + CFG.pe.act16.bits


def _deltas(rng):
    edges = [1, 2, 3, 5, 7, (1 << 16) - 1, 1 << 16, (1 << 16) + 1, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32]
    return edges + [int(x) for x in rng.integers(1, 1 << 32, 200, dtype=np.int64)]


def test_magic_division_is_exact_floor_division():
    rng = np.random.default_rng(0)
    for delta in _deltas(rng):
        _, _, magic, shift = quantizer_words(CFG, delta, 0)
        assert magic < 1 << (NB + 2)
        us = [0, 1, delta - 1, delta, delta + 1, (1 << NB) - 1] + [int(u) for u in rng.integers(0, 1 << NB, 50)]
        us += [k * delta + r for k in (1, 1000, (1 << NB) // delta - 1) for r in (-1, 0, 1)]
        for u in us:
            if 0 <= u < 1 << NB:
                assert (u * magic) >> shift == u // delta, (delta, u)


def _output_stage(y: int, delta: int, zero: int) -> int:
    """The RTL's quantizer stages (gen/core.py) step by step in Python ints."""
    qb = CFG.pe.act16.bits
    _, _, magic, shift = quantizer_words(CFG, delta, zero)
    n = y << qb
    u = ~n if y < 0 else n                  # one's complement: floor(n / D) = ~floor(u / D)
    f = min((u * magic) >> shift, 1 << (qb + 1))
    q = min(max(zero - f - 1 if y < 0 else zero + f, 0), (1 << qb) - 1)
    return int(dequantize16(CFG, delta, zero, np.array([q]))[0])


def test_output_stage_algorithm_equals_the_golden_quantizer():
    rng = np.random.default_rng(1)
    fmt = CFG.pe.act32
    for delta in _deltas(rng)[:60]:
        zero = int(rng.integers(0, (1 << 16) + 1))
        ys = [fmt.min_int, fmt.max_int, 0, -1, 1] + [int(v) for v in rng.integers(fmt.min_int, fmt.max_int, 40)]
        ys += [int(v) for v in rng.integers(-4 * delta, 4 * delta, 20)] if delta < 1 << 28 else []
        for y in ys:
            want = int(dequantize16(CFG, delta, zero, quantize16(CFG, delta, zero, np.array([y])))[0])
            assert _output_stage(y, delta, zero) == want, (delta, zero, y)


def test_bad_quantizer_scale_is_rejected():
    with pytest.raises(ValueError, match="Delta = 0"):
        quantizer_words(CFG, 0, 0)


def test_parameters_and_moments_round_trip_through_the_images():
    hp = dataclasses.replace(Hyper(), hidden=(8, 8), batch=8)
    ddpg = GoldenBackend(5, 2, hp, seed=1, cfg=CFG).ddpg
    rng = np.random.default_rng(2)
    for net in ("actor", "critic"):
        m, v = ddpg.moments[net]
        ddpg.moments[net] = (rng.integers(-1000, 1000, m.size), rng.integers(0, 1000, v.size))
    host = EngineHost(CFG, ddpg, 2, (8, 8), 8)
    params, moments = host.params(), host.moments()
    host.store_params(params, moments)
    assert all(np.array_equal(host.params()[k], params[k]) for k in params)
    for k, (m, v) in host.moments().items():
        assert np.array_equal(m, moments[k][0]) and np.array_equal(v, moments[k][1])
