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

import json
import os
import time

import cocotb
import numpy as np

from fixar.compiler.program import step_cycles
from fixar.tb.figures import record
from fixar.tb.golden_twin import GoldenTwin
from fixar.sim.engine_tb import TB


@cocotb.test()
async def test_training_steps(dut):
    tb = TB(dut)
    cfg = tb.cfg
    nets = json.loads(os.environ.get("FIXAR_NETS", "[8, 2, [32, 32], 16]"))
    obs, act, hidden, batch = nets
    steps = int(os.environ.get("FIXAR_STEPS", "20"))
    array_latency = int(os.environ["FIXAR_LATENCY"])
    qat_switch = int(os.environ.get("FIXAR_QAT_SWITCH", "-1"))
    twin = GoldenTwin(cfg, nets, qat_switch >= 0, cocotb.RANDOM_SEED)
    host = twin.host
    await tb.reset()

    # program, constant scalars, parameters, zero moments, noise seed
    await tb.apply(host.setup_writes())
    await tb.set_prng(host.prng_seed())
    run = tb.run

    total_cycles, matched = 0, 0
    start_wall = time.perf_counter()
    phase_cycles = {}
    for step in range(steps):
        if step == qat_switch:
            await tb.apply(twin.switch_writes(await tb.read(host.range_read())))
            dut._log.info("step %d: QAT switch; quantizers (Delta, z) %s", step, twin.st.quant)
        prog = host.prog
        await tb.apply(twin.train_writes())
        cycles = await run(0)
        total_cycles += cycles
        phase_cycles[host.quantized] = cycles
        model = step_cycles(cfg, prog, batch, array_latency)
        assert cycles == model, f"step {step}: {cycles} cycles measured, the program's cycle model says {model}"

        bad = twin.param_mismatches({k: await tb.read(r) for k, r in host.param_reads().items()}, dut._log)
        if not host.quantized and twin.range_mismatch(await tb.read(host.range_read())):   # QAT phase 1
            bad.append("ranges")
        bad += twin.stat_mismatches({k: await tb.read(r) for k, r in host.stats_reads().items()})
        # acting: one state through the actor in intra-layer mode, plus noise
        await tb.apply(twin.act_writes())
        act_cycles = await run(host.act_pc)
        model = step_cycles(cfg, prog, batch, array_latency, acting=True)
        assert act_cycles == model, f"acting: {act_cycles} cycles measured, the cycle model says {model}"
        for explore in (True, False):
            got = host.decode_action(await tb.read(host.action_read(explore)))
            if not np.array_equal(got, twin.action(explore)):
                bad.append(f"action (explore={explore})")
                dut._log.error("action: expected %s got %s", twin.action(explore), got)
        if tb.prng_state() != twin.st.prng:
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
                 "clipped_errors": twin.st.clipped_errors,
                 "wall_s": round(time.perf_counter() - start_wall, 1)})
