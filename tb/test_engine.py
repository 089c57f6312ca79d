"""Whole DDPG training steps on the training engine (gen module
fixar_trainer: array, vector unit, Adam lanes, controller running the
compiled program), compared after every step with the golden model running
the same program: every weight, bias, target and Adam moment, bit for bit.
The TB, its cocotb test (module ``fixar.tb.test_engine``) and the pytest
entries (small config: 2 cores of 4 x 4, unless said otherwise).

With FIXAR_QAT_SWITCH = k the agent trains with QAT: phase 1 (ranges
tracked, compared after every step) until step k, then the switch (the host
reads the ranges, freezes the quantizers, loads their table and the phase-2
program) and phase 2 with the quantizers at the array's output stage.

Environment: FIXAR_NETS (JSON [obs, act, [h1, h2], batch]), FIXAR_STEPS
(training steps), FIXAR_QAT_SWITCH, FIXAR_FUSE_SOFT (0: the targets' weights
by SOFT passes instead of inside ADAM), FIXAR_PHASE2_STATE_SCALE (the states'
standard deviation after the switch; 1 before), FIXAR_BFP (1: every product
in BFP, FAST's schedule), FIXAR_BFP_FIXED (with it: every layer at that many
mantissa bits, no schedule, so no inputs read back), FIXAR_BENCH_JSON (figures).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time

import cocotb
import numpy as np
import pytest

from fixar.compiler.program import Grad, step_cycles, step_scaled_errors
from fixar.config import load
from fixar.sim import engine_tb
from fixar.sim.rtl import generated, run_module, run_mutated
from fixar.tb.base import BenchTB
from fixar.tb.figures import record
from fixar.tb.golden_twin import GoldenTwin

BENCH = "fixar.tb.test_engine"
NETS = [8, 2, [32, 32], 16]   # the small networks: 8 -> 32 -> 32 -> 2, B = 16


class TB(BenchTB, engine_tb.TB):
    """The engine's host-port driver (fixar.sim.engine_tb.TB: writes, reads,
    program runs; the co-simulation drives the engine with the same code),
    clocked and reset by the benches' shared base."""

    IDLE = engine_tb.HOST_PORTS
    SETTLE_EDGES = 1
    # engine_tb.TB.run counts cycles in its own clock period
    PERIOD_NS = engine_tb.PERIOD_NS

    def __init__(self, dut):
        engine_tb.TB.__init__(self, dut)   # whatever state the driver keeps
        BenchTB.__init__(self, dut)        # the same dut, cfg and edge; starts the clock


# ---------------------------------------------------------------- cocotb tests

@cocotb.test()
async def test_training_steps(dut):
    tb = TB(dut)
    cfg = tb.cfg
    nets = json.loads(os.environ.get("FIXAR_NETS", json.dumps(NETS)))
    obs, act, hidden, batch = nets
    steps = int(os.environ.get("FIXAR_STEPS", "20"))
    qat_switch = int(os.environ.get("FIXAR_QAT_SWITCH", "-1"))
    fuse_soft = os.environ.get("FIXAR_FUSE_SOFT", "1") == "1"
    bfp = os.environ.get("FIXAR_BFP", "0") == "1"
    fixed = int(os.environ["FIXAR_BFP_FIXED"]) if os.environ.get("FIXAR_BFP_FIXED") else None   # no schedule
    twin = GoldenTwin(cfg, nets, qat_switch >= 0, cocotb.RANDOM_SEED, fuse_soft, bfp=bfp, bfp_fixed=fixed)
    host = twin.host
    await tb.reset()

    # program, constant scalars, parameters, zero moments, noise seed
    await tb.apply(host.setup_writes())
    await tb.set_prng(host.prng_seed())
    run = tb.run

    total_cycles, matched, per_step = 0, 0, []
    start_wall = time.perf_counter()
    phase_cycles = {}
    ranges, narrowed = twin.ranges(), 0      # trackers that restarted with their product and came out narrower
    for step in range(steps):
        if step == qat_switch:
            await tb.apply(twin.switch_writes(await tb.read(host.range_read())))
            twin.state_scale = float(os.environ.get("FIXAR_PHASE2_STATE_SCALE", "1"))
            ranges = twin.ranges()      # the phase-2 program's golden trackers start from zero
            dut._log.info("step %d: QAT switch; quantizers (Delta, z) %s", step, twin.st.quant)
        prog = host.prog
        await tb.apply(twin.train_writes())
        cycles = await run(0)
        total_cycles += cycles
        phase_cycles[host.quantized] = cycles
        model = step_cycles(cfg, prog, batch, tb.latency)
        assert cycles == model, f"step {step}: {cycles} cycles measured, the program's cycle model says {model}"

        bad = twin.param_mismatches({k: await tb.read(r) for k, r in host.param_reads().items()}, dut._log)
        if not host.quantized and twin.range_mismatch(await tb.read(host.range_read())):   # QAT phase 1
            bad.append("ranges")
        narrowed += sum(lo > lo0 or hi < hi0 for (lo0, hi0), (lo, hi) in zip(ranges, twin.ranges()))
        ranges = twin.ranges()
        bad += twin.stat_mismatches({k: await tb.read(r) for k, r in host.stats_reads().items()})
        if bfp:     # the schedule after the step, on a check step from the inputs read back
            widths = [list(host.bfp_layers[n].widths) for n in ("actor", "critic")]     # this step's
            per_step.append({"cycles": cycles, "widths": widths})
            got = {k: await tb.read(r) for k, r in host.bfp_input_reads().items()} if twin.checking else None
            bad += twin.bfp_input_mismatches(got) if got else []
            await tb.apply(twin.end_bfp_step(got))
        if step_scaled_errors(cfg) and host.quantizers is not None:     # 16-bit errors: each step's ranges
            rows = await tb.read(host.range_read())
            if twin.error_range_mismatch(rows):
                bad.append("error ranges")
            await tb.apply(twin.error_writes(rows))
        # acting: one state through the actor in intra-layer mode, plus noise
        await tb.apply(twin.act_writes())
        act_cycles = await run(host.act_pc)
        model = step_cycles(cfg, prog, batch, tb.latency, acting=True)
        assert act_cycles == model, f"acting: {act_cycles} cycles measured, the cycle model says {model}"
        for explore in (True, False):
            got = host.decode_action(await tb.read(host.action_read(explore)))
            if not np.array_equal(got, twin.action(explore)):
                bad.append(f"action (explore={explore})")
                dut._log.error("action: expected %s got %s", twin.action(explore), got)
        if tb.prng_state() != twin.st.prng:
            bad.append("noise generator state")
        dut._log.info("step %d: %d cycles, acting %d cycles%s; %s", step, cycles, act_cycles,
                      f", BFP widths {widths}" if bfp else "", "all state equal" if not bad else f"differ: {bad}")
        if bad:
            record(dut, {"test": "training_steps", "sim": cocotb.SIM_NAME, "nets": [obs, act, hidden, batch],
                         "steps": step + 1, "identical_steps": matched, "cycles_per_step": cycles})
        assert not bad, f"step {step}: RTL and golden model differ in {bad}"
        matched += 1
    record(dut, {"test": "training_steps", "sim": cocotb.SIM_NAME, "nets": [obs, act, hidden, batch],
                 "steps": steps, "identical_steps": matched, "cycles_per_step": total_cycles // max(steps, 1),
                 "act_cycles": act_cycles, "qat_switch": qat_switch,
                 "bfp_widths": [list(host.bfp_layers[n].widths) for n in ("actor", "critic")] if bfp else None,
                 "bfp_steps": per_step or None,      # each BFP step's cycles and the widths it ran at
                 "bfp_kept_inputs": sum(len(v) for v in host.prog.bfp_inputs.values()),   # held for a check
                 "cycles_fxp32": phase_cycles.get(False), "cycles_qat_phase2": phase_cycles.get(True),
                 "clipped_errors": twin.st.clipped_errors, "narrowed_ranges": narrowed,
                 "packed_products": sum(1 for ins in host.prog.instrs if getattr(getattr(ins, "op", None), "packed",
                                                                                 False)),
                 "packed_gradients": sum(1 for ins in host.prog.instrs if isinstance(ins, Grad) and ins.op.packed),
                 "wall_s": round(time.perf_counter() - start_wall, 1)})


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim

NETS_JSON = json.dumps(NETS)


def test_bfp_training_steps_through_the_schedule_bit_exact():
    """Config small_bfp (the array's BFP front; checks every 4 steps): every
    product in BFP, the check steps' inputs read back, the program recompiled
    as layers widen; each step and each action bit-exact, cycles as modelled."""
    cfg = load("small_bfp")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", BENCH,
                     env={"FIXAR_NETS": NETS_JSON, "FIXAR_STEPS": "8", "FIXAR_BFP": "1"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    (fig,) = [f for f in res.figures() if f["test"] == "training_steps"]
    assert fig["identical_steps"] == 8 and fig["bfp_widths"] != [[2] * 3] * 2, fig
    assert fig["bfp_kept_inputs"] == 6, fig      # every layer's input of both networks


def test_bfp_training_steps_at_fixed_widths_bit_exact():
    """Config small_bfp with every layer fixed at 4 bits: the program keeps
    no inputs for a check (the one that fits 400-300 at B = 512), bit-exact."""
    cfg = load("small_bfp")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", BENCH,
                     env={"FIXAR_NETS": NETS_JSON, "FIXAR_STEPS": "2", "FIXAR_BFP": "1", "FIXAR_BFP_FIXED": "4"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    (fig,) = [f for f in res.figures() if f["test"] == "training_steps"]
    assert fig["identical_steps"] == 2 and fig["bfp_widths"] == [[4] * 3] * 2, fig
    assert fig["bfp_kept_inputs"] == 0, fig


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_bfp_seed_streams_swapped(monkeypatch):
    """The array given the critic's seed base for the actor's products and
    the actor's for the critic's: the BFP steps must differ from golden's."""
    from amaranth.hdl import Cat

    from fixar.gen.emit import emit
    from fixar.gen.units import trainer
    from fixar.sim.runner import BUILD_ROOT
    monkeypatch.setattr(trainer, "array_bfp_bases", lambda word: Cat(word[32:], word[:32]))
    cfg = load("small_bfp")
    out = BUILD_ROOT / "planted_bug" / "trainer_bfp_streams"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_trainer", BENCH, tag=f"{cfg.digest}-bfp-streams",
                     env={"FIXAR_NETS": NETS_JSON, "FIXAR_STEPS": "2", "FIXAR_BFP": "1"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice the BFP seed streams swapped"


def test_twenty_training_steps_through_the_qat_switch_bit_exact():
    """20 steps with QAT: 10 tracking ranges (FXP32), the switch, 10 with the
    quantizers at the output stage; every parameter, moment, range and action
    checked, and some errors stopped at a quantizer's top on the way (so the
    ReLU masks' limits are among what matched)."""
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", BENCH,
                     env={"FIXAR_STEPS": "20", "FIXAR_NETS": NETS_JSON, "FIXAR_QAT_SWITCH": "10"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    (fig,) = [f for f in res.figures() if f["test"] == "training_steps"]
    assert fig["identical_steps"] == 20 and fig["cycles_qat_phase2"] is not None
    assert fig["clipped_errors"] > 0, "no error met a quantizer's top: the masks' limits went unchecked"


@pytest.mark.parametrize("steps, switch", [pytest.param(10, 4, id="ci"),
                                           pytest.param(20, 10, id="twenty", marks=pytest.mark.slow)])
def test_steps_with_a_packed_phase_2_bit_exact(steps, switch):
    """QAT with power-of-two quantizer steps (config qat_pow2's quantizer on
    the small engine): after the switch every forward product runs packed,
    two vectors per PE (docs/program.md, "Packed phase 2"); every step through
    the switch bit-exact (CI: 10 steps, 6 packed; make test-slow: 20), at the
    cycles the model counts, and phase 2 in fewer cycles than phase 1's FXP32
    step. Power-of-two steps round each
    range up (up to twice its span), so phase 2's states are drawn four times
    wider than phase 1's: errors then meet the quantizers' tops too."""
    small = load("small")
    cfg = small.variant(name="small_pow2", array=dataclasses.replace(small.array, quantizer_scale="pow2"))
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", BENCH,
                     env={"FIXAR_STEPS": str(steps), "FIXAR_NETS": NETS_JSON, "FIXAR_QAT_SWITCH": str(switch),
                          "FIXAR_PHASE2_STATE_SCALE": "4"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    (fig,) = [f for f in res.figures() if f["test"] == "training_steps"]
    assert fig["identical_steps"] == steps and fig["packed_products"] > 0
    # every weight gradient packed: each layer's input is a quantizer's codes (s^T, [s;a]^T, hidden pairs)
    assert fig["packed_gradients"] == 2 * len(json.loads(NETS_JSON)[2]) + 2, fig
    assert fig["clipped_errors"] > 0, "no error met a quantizer's top: the packed masks' limits went unchecked"
    assert fig["cycles_qat_phase2"] < fig["cycles_fxp32"], fig


def _q16d(cfg):
    """``cfg`` with config qat16d's array: 16-bit errors at the last step's scale, their 12 table entries."""
    return cfg.variant(name=f"{cfg.name}_q16d", array=dataclasses.replace(
        cfg.array, quantizer_scale="pow2", qat_errors="fxp16_delayed", quantizers=12))


@pytest.mark.parametrize("steps, switch", [pytest.param(8, 3, id="ci"),
                                           pytest.param(24, 10, id="long", marks=pytest.mark.slow)])
def test_16_bit_errors_through_the_qat_switch_bit_exact(steps, switch):
    """QAT with config qat16d's 16-bit errors (docs/program.md, "16-bit
    errors") on the small engine: in phase 1 each hidden error's masked
    transposed product tracks its range, restarting with the product; after
    the switch the errors leave the output stage as codes (pair stores,
    packed transposed products on codes, gradients on codes) and the host
    sets each error's step from the trackers after every step. Every step
    bit-exact and at the model's cycles, all trackers equal the golden
    program's (phase 1) and the errors' after every step, some narrower
    than the step before (trackers that only widened would not), errors
    at the masks' limits, and phase 2 in fewer cycles than phase 1."""
    cfg = _q16d(load("small"))
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", BENCH,
                     env={"FIXAR_STEPS": str(steps), "FIXAR_NETS": NETS_JSON, "FIXAR_QAT_SWITCH": str(switch),
                          "FIXAR_PHASE2_STATE_SCALE": "4"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    (fig,) = [f for f in res.figures() if f["test"] == "training_steps"]
    assert fig["identical_steps"] == steps and fig["narrowed_ranges"] > 0, fig
    assert fig["clipped_errors"] > 0 and fig["cycles_qat_phase2"] < fig["cycles_fxp32"], fig


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_error_trackers_that_never_restart(monkeypatch):
    """The hidden errors' trackers planted to widen like the layer inputs'
    (no restart): a later step's narrower range is missed, and the bench
    must fail on the ranges."""
    from fixar.gen.emit import emit
    from fixar.gen.units import array
    from fixar.sim.runner import BUILD_ROOT
    cfg = _q16d(load("small"))
    monkeypatch.setattr(array, "tracker_restarts", lambda track, transpose: track & 0)
    out = BUILD_ROOT / "planted_bug" / "trainer_no_restart"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_trainer", BENCH, tag=f"{cfg.digest}-no-restart",
                     env={"FIXAR_STEPS": "4", "FIXAR_NETS": NETS_JSON, "FIXAR_QAT_SWITCH": "3"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice trackers that never restart"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_qat_steps_with_the_papers_floor_quantizer():
    """The quantizer's other rounding (FIXAR's floor, array.quantizer_rounding):
    6 steps, the switch after 3, bit-exact like the default's; with the
    targets' weights soft-updated by SOFT passes at one row per cycle (the
    program the compiler builds with fuse_soft=False), so that SOFT's weight
    pass, which the default program leaves empty, is checked too."""
    small = load("small")
    cfg = small.variant(name="small_floor", array=dataclasses.replace(small.array, quantizer_rounding="floor"))
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", BENCH,
                     env={"FIXAR_STEPS": "6", "FIXAR_NETS": NETS_JSON, "FIXAR_QAT_SWITCH": "3", "FIXAR_FUSE_SOFT": "0"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    (fig,) = [f for f in res.figures() if f["test"] == "training_steps"]
    assert fig["identical_steps"] == 6 and fig["cycles_qat_phase2"] is not None


@pytest.mark.slow
def test_training_step_under_icarus():
    cfg = load("small")
    res = run_module("icarus", cfg, generated(cfg, array=True), "fixar_trainer", BENCH,
                     env={"FIXAR_STEPS": "1", "FIXAR_NETS": json.dumps([3, 1, [8, 8], 8])})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_planted_bug():
    """The soft update's coefficient taken from the wrong scalar register: the bench must fail."""
    cfg = load("small")
    src_dir = generated(cfg, array=True)
    text = (src_dir / "fixar_trainer.v").read_text()
    found = re.search(r"with_soft\s+\? scalar_tau :", text)
    assert found, "the soft update's coefficient select was not found in fixar_trainer.v"
    res = run_mutated(cfg, "fixar_trainer", BENCH, found.group(0),
                      found.group(0).replace("scalar_tau", "scalar_gamma"),
                      src_dir=src_dir, env={"FIXAR_STEPS": "1", "FIXAR_NETS": NETS_JSON})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong soft-update coefficient"


@pytest.mark.slow
def test_bench_catches_a_target_row_read_from_the_wrong_half():
    """SOFT reads each target row through the weight memory's third path,
    from the half (even or odd rows) the online read leaves free; planted:
    bank 0 takes the other half's word (its online row's neighbour). The
    soft-updated targets differ and the bench must fail."""
    cfg = load("small")
    src_dir = generated(cfg, array=True)
    good = "assign wmem_b0_p0_s_data = wmem_b0_p0_s_odd ? wmem_b0_p0_o_a_data : wmem_b0_p0_e_a_data;"
    assert good in (src_dir / "fixar_trainer.v").read_text(), "bank 0's target read mux is not in fixar_trainer.v"
    res = run_mutated(cfg, "fixar_trainer", BENCH, good, good.replace("s_odd ?", "s_odd ? wmem_b0_p0_e_a_data :"
                      " wmem_b0_p0_o_a_data; //"), src_dir=src_dir, env={"FIXAR_STEPS": "1", "FIXAR_NETS": NETS_JSON})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice targets read from the wrong half"


@pytest.mark.slow   # the 20-step bench checks the fused path's bits on every run; this shows it notices
def test_bench_catches_a_fused_target_read_a_cycle_early():
    """ADAM's fused soft update reads each target row a fixed number of
    cycles after its online row (so that it meets the lanes' output, from
    the other half of the weight memory); planted: the read one cycle early.
    The soft-updated targets differ and the bench must fail."""
    cfg = load("small")
    src_dir = generated(cfg, array=True)
    found = re.search(r"ctl_wm_tre = t_issue_d(\d+);", (src_dir / "fixar_trainer.v").read_text())
    assert found, "the fused soft update's target read enable was not found in fixar_trainer.v"
    early = f"ctl_wm_tre = t_issue_d{int(found.group(1)) - 1};"
    res = run_mutated(cfg, "fixar_trainer", BENCH, found.group(0), early, src_dir=src_dir,
                      env={"FIXAR_STEPS": "1", "FIXAR_NETS": NETS_JSON})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a target row read a cycle early"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_array_loads_losing_their_group_to_the_adam_pass():
    """The critic's Adam weight pass streams through the critic's group of
    the weight memory while the array reads the actor's from the other group
    (fixar.config.weight_groups); planted: group 0's port A goes to the Adam
    pass's read whenever it reads, whatever its group (bank 0), so the
    actor's forward pass beside it reads wrong weights. Only the overlap
    can show it (every other Adam pass runs alone); the bench must fail."""
    cfg = load("small")
    src_dir = generated(cfg, array=True)
    found = re.search(r"assign (\S+)\s+= ! wm_a_grp;", (src_dir / "fixar_trainer.v").read_text())
    assert found, "the Adam read's group select was not found in fixar_trainer.v"
    res = run_mutated(cfg, "fixar_trainer", BENCH, found.group(0), found.group(0).replace("! wm_a_grp", "1'h1"),
                      src_dir=src_dir, env={"FIXAR_STEPS": "1", "FIXAR_NETS": NETS_JSON})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice array loads given to the Adam pass"


@pytest.mark.slow
def test_halfcheetah_step_on_the_default_engine():
    """One full step of FIXAR's workload (17-400-300-6 actor, 23-400-300-1 critic,
    B = 64) on the default 2 x 16 x 16 engine, every parameter and moment checked."""
    cfg = load("default")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", BENCH,
                     env={"FIXAR_STEPS": "1", "FIXAR_NETS": json.dumps([17, 6, [400, 300], 64])})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


@pytest.mark.slow      # CI time: the array bench catches the same mask bug in CI
def test_bench_catches_a_mask_that_passes_zeros(monkeypatch):
    """The array's ReLU mask bit planted as y >= 0 instead of y > 0: the error
    then passes the hidden units a ReLU cut to exactly 0, and the first step's
    gradients, so its weights, must differ."""
    from fixar.gen.emit import emit
    from fixar.gen.units import array
    from fixar.sim.runner import BUILD_ROOT
    cfg = load("small")
    monkeypatch.setattr(array, "mask_bit", lambda word, limit: (word >= 0) & (word < limit))
    out = BUILD_ROOT / "planted_bug" / "trainer_mask_ge0"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_trainer", BENCH, tag=f"{cfg.digest}-mask-ge0",
                     env={"FIXAR_STEPS": "1", "FIXAR_NETS": NETS_JSON})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a mask that passes zeros"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_packed_products_storing_one_lane_twice(monkeypatch):
    """The array's lane stores planted to write the low lane's values for
    both lanes: in a packed phase 2 the critic's Q and the actor's mu of
    every odd batch entry are then wrong, so the first packed step must differ."""
    from fixar.gen.emit import emit
    from fixar.gen.units import array
    from fixar.sim.runner import BUILD_ROOT
    small = load("small")
    cfg = small.variant(name="small_pow2", array=dataclasses.replace(small.array, quantizer_scale="pow2"))
    monkeypatch.setattr(array, "lane_values", lambda out, lane: out.lo)
    out = BUILD_ROOT / "planted_bug" / "trainer_lane_low_only"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_trainer", BENCH, tag=f"{cfg.digest}-lane-low-only",
                     env={"FIXAR_STEPS": "3", "FIXAR_NETS": NETS_JSON, "FIXAR_QAT_SWITCH": "2"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice lane stores of one lane"
    (fig,) = [f for f in res.figures() if f["test"] == "training_steps"]
    assert fig["identical_steps"] == 2, "the planted lane stores broke a step before the packed phase"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_a_broken_quantizer():
    """One core's QAT quantizer divides by 2 Delta (its shift one too far): the phase-2 step must fail."""
    cfg = load("small")
    src_dir = generated(cfg, array=True)
    text = (src_dir / "fixar_trainer.v").read_text()
    # q0_f is the low bits of the shift (fixar.gen.lib.shift): the wire it takes them from
    wire = re.search(r"assign q0_f = (\S+ )\[\d+:0\];", text)
    found = wire and re.search(rf"assign {re.escape(wire.group(1))} = (\S+) >> q_shift;", text)
    assert found, "the quantizer's quotient q0_f was not found in fixar_trainer.v"
    res = run_mutated(cfg, "fixar_trainer", BENCH, found.group(0),
                      found.group(0).replace(">> q_shift;", ">> (q_shift + 7'd1);"),
                      src_dir=src_dir, env={"FIXAR_STEPS": "2", "FIXAR_QAT_SWITCH": "1", "FIXAR_NETS": NETS_JSON})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a broken quantizer"


@pytest.mark.slow      # CI time: CI keeps the broken-quantizer plant
def test_bench_catches_a_quantizer_that_floors():
    """One core's quantizer loses its rounding term floor(Delta / 2) (it floors
    like the paper's formula while the golden model rounds to nearest): the
    phase-2 step must fail."""
    cfg = load("small")
    assert cfg.array.quantizer_rounding == "half_up"
    src_dir = generated(cfg, array=True)
    half = f"q_delta[{cfg.pe.out.bits}:1]"      # Delta >> 1, first of core 0's column 0
    assert half in (src_dir / "fixar_trainer.v").read_text(), "the quantizer's Delta >> 1 was not found"
    res = run_mutated(cfg, "fixar_trainer", BENCH, half, f"{cfg.pe.out.bits}'h0",
                      src_dir=src_dir, env={"FIXAR_STEPS": "2", "FIXAR_QAT_SWITCH": "1", "FIXAR_NETS": NETS_JSON})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a quantizer that floors"
