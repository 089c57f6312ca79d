"""DDPG in block floating point (fixar.golden.bfp_train): every product's
operands are BFP along that product's reduction, the schedule widens layers
by FAST's rule, and a run resumes exactly."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fixar.golden.bfp_train as bfp_train
import fixar.golden.ddpg as ddpg
from fixar.config import ActFunc, load
from fixar.golden.layer import linear
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper
from fixar.rl.loop import RunSettings, Trainer

CFG = load("default")
HYPER = dataclasses.replace(Hyper(), hidden=(32, 24), batch=32)


def _cfg(**bfp):
    return CFG.variant(bfp=dataclasses.replace(CFG.bfp, **bfp))


def _batch(rng, obs=3, act=1, b=32):
    return (rng.normal(size=(b, obs)), rng.uniform(-1, 1, (b, act)), rng.normal(size=b),
            rng.normal(size=(b, obs)), rng.random(b) < 0.1)


def _backend(cfg, seed=0):
    b = GoldenBackend(3, 1, HYPER, seed, cfg)
    b.set_precision_phase("bfp")
    return b


def _recorded_products(monkeypatch, cfg, steps=2):
    """Train a few BFP steps and record every product's operands (and the
    mantissa width each product's layer had), by the function they went to."""
    seen = {"linear": [], "transposed": [], "weight_grad": []}
    b = _backend(cfg)

    def spy(name, fn, module):
        def wrapped(cfg_, A, B, *args, **kw):
            seen[name].append((np.array(A), np.array(B)))
            return fn(cfg_, A, B, *args, **kw)
        monkeypatch.setattr(module, name, wrapped)

    spy("linear", bfp_train.linear, bfp_train)
    spy("transposed", ddpg.transposed, ddpg)
    spy("weight_grad", ddpg.weight_grad, ddpg)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        b.train(*_batch(rng))
    return seen


def _is_bfp(q, m, axis, g=16) -> bool:
    """Every group of ``g`` along ``axis`` is m-bit BFP: for the largest k with
    every value a multiple of 2^k, each value / 2^k is an m-bit signed integer.
    (Converting again is no test: a group whose mantissa is -2^(m-1) has a
    larger exponent the second time.)"""
    rows = np.moveaxis(np.asarray(q), axis, -1).reshape(-1, q.shape[axis])
    pad = -rows.shape[1] % g
    groups = np.pad(rows, ((0, 0), (0, pad))).reshape(rows.shape[0], -1, g)
    low = np.where(groups != 0, groups & -groups, 1 << 62)       # each value's lowest one bit
    k = np.log2(low.min(axis=-1, keepdims=True)).astype(np.int64)
    k = np.where(k == 62, 0, k)                                  # an all-zero group
    mant = groups >> k
    return bool(((mant >= -(1 << (m - 1))) & (mant < 1 << (m - 1))).all())


def _split(q, features, obs=3, act=1, g=16):
    """The critic's first-layer operand (``features`` long obs + act) with s
    padded by zeros to a whole group, as it is grouped; any other as it is."""
    if features is None or q.shape[features] != obs + act:
        return q
    return np.insert(q, [obs] * (-obs % g), 0, axis=features)


def test_every_product_takes_bfp_operands_grouped_along_its_reduction(monkeypatch):
    cfg = _cfg(schedule_every=0, mantissa_bits=2)          # every layer at 2 bits throughout
    seen = _recorded_products(monkeypatch, cfg)
    # the reduction axis of operands A and B per product: W X, W^T D, D X^T,
    # and the axis of each operand's input features (the critic's [s; a])
    axes = {"linear": (1, 0), "transposed": (0, 0), "weight_grad": (1, 1)}
    features = {"linear": (1, 0), "transposed": (1, None), "weight_grad": (None, 0)}
    for name, (ax_a, ax_b) in axes.items():
        assert seen[name], name
        wrong_axis = 0
        f_a, f_b = features[name]
        for A, B in seen[name]:
            A, B = _split(A, f_a), _split(B, f_b)
            assert _is_bfp(A, 2, ax_a) and _is_bfp(B, 2, ax_b), name
            wrong_axis += not _is_bfp(A, 2, 1 - ax_a)
        assert wrong_axis, f"{name}: grouped along the other axis too? the check cannot tell them apart"


def test_the_critics_input_groups_s_and_a_apart():
    """s is padded to a whole group before conversion, as the program stores
    [s; a]: a large action does not flush the small observations, which a
    group holding both would (at 2 bits its LSB is the action's binade)."""
    X = np.array([[1 << 10] * 4] * 3 + [[1 << 30] * 4], dtype=np.int64)     # s = 2^-10, a = 2^10
    W = np.full((1, 4), 1 << 20, dtype=np.int64)                               # ones: the output sums X
    bias = np.zeros(1, dtype=np.int64)
    exact = linear(CFG, W, X, bias, ActFunc.IDENTITY)
    for split, same in ((3, True), (None, False)):
        layers = bfp_train.BfpLayers(_cfg(rounding="nearest"), 1, seed=0, fixed=2, split=split)
        got, _ = layers.layer(0, W, bias, X, ActFunc.IDENTITY)
        assert np.array_equal(got, exact) == same, split


def test_a_check_measures_after_its_step_with_seeds_of_its_own():
    """Checks that never widen leave a run's bits as a run without checks (their
    conversions draw from a stream of their own), and a check that widens
    takes effect from the next step: the check step itself ran at the old width."""
    rng = np.random.default_rng(5)
    batches = [_batch(rng) for _ in range(3)]
    runs = {}
    for name, kw in (("none", dict(schedule_every=0)), ("never", dict(schedule_every=1, threshold=1e9)),
                     ("always", dict(schedule_every=2, threshold=0.0))):
        b = _backend(_cfg(**kw))
        runs[name] = [(b.train(*batch), {k: v.copy() for k, v in b.state_dict().items() if k != "qat"},
                       [list(q.widths) for q in b.ddpg.qat.values()]) for batch in batches]
        runs[name + "_history"] = [q.history for q in b.ddpg.qat.values()]
    same = [all(np.array_equal(v, runs["none"][t][1][k]) for k, v in runs[name][t][1].items())
            for name in ("never", "always") for t in range(3)]
    assert same == [True, True, True, True, False, False]
    assert [w for *_, w in runs["always"]] == [[[4] * 3] * 2, [[4] * 3] * 2, [[6] * 3] * 2]
    assert all(len(h) == 3 * 3 for h in runs["never_history"])                 # every layer, every step
    assert [t for t, *_ in runs["always_history"][0]] == [0, 0, 0, 2, 2, 2]


def test_a_checkpoint_of_other_bfp_rules_is_refused():
    layers = bfp_train.BfpLayers(CFG, 3, seed=1)
    st = layers.state()
    layers.load(dict(st))
    with pytest.raises(ValueError, match="exponent bits"):
        layers.load(dict(st, exp_bits=4))
    with pytest.raises(ValueError, match="start a new run"):
        layers.load({k: v for k, v in st.items() if k != "checks"})


def test_a_layer_on_values_already_on_the_bfp_grid_is_the_fxp32_layer():
    """Weights and inputs of at most 6 significant bits in each group are BFP-8
    values already, so the BFP layer equals the FXP32 layer on them (nothing
    else happens between the conversion and the product); at 2 bits it does not."""
    rng = np.random.default_rng(4)
    W = (rng.integers(-(1 << 21), 1 << 21, (24, 40)) >> 15) << 15
    X = (rng.integers(-(1 << 22), 1 << 22, (40, 16)) >> 16) << 16
    X[:, 0] = 0                                                  # an all-zero group too
    bias = rng.integers(-(1 << 20), 1 << 20, 24)
    want = linear(CFG, W, X, bias, ActFunc.RELU)
    for m, same in ((8, True), (2, False)):
        layers = bfp_train.BfpLayers(_cfg(schedule_every=0, rounding="nearest"), 1, seed=0, fixed=m)
        got, stored = layers.layer(0, W, bias, X, ActFunc.RELU)
        assert np.array_equal(got, want) == same, m
        assert np.array_equal(stored, X)                         # the ReLU masks read the FXP32 input


@pytest.mark.parametrize("threshold, want", [(0.0, 8), (1e9, 2)])
def test_the_schedule_widens_every_layer_or_none(threshold, want):
    b = _backend(_cfg(schedule_every=2, threshold=threshold))
    rng = np.random.default_rng(2)
    for _ in range(8):
        b.train(*_batch(rng))
    for q in b.ddpg.qat.values():
        assert q.widths == [want] * 3
        assert [w for *_, w in q.history] == sorted(w for *_, w in q.history) or threshold


def test_the_threshold_falls_with_steps_and_depth():
    bfp = CFG.bfp
    t = [[bfp.schedule_threshold(step, layer) for layer in range(3)] for step in (0, 5000, 10000)]
    assert t[0][0] == bfp.threshold and t[1][0] == bfp.threshold / 2 and t[2][1] == bfp.threshold / 8
    assert all(row[0] > row[1] > row[2] for row in t)


def test_a_fixed_width_never_changes_and_a_width_outside_the_list_is_refused():
    b = _backend(_cfg(schedule_every=0, mantissa_bits=6))
    rng = np.random.default_rng(3)
    for _ in range(3):
        b.train(*_batch(rng))
    assert all(q.widths == [6] * 3 and not q.history for q in b.ddpg.qat.values())
    with pytest.raises(ValueError, match="bfp.mantissa_bits"):
        bfp_train.BfpLayers(CFG, 3, 0, fixed=5)


def test_a_bfp_run_resumes_exactly(tmp_path):
    """Stopped at step 250 and resumed to 300: the same weights, widths and
    rounding counters as a straight run (the schedule checks every 40 steps)."""
    cfg = tmp_path / "bfp40.toml"
    cfg.write_text('name = "bfp40"\n\n[bfp]\nschedule_every = 40\nthreshold = 0.3\n')
    kw = dict(backend="golden", precision="bfp", config=str(cfg), warmup=100, eval_every=300, eval_episodes=1,
              checkpoint_every=150, hyper=dataclasses.replace(HYPER, hidden=(16, 8), batch=8), seed=3)
    straight = Trainer(RunSettings(steps=300, out=str(tmp_path / "s"), **kw), log=lambda *_: None)
    straight.train(progress=False)
    assert straight.backend.ddpg.phase == "bfp"
    first = Trainer(RunSettings(steps=250, out=str(tmp_path / "r"), **kw), log=lambda *_: None)
    first.train(progress=False)
    resumed = Trainer(RunSettings(steps=300, out=str(tmp_path / "r"), **kw), resume=True, log=lambda *_: None)
    resumed.train(progress=False)
    want, got = straight.backend.state_dict(), resumed.backend.state_dict()
    for k, v in want.items():
        assert np.array_equal(v, got[k]), k
    assert any(w > 2 for q in straight.backend.ddpg.qat.values() for w in q.widths)
    # the schedule's history came through the checkpoint whole: the plot of both runs is the same data
    assert (tmp_path / "s" / "precision.json").read_text() == (tmp_path / "r" / "precision.json").read_text()
    assert (tmp_path / "r" / "precision.png").stat().st_size > 1000
