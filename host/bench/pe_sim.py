"""Run the PE bench under Verilator and report vectors and simulation speed."""
from __future__ import annotations

import json

from fixar.config import FixarConfig
from fixar.tb.rtl import shipped_rtl
from fixar.tb.runner import run_bench


def pe_sim(cfg: FixarConfig, vectors: int) -> dict:
    rtl = shipped_rtl()
    manifest = json.loads((rtl / "manifest.json").read_text())
    if manifest["config_digest"] != cfg.digest:
        raise RuntimeError("rtl/ was generated from another config: run `make verilog`")
    mod = manifest["modules"]["fixar_pe"]
    res = run_bench(sim="verilator", top="fixar_pe", sources=[rtl / mod["file"]],
                    test_module="fixar.tb.pe_bench", cfg=cfg, tag=cfg.digest,
                    env={"FIXAR_LATENCY": str(mod["latency"]), "FIXAR_VECTORS": str(vectors)})
    if not res.passed:
        raise RuntimeError(f"PE bench failed ({res.failed} of {res.tests}); see {res.results_xml}")
    figs = {f["test"]: f for f in res.figures()}
    per_mode = min(figs["random_fxp32"]["vectors"], figs["random_fxp16"]["vectors"])
    cycles = sum(f["cycles"] for f in figs.values())
    wall = sum(f["wall_s"] for f in figs.values())
    return {"pe_vectors_per_mode": per_mode, "pe_sim_cycles_per_s": round(cycles / wall),
            "pe_latency_cycles": mod["latency"]}
