"""pytest entry points for the activation-unit bench."""
from __future__ import annotations

import pytest

from fixar.config import load
import re

from fixar.sim.rtl import generated, run_module, run_mutated, shipped_rtl

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_activation_default(sim):
    cfg = load("default")
    res = run_module(sim, cfg, shipped_rtl(), "fixar_act", "fixar.tb.act_bench")
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_activation_narrow():
    cfg = load("narrow")
    res = run_module("verilator", cfg, generated(cfg), "fixar_act", "fixar.tb.act_bench")
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_planted_bug():
    """One tanh table point off by one LSB: the bench must fail."""
    cfg = load("default")
    src = (shipped_rtl() / "fixar_act.v").read_text()
    line = re.search(r"tanh_rom\[100\] = (\d+)'h([0-9a-f]+);", src)
    assert line, "ROM initialisation not found in rtl/fixar_act.v"
    width, value = line.group(1), int(line.group(2), 16)
    res = run_mutated(cfg, "fixar_act", "fixar.tb.act_bench", line.group(0),
                      f"tanh_rom[100] = {width}'h{value ^ 1:x};", env={"FIXAR_VECTORS": "2000"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong tanh table point"
