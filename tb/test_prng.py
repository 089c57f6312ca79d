"""pytest entry point for the xorshift32 bench (Verilator and Icarus)."""
from __future__ import annotations

import json

import pytest

from fixar.config import load
from fixar.tb.rtl import shipped_rtl
from fixar.tb.runner import run_bench

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_prng_matches_golden(sim):
    cfg = load("default")
    manifest = json.loads((shipped_rtl() / "manifest.json").read_text())
    mod = manifest["modules"]["fixar_prng"]
    res = run_bench(sim=sim, top="fixar_prng", sources=[shipped_rtl() / mod["file"]],
                    test_module="fixar.tb.prng_bench", cfg=cfg, tag=cfg.digest)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
