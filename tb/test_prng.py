"""pytest entry point for the xorshift32 bench (Verilator and Icarus)."""
from __future__ import annotations

import pytest

from fixar.config import load
from fixar.sim.rtl import run_module, shipped_rtl

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_prng_matches_golden(sim):
    cfg = load("default")
    res = run_module(sim, cfg, shipped_rtl(), "fixar_prng", "fixar.tb.prng_bench")
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
