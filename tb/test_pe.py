"""pytest entry points for the PE benches (Verilator and Icarus)."""
from __future__ import annotations

import json
import os

import pytest

from fixar.config import load
from fixar.tb.rtl import generated, run_module, shipped_rtl
from fixar.tb.runner import BUILD_ROOT

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


def test_bench_catches_planted_bug(tmp_path):
    """Change one saturation constant in the generated Verilog: the bench must fail."""
    cfg = load("default")
    src = (shipped_rtl() / "fixar_pe.v").read_text()
    max_int = cfg.pe.out.max_int
    # The first positive limit the output saturates to (Amaranth writes it in decimal).
    pattern = f"{cfg.pe.out.bits}'d{max_int};"
    assert pattern in src, f"saturation constant {pattern!r} not found in the generated PE"
    mutated = src.replace(pattern, f"{cfg.pe.out.bits}'d{max_int - 1};", 1)
    bug_dir = BUILD_ROOT / "planted_bug"
    bug_dir.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((shipped_rtl() / "manifest.json").read_text())
    (bug_dir / "manifest.json").write_text(json.dumps(manifest))
    (bug_dir / "fixar_pe.v").write_text(mutated)
    res = _pe("verilator", cfg, bug_dir, "planted-bug", 1000, testcase="test_corners")
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong saturation limit"

