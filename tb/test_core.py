"""pytest entry points for the array-core bench (small config: cores of 4 x 4)."""
from __future__ import annotations

import os

import pytest

from fixar.config import load
from fixar.tb.rtl import generated, run_module, run_mutated

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_core_layers_bit_exact_and_cycle_exact(sim):
    cfg = load("small")
    # Icarus is ~5x slower here: fewer random layers and a smaller DDPG batch.
    cases = os.environ.get("FIXAR_CASES", "1000" if sim == "verilator" else "200")
    batch = "8" if sim == "verilator" else "4"
    res = run_module(sim, cfg, generated(cfg, array=True), "fixar_core", "fixar.tb.core_bench",
                     env={"FIXAR_CASES": cases, "FIXAR_DDPG_BATCH": batch})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_planted_bug():
    """One saturation limit of one column's output stage changed: the bench must fail."""
    cfg = load("small")
    bits, max_int = cfg.pe.out.bits, cfg.pe.out.max_int
    res = run_mutated(cfg, "fixar_core", "fixar.tb.core_bench", f"{bits}'d{max_int};", f"{bits}'d{max_int - 1};",
                      src_dir=generated(cfg, array=True), testcase="test_random_layers", env={"FIXAR_CASES": "200"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong saturation limit"
