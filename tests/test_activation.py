"""The activation unit's golden model: scalar reference, symmetry, accuracy."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from fixar.config import DEFAULT, ActFunc, ActivationConfig, ConfigError, FixedFormat, load
from fixar.golden.activation import activate, activate_trace, tanh, tanh_max_abs_error


def tanh_reference(cfg, x: int) -> int:
    """The documented rule, one Python int at a time."""
    fmt, act = cfg.pe.out, cfg.activation
    table = act.tanh_table(fmt.frac)
    s = fmt.frac - act.tanh_segments_log2
    t = min(abs(x), fmt.max_int)
    if t >= 1 << (act.tanh_range_log2 + fmt.frac):
        mag = table[-1]
    else:
        k, r = t >> s, t & ((1 << s) - 1)
        mag = table[k] + (((table[k + 1] - table[k]) * r + ((1 << s) >> 1)) >> s)
    return -mag if x < 0 else mag


@pytest.mark.parametrize("name", ["default", "narrow"])
def test_tanh_matches_scalar_reference(name):
    cfg = load(name)
    fmt = cfg.pe.out
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.integers(fmt.min_int, fmt.max_int + 1, 3000),
                        rng.integers(-(10 << fmt.frac), 10 << fmt.frac, 3000),
                        [0, 1, -1, fmt.max_int, fmt.min_int]])
    assert tanh(cfg, x).tolist() == [tanh_reference(cfg, int(v)) for v in x]


def test_tanh_is_odd_monotonic_and_bounded():
    fmt = DEFAULT.pe.out
    x = np.arange(-(9 << fmt.frac), 9 << fmt.frac, 37, dtype=np.int64)
    y = tanh(DEFAULT, x)
    assert np.all(np.diff(y) >= 0)
    assert np.array_equal(tanh(DEFAULT, -x[x != fmt.min_int]), -y[x != fmt.min_int])
    assert np.max(np.abs(y)) <= 1 << fmt.frac


def test_tanh_error_is_within_the_chord_bound():
    # Linear interpolation error <= h^2/8 * max|tanh''| (= 0.770) plus rounding.
    h = 2.0 ** -DEFAULT.activation.tanh_segments_log2
    bound = h * h / 8 * 0.7699 + 2 * DEFAULT.pe.out.lsb
    err = tanh_max_abs_error(DEFAULT)
    assert err <= bound, (err, bound)


def test_table_values():
    table = ActivationConfig().tanh_table(20)
    assert table[0] == 0 and table[32] == round(math.tanh(1.0) * 2**20)
    assert len(table) == 8 * 32 + 1


def test_relu_identity_and_trace():
    x = np.array([-5, 0, 7, DEFAULT.pe.out.min_int])
    assert activate(DEFAULT, ActFunc.RELU, x).tolist() == [0, 0, 7, 0]
    assert activate(DEFAULT, ActFunc.IDENTITY, x).tolist() == x.tolist()
    f = np.array([0, 1, 2, 3])
    assert activate_trace(DEFAULT, f, x).tolist() == [-5, 0, int(tanh(DEFAULT, 7)), x[3]]


def test_too_many_segments_for_the_format():
    coarse = dataclasses.replace(DEFAULT.pe, out=FixedFormat(32, 4))
    with pytest.raises(ConfigError, match="activation.tanh_segments_log2: 5 segment-index bits exceed the 4"):
        DEFAULT.variant(pe=coarse)
