"""Run the PE bench and report vectors, simulation speed and build time."""
from __future__ import annotations

import json

from fixar.config import FixarConfig
from fixar.figures.cold import run_cold
from fixar.sim.rtl import run_module, shipped_rtl


def _speed(res) -> int:
    figs = res.figures()
    return round(sum(f["cycles"] for f in figs) / sum(f["wall_s"] for f in figs))


def pe_sim(cfg: FixarConfig, vectors: int) -> dict:
    env = {"FIXAR_VECTORS": str(vectors)}
    res = run_cold(cfg, shipped_rtl(), "fixar_pe", "fixar.tb.test_pe", env=env)
    icarus = run_module("icarus", cfg, shipped_rtl(), "fixar_pe", "fixar.tb.test_pe", env=env)
    for r in (res, icarus):
        if not r.passed:
            raise RuntimeError(f"PE bench failed ({r.failed} of {r.tests}); see {r.results_xml}")
    figs = {f["test"]: f for f in res.figures()}
    latency = json.loads((shipped_rtl() / "manifest.json").read_text())["modules"]["fixar_pe"]["latency"]
    return {
        "pe_vectors_per_mode": min(figs["random_fxp32"]["vectors"], figs["random_fxp16"]["vectors"]),
        "pe_sim_cycles_per_s": _speed(res),
        "pe_sim_cycles_per_s_icarus": _speed(icarus),
        "pe_verilator_build_s": round(res.build_s, 1),
        "pe_latency_cycles": latency,
    }
