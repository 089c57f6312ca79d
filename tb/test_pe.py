"""pytest entry points for the PE benches (Verilator and Icarus)."""
from __future__ import annotations

import os

import pytest

from fixar.config import load
from fixar.sim.rtl import generated, run_module, run_mutated, shipped_rtl

VECTORS = int(os.environ.get("FIXAR_VECTORS", "100000"))

pytestmark = pytest.mark.sim


def _pe(sim, cfg, rtl_dir, tag, vectors, testcase=None):
    return run_module(sim, cfg, rtl_dir, "fixar_pe", "fixar.tb.pe_bench", tag=tag,
                      testcase=testcase, env={"FIXAR_VECTORS": str(vectors)})


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_pe_default_bit_exact(sim):
    """The committed rtl/ PE, 100 000 random vectors per mode plus corners."""
    cfg = load("default")
    res = _pe(sim, cfg, shipped_rtl(), cfg.digest, VECTORS)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    assert res.tests == 4


@pytest.mark.parametrize("name", ["narrow", "stochastic"])
def test_pe_variant_bit_exact(name):
    """Other widths, floor/wrap and stochastic rounding: nothing is hard-wired."""
    cfg = load(name)
    res = _pe("verilator", cfg, generated(cfg), cfg.digest, 20_000)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


@pytest.mark.slow
def test_pe_million_vectors():
    cfg = load("default")
    res = _pe("verilator", cfg, shipped_rtl(), cfg.digest, 1_000_000)
    assert res.passed


def test_bench_catches_planted_bug():
    """Change one saturation constant in the generated Verilog: the bench must fail."""
    cfg = load("default")
    bits, max_int = cfg.pe.out.bits, cfg.pe.out.max_int
    # The first positive limit the output saturates to (Amaranth writes it in decimal).
    res = run_mutated(cfg, "fixar_pe", "fixar.tb.pe_bench", f"{bits}'d{max_int};", f"{bits}'d{max_int - 1};",
                      testcase="test_corners", env={"FIXAR_VECTORS": "1000"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong saturation limit"
