"""The host's side of the training engine (fixar.driver.engine): the QAT
quantizer's division constants, and the packing round trips."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fixar.config import QUANTIZER_ROUNDINGS, load, quantizer_widths
from fixar.driver.engine import EngineHost, quantizer_words
from fixar.golden.qat import dequantize16, quantize16
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper

CFG = load("small")


def _cfg(rounding: str):
    return CFG.variant(array=dataclasses.replace(CFG.array, quantizer_rounding=rounding))


def _deltas(rng):
    edges = [1, 2, 3, 5, 7, (1 << 16) - 1, 1 << 16, (1 << 16) + 1, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32]
    return edges + [int(x) for x in rng.integers(1, 1 << 32, 200, dtype=np.int64)]


@pytest.mark.parametrize("rounding", QUANTIZER_ROUNDINGS)
def test_magic_division_is_exact_floor_division(rounding):
    cfg = _cfg(rounding)
    NB = quantizer_widths(cfg)["nb"]
    rng = np.random.default_rng(0)
    for delta in _deltas(rng):
        _, _, magic, shift = quantizer_words(cfg, delta, 0)
        assert magic < 1 << quantizer_widths(cfg)["magic"]
        assert shift < 1 << quantizer_widths(cfg)["shift"]
        us = [0, 1, delta - 1, delta, delta + 1, (1 << NB) - 1] + [int(u) for u in rng.integers(0, 1 << NB, 50)]
        us += [k * delta + r for k in (1, 1000, (1 << NB) // delta - 1) for r in (-1, 0, 1)]
        for u in us:
            if 0 <= u < 1 << NB:
                assert (u * magic) >> shift == u // delta, (delta, u)


def _output_stage(cfg, y: int, delta: int, zero: int) -> int:
    """The RTL's quantizer stages (gen/core.py) step by step in Python ints."""
    qb, nb = cfg.pe.act16.bits, quantizer_widths(cfg)["nb"]
    _, _, magic, shift = quantizer_words(cfg, delta, zero)
    n = (y << qb) + (delta >> 1 if cfg.array.quantizer_rounding == "half_up" else 0)
    u = ~n if n < 0 else n                  # one's complement: floor(n / D) = ~floor(u / D)
    assert 0 <= u < 1 << nb, "the dividend does not fit the stage's nb bits"
    f = min((u * magic) >> shift, 1 << (qb + 1))
    q = min(max(zero - f - 1 if n < 0 else zero + f, 0), (1 << qb) - 1)
    return int(dequantize16(cfg, delta, zero, np.array([q]))[0])


@pytest.mark.parametrize("rounding", QUANTIZER_ROUNDINGS)
def test_output_stage_algorithm_equals_the_golden_quantizer(rounding):
    cfg = _cfg(rounding)
    rng = np.random.default_rng(1)
    fmt = cfg.pe.act32
    for delta in _deltas(rng)[:60]:
        zero = int(rng.integers(0, (1 << 16) + 1))
        ys = [fmt.min_int, fmt.max_int, 0, -1, 1] + [int(v) for v in rng.integers(fmt.min_int, fmt.max_int, 40)]
        ys += [int(v) for v in rng.integers(-4 * delta, 4 * delta, 20)] if delta < 1 << 28 else []
        # where n = y 2^16 + Delta // 2 changes sign, and exact ties of a / delta
        ys += [-((delta >> 1) >> 16) + k for k in (-1, 0, 1)] + [k * delta for k in (-3, -1, 1, 3)]
        for y in ys:
            if not fmt.min_int <= y <= fmt.max_int:
                continue
            want = int(dequantize16(cfg, delta, zero, quantize16(cfg, delta, zero, np.array([y])))[0])
            assert _output_stage(cfg, y, delta, zero) == want, (delta, zero, y)


def test_quantizer_rounding_rounds_to_nearest_ties_up():
    """half_up is floor(a / delta + 1/2) (exact ties go up), floor is floor(a / delta): Python fractions."""
    from fractions import Fraction
    rng = np.random.default_rng(3)
    ties = 0
    deltas = [1, 2, 3, 7, 1 << 16, 1 << 17, 3 << 17, (1 << 20) + 1] + [int(d) for d in rng.integers(1, 1 << 32, 30)]
    for delta in deltas:
        ys = [int(y) for y in rng.integers(-4 * delta, 4 * delta, 40) >> 16] + [0, 1, -1]
        ys += [(k * delta) >> 17 for k in (-3, -1, 1, 3)]       # near a / delta = +-1/2, +-3/2
        for y in ys:
            x = Fraction(y << 16, delta)        # a / delta
            near = int(quantize16(_cfg("half_up"), delta, 1 << 15, np.array([y]))[0]) - (1 << 15)
            down = int(quantize16(_cfg("floor"), delta, 1 << 15, np.array([y]))[0]) - (1 << 15)
            if abs(x) < 1 << 14:
                assert near == (x + Fraction(1, 2)).__floor__(), (delta, y)
                assert down == x.__floor__(), (delta, y)
                ties += x.denominator == 2
    assert ties >= 4, "the test should meet exact ties"


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
