"""pytest entry points for the array bench (small config: 2 cores of 4 x 4)."""
from __future__ import annotations

import os
import re

import pytest

from fixar.config import load
from fixar.sim.rtl import generated, run_module, run_mutated

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_array_bit_exact_and_cycle_exact(sim):
    cfg = load("small")
    # Icarus runs the small array at ~600 cycles/s (Verilator ~200 000): it
    # checks the same RTL's semantics on 200 random operations, not the DDPG networks.
    cases = os.environ.get("FIXAR_CASES", "1000" if sim == "verilator" else "200")
    res = run_module(sim, cfg, generated(cfg, array=True), "fixar_array", "fixar.tb.array_bench",
                     testcase=None if sim == "verilator" else "test_random_ops",
                     env={"FIXAR_CASES": cases, "FIXAR_DDPG_BATCH": "8"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


@pytest.mark.slow
def test_array_long_regression():
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_array", "fixar.tb.array_bench",
                     testcase="test_random_ops", env={"FIXAR_CASES": "10000"}, seed=1)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_planted_bug():
    """One saturation limit of one output column changed: the bench must fail."""
    cfg = load("small")
    bits, max_int = cfg.pe.out.bits, cfg.pe.out.max_int
    src_dir = generated(cfg, array=True)
    # the FXP32 output stage's limit (column 0 of the first core), not the QAT quantizer's
    found = re.search(rf"fxp32_0_q\[\d+\] \? {bits}'d\d+ : {bits}'d{max_int};", (src_dir / "fixar_array.v").read_text())
    assert found, "the FXP32 saturation limit of column 0 was not found in fixar_array.v"
    res = run_mutated(cfg, "fixar_array", "fixar.tb.array_bench", found.group(0),
                      found.group(0).replace(f"{bits}'d{max_int};", f"{bits}'d{max_int - 1};"),
                      src_dir=src_dir, testcase="test_random_ops", env={"FIXAR_CASES": "200"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong saturation limit"
