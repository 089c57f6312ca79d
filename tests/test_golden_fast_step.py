"""Whole golden DDPG steps on the fast routes (issue 22): several consecutive
steps in every precision (FXP32, QAT through its switch, FXP16 from scratch)
give the weights, target networks, Adam moments and actions of the
implementation before issue 22, with numba's kernels and with the numpy
fallback.

The implementation before is pinned as digests of its results (``PINNED``,
computed from commit 5b0381a's host/golden, which no later commit can
change); the fast routes are also compared array by array with the same
steps forced onto the slow side of every bound (the lanes, Adam's
definition), which names the first array that differs. Two scenarios scale
weights and inputs up so that the bounds fail for some products and not for
others within one step."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from fixar.config import ActFunc, load
from fixar.golden.ddpg import FixedDDPG, quantize_net
from fixar.golden.fixed import quantize

# (config, obs, act, hidden, batch, precision, steps, seed, input scale, weight scale)
SCENARIOS = {
    "fxp32": ("default", 17, 6, (64, 48), 32, "fxp32", 3, 0, 1.0, 1.0),
    "qat": ("default", 17, 6, (64, 48), 32, "qat", 6, 1, 1.0, 1.0),
    "fxp16": ("default", 17, 6, (64, 48), 32, "fxp16", 3, 2, 1.0, 1.0),
    "qat-adam_rne": ("adam_rne", 5, 2, (32, 24), 16, "qat", 4, 3, 1.0, 1.0),
    "fxp32-large": ("default", 17, 6, (64, 48), 32, "fxp32", 3, 4, 300.0, 64.0),
    "qat-large": ("default", 17, 6, (64, 48), 32, "qat", 4, 5, 300.0, 64.0),
    "qat-400-300": ("default", 17, 6, (400, 300), 64, "qat", 4, 6, 1.0, 1.0),
}

# sha256 (first 16 hex digits) of every step's results, from commit 5b0381a
PINNED = {
    "fxp32": ["f51ec47a1a919a90", "0c156a247ee0f191", "51d96b8db9cdeec9"],
    "qat": [
        "30e77466fe9ffb99", "14f624967127c3af", "34abb1fd721c1049", "06a19154432f3feb", "fd2051818a4768cf",
        "ca0f03f0e747dcba",
    ],
    "fxp16": ["584aa1b7d8d2ccd0", "f8eda7a5c9bf3ede", "5bff5eb3bf3dcfa2"],
    "qat-adam_rne": ["e8839f8bd9ef6349", "a6136fb13fa5c542", "4f3c5d24124f6dca", "3e5229f3c19e0eaa"],
    "fxp32-large": ["458338689726aa01", "cb88e8e3e2058bc2", "084aa968424f6ed0"],
    "qat-large": ["dbdb66613a050c3b", "fd805b98be607065", "8f4a80318d9324f1", "44dfe2e184f8b770"],
    "qat-400-300": ["38d25fa3c36819ca", "c190d6890439acb4", "fd306c5bca226254", "71f85dac8b8ff649"],
}


def _agent(cfg, obs, act, hidden, batch, seed, wscale) -> FixedDDPG:
    rng = np.random.default_rng(seed)

    def net(sizes, last):
        W, b = [], []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            lim = (3e-3 if i == len(sizes) - 2 else 1 / np.sqrt(fan_in)) * wscale
            W.append(rng.uniform(-lim, lim, (fan_out, fan_in)))
            b.append(rng.uniform(-lim, lim, fan_out))
        return quantize_net(cfg, W, b, [ActFunc.RELU] * (len(sizes) - 2) + [last])

    h1, h2 = hidden
    return FixedDDPG(cfg, net([obs, h1, h2, act], ActFunc.TANH), net([obs + act, h1, h2, 1], ActFunc.IDENTITY),
                     obs, batch=batch, gamma=0.99, tau=0.005, noise=0.1, actor_lr=1e-4, critic_lr=1e-3, beta1=0.9,
                     beta2=0.999, eps=1e-8, seed=seed + 1)


def run(name: str) -> list[dict[str, np.ndarray]]:
    """Every step's parameters, targets, moments and exploring action (codes)."""
    cfg_name, obs, act, hidden, batch, precision, steps, seed, xscale, wscale = SCENARIOS[name]
    cfg = load(cfg_name)
    d = _agent(cfg, obs, act, hidden, batch, seed, wscale)
    rng = np.random.default_rng(seed + 7)
    q = lambda x: quantize(x, cfg.pe.act32)
    if precision == "fxp16":
        d.use_fxp16_from_scratch()
    elif precision == "qat":
        d.enable_qat()
    out = []
    for t in range(steps):
        if precision == "qat" and t == steps // 2:
            d.switch_to_fxp16()
        S, S2 = q(rng.normal(0, xscale, (obs, batch))), q(rng.normal(0, xscale, (obs, batch)))
        A, R = q(rng.uniform(-1, 1, (act, batch))), q(rng.normal(-1, 1, batch))
        d.train(S, A, R, S2, rng.random(batch) < 0.05)
        res = {f"{net}.{i}": p.copy() for net in ("actor", "critic", "actor_t", "critic_t")
               for i, p in enumerate(d._params(getattr(d, net)))}
        for net, (m, v) in d.moments.items():
            res[f"{net}.m"], res[f"{net}.v"] = m.copy(), v.copy()
        res["action"] = d.act(S[:, 0], explore=True)
        out.append(res)
    return out


def digest(res: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(res):
        h.update(key.encode())
        h.update(np.ascontiguousarray(res[key], dtype=np.int64).tobytes())
    return h.hexdigest()[:16]



@pytest.mark.parametrize("name", list(SCENARIOS))
def test_steps_are_those_before_issue_22(route, name):
    got = [digest(r) for r in run(name)]
    differ = [t for t, (a, b) in enumerate(zip(got, PINNED[name])) if a != b]
    assert got == PINNED[name], f"{name}: steps {differ} differ from the implementation before issue 22"


def _slow_routes(monkeypatch):
    """Every bound-chosen route on its slow side: no numba, no float64
    product (the lanes), Adam's definition."""
    import fixar.golden.adam as gadam
    import fixar.golden.ddpg as gddpg
    import fixar.golden.layer as glayer
    monkeypatch.setenv("FIXAR_NO_NUMBA", "1")
    monkeypatch.setattr(glayer, "rounded_product", lambda *a, **kw: None)
    monkeypatch.setattr(gddpg, "rounded_product", lambda *a, **kw: None)
    monkeypatch.setattr(gadam, "_fast_numpy_fits", lambda *a: False)


@pytest.mark.parametrize("name", ["qat", "fxp16", "qat-large"])
def test_fast_routes_equal_the_slow_ones_array_by_array(route, name, monkeypatch):
    fast = run(name)
    with monkeypatch.context() as mp:
        _slow_routes(mp)
        slow = run(name)
    for t, (a, b) in enumerate(zip(fast, slow)):
        bad = [k for k in a if not np.array_equal(a[k], b[k])]
        assert not bad, f"step {t}: {bad} differ"


if __name__ == "__main__":      # the digests of whatever fixar.golden is imported (PINNED: commit 5b0381a's)
    for name in SCENARIOS:
        print(f'    "{name}": {[digest(r) for r in run(name)]},'.replace("'", '"'))
