"""cocotb bench: whole DDPG training steps on the training engine (array,
vector unit, Adam lanes, controller running the compiled program), compared
after every step with the golden model running the same program: every
weight, bias, target and Adam moment, bit for bit.

With FIXAR_QAT_SWITCH = k the agent trains with QAT: phase 1 (ranges
tracked, compared after every step) until step k, then the switch (the host
reads the ranges, freezes the quantizers, loads their table and the phase-2
program) and phase 2 with the quantizers at the array's output stage.

Environment: FIXAR_CONFIG_JSON, FIXAR_NETS (JSON [obs, act, [h1, h2], batch]),
FIXAR_STEPS (training steps), FIXAR_QAT_SWITCH, FIXAR_BENCH_JSON (figures).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import cocotb
import numpy as np

from fixar.engine import EngineHost
from fixar.golden.fixed import quantize
from fixar.golden.program import ProgramState, execute
from fixar.program import step_cycles
from fixar.rl.golden_backend import GoldenBackend
from fixar.rl.hyper import Hyper
from fixar.tb.figures import record
from fixar.tb.trainer_tb import TB


@cocotb.test()
async def test_training_steps(dut):
    tb = TB(dut)
    cfg = tb.cfg
    obs, act, hidden, batch = json.loads(os.environ.get("FIXAR_NETS", "[8, 2, [32, 32], 16]"))
    steps = int(os.environ.get("FIXAR_STEPS", "20"))
    array_latency = int(os.environ["FIXAR_LATENCY"])
    qat_switch = int(os.environ.get("FIXAR_QAT_SWITCH", "-1"))
    hp = dataclasses.replace(Hyper(), hidden=tuple(hidden), batch=batch)
    ddpg = GoldenBackend(obs, act, hp, seed=11, cfg=cfg).ddpg
    if qat_switch >= 0:
        ddpg.enable_qat()
    host = EngineHost(cfg, ddpg, act, tuple(hidden), batch)   # the host's packing code, as the backends use it
    st = ProgramState(cfg, host.prog, batch)                 # the golden model runs the same program
    for name, value in host.params().items():
        st.t[name] = value
    fmt = cfg.pe.act32
    await tb.reset()

    # program, constant scalars, parameters, zero moments, noise seed
    await tb.apply(host.setup_writes())
    st.prng = host.prng_seed()
    await tb.set_prng(st.prng)
    run = tb.run

    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    total_cycles, matched = 0, 0
    start_wall = time.perf_counter()
    phase_cycles = {}
    for step in range(steps):
        if step == qat_switch:
            ranges = await tb.read(host.range_read())
            await tb.apply(host.switch_writes(ranges))
            params = {name: st.t[name] for name in host.params()}
            old = st
            st = ProgramState(cfg, host.prog, batch)         # the phase-2 program: same parameter rows
            st.t.update(params)
            st.m, st.v, st.prng, st.quant = old.m, old.v, old.prng, host.quantizer_table()
            dut._log.info("step %d: QAT switch; quantizers (Delta, z) %s", step, st.quant)
        prog = host.prog
        S_ = quantize(rng.normal(size=(obs, batch)), fmt)
        A_ = quantize(rng.uniform(-1, 1, (act, batch)), fmt)
        Rw = quantize(rng.normal(size=(batch,)), fmt)
        S2 = quantize(rng.normal(size=(obs, batch)), fmt)
        done = rng.random(batch) < 0.2
        lr = host.step_sizes()
        inputs = host.batch_tensors(S_, A_, Rw, S2, done)
        for name, X in inputs.items():
            st.write(name, X)
        await tb.apply(host.tensor_writes(inputs, batch) + host.step_writes(lr))
        execute(st, {"gamma": ddpg.gamma, "tau": ddpg.tau, "loss_scale": ddpg.loss_scale,
                     "critic_lr": lr["critic"], "actor_lr": lr["actor"]}, ddpg.adam)

        cycles = await run(0)
        total_cycles += cycles
        phase_cycles[host.quantized] = cycles
        model = step_cycles(cfg, prog, batch, array_latency)
        assert cycles == model, f"step {step}: {cycles} cycles measured, the program's cycle model says {model}"

        bad = []
        got = {k: await tb.read(r) for k, r in host.param_reads().items()}
        params, moments = host.decode_params(got)
        for name, value in params.items():
            want = st.t[name]
            if not np.array_equal(value, want):
                bad.append(name)
                idx = np.argwhere(value != want)
                dut._log.error("%s: %d of %d differ, first at %s: expected %d got %d", name, len(idx), want.size,
                               tuple(idx[0]), want[tuple(idx[0])], value[tuple(idx[0])])
            if name in moments:
                m, v = moments[name]
                if not (np.array_equal(m, st.m[name]) and np.array_equal(v, st.v[name])):
                    bad.append(f"{name} moments")
        if not host.quantized:                         # the range trackers (QAT phase 1)
            bits = cfg.pe.out.bits
            got = [tuple(v - (1 << bits) if v >> (bits - 1) else v for v in row)
                   for row in await tb.read(host.range_read())]
            if got != list(zip(st.lo, st.hi)):
                bad.append("ranges")
                dut._log.error("ranges: expected %s got %s", list(zip(st.lo, st.hi)), got)
        for key, r in host.stats_reads().items():       # q and y, the loop's training statistics
            value = host.decode_batch_row(await tb.read(r))
            if not np.array_equal(value, st.t[prog.outputs[key]][0]):
                bad.append(f"statistic {key}")
        # acting: one state through the actor in intra-layer mode, plus noise
        state = quantize(rng.normal(size=(obs, 1)), fmt)
        writes = host.state_writes(state)
        st.write("state", host.seen_input("actor", state))
        await tb.apply(writes)
        execute(st, {"noise": ddpg.noise_scale}, None, acting=True)
        act_cycles = await run(host.act_pc)
        model = step_cycles(cfg, prog, batch, array_latency, acting=True)
        assert act_cycles == model, f"acting: {act_cycles} cycles measured, the cycle model says {model}"
        for explore in (True, False):
            got = host.decode_action(await tb.read(host.action_read(explore)))
            want = st.t[prog.act_outputs["action" if explore else "mu"]][:act, 0]
            if not np.array_equal(got, want):
                bad.append(f"action (explore={explore})")
                dut._log.error("action: expected %s got %s", want, got)
        if tb.prng_state() != st.prng:
            bad.append("noise generator state")
        dut._log.info("step %d: %d cycles, acting %d cycles; %s", step, cycles, act_cycles,
                      "all state equal" if not bad else f"differ: {bad}")
        if bad:
            record(dut, {"test": "training_steps", "sim": cocotb.SIM_NAME, "nets": [obs, act, hidden, batch],
                         "steps": step + 1, "identical_steps": matched, "cycles_per_step": cycles})
        assert not bad, f"step {step}: RTL and golden model differ in {bad}"
        matched += 1
    record(dut, {"test": "training_steps", "sim": cocotb.SIM_NAME, "nets": [obs, act, hidden, batch],
                 "steps": steps, "identical_steps": matched, "cycles_per_step": total_cycles // max(steps, 1),
                 "act_cycles": act_cycles, "qat_switch": qat_switch,
                 "cycles_fxp32": phase_cycles.get(False), "cycles_qat_phase2": phase_cycles.get(True),
                 "wall_s": round(time.perf_counter() - start_wall, 1)})
