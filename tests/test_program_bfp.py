"""BFP training programs (docs/bfp.md, "BFP in the compiler"): the golden
model running the compiled BFP step equals FixedDDPG's BFP step bit for bit,
at fixed widths and through FAST's schedule (its check after the step, the
program recompiled when a layer widens), and acting converts as FixedDDPG
acts; what the array cannot run is refused at compile time in one line."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fixar.compiler.array_ops import ArrayOpError, LayerOp, describe
from fixar.compiler.bfp_step import begin_bfp_step, bfp_scalars, compile_bfp, end_bfp_step, finish_bfp_step
from fixar.compiler.execute import ProgramState, execute, program_params
from fixar.compiler.program import Grad, ProgramError, compile_ddpg, encode, step_cycles
from fixar.config import GStore, load
from fixar.golden.fixed import I64, quantize
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper

SMALL = load("small")
CFG = SMALL.variant(bfp=dataclasses.replace(SMALL.bfp, group=SMALL.array.rows))   # a group is a PE column


def _cfg(**bfp):
    return CFG.variant(bfp=dataclasses.replace(CFG.bfp, **bfp))


def _agents(cfg, obs, act, hidden, batch, fixed=None, seed=3):
    """FixedDDPG in BFP and its twin, whose state the host keeps for the program."""
    hp = dataclasses.replace(Hyper(), hidden=hidden, batch=batch)
    pair = [GoldenBackend(obs, act, hp, seed=seed, cfg=cfg).ddpg for _ in range(2)]
    for d in pair:
        d.use_bfp(fixed)
    return pair


def _batch_tensors(p, twin, obs, S, A, R, S2, done):
    """The host-written tensors of one batch (FXP32 values, samples in columns)."""
    cfg, B = twin.cfg, S.shape[1]
    obs_p = -(-obs // cfg.array.rows) * cfg.array.rows
    sa = np.zeros((obs_p + A.shape[0], B), dtype=I64)
    sa[:obs], sa[obs_p:] = S, A
    one = 1 << cfg.pe.act32.frac
    roles = {"s": S, "s^T": S, "[s;mu]": S, "[s;a]": sa, "[s;a]^T": sa, "s2": S2, "[s2;mu']": S2,
             "r": R.reshape(1, B), "done": np.where(done, one, 0).reshape(1, B),
             "ones": np.full((1, B), one), "actor_error": np.full((1, B), twin.actor_error_code())}
    return {p.inputs[role]: np.asarray(x, dtype=I64) for role, x in roles.items()}


def _same_agent(st, ddpg, twin, step):
    for name, value in program_params(ddpg, st.program).items():
        assert np.array_equal(st.t[name], value), f"step {step}: {name} differs"
    for net in ("actor", "critic"):
        assert twin.qat[net].state() == ddpg.qat[net].state(), f"step {step}: {net}'s BFP state differs"


def _train(cfg, obs, act, hidden, batch, steps, fixed=None, seed=3):
    """``steps`` program steps against FixedDDPG's; returns the agents and the widths over the run."""
    ddpg, twin = _agents(cfg, obs, act, hidden, batch, fixed, seed)
    st = ProgramState(cfg, compile_bfp(cfg, twin.qat, obs, act, hidden, batch), batch)
    for name, v in program_params(twin, st.program).items():
        st.t[name] = v
    rng, fmt, widths = np.random.default_rng(7), cfg.pe.act32, []
    for step in range(steps):
        S, S2 = (quantize(rng.normal(size=(obs, batch)), fmt) for _ in range(2))
        A = quantize(rng.uniform(-1, 1, (act, batch)), fmt)
        R, done = quantize(rng.normal(size=batch), fmt), rng.random(batch) < 0.2
        for name, X in _batch_tensors(st.program, twin, obs, S, A, R, S2, done).items():
            st.write(name, X)
        lr = {name: sched.next() for name, sched in twin.steps.items()}
        begin_bfp_step(twin.qat)
        execute(st, {"gamma": twin.gamma, "tau": twin.tau, "loss_scale": twin.loss_scale,
                     "critic_lr": lr["critic"], "actor_lr": lr["actor"], **bfp_scalars(twin.qat)}, twin.adam)
        before = [list(twin.qat[n].widths) for n in ("actor", "critic")]
        end_bfp_step(st, twin.qat, obs)
        ddpg.train(S, A, R, S2, done)
        _same_agent(st, ddpg, twin, step)
        after = [list(twin.qat[n].widths) for n in ("actor", "critic")]
        if after != before:         # the schedule widened a layer: the next step's program
            st.program = compile_bfp(cfg, twin.qat, obs, act, hidden, batch)
        widths.append(after)
    return ddpg, twin, st, widths


@pytest.mark.parametrize("m", [2, 4, 6, 8])
def test_a_fixed_width_program_step_equals_fixed_ddpg(m):
    _train(_cfg(schedule_every=0), 5, 2, (20, 12), 32, 3, fixed=m)


def test_the_scheduled_program_equals_fixed_ddpg_through_its_widening():
    """Checks every other step with a threshold that widens every layer at each
    check: the program changes widths three times and stays bit-exact."""
    *_, widths = _train(_cfg(schedule_every=2, threshold=0.0), 3, 1, (16, 16), 32, 7)
    assert widths[0] == [[4] * 3] * 2 and widths[-1] == [[8] * 3] * 2


def test_mixed_widths_and_a_critic_input_across_two_tiles():
    """obs = 17 pads s over two tiles; the layers at different widths (the
    schedule's threshold falls with depth, so some layers widen and some not)."""
    *_, widths = _train(_cfg(schedule_every=1, threshold=0.6, threshold_depth_halvings=3.0), 17, 3, (24, 16),
                        32, 3)
    assert any(len(set(w)) > 1 for ws in widths for w in ws), widths


def test_the_acting_program_converts_with_the_next_steps_seeds():
    cfg = _cfg(schedule_every=0)
    ddpg, twin, st, _ = _train(cfg, 5, 3, (16, 16), 32, 2, fixed=4)
    rng = np.random.default_rng(2)
    st.prng = int(ddpg.prng)
    for _ in range(3):
        s = quantize(rng.normal(size=5), cfg.pe.act32)
        st.write("state", s[:, None])
        execute(st, {"noise": ddpg.noise_scale, **bfp_scalars(twin.qat)}, None, acting=True)
        assert np.array_equal(st.t["action"][:3, 0], ddpg.act(s, explore=True))
    assert twin.qat["actor"].conversions == ddpg.qat["actor"].conversions      # acting used none up


def test_a_planted_bug_is_caught():
    """Transposed products grouping W along its inputs instead of its outputs."""
    import fixar.compiler.execute as ex
    real = ex._bfp_operands

    def wrong(st, op, scalars, A, X, axis_a, axis_x):
        return real(st, op, scalars, A, X, 1 if op.transpose else axis_a, axis_x)
    ex._bfp_operands = wrong
    try:
        with pytest.raises(AssertionError, match="differs"):
            _train(_cfg(schedule_every=0), 5, 2, (20, 12), 32, 1, fixed=4)
    finally:
        ex._bfp_operands = real


def test_bfp_programs_keep_bias_gradients_apart_and_are_refused_where_not_built():
    p = compile_bfp(CFG, _agents(CFG, 3, 1, (8, 8), 32)[1].qat, 3, 1, (8, 8), 32)
    grads = [i for i in p.instrs if isinstance(i, Grad)]
    assert all(i.op.gstore != GStore.BOTH for i in grads) and any(i.op.gstore == GStore.BIAS for i in grads)
    assert all(i.op.bfp for i in grads if i.op.gstore == GStore.WEIGHT)
    with pytest.raises(ProgramError, match="has no BFP front"):
        encode(CFG, p, 32)
    with pytest.raises(ProgramError, match="no cycle model for this BFP product"):
        step_cycles(CFG, p, 32)
    front = load("small_bfp")     # the array's BFP front: every product encodes, with its cycles
    words, act_pc = encode(front, p, 32)
    assert 0 < act_pc < len(words)
    plain = compile_ddpg(front, 3, 1, (8, 8), 32)
    assert step_cycles(front, p, 32) > step_cycles(front, plain, 32)


@pytest.mark.parametrize("change, match", [
    (dict(bfp_w=5), "bfp_w = 5"),
    (dict(bfp_x=3, bfp_w=4), "bfp_x = 3"),
    (dict(bfp_stream=2), "bfp_stream = 2"),
    (dict(fq=True), "no QAT quantizer"),
    (dict(grad=True, gstore=GStore.BOTH, bias=False, store=False), "bias gradient needs D unconverted"),
    (dict(grad=True, gstore=GStore.WEIGHT, bias=False, store=False, batch=36), "straddle"),
])
def test_bfp_products_the_array_cannot_run_are_refused(change, match):
    op = LayerOp(M=16, K=16, batch=32, store=True, bfp_w=4, bfp_x=4)
    describe(CFG, op)
    with pytest.raises(ArrayOpError, match="must equal array.rows"):
        describe(SMALL, op)
    with pytest.raises(ArrayOpError, match=match):
        describe(CFG, dataclasses.replace(op, **change))
    with pytest.raises(ArrayOpError, match="exp_bits"):
        describe(_cfg(exp_bits=4), op)


def test_a_bfp_program_needs_a_width_pair_per_layer():
    with pytest.raises(ProgramError, match="one \\(weight, input\\) mantissa width pair per layer"):
        compile_ddpg(CFG, 3, 1, (8, 8), 32, bfp={"actor": [(4, 4)] * 3, "critic": [(4, 4)] * 2})


def test_the_default_array_with_a_group_per_pe_column():
    """The shipped 2 x 16 x 16 config (bfp.group = array.rows = 16): 64-64 networks, B = 64, checks every step."""
    default = load("default")
    cfg = default.variant(bfp=dataclasses.replace(default.bfp, schedule_every=1, threshold=0.3))
    *_, widths = _train(cfg, 11, 3, (64, 64), 64, 2)
    assert widths[-1] != [[2] * 3] * 2


def test_fixed_widths_keep_no_inputs_and_fit_400_300_at_b512():
    """A run at fixed widths never checks, so its program keeps no layer
    inputs to the step's end: HalfCheetah's 400-300 fits at B = 512 in config
    bfp's activation memory, where a scheduled run's program does not."""
    cfg = load("bfp")
    fixed = _agents(cfg, 17, 6, (400, 300), 512, fixed=4)[1].qat
    p = compile_bfp(cfg, fixed, 17, 6, (400, 300), 512)
    assert p.bfp_inputs == {}
    assert step_cycles(cfg, p, 512) > step_cycles(cfg, compile_ddpg(cfg, 17, 6, (400, 300), 512), 512)
    scheduled = _agents(cfg, 17, 6, (400, 300), 512)[1].qat
    with pytest.raises(ProgramError, match="activation memory"):
        compile_bfp(cfg, scheduled, 17, 6, (400, 300), 512)
    small = compile_bfp(CFG, _agents(CFG, 3, 1, (8, 8), 32)[1].qat, 3, 1, (8, 8), 32)
    assert set(small.bfp_inputs) == {"actor", "critic"}


def test_a_check_step_on_a_program_without_its_inputs_is_refused():
    """The schedule's check on a program compiled without the inputs it reads: one clear error."""
    layers = _agents(CFG, 3, 1, (8, 8), 32, fixed=4)[1].qat
    p = compile_bfp(CFG, layers, 3, 1, (8, 8), 32)
    layers["actor"].checking = True       # what a scheduled network's check step would be
    with pytest.raises(ValueError, match="check step of the actor's schedule on a program compiled without"):
        finish_bfp_step(p, lambda name: None, layers, 3, CFG.array.rows)
