"""The golden fixed-point DDPG step: close to float64 DDPG, and clear errors
for hyper-parameters or configs it cannot run."""
from __future__ import annotations

import dataclasses

import pytest

from fixar.bench.golden_ddpg import gradient_errors
from fixar.config import ConfigError, FixedFormat, load
from fixar.rl.golden_backend import GoldenBackend
from fixar.rl.hyper import Hyper


def test_gradients_track_float64_on_halfcheetah_networks():
    """400-300 actor and critic, state 17, action 6, B = 64: every parameter's
    gradient within 0.1 % (relative L2) of float64 on the same weights."""
    err = gradient_errors(load("default"))
    assert err["critic"] < 1e-3, err
    assert err["actor"] < 1e-3, err


def test_unrepresentable_tau_is_rejected():
    with pytest.raises(ConfigError, match="tau = 1e-12 cannot be represented"):
        GoldenBackend(3, 1, Hyper(tau=1e-12), 0)


def test_formats_that_cannot_chain_layers_are_rejected():
    cfg = load("default")
    odd = cfg.variant(pe=dataclasses.replace(cfg.pe, out=FixedFormat(32, 18)))
    with pytest.raises(ConfigError, match="pe.out == pe.act32"):
        GoldenBackend(3, 1, Hyper(), 0, odd)
