"""The golden fixed-point DDPG step: close to float64 DDPG, and clear errors
for hyper-parameters or configs it cannot run."""
from __future__ import annotations

import dataclasses

import pytest

from fixar.config import ConfigError, FixedFormat, load
from fixar.figures.golden_ddpg import gradient_errors
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper


def test_gradients_track_float64_on_halfcheetah_networks():
    """400-300 actor and critic, state 17, action 6, B = 64, at initialisation:
    the critic's gradients within 0.1 % (relative L2) of float64 on the same
    weights, the actor's within 1 % (0.46 % measured: its error starts at
    -2^4 / B and reaches the actor through the critic's +-3e-3 last layer,
    the worst case of training; a larger actor_grad_scale_log2 cuts the
    error but clips more trained gradients, docs/training.md)."""
    err = gradient_errors(load("default"))
    assert err["critic"] < 1e-3, err
    assert err["actor"] < 1e-2, err


def test_unrepresentable_tau_is_rejected():
    with pytest.raises(ConfigError, match="tau = 1e-12 cannot be represented"):
        GoldenBackend(3, 1, Hyper(tau=1e-12), 0)


def test_formats_that_cannot_chain_layers_are_rejected():
    cfg = load("default")
    odd = cfg.variant(pe=dataclasses.replace(cfg.pe, out=FixedFormat(32, 18)))
    with pytest.raises(ConfigError, match="pe.out == pe.act32"):
        GoldenBackend(3, 1, Hyper(), 0, odd)


@pytest.mark.parametrize("rounding", ["floor", "half_up"])
def test_qat_quantizer_is_the_papers_affine_formula(rounding):
    """The paper's quantizer (floor), or the same rounded to nearest (the default), in floats."""
    import numpy as np

    from fixar.golden.fixed import dequantize
    from fixar.golden.qat import LayerQuantizers
    cfg = load("default")
    cfg = cfg.variant(array=dataclasses.replace(cfg.array, quantizer_rounding=rounding))
    rng = np.random.default_rng(5)
    lq = LayerQuantizers(cfg, 1)
    X = rng.integers(-3 << 20, 5 << 20, (7, 50))
    lq.track(0, X)
    lq.freeze()
    a_min, a_max = X.min() / 2**20, X.max() / 2**20
    delta = (abs(a_min) + abs(a_max)) / 2**16
    z = np.floor(-a_min / delta)
    half = 0.5 if rounding == "half_up" else 0.0
    want = np.clip(np.floor(X / 2**20 / delta + half) + z, 0, 2**16 - 1)
    assert np.array_equal(lq.quantize(0, X), want)
    q = lq.quantize(0, X)
    err = np.abs(dequantize(lq.dequantize(0, q), cfg.pe.act32) - X / 2**20)
    assert np.max(err) <= delta + 2**-20
    inside = (q > 0) & (q < 2**16 - 1)      # an end code may hold a value clipped by up to one step
    assert np.max(err[inside]) <= (delta / 2 if half else delta) + 2**-20


def test_qat_layer_equals_the_layer_on_dequantized_inputs():
    """The FXP16 array sum, scaled and zero-point corrected by the vector unit,
    is W delta (q - z) + b up to the two roundings."""
    import numpy as np

    from fixar.config import ActFunc
    from fixar.golden.fixed import dequantize
    from fixar.golden.qat import LayerQuantizers
    cfg = load("default")
    rng = np.random.default_rng(6)
    W = rng.integers(-(1 << 17), 1 << 17, (30, 40))
    b = rng.integers(-(1 << 20), 1 << 20, 30)
    X = rng.integers(-(2 << 20), 3 << 20, (40, 9))
    lq = LayerQuantizers(cfg, 1)
    lq.track(0, X)
    lq.freeze()
    y, x_hat = lq.layer(0, W, b, X, ActFunc.IDENTITY)
    want = dequantize(W, cfg.pe.weight) @ dequantize(x_hat, cfg.pe.act32) + dequantize(b, cfg.pe.out)[:, None]
    assert np.max(np.abs(dequantize(y, cfg.pe.out) - want)) < 40 * 2**-20 * 8


def test_qat_error_stops_where_a_quantizer_clips():
    """After the switch, a hidden unit whose input sits at its quantizer's top
    for every sample passes no error (the clipped straight-through estimator):
    its incoming weights and bias get zero gradient, although the error
    reaching it through the layer above is not zero."""
    import numpy as np

    from fixar.config import VecOp
    from fixar.golden.fixed import quantize
    from fixar.golden.layer import transposed
    from fixar.golden.vector import vector_op
    cfg = load("small")
    obs, act, batch = 3, 1, 16
    ddpg = GoldenBackend(obs, act, dataclasses.replace(Hyper(), hidden=(8, 8), batch=batch), 0, cfg).ddpg
    rng = np.random.default_rng(2)
    fmt = cfg.pe.act32

    def batch_of(S):
        return (quantize(S, fmt), quantize(rng.uniform(-1, 1, (act, batch)), fmt),
                quantize(rng.normal(size=batch), fmt), quantize(rng.normal(size=(obs, batch)), fmt),
                rng.random(batch) < 0.1)

    states = lambda: 1 + 0.05 * rng.normal(size=(obs, batch))     # all alike: a unit is on for all or none
    ddpg.enable_qat()
    ddpg.train(*batch_of(states()))
    ddpg.switch_to_fxp16()
    # first-layer weights 64 times larger: its outputs go far beyond the ranges seen
    ddpg.critic.W[0] = np.clip(ddpg.critic.W[0] * 64, cfg.pe.weight.min_int, cfg.pe.weight.max_int)
    S, A, Rw, S2, done = batch_of(states())
    grads, q, y = ddpg.critic_gradients(S, A, Rw, S2, done)
    qc = ddpg.qat["critic"]
    acts = ddpg.critic.forward(cfg, np.vstack([S, A]), qc)
    pinned = np.all(acts[1] >= qc.top(1), axis=1)
    assert pinned.any(), "the test's states should pin some first-layer units at the quantizer's top"
    dW0, db0 = grads[0], grads[1]
    assert not dW0[pinned].any() and not db0[pinned].any()
    # the error that reaches them through the layer above is not zero: the mask stopped it
    D = vector_op(cfg, VecOp.SCALE, vector_op(cfg, VecOp.SUB, q, y), c=ddpg.loss_scale)
    D2 = vector_op(cfg, VecOp.RELU_MASK, transposed(cfg, ddpg.critic.W[2], D), acts[2], limit=qc.top(2))
    assert np.any(transposed(cfg, ddpg.critic.W[1], D2)[pinned] != 0)


@pytest.mark.parametrize("precision", ["qat", "fxp16"])
def test_saturated_tanh_passes_no_error_through_the_critics_grid(precision):
    """A saturated actor output (mu = +-1 exactly) reaches the critic on its
    16-bit grid, which rarely holds +-1: there tanh' = 1 - mu^2 would be small
    but not 0, and Adam, which divides by the gradient's size, would keep
    pushing the output weights at full speed with no effect on mu (a QAT run
    grew one to 703). DTANH's limit makes tanh' exactly 0 there."""
    import numpy as np

    from fixar.config import VecOp
    from fixar.golden.fixed import quantize
    from fixar.golden.qat import tanh_limit
    from fixar.golden.vector import vector_op
    cfg = load("small")
    obs, act, batch = 3, 2, 16
    ddpg = GoldenBackend(obs, act, dataclasses.replace(Hyper(), hidden=(8, 8), batch=batch), 0, cfg).ddpg
    rng = np.random.default_rng(3)
    fmt = cfg.pe.act32
    one = 1 << fmt.frac

    def batch_of():
        return (quantize(rng.normal(size=(obs, batch)) * 3, fmt), quantize(rng.uniform(-1, 1, (act, batch)), fmt),
                quantize(rng.normal(size=batch), fmt), quantize(rng.normal(size=(obs, batch)) * 3, fmt),
                rng.random(batch) < 0.1)

    if precision == "qat":
        ddpg.enable_qat()
        ddpg.train(*batch_of())
        ddpg.switch_to_fxp16()
    else:
        ddpg.use_fxp16_from_scratch()
    # the output layer's bias drives mu to +1 and -1 whatever the state
    w = cfg.pe.weight
    ddpg.actor.W[-1][...] = 0
    ddpg.actor.b[-1][...] = np.array([w.max_int, w.min_int])[:act] >> 4
    # and the critic's output weights large, so that the error reaching mu
    # survives the small tanh' (+1 on a 16-bit grid is at most ~2^-15 below
    # it); small states keep the critic's hidden inputs under FXP16's top
    ddpg.critic.W[-1][...] = np.clip(ddpg.critic.W[-1] << 8, w.min_int, w.max_int)
    S = quantize(rng.normal(size=(obs, batch)) * 0.1, fmt)
    mu = ddpg.actor.forward(cfg, S, ddpg._q("actor"))[-1]
    assert np.array_equal(np.abs(mu), np.full_like(mu, one)), "the test needs saturated outputs"
    qc = ddpg._q("critic")
    seen = qc.fake_quantize(0, mu)
    assert np.any(np.abs(seen) < one), "the test needs a grid without +1 or -1 (else there is nothing to show)"
    limit = tanh_limit(qc, 0)
    assert limit == np.abs(seen).min() < one
    # without the limit the error would pass (tanh' of the seen value is not 0)
    assert np.any(vector_op(cfg, VecOp.DTANH, np.full_like(seen, one), seen) != 0)
    grads = ddpg.actor_gradients(S)
    assert not grads[-2].any() and not grads[-1].any(), "the saturated output layer still got gradient"


def _scaled_critic(k: int):
    cfg = load("default")
    return cfg.variant(adam=dataclasses.replace(cfg.adam, critic_grad_scale_log2=k))


def test_critic_gradient_scale_scales_the_critic_alone():
    """adam.critic_grad_scale_log2 = -4: the critic's gradients are 2^-4 of
    the unscaled ones (to the rounding of the smaller codes), with fewer
    entries beyond Adam's grad_limit on a batch of large TD errors; the
    actor's gradients do not change by a bit."""
    import numpy as np

    from fixar.golden.fixed import quantize
    obs, act, batch = 11, 3, 64
    hp = dataclasses.replace(Hyper(), hidden=(64, 64), batch=batch)
    runs = {}
    for k in (0, -4):
        cfg = _scaled_critic(k)
        d = GoldenBackend(obs, act, hp, 0, cfg).ddpg
        rng = np.random.default_rng(5)
        q = lambda x, cfg=cfg: quantize(x, cfg.pe.act32)
        S, S2 = q(rng.normal(0, 3, (obs, batch))), q(rng.normal(0, 3, (obs, batch)))
        A, R = q(rng.uniform(-1, 1, (act, batch))), q(rng.normal(60, 20, batch))[None, :]
        c_grads, _, _ = d.critic_gradients(S, A, R, S2, np.zeros((1, batch), dtype=bool))
        runs[k] = (np.concatenate([g.ravel() for g in c_grads]), d.actor_gradients(S), cfg.adam.grad_limit)
    g0, a0, limit = runs[0]
    g4, a4, _ = runs[-4]
    top = load("default").adam.grad.max_int
    held = np.abs(g0) < top                     # unscaled, some saturate the gradient format itself
    assert not held.all()
    assert np.linalg.norm(g4[held] * 16.0 - g0[held]) < 1e-4 * np.linalg.norm(g0[held])
    assert np.sum(np.abs(g4) > limit) < np.sum(np.abs(g0) > limit) / 2
    assert all(np.array_equal(x, y) for x, y in zip(a0, a4))


def test_critic_gradient_scale_is_checked():
    with pytest.raises(ConfigError, match="critic_grad_scale_log2: -17 is below the minimum -16"):
        _scaled_critic(-17)
