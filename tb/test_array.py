"""pytest entry points for the array bench (small config: 2 cores of 4 x 4)."""
from __future__ import annotations

import os

import pytest

from fixar.config import load
from fixar.tb.rtl import generated, run_module, run_mutated

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_array_bit_exact_and_cycle_exact(sim):
    cfg = load("small")
    # Icarus is several times slower: fewer random operations and a smaller DDPG batch.
    cases = os.environ.get("FIXAR_CASES", "1000" if sim == "verilator" else "150")
    batch = "8" if sim == "verilator" else "2"
    res = run_module(sim, cfg, generated(cfg, array=True), "fixar_array", "fixar.tb.array_bench",
                     env={"FIXAR_CASES": cases, "FIXAR_DDPG_BATCH": batch})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


@pytest.mark.slow
def test_array_long_regression():
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_array", "fixar.tb.array_bench",
                     testcase="test_random_ops", env={"FIXAR_CASES": "10000"}, seed=1)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
