"""Issue 25 item 5, the winner on the RTL: the engine's acting program of a
deployed mixed-BFP actor (host-converted weights used as they are, each
layer's input converted in the array at the policy's width) gives HAQ's
golden BfpActor's actions bit for bit. Here on the golden program executor
(the contract between the host's seed numbering and BfpActor's); the slow
test runs the same on the `rtl` backend under Verilator."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fixar.haq.actor as haq_actor
from fixar.compiler.execute import ProgramState, execute, program_params
from fixar.config import Scalar, load
from fixar.driver.engine import EngineHost
from fixar.golden.fixed import dequantize, quantize
from fixar.haq.actor import BfpActor
from fixar.haq.verify import deployed_act_cycles, main, parse_policy, run
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.backends.rtl import RtlBackend
from fixar.rl.hyper import Hyper

CFG = load("small_bfp")          # groups of 4 = its PE columns
OBS, ACT, HIDDEN, BATCH = 3, 1, (8, 8), 16
POLICY = ((8, 6), (4, 4), (8, 2))
HP = dataclasses.replace(Hyper(), hidden=HIDDEN, batch=BATCH)


def _actor(seed=5):
    return GoldenBackend(OBS, ACT, HP, seed=seed, cfg=CFG).ddpg


def _engine_actions(policy, states):
    """The deployed acting program on the golden executor, fed as the host feeds the engine."""
    ddpg = _actor()
    golden = BfpActor(CFG, ddpg.actor, policy)
    host = EngineHost(CFG, ddpg, ACT, HIDDEN, BATCH)
    ddpg.actor.W = [w.copy() for w in golden.W]
    host.deploy_bfp([a for _, a in policy])
    st = ProgramState(CFG, host.prog, BATCH)
    st.t.update(program_params(ddpg, host.prog))
    out = []
    for s in states:
        code = quantize(s, CFG.pe.act32)
        (base,) = [w.words[0] for w in host.state_writes(code) if w.port == "scal" and w.base == Scalar.BFP_BASES]
        st.write(host.prog.act_inputs["state"], code[:, None])
        execute(st, {"noise": 0, "bfp_base_actor": base, "bfp_base_critic": 0}, None, acting=True)
        mu = st.t[host.prog.act_outputs["mu"]][:ACT, 0]
        out.append(dequantize(mu, CFG.pe.act32).astype(np.float32))
    return out


def _states(n=6):
    return list(np.random.default_rng(3).uniform(-1, 1, (n, OBS)))


def test_the_deployed_acting_program_gives_bfp_actors_actions():
    states = _states()
    golden = BfpActor(CFG, _actor().actor, POLICY)
    expected = [golden.act(s) for s in states]
    got = _engine_actions(POLICY, states)
    assert all(np.array_equal(e, g) for e, g in zip(expected, got)), (expected, got)
    # narrow inputs change the actions: the comparison sees the conversions
    exact = [_actor().act(quantize(s, CFG.pe.act32), explore=False) for s in states]
    assert any(not np.array_equal(dequantize(x, CFG.pe.act32).astype(np.float32), g) for x, g in zip(exact, got))


def test_a_planted_seed_numbering_is_caught(monkeypatch):
    """BfpActor drawing layer i's input seed from place i (its numbering before the RTL ran it)."""
    states = _states()
    got = _engine_actions(POLICY, states)
    monkeypatch.setattr(haq_actor, "input_seed_place", lambda call, i, layers: (call * 8 + i) & 0xFFFFFFFF)
    golden = BfpActor(CFG, _actor().actor, POLICY)
    assert any(not np.array_equal(golden.act(s), g) for s, g in zip(states, got))


def test_the_model_prices_every_policy_alike_on_this_array():
    """The array converts a product's operands in its front at every width, so
    a deployed actor's acting pass costs the same at every width (why the
    haq latency figures are the lane columns' projection, docs/haq.md)."""
    cycles = {deployed_act_cycles(CFG, OBS, ACT, HIDDEN, BATCH, [m] * 3) for m in CFG.bfp.widths}
    assert len(cycles) == 1 and cycles.pop() > 0


def test_refusals_are_one_line():
    with pytest.raises(ValueError, match="one wXaY per layer"):
        parse_policy("w8a6,w8a4", 3)
    with pytest.raises(ValueError, match="one wXaY per layer"):
        parse_policy("w8,w8a4,w8a2", 3)
    assert parse_policy("w8a6, w8a4,w8a2", 3) == ((8, 6), (8, 4), (8, 2))
    host = EngineHost(CFG, _actor(), ACT, HIDDEN, BATCH)
    with pytest.raises(ValueError, match="one input width per layer"):
        host.deploy_bfp([4, 4])
    engine = RtlBackend(OBS, ACT, HP, 5, cfg=CFG)         # not started: nothing here reaches the simulator
    with pytest.raises(ValueError, match="shapes"):
        engine.deploy_bfp(engine.ddpg.actor.W[:2], engine.ddpg.actor.b, [4, 4, 4])
    engine.deploy_bfp(engine.ddpg.actor.W, engine.ddpg.actor.b, [4, 4, 4])
    with pytest.raises(ValueError, match="does not train"):
        engine.train(np.zeros((BATCH, OBS)), np.zeros((BATCH, ACT)), np.zeros(BATCH), np.zeros((BATCH, OBS)),
                     np.zeros(BATCH))
    plain = RtlBackend(OBS, ACT, HP, 5, cfg=load("small"))
    with pytest.raises(ValueError, match="BFP front"):
        plain.deploy_bfp(plain.ddpg.actor.W, plain.ddpg.actor.b, [4, 4, 4])


@pytest.mark.parametrize("argv, message", [
    (["--config", "small", "--policy", "w8a8,w8a8,w8a8"], "no BFP front"),
    (["--config", "no_such_config"], "no_such_config"),
    (["--policy", "w8a8"], "one wXaY per layer"),
    (["--episodes", "0", "--policy", "w8a8,w8a8,w8a8"], "--episodes"),
])
def test_the_command_refuses_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.slow
def test_the_deployed_actor_on_the_rtl_backend_is_bit_exact():
    """One Pendulum episode (200 acting passes) under Verilator: every action
    bit for bit, every pass at the cycle model's count."""
    ddpg = _actor()
    engine = RtlBackend(OBS, ACT, HP, 5, cfg=CFG, log=lambda *_: None)
    try:
        verdict = run(CFG, ddpg.actor, POLICY, engine, "Pendulum-v1", 0, 1, log=lambda *_: None)
    finally:
        engine.close()
    assert verdict.steps == 200 and verdict.mismatches == 0, verdict
    assert verdict.act_cycles_rtl == [verdict.act_cycles_model], verdict


@pytest.mark.slow
def test_a_planted_seed_base_is_caught_on_the_rtl(monkeypatch):
    """The host writing each acting pass's seed base one place too far."""
    real = EngineHost._deployed_base_writes

    def shifted(self):
        (w,) = real(self)
        return [dataclasses.replace(w, words=((w.words[0] + 1) & 0xFFFFFFFF,))]

    monkeypatch.setattr(EngineHost, "_deployed_base_writes", shifted)
    engine = RtlBackend(OBS, ACT, HP, 5, cfg=CFG, log=lambda *_: None)
    try:
        verdict = run(CFG, _actor().actor, POLICY, engine, "Pendulum-v1", 0, 1, log=lambda *_: None)
    finally:
        engine.close()
    assert verdict.mismatches > 0 and not verdict.passed, verdict
