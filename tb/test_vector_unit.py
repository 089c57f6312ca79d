"""pytest entry points for the vector-unit bench."""
from __future__ import annotations

import re

import pytest

from fixar.config import load
from fixar.sim.rtl import run_module, run_mutated, shipped_rtl

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_vector_unit_default(sim):
    cfg = load("default")
    env = {} if sim == "verilator" else {"FIXAR_ROWS": "1500"}
    res = run_module(sim, cfg, shipped_rtl(), "fixar_vector", "fixar.tb.vector_bench", env=env)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_planted_bug():
    """Lane 0's noise truncated instead of rounded (its rounding constant
    zeroed): the bench must fail."""
    cfg = load("default")
    shift = cfg.vector.coef_frac + cfg.prng.width // 2 - cfg.pe.act32.frac
    src = (shipped_rtl() / "fixar_vector.v").read_text()
    found = re.search(rf"(\d+)'h{1 << (shift - 1):x}\)", src)
    assert found, "the noise rounding constant was not found in rtl/fixar_vector.v"
    res = run_mutated(cfg, "fixar_vector", "fixar.tb.vector_bench", found.group(0),
                      f"{found.group(1)}'h0)", env={"FIXAR_ROWS": "3000"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong noise rounding"
