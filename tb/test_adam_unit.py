"""pytest entry points for the Adam-unit bench."""
from __future__ import annotations

import re

import pytest

from fixar.config import load
from fixar.sim.rtl import generated, run_module, run_mutated, shipped_rtl

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_adam_unit_default(sim):
    cfg = load("default")
    env = {} if sim == "verilator" else {"FIXAR_BLOCKS": "8", "FIXAR_BLOCK_SIZE": "300"}
    res = run_module(sim, cfg, shipped_rtl(), "fixar_adam", "fixar.tb.adam_bench", env=env)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_adam_unit_narrow():
    """Another format set (the narrow config's weights) through the same bench."""
    cfg = load("narrow")
    res = run_module("verilator", cfg, generated(cfg), "fixar_adam", "fixar.tb.adam_bench",
                     env={"FIXAR_BLOCKS": "8", "FIXAR_BLOCK_SIZE": "500"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_adam_unit_moments_rounded_to_nearest():
    """adam.m and adam.v rounded to nearest (the shipped config adam_rne, the
    default before the moments were rounded toward zero): the unit against
    the golden model, which follows the same config."""
    cfg = load("adam_rne")
    res = run_module("verilator", cfg, generated(cfg), "fixar_adam", "fixar.tb.adam_bench",
                     env={"FIXAR_BLOCKS": "8", "FIXAR_BLOCK_SIZE": "500"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_moments_floored_instead_of_truncated():
    """The first toward-zero rounding (m's) loses its correction for negative
    sums, i.e. it floors: the bench must fail."""
    cfg = load("default")
    cf = cfg.adam.coef_frac
    text = (shipped_rtl() / "fixar_adam.v").read_text()
    found = re.search(rf"\? {cf}'h{(1 << cf) - 1:x} : {cf}'h0+;", text)
    assert found, "the toward-zero correction was not found in rtl/fixar_adam.v"
    res = run_mutated(cfg, "fixar_adam", "fixar.tb.adam_bench", found.group(0),
                      found.group(0).replace(f"{cf}'h{(1 << cf) - 1:x}", f"{cf}'h0"),
                      env={"FIXAR_BLOCKS": "4", "FIXAR_BLOCK_SIZE": "500"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice moments that floor"


def test_bench_catches_planted_bug():
    """One rsqrt seed off by one LSB: the Newton steps shrink the error but
    must not hide it from the bench."""
    cfg = load("default")
    src = (shipped_rtl() / "fixar_adam.v").read_text()
    line = re.search(r"rsqrt_seeds\[37\] = (\d+)'h([0-9a-f]+);", src)
    assert line, "seed ROM initialisation not found in rtl/fixar_adam.v"
    width, value = line.group(1), int(line.group(2), 16)
    res = run_mutated(cfg, "fixar_adam", "fixar.tb.adam_bench", line.group(0),
                      f"rsqrt_seeds[37] = {width}'h{value ^ (1 << 24):x};",
                      env={"FIXAR_BLOCKS": "4", "FIXAR_BLOCK_SIZE": "2000"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong rsqrt seed"
