"""The `rtl` backend (the training engine under Verilator, driven by the RL
loop through the co-simulation link) against the `golden` backend: the same
run gives the same weights, bit for bit."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fixar.config import CONFIG_DIR
from fixar.rl.hyper import Hyper
from fixar.rl.loop import RunSettings, Trainer

pytestmark = pytest.mark.sim

SMALL = dict(env="Pendulum-v1", steps=50, warmup=30, eval_every=50, eval_episodes=1, checkpoint_every=50,
             config="small", hyper=dataclasses.replace(Hyper(), hidden=(32, 32), batch=16))


def _run(backend: str, out) -> Trainer:
    trainer = Trainer(RunSettings(backend=backend, out=str(out), **SMALL), log=lambda *_: None)
    trainer.train(progress=False)
    return trainer


@pytest.mark.slow      # CI time: the QAT test below runs phase 1 (FXP32) and phase 2 and loads a state too
def test_rtl_and_golden_backends_train_to_identical_weights(tmp_path):
    golden = _run("golden", tmp_path / "golden")
    rtl = _run("rtl", tmp_path / "rtl")
    try:
        want, got = golden.backend.state_dict(), rtl.backend.state_dict()
        assert want.keys() == got.keys()
        differ = [k for k in want if not np.array_equal(want[k], got[k])]
        assert not differ, f"rtl and golden backends differ after {SMALL['steps']} loop steps in {differ}"
        assert rtl.evals == golden.evals                      # the greedy policy's returns, too
        summary = rtl.summary()["simulated_accelerator"]
        assert summary["train_steps"] == SMALL["steps"] - SMALL["warmup"] + 1 and summary["train"] > 0

        # loading a checkpoint's state into the engine, then training on: still identical
        other = Trainer(RunSettings(backend="golden", out=str(tmp_path / "g2"), seed=5, **SMALL),
                        log=lambda *_: None).backend
        rtl.backend.load_state_dict(other.state_dict())
        rng = np.random.default_rng(3)
        for _ in range(2):
            batch = (rng.normal(size=(16, 3)), rng.uniform(-1, 1, (16, 1)), rng.normal(size=16),
                     rng.normal(size=(16, 3)), rng.random(16) < 0.1)
            assert rtl.backend.train(*batch) == other.train(*batch)
            s = rng.normal(size=3)
            assert np.array_equal(rtl.backend.act(s, explore=True), other.act(s, explore=True))
        want, got = other.state_dict(), rtl.backend.state_dict()
        assert not [k for k in want if not np.array_equal(want[k], got[k])]
    finally:
        rtl.close()


def _load_and_train_on(rtl, out) -> None:
    """A fresh golden agent's state (QAT phase 1) loaded into the engine, then
    two training steps and acting on both: still identical."""
    other = Trainer(RunSettings(backend="golden", out=str(out), seed=5, precision="qat", qat_delay=45,
                                **SMALL),
                    log=lambda *_: None).backend
    rtl.load_state_dict(other.state_dict())
    rng = np.random.default_rng(3)
    for _ in range(2):
        batch = (rng.normal(size=(16, 3)), rng.uniform(-1, 1, (16, 1)), rng.normal(size=16),
                 rng.normal(size=(16, 3)), rng.random(16) < 0.1)
        assert rtl.train(*batch) == other.train(*batch)
        s = rng.normal(size=3)
        assert np.array_equal(rtl.act(s, explore=True), other.act(s, explore=True))
    want, got = other.state_dict(), rtl.state_dict()
    assert not [k for k in want if not np.array_equal(want[k], got[k])]


def _paired_runs(tmp_path, what: str, **settings) -> dict[str, Trainer]:
    """The same run on the golden and the rtl backends, which must end with
    identical state (weights, moments, precision state) and greedy returns;
    the caller closes runs["rtl"]."""
    runs = {}
    for backend in ("golden", "rtl"):
        t = Trainer(RunSettings(backend=backend, out=str(tmp_path / backend), **settings), log=lambda *_: None)
        t.train(progress=False)
        runs[backend] = t
    want, got = runs["golden"].backend.state_dict(), runs["rtl"].backend.state_dict()
    differ = [k for k in want if not np.array_equal(want[k], got[k])]
    if differ or runs["rtl"].evals != runs["golden"].evals:
        runs["rtl"].close()
        raise AssertionError(f"rtl and golden backends differ {what} in {differ or 'their returns'}")
    return runs


def test_rtl_and_golden_backends_agree_through_the_qat_switch(tmp_path):
    """QAT in the loop: the switch half way; same weights, quantizers and returns."""
    runs = _paired_runs(tmp_path, "after a QAT run", precision="qat", qat_delay=45,
                        **dict(SMALL, steps=60, eval_every=60, checkpoint_every=60))
    try:
        assert runs["rtl"].backend.host.quantized
        _load_and_train_on(runs["rtl"].backend, tmp_path / "other")
    finally:
        runs["rtl"].close()


def _small_variant(tmp_path, name: str, array_lines: str) -> str:
    """A TOML file of the small config named ``name`` with ``array_lines`` added to its [array] table."""
    toml = tmp_path / f"{name}.toml"
    toml.write_text((CONFIG_DIR / "small.toml").read_text().replace('name = "small"', f'name = "{name}"')
                    .replace("[array]\n", f"[array]\n{array_lines}\n"))
    return str(toml)


def _qat_runs(tmp_path, qat: dict) -> dict[str, Trainer]:
    """The same QAT run (switch at step 45) on the golden and rtl backends, trained."""
    runs = {b: Trainer(RunSettings(backend=b, out=str(tmp_path / b), precision="qat", qat_delay=45, **qat),
                       log=lambda *_: None) for b in ("golden", "rtl")}
    try:
        for t in runs.values():
            t.train(progress=False)
    except BaseException:
        runs["rtl"].close()
        raise
    return runs


@pytest.mark.slow      # a second build of the small engine; the RTL is the same, only the host's delta differs
def test_rtl_and_golden_backends_agree_with_power_of_two_quantizer_steps(tmp_path):
    """array.quantizer_scale = "pow2" on the small engine: the host sends
    power-of-two deltas at the switch, and phase 2 runs packed (two vectors
    per PE, the zero point's correction after the array): the same weights
    and evaluations as the golden model's."""
    qat = dict(SMALL, steps=60, eval_every=60, checkpoint_every=60,
               config=_small_variant(tmp_path, "small_pow2", 'quantizer_scale = "pow2"'))
    runs = _qat_runs(tmp_path, qat)
    try:
        deltas = [d for q in runs["golden"].backend.ddpg.qat.values() for d in q.delta]
        assert deltas and all(d & (d - 1) == 0 for d in deltas)
        # the engine's phase 2 ran packed (docs/program.md, "Packed phase 2")
        assert any(getattr(getattr(i, "op", None), "packed", False) for i in runs["rtl"].backend.host.prog.instrs)
        want, got = runs["golden"].backend.state_dict(), runs["rtl"].backend.state_dict()
        assert not [k for k in want if not np.array_equal(want[k], got[k])]
        assert runs["rtl"].evals == runs["golden"].evals
    finally:
        runs["rtl"].close()


@pytest.mark.slow      # CI time: the trainer bench runs qat16d's engine through the switch in CI
def test_rtl_and_golden_backends_agree_with_16_bit_errors(tmp_path):
    """Config qat16d's 16-bit errors on the small engine (docs/program.md,
    "16-bit errors"): the host reads the errors' trackers with every step's
    statistics and writes their steps with the next batch; the same
    weights, error scales and evaluations as the golden model's, and a
    checkpoint of the rtl run, loaded into a fresh rtl backend, trains on
    as the golden backend does from it."""
    qat = dict(SMALL, steps=60, eval_every=60, checkpoint_every=60, config=_small_variant(
        tmp_path, "small_q16d", 'quantizer_scale = "pow2"\nqat_errors = "fxp16_delayed"\nquantizers = 12'))
    runs = _qat_runs(tmp_path, qat)
    try:
        errors = runs["golden"].backend.ddpg.qat["critic.errors"]
        assert errors.frozen and any(errors.amax)
        want, got = runs["golden"].backend.state_dict(), runs["rtl"].backend.state_dict()
        assert not [k for k in want if not np.array_equal(want[k], got[k])]
        assert runs["rtl"].evals == runs["golden"].evals
        state = runs["rtl"].backend.state_dict()
        again = {b: Trainer(RunSettings(backend=b, out=str(tmp_path / f"again_{b}"), precision="qat", qat_delay=45,
                                        **qat), log=lambda *_: None).backend for b in ("golden", "rtl")}
        rng = np.random.default_rng(3)
        for backend in again.values():
            backend.load_state_dict(state)
        for _ in range(3):
            batch = (rng.normal(size=(16, 3)), rng.uniform(-1, 1, (16, 1)), rng.normal(size=16),
                     rng.normal(size=(16, 3)), rng.random(16) < 0.1)
            assert again["rtl"].train(*batch) == again["golden"].train(*batch)
        want, got = again["golden"].state_dict(), again["rtl"].state_dict()
        assert not [k for k in want if not np.array_equal(want[k], got[k])]
        again["rtl"].close()
    finally:
        runs["rtl"].close()


def test_rtl_backend_refuses_fxp16_from_scratch(tmp_path):
    with pytest.raises(ValueError, match="rtl backend runs fxp32, qat and bfp"):
        Trainer(RunSettings(backend="rtl", out=str(tmp_path), precision="fxp16", **SMALL), log=lambda *_: None)
    with pytest.raises(ValueError, match="needs the array's BFP front"):
        Trainer(RunSettings(backend="rtl", out=str(tmp_path / "b"), precision="bfp", **SMALL), log=lambda *_: None)


@pytest.mark.slow      # CI time: tb/test_engine.py's BFP steps check the same engine and host code every step
def test_rtl_and_golden_backends_agree_in_bfp(tmp_path):
    """`fixar train --backend rtl --precision bfp --config small_bfp` (the
    array's BFP front; its schedule checks every 4 steps): the same weights,
    moments, BFP widths and counters, and greedy returns as the golden backend."""
    runs = _paired_runs(tmp_path, "in BFP", precision="bfp", **dict(SMALL, config="small_bfp"))
    try:
        widths = [q.widths for q in runs["rtl"].backend.ddpg.qat.values()]
        assert any(w > 2 for ws in widths for w in ws), widths       # the schedule widened on the way
    finally:
        runs["rtl"].close()


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_rtl_and_golden_backends_agree_with_an_approximate_multiplier(tmp_path):
    """`fixar train --multiplier mbm` (issue 24, item 4): the engine generated
    with MBM's LUT multipliers in every PE and the golden model with MBM's
    functional model give the same weights, quantizers and returns through
    the QAT switch; and they differ from the exact multiplier's run."""
    qat = dict(SMALL, steps=50, eval_every=50, checkpoint_every=50)
    runs = _paired_runs(tmp_path, "with MBM", precision="qat", qat_delay=40, multiplier="mbm", **qat)
    exact = Trainer(RunSettings(backend="golden", out=str(tmp_path / "exact"), precision="qat", qat_delay=40, **qat),
                    log=lambda *_: None)
    exact.train(progress=False)
    try:
        assert runs["rtl"].cfg.pe.multiplier == "mbm" and runs["rtl"].cfg.name == "small_mbm"
        want = runs["golden"].backend.state_dict()
        ref = exact.backend.state_dict()
        assert [k for k in ref if not np.array_equal(ref[k], want[k])], "MBM trained exactly like exact"
    finally:
        runs["rtl"].close()
