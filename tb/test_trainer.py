"""pytest entry points for the training-engine bench (small config: 2 cores of 4 x 4)."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

from fixar.config import load
from fixar.sim.rtl import generated, run_module, run_mutated

pytestmark = pytest.mark.sim

NETS = json.dumps([8, 2, [32, 32], 16])   # the small networks: 8 -> 32 -> 32 -> 2, B = 16


def test_twenty_training_steps_through_the_qat_switch_bit_exact():
    """20 steps with QAT: 10 tracking ranges (FXP32), the switch, 10 with the
    quantizers at the output stage; every parameter, moment, range and action
    checked, and some errors stopped at a quantizer's top on the way (so the
    ReLU masks' limits are among what matched)."""
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", "fixar.tb.trainer_bench",
                     env={"FIXAR_STEPS": "20", "FIXAR_NETS": NETS, "FIXAR_QAT_SWITCH": "10"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    (fig,) = [f for f in res.figures() if f["test"] == "training_steps"]
    assert fig["identical_steps"] == 20 and fig["cycles_qat_phase2"] is not None
    assert fig["clipped_errors"] > 0, "no error met a quantizer's top: the masks' limits went unchecked"


def test_qat_steps_with_the_papers_floor_quantizer():
    """The quantizer's other rounding (FIXAR's floor, array.quantizer_rounding):
    6 steps, the switch after 3, bit-exact like the default's."""
    small = load("small")
    cfg = small.variant(name="small_floor", array=dataclasses.replace(small.array, quantizer_rounding="floor"))
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", "fixar.tb.trainer_bench",
                     env={"FIXAR_STEPS": "6", "FIXAR_NETS": NETS, "FIXAR_QAT_SWITCH": "3"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    (fig,) = [f for f in res.figures() if f["test"] == "training_steps"]
    assert fig["identical_steps"] == 6 and fig["cycles_qat_phase2"] is not None


@pytest.mark.slow
def test_training_step_under_icarus():
    cfg = load("small")
    res = run_module("icarus", cfg, generated(cfg, array=True), "fixar_trainer", "fixar.tb.trainer_bench",
                     env={"FIXAR_STEPS": "1", "FIXAR_NETS": json.dumps([3, 1, [8, 8], 8])})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_planted_bug():
    """The soft update's coefficient taken from the wrong scalar register: the bench must fail."""
    cfg = load("small")
    src_dir = generated(cfg, array=True)
    text = (src_dir / "fixar_trainer.v").read_text()
    found = re.search(r"\\soft\s+\? scalar_tau :", text)
    assert found, "the soft update's coefficient select was not found in fixar_trainer.v"
    res = run_mutated(cfg, "fixar_trainer", "fixar.tb.trainer_bench", found.group(0),
                      found.group(0).replace("scalar_tau", "scalar_gamma"),
                      src_dir=src_dir, env={"FIXAR_STEPS": "1", "FIXAR_NETS": NETS})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong soft-update coefficient"


@pytest.mark.slow
def test_halfcheetah_step_on_the_default_engine():
    """One full step of FIXAR's workload (17-400-300-6 actor, 23-400-300-1 critic,
    B = 64) on the default 2 x 16 x 16 engine, every parameter and moment checked."""
    cfg = load("default")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", "fixar.tb.trainer_bench",
                     env={"FIXAR_STEPS": "1", "FIXAR_NETS": json.dumps([17, 6, [400, 300], 64])})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_a_broken_quantizer():
    """One core's QAT quantizer divides by 2 Delta (its shift one too far): the phase-2 step must fail."""
    cfg = load("small")
    src_dir = generated(cfg, array=True)
    text = (src_dir / "fixar_trainer.v").read_text()
    found = re.search(r"assign q_f_0 = q_p8_0 >> q_shift;", text)
    assert found, "the quantizer's quotient q_f_0 was not found in fixar_trainer.v"
    res = run_mutated(cfg, "fixar_trainer", "fixar.tb.trainer_bench", found.group(0),
                      "assign q_f_0 = q_p8_0 >> (q_shift + 7'd1);",
                      src_dir=src_dir, env={"FIXAR_STEPS": "2", "FIXAR_QAT_SWITCH": "1", "FIXAR_NETS": NETS})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a broken quantizer"


def test_bench_catches_a_quantizer_that_floors():
    """One core's quantizer loses its rounding term floor(Delta / 2) (it floors
    like the paper's formula while the golden model rounds to nearest): the
    phase-2 step must fail."""
    cfg = load("small")
    assert cfg.array.quantizer_rounding == "half_up"
    src_dir = generated(cfg, array=True)
    half = f"q_delta[{cfg.pe.out.bits}:1]"      # Delta >> 1, first of core 0's column 0
    assert half in (src_dir / "fixar_trainer.v").read_text(), "the quantizer's Delta >> 1 was not found"
    res = run_mutated(cfg, "fixar_trainer", "fixar.tb.trainer_bench", half, f"{cfg.pe.out.bits}'h0",
                      src_dir=src_dir, env={"FIXAR_STEPS": "2", "FIXAR_QAT_SWITCH": "1", "FIXAR_NETS": NETS})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a quantizer that floors"
