"""The training program: the compiler's errors, and the golden model running
the compiled program step for step equal to FixedDDPG, bit for bit."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fixar.compiler.array_ops import LayerOp, cycles, describe
from fixar.compiler.execute import ProgramState, execute, program_params
from fixar.compiler.program import (
    ERROR_KEYS,
    Adam,
    Grad,
    Matmul,
    ProgramError,
    Soft,
    Vec,
    compile_ddpg,
    step_cycles,
)
from fixar.config import GStore, load
from fixar.driver.engine import EngineHost
from fixar.golden.fixed import quantize
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper

CFG = load("small")


def _squeeze(name, value, obs, obs_p):
    if name.startswith("critic") and name.endswith(".W0"):
        return np.hstack([value[:, :obs], value[:, obs_p:]])
    return value


def _compare(st, ddpg, p, obs, obs_p, step):
    for name, value in program_params(ddpg, p).items():
        assert np.array_equal(st.t[name], value), f"step {step}: {name} differs"
    for net in ("actor", "critic"):
        m, v = ddpg.moments[net]
        names = [n for w, b, _ in p.nets[net] for n in (w, b)]
        got_m = np.concatenate([_squeeze(n, st.m[n], obs, obs_p).ravel() for n in names])
        got_v = np.concatenate([_squeeze(n, st.v[n], obs, obs_p).ravel() for n in names])
        assert np.array_equal(got_m, m) and np.array_equal(got_v, v), f"step {step}: {net} moments differ"


def _run_steps(ddpg, twin, host, st, rng, steps, obs, act, batch, first=0, scale=1.0, reward=1.0):
    """``steps`` training steps: the program (golden executor, fed by the
    host's packing code ``host`` of the agent ``twin``) against FixedDDPG
    (states and rewards drawn with standard deviations ``scale`` and ``reward``)."""
    fmt = CFG.pe.act32
    R = CFG.array.rows
    obs_p = -(-obs // R) * R
    for step in range(first, first + steps):
        S = quantize(rng.normal(size=(obs, batch)) * scale, fmt)
        A = quantize(rng.uniform(-1, 1, (act, batch)), fmt)
        Rw = quantize(rng.normal(size=batch) * reward, fmt)
        S2 = quantize(rng.normal(size=(obs, batch)) * scale, fmt)
        done = rng.random(batch) < 0.2
        lr = host.step_sizes()
        for name, X in host.batch_tensors(S, A, Rw, S2, done).items():
            st.write(name, X)
        execute(st, {"gamma": twin.gamma, "tau": twin.tau, "loss_scale": twin.loss_scale,
                     "critic_lr": lr["critic"], "actor_lr": lr["actor"]}, twin.adam)
        ddpg.train(S, A, Rw, S2, done)
        _compare(st, ddpg, host.prog, obs, obs_p, step)


def _setup(obs, act, hidden, batch, seed=3, fuse_soft=True, cfg=CFG, packed=False):
    hp = dataclasses.replace(Hyper(), hidden=hidden, batch=batch)
    ddpg = GoldenBackend(obs, act, hp, seed=seed, cfg=cfg).ddpg
    twin = GoldenBackend(obs, act, hp, seed=seed, cfg=cfg).ddpg     # the host's copy, as the rtl backend keeps
    host = EngineHost(cfg, twin, act, hidden, batch, fuse_soft, packed=packed)
    st = ProgramState(cfg, host.prog, batch)
    for name, v in host.params().items():
        st.t[name] = v
    return ddpg, twin, host, st


@pytest.mark.parametrize("obs, act, hidden, batch", [(3, 1, (8, 8), 16), (5, 6, (6, 9), 12), (8, 2, (32, 32), 8)])
def test_program_step_equals_fixed_ddpg(obs, act, hidden, batch):
    ddpg, twin, host, st = _setup(obs, act, hidden, batch)
    _run_steps(ddpg, twin, host, st, np.random.default_rng(7), 3, obs, act, batch)


def test_soft_passes_instead_of_fused_give_the_same_step():
    """fuse_soft=False (the targets' weights by SOFT passes after both ADAMs)
    is the same step as the default program (inside the ADAM passes)."""
    ddpg, twin, host, st = _setup(5, 6, (6, 9), 12, fuse_soft=False)
    kinds = [(type(i).__name__, getattr(i, "soft", None), getattr(i, "weights", None)) for i in host.prog.instrs]
    assert ("Adam", False, None) in kinds and ("Soft", None, True) in kinds
    _run_steps(ddpg, twin, host, st, np.random.default_rng(7), 3, 5, 6, 12)


@pytest.mark.parametrize("obs, act, hidden, batch, packed", [(3, 1, (8, 8), 16, False), (5, 6, (6, 9), 12, False),
                                                              (3, 1, (8, 8), 16, True), (5, 6, (6, 9), 12, True),
                                                              (17, 6, (40, 30), 8, True)])
def test_program_through_the_qat_switch_equals_fixed_ddpg(obs, act, hidden, batch, packed):
    """QAT: phase-1 steps (the engine tracks the hidden layers' ranges, the
    host the networks' inputs), the switch (ranges -> quantizers -> table and
    phase-2 program), phase-2 steps with the quantizers at the output stage:
    FixedDDPG's QAT step bit for bit, ranges and quantizers included. With
    ``packed`` (power-of-two steps) phase 2 runs its forward products packed:
    the same bits."""
    cfg = CFG.variant(array=dataclasses.replace(CFG.array, quantizer_scale="pow2")) if packed else CFG
    ddpg, twin, host, st = _setup(obs, act, hidden, batch, cfg=cfg, packed=packed)
    ddpg.enable_qat()
    twin.enable_qat()
    rng = np.random.default_rng(11)
    _run_steps(ddpg, twin, host, st, rng, 3, obs, act, batch)
    ranges = [(lo & 0xFFFFFFFF, hi & 0xFFFFFFFF) for lo, hi in zip(st.lo, st.hi)]   # as the engine's port reads
    host.switch_writes(ranges)
    ddpg.switch_to_fxp16()
    for net in ("actor", "critic"):
        assert ddpg.qat[net].lo == twin.qat[net].lo and ddpg.qat[net].hi == twin.qat[net].hi, net
        assert ddpg.qat[net].delta == twin.qat[net].delta and ddpg.qat[net].zero == twin.qat[net].zero, net
    assert host.quantized and any(ins.op.fq for ins in host.prog.instrs if isinstance(ins, Matmul))
    forward = [ins.op for ins in host.prog.instrs if isinstance(ins, Matmul) and not ins.op.transpose]
    assert all(op.packed for op in forward) == packed and any(op.packed for op in forward) == packed
    params = {name: st.t[name] for name in host.params()}
    st2 = ProgramState(cfg, host.prog, batch)      # the phase-2 program; parameters and moments carry over
    st2.t.update(params)
    st2.m, st2.v, st2.prng = st.m, st.v, st.prng
    st2.quant = host.quantizer_table()
    # power-of-two steps round each range up (up to twice its span): states wider than
    # phase 1's make the hidden layers reach their quantizers' tops all the same
    _run_steps(ddpg, twin, host, st2, rng, 3, obs, act, batch, first=3, scale=8.0 if packed else 1.0)
    assert st2.clipped_errors > 0, "no error met a quantizer's top in phase 2: the masks' limits went untested"
    # acting after the switch: the 16-bit state through the quantized actor
    s = quantize(rng.normal(size=obs), CFG.pe.act32)
    for name, X in ((host.prog.act_inputs["state"], twin.qat["actor"].fake_quantize(0, s[:, None])),):
        st2.write(name, X)
    st2.prng = int(ddpg.prng)
    execute(st2, {"noise": ddpg.noise_scale}, None, acting=True)
    assert np.array_equal(st2.t["action"][:act, 0], ddpg.act(s, explore=True))


def _ranges(st):
    return [(lo & 0xFFFFFFFF, hi & 0xFFFFFFFF) for lo, hi in zip(st.lo, st.hi)]   # as the engine's port reads


def _clipped(cfg, quant, ranges, entries):
    """Hidden errors whose range went past their quantizer's codes (half-up:
    q = floor(E 2^-s + 1/2) outside [-2^15, 2^15 - 1])."""
    out = 0
    for index, _, _ in entries:
        s = quant[index][0].bit_length() - 1 - cfg.pe.act16.bits
        lo, hi = (v - (1 << 32) if v >> 31 else v for v in ranges[index])
        out += 2 * hi >= ((1 << 16) - 1) << s or 2 * lo < -(((1 << 16) + 1) << s)
    return out


def test_16_bit_errors_through_the_qat_switch_equal_fixed_ddpg():
    """qat16d's numerics compiled (docs/program.md, "16-bit errors"): phase 1
    tracks each hidden error's range per step; at the switch and after every
    phase-2 step the host sets each error's step from its tracker; phase 2
    quantizes the errors at the output stage into codes that the next
    transposed product reads packed and the gradients read as D. FixedDDPG's
    step bit for bit, through errors that grew past their step and clipped
    and steps that changed between training steps."""
    cfg = CFG.variant(array=dataclasses.replace(CFG.array, quantizer_scale="pow2", qat_errors="fxp16_delayed",
                                                quantizers=12))
    obs, act, hidden, batch = 5, 2, (8, 9), 8
    ddpg, twin, host, st = _setup(obs, act, hidden, batch, cfg=cfg, packed=True)
    ddpg.enable_qat()
    twin.enable_qat()
    rng = np.random.default_rng(5)
    for n in range(3):          # phase 1: the host takes each step's error ranges
        _run_steps(ddpg, twin, host, st, rng, 1, obs, act, batch, first=n)
        assert host.take_error_ranges(_ranges(st)) == []
    host.switch(_ranges(st))
    ddpg.switch_to_fxp16()
    same_amax = lambda: all(twin.qat[k].amax == ddpg.qat[k].amax for k in ERROR_KEYS)
    assert same_amax() and all(a > 0 for k in ERROR_KEYS for a in ddpg.qat[k].amax[1:])
    ops = [ins.op for ins in host.prog.instrs if isinstance(ins, (Matmul, Grad))]
    assert sum(op.pq_lane == 3 for op in ops) == 3          # each pass's top error: a pair store
    assert sum(op.transpose and op.packed and op.fq for op in ops) == 3   # the next error from its codes, packed
    assert sum(op.grad and op.pq_q > 0 for op in ops) == 4  # two passes: the gradients below the top read codes
    st2 = ProgramState(cfg, host.prog, batch)
    st2.t.update({name: st.t[name] for name in host.params()})
    st2.m, st2.v, st2.prng = st.m, st.v, st.prng
    st2.quant = host.quantizer_table()
    entries = list(host.error_entries())
    steps, clipped = [], 0
    # a TD error 300 times the last step's (the rewards), then back
    for n, reward in enumerate((1.0, 1.0, 300.0, 300.0, 1.0, 1.0)):
        steps.append([st2.quant[index][0] for index, _, _ in entries])
        _run_steps(ddpg, twin, host, st2, rng, 1, obs, act, batch, first=3 + n, reward=reward)
        clipped += _clipped(cfg, st2.quant, _ranges(st2), entries)
        assert len(host.take_error_ranges(_ranges(st2))) == len(entries) and same_amax()
        st2.quant = host.quantizer_table()
    assert clipped > 0, "no error outgrew its step: the delayed scale's clipping went untested"
    assert any(a != b for a, b in zip(steps, steps[1:])), "no error's step changed between steps"


def test_16_bit_errors_cost_packed_transposed_products_at_fixars_scale():
    """qat16d's phase 2 at 400-300, B = 512, by the cycle model: each
    transposed product on codes costs what a packed forward product of its
    shape costs (half the slots, plus the correction's), the pair stores
    what the FXP32 product costs, and the step at least 15 % fewer cycles
    than qat_pow2's (packed forward products only)."""
    steps = {}
    for name in ("qat_pow2", "qat16d"):
        cfg = load(name)
        tops = {(n, i): 1 << 20 for n in ("actor", "critic") for i in range(1, 3)}
        p = compile_ddpg(cfg, 17, 6, (400, 300), 512, quantized=True, tops=tops, tanh_limit=1 << 16, packed=True,
                         quantizers=[(1 << 20, 1 << 15)] * cfg.array.quantizers)
        steps[name] = step_cycles(cfg, p, 512)
        for ins in p.instrs:
            op = ins.op if isinstance(ins, Matmul) else None
            if op is None or not op.transpose:
                continue
            forward = LayerOp(M=op.K, K=op.M, batch=512, mode=op.mode, packed=op.packed, bias=False)
            assert cycles(cfg, describe(cfg, op), 9) == cycles(cfg, describe(cfg, forward), 9), ins.y
            assert op.packed == (name == "qat16d" and op.pq_lane != 3)
    assert steps["qat16d"] < 0.85 * steps["qat_pow2"], steps


def test_program_uses_every_unit_once_per_layer():
    p = compile_ddpg(CFG, 3, 1, (8, 8), 16)
    kinds = [type(i) for i in p.instrs]
    # 3 target forwards x 2 nets + critic + actor + critic(s, mu) forwards; backward
    # products: critic 2, through the critic 3, actor 2; gradients: 1 per layer (its bias
    # gradient in the same product's ones slot), 6 layers
    assert kinds.count(Matmul) == 3 + 3 + 3 + 3 + 3 + 2 + 3 + 2
    grads = [i for i in p.instrs if isinstance(i, Grad)]
    assert len(grads) == 6 and all(g.op.gstore == GStore.BOTH and g.bias for g in grads)
    assert kinds.count(Adam) == 2 and kinds.count(Soft) == 2
    assert kinds.count(Vec) == 1 + 2 + 1   # TD, loss, dtanh: the ReLU masks are in the transposed products
    masked = [i for i in p.instrs if isinstance(i, Matmul) and i.op.mask]
    assert len(masked) == 2 + 2 + 2 and all(i.op.transpose and i.m for i in masked)


def test_networks_that_do_not_fit_are_rejected_clearly():
    default = load("default")
    with pytest.raises(ProgramError, match=r"actor.W1 needs 200000 rows of the weight .* it has 65536 rows"):
        compile_ddpg(CFG, 17, 6, (400, 2000), 64)
    with pytest.raises(ProgramError, match=r"gradient of critic.W1: .* K = 608 inputs needs 608 partial-sum slots; "
                                           r"array.psum_slots = 512"):
        compile_ddpg(default, 17, 6, (600, 30), 8)
    tight = default.variant(memory=dataclasses.replace(default.memory, act_words_per_core=16 * 4000))
    with pytest.raises(ProgramError, match=r"needs \d+ rows of the activation memory \(per core\)"):
        compile_ddpg(tight, 17, 6, (400, 300), 512)
    with pytest.raises(ProgramError, match="batch = 0"):
        compile_ddpg(CFG, 17, 6, (8, 8), 0)
    with pytest.raises(ProgramError, match="batch = 7: must be a multiple of array.cores = 2"):
        compile_ddpg(CFG, 17, 6, (8, 8), 7)
    compile_ddpg(default, 17, 6, (400, 300), 512)   # FIXAR's workload fits the default config


def _packed_phase2(cfg, batch, **kw):
    tops = {(net, i): 1 << 20 for net in ("actor", "critic") for i in range(3)}
    return compile_ddpg(cfg, 17, 6, (400, 300), batch, quantized=True, tops=tops, tanh_limit=1 << 20,
                        packed=True, **{"quantizers": [(1 << 20, 1 << 15)] * cfg.array.quantizers, **kw})


def test_packed_phase_2_needs_its_quantizers_and_whole_pairs():
    pow2 = load("qat_pow2")
    with pytest.raises(ProgramError, match="power-of-two quantizer steps"):
        _packed_phase2(load("default"), 64)
    with pytest.raises(ProgramError, match="batch = 66: packed products need a multiple of 2 x array.cores = 4"):
        _packed_phase2(pow2, 66)
    with pytest.raises(ProgramError, match="the quantizer table"):
        _packed_phase2(pow2, 64, quantizers=None)
    with pytest.raises(ProgramError, match="phase 1 runs FXP32"):
        compile_ddpg(pow2, 17, 6, (400, 300), 64, packed=True, quantizers=[(1 << 20, 0)] * 8)


def test_packed_phase_2_fits_fixars_workload_with_its_mask_rows_apart():
    """At B = 512 the packed stores' mask rows (the FXP32 layout's) live in the
    mask memory beside the codes, not in activation rows of their own; no
    FXP32 store's mask bits land on them while they are live."""
    p = _packed_phase2(load("qat_pow2"), 512)
    masks = [t for t in p.tensors.values() if t.space == "M"]
    assert masks and all(t.rows == 2 * p.tensors[t.name.removesuffix(".mask")].rows for t in masks)
    writers = [ins for ins in p.instrs if isinstance(ins, Matmul) and ins.y and not ins.op.packed]
    for ins in writers:
        y = p.tensors[ins.y]
        for t in masks:
            overlap = y.base < t.base + t.rows and t.base < y.base + y.rows
            live = any(getattr(j, "ym", None) == t.name for j in p.instrs[:p.instrs.index(ins)]) and \
                any(getattr(j, "m", None) == t.name for j in p.instrs[p.instrs.index(ins):])
            assert not (overlap and live), f"{ins.y}'s mask bits land on {t.name} while it is live"


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
    (tb/test_engine.py asserts the same equality on every run)."""
    from fixar.compiler.program import step_cycles
    from fixar.config.timing import timing

    latency = timing(CFG).array   # what the array's manifest carries
    small = compile_ddpg(CFG, 8, 2, (32, 32), 16)
    # measured (tb/test_engine.py, 20 steps through the QAT switch): 9108 with the TD's flagged VEC
    # streamed (2n + 7 per core instead of 8 a row); 9302 with the activation table's
    # words registered again before the product (one more cycle per array operation);
    # 9274 with the exact multiplier's
    # DSP48E2 M register (one more cycle per array operation); 9246 with the cores' outputs registered
    # where they are stored (one more cycle per array operation); 9218 with the other cores' sums
    # registered where they enter core 0 (an SLR crossing: one cycle per array operation);
    # 9190 with Adam's v sum in two
    # stages (48); 9187 with the vector unit (11 stages), Adam (47), the PE output stage (6), the
    # core (7 + 6 + 11) pipelined to the logic
    # estimate's 3.5 ns; 8719 with the critic's Adam weight pass beside the actor's forward pass;
    # 9130 with each bias gradient in its weight gradient's ones slot; 9472 with separate
    # bias-gradient products, Adam (23 stages), the activation units (5) and the QAT quantizer (7)
    # pipelined for the clock; 9238 before (Adam 7, activation 2, quantizer 5); 9976 with a SOFT
    # pass at one weight row per cycle, 10710 at two, 12318 with the VEC RELU_MASK passes too
    assert step_cycles(CFG, small, 16, latency) == 9108
    # acting: 294 before the activation's second table register,
    # 291 before the multiplier's M register, 285 before the crossing registers, 256 before the pipelining
    assert step_cycles(CFG, small, 16, latency, acting=True) == 297
    tops = {(net, i): 1 << 20 for net in ("actor", "critic") for i in range(3)}
    assert step_cycles(CFG, compile_ddpg(CFG, 8, 2, (32, 32), 16, quantized=True, tops=tops, tanh_limit=1 << 20),
                       16, latency) == 9108
    default = load("default")
    big = compile_ddpg(default, 17, 6, (400, 300), 64)
    # make bench trainer measures it on the default engine (summary.json's train_step_cycles_b64):
    # 186 236 with the TD streamed (measured at 24d262c); 187 102 with the activation's second table register;
    # 187 074 with the exact multiplier's M register;
    # 187 046 with the cores' sums and outputs registered at the SLR crossings (187 018 with the sums alone);
    # 186 990 with Adam's v sum in two stages; 186 987 with the units pipelined to the logic
    # estimate's 3.5 ns; 186 135 with the critic's
    # Adam weight pass beside the actor's forward pass; 195 266 with the
    # bias gradients folded into the weight gradients; 198 104 with the units
    # pipelined for the clock; 197 870 before, with the targets' weights
    # soft-updated in the Adam passes (215 680 with a SOFT pass at one weight row per cycle, 233 486 at
    # two, 250 454 with the VEC RELU_MASK passes)
    assert step_cycles(default, big, 64, latency) == 186236


def test_a_weight_gradient_with_no_slot_left_keeps_its_bias_gradient_apart():
    """K + 1 partial-sum slots are needed to fold the bias gradient in; a layer
    whose padded input fills every slot gets the separate bias-gradient product."""
    import dataclasses

    cfg = load("small")
    full = cfg.array.psum_slots
    tight = dataclasses.replace(cfg, array=dataclasses.replace(cfg.array, psum_slots=32))
    p = compile_ddpg(tight, 8, 2, (32, 24), 16)
    kinds = {(g.param.split(".")[0], g.param.split(".")[1][1:], g.op.gstore) for g in p.instrs if isinstance(g, Grad)}
    assert ("critic", "1", GStore.WEIGHT) in kinds and ("critic", "1", GStore.BIAS) in kinds   # K = 32: no slot left
    assert ("critic", "2", GStore.BOTH) in kinds                                                # K = 24 + 1 <= 32
    assert full > 32
