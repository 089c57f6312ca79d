"""pytest entry points for the U50 kernel bench (small config: 2 cores of 4 x 4)."""
from __future__ import annotations

import json

import pytest

from fixar.config import load
from fixar.driver.kernel_io import port_widths
from fixar.sim.rtl import generated, run_module

pytestmark = pytest.mark.sim

NETS = json.dumps([8, 2, [32, 32], 16])


def test_host_packing_widths_match_the_generated_engine():
    """fixar.driver.kernel_io packs rows with widths computed from the config; the
    generated engine's ports must have exactly those widths."""
    cfg = load("small")
    manifest = json.loads((generated(cfg, array=True) / "manifest.json").read_text())
    ports = manifest["modules"]["fixar_trainer"]["ports"]
    for name, width in port_widths(cfg).items():
        assert ports[name]["width"] == width, f"{name}: the engine has {ports[name]['width']} bits, the host packs {width}"


def test_kernel_runs_training_steps_through_the_qat_switch_bit_exact():
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, kernel=True), "fixar_kernel", "fixar.tb.kernel_bench",
                     env={"FIXAR_STEPS": "3", "FIXAR_QAT_SWITCH": "2", "FIXAR_NETS": NETS})
    assert res.passed and res.tests == 2, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    (fig,) = [f for f in res.figures() if f["test"] == "kernel_steps"]
    assert fig["identical_steps"] == 3


def test_kernel_under_axi_backpressure():
    """Idle cycles on every AXI channel (HBM model and control): same results."""
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, kernel=True), "fixar_kernel", "fixar.tb.kernel_bench",
                     env={"FIXAR_STEPS": "2", "FIXAR_QAT_SWITCH": "1", "FIXAR_NETS": NETS, "FIXAR_AXI_PAUSE": "1"})
    assert res.passed and res.tests == 2, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
