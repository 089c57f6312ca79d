"""The training program: the compiler's errors, and the golden model running
the compiled program step for step equal to FixedDDPG, bit for bit."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from fixar.config import load
from fixar.golden.fixed import quantize
from fixar.golden.program import ProgramState, execute, program_params
from fixar.program import Adam, Grad, Matmul, ProgramError, Soft, Vec, compile_ddpg
from fixar.rl.golden_backend import GoldenBackend
from fixar.rl.hyper import Hyper

CFG = load("small")


def _squeeze(name, value, obs, obs_p):
    if name.startswith("critic") and name.endswith(".W0"):
        return np.hstack([value[:, :obs], value[:, obs_p:]])
    return value


@pytest.mark.parametrize("obs, act, hidden, batch", [(3, 1, (8, 8), 16), (5, 6, (6, 9), 12), (8, 2, (32, 32), 8)])
def test_program_step_equals_fixed_ddpg(obs, act, hidden, batch):
    hp = dataclasses.replace(Hyper(), hidden=hidden, batch=batch)
    backend = GoldenBackend(obs, act, hp, seed=3, cfg=CFG)
    ddpg = backend.ddpg
    R = CFG.array.rows
    obs_p = -(-obs // R) * R
    p = compile_ddpg(CFG, obs, act, hidden, batch)
    st = ProgramState(CFG, p, batch)
    for name, v in program_params(ddpg, p).items():
        st.t[name] = v
    rng = np.random.default_rng(7)
    fmt = CFG.pe.act32
    one = 1 << fmt.frac
    for step in range(3):
        S = quantize(rng.normal(size=(obs, batch)), fmt)
        A = quantize(rng.uniform(-1, 1, (act, batch)), fmt)
        Rw = quantize(rng.normal(size=(1, batch)), fmt)
        S2 = quantize(rng.normal(size=(obs, batch)), fmt)
        done = rng.random(batch) < 0.2
        lr = {name: copy.deepcopy(sched).next() for name, sched in ddpg.steps.items()}
        # the host's writes for this step
        st.write("[s;mu]", S)
        st.write("s^T", S)
        for name in ("[s;a]", "[s;a]^T"):
            st.write(name, S)
            st.write(name, A, obs_p)
        st.write("[s2;mu']", S2)
        st.write("r", Rw)
        st.write("done", np.where(done, one, 0)[None, :])
        st.write("ones^T", np.full((1, batch), one))
        st.write("-2^k/B", np.full((1, batch), ddpg.actor_error_code()))
        execute(st, {"gamma": ddpg.gamma, "tau": ddpg.tau, "loss_scale": ddpg.loss_scale,
                     "critic_lr": lr["critic"], "actor_lr": lr["actor"]}, ddpg.adam)
        ddpg.train(S, A, Rw[0], S2, done)
        want = program_params(ddpg, p)
        for name, value in want.items():
            assert np.array_equal(st.t[name], value), f"step {step}: {name} differs"
        for net in ("actor", "critic"):
            m, v = ddpg.moments[net]
            names = [n for w, b, _ in p.nets[net] for n in (w, b)]
            got_m = np.concatenate([_squeeze(n, st.m[n], obs, obs_p).ravel() for n in names])
            got_v = np.concatenate([_squeeze(n, st.v[n], obs, obs_p).ravel() for n in names])
            assert np.array_equal(got_m, m) and np.array_equal(got_v, v), f"step {step}: {net} moments differ"


def test_program_uses_every_unit_once_per_layer():
    p = compile_ddpg(CFG, 3, 1, (8, 8), 16)
    kinds = [type(i) for i in p.instrs]
    # 3 target forwards x 2 nets + critic + actor + critic(s, mu) forwards; backward
    # products: critic 2, through the critic 3, actor 2; gradients: 2 per layer, 6 layers
    assert kinds.count(Matmul) == 3 + 3 + 3 + 3 + 3 + 2 + 3 + 2
    assert kinds.count(Grad) == 12
    assert kinds.count(Adam) == 2 and kinds.count(Soft) == 2
    assert kinds.count(Vec) == 1 + 2 + 2 + 2 + 1 + 2   # TD, loss, masks, dtanh


def test_networks_that_do_not_fit_are_rejected_clearly():
    default = load("default")
    with pytest.raises(ProgramError, match=r"actor.W1 needs 200000 rows of the weight .* it has 65536 rows"):
        compile_ddpg(CFG, 17, 6, (400, 2000), 64)
    with pytest.raises(ProgramError, match=r"gradient of critic.W1: .* K = 608 inputs needs 608 partial-sum slots; array.psum_slots = 512"):
        compile_ddpg(default, 17, 6, (600, 30), 8)
    tight = default.variant(memory=dataclasses.replace(default.memory, act_words_per_core=16 * 4000))
    with pytest.raises(ProgramError, match=r"needs \d+ rows of the activation memory \(per core\)"):
        compile_ddpg(tight, 17, 6, (400, 300), 512)
    with pytest.raises(ProgramError, match="batch = 0"):
        compile_ddpg(CFG, 17, 6, (8, 8), 0)
    with pytest.raises(ProgramError, match="batch = 7: must be a multiple of array.cores = 2"):
        compile_ddpg(CFG, 17, 6, (8, 8), 7)
    compile_ddpg(default, 17, 6, (400, 300), 512)   # FIXAR's workload fits the default config


def test_acting_program_equals_fixed_ddpg_act():
    """The acting program (intra-layer forward, then NOISE) gives FixedDDPG's
    exploring action and leaves the noise generator in the same state."""
    hp = dataclasses.replace(Hyper(), hidden=(8, 8), batch=8)
    ddpg = GoldenBackend(5, 3, hp, seed=4, cfg=CFG).ddpg
    p = compile_ddpg(CFG, 5, 3, (8, 8), 8)
    st = ProgramState(CFG, p, 8)
    for name, v in program_params(ddpg, p).items():
        st.t[name] = v
    st.prng = int(ddpg.prng)
    rng = np.random.default_rng(2)
    for _ in range(5):
        s = quantize(rng.normal(size=5), CFG.pe.act32)
        st.write("state", s[:, None])
        execute(st, {"noise": ddpg.noise_scale}, None, acting=True)
        want = ddpg.act(s, explore=True)
        assert np.array_equal(st.t["action"][:3, 0], want)
        assert st.prng == int(ddpg.prng)


def test_cycle_model_matches_the_measured_engine():
    """The program cycle model against cycle counts the RTL bench measured
    (tb/trainer_bench.py asserts the same equality on every run)."""
    from fixar.program import step_cycles

    small = compile_ddpg(CFG, 8, 2, (32, 32), 16)
    assert step_cycles(CFG, small, 16, 9) == 12148
    assert step_cycles(CFG, small, 16, 9, acting=True) == 226
    default = load("default")
    big = compile_ddpg(default, 17, 6, (400, 300), 64)
    assert step_cycles(default, big, 64, 9) == 250284
