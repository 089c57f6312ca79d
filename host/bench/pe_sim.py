"""Run the PE bench under Verilator and report vectors and simulation speed."""
from __future__ import annotations

import json

from fixar.config import FixarConfig
from fixar.tb.rtl import run_module, shipped_rtl


def pe_sim(cfg: FixarConfig, vectors: int) -> dict:
    res = run_module("verilator", cfg, shipped_rtl(), "fixar_pe", "fixar.tb.pe_bench",
                     env={"FIXAR_VECTORS": str(vectors)})
    if not res.passed:
        raise RuntimeError(f"PE bench failed ({res.failed} of {res.tests}); see {res.results_xml}")
    figs = {f["test"]: f for f in res.figures()}
    per_mode = min(figs["random_fxp32"]["vectors"], figs["random_fxp16"]["vectors"])
    cycles = sum(f["cycles"] for f in figs.values())
    wall = sum(f["wall_s"] for f in figs.values())
    latency = json.loads((shipped_rtl() / "manifest.json").read_text())["modules"]["fixar_pe"]["latency"]
    return {"pe_vectors_per_mode": per_mode, "pe_sim_cycles_per_s": round(cycles / wall),
            "pe_latency_cycles": latency}
