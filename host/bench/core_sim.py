"""One array core of the default config (16 x 16) computing DDPG layers in
RTL simulation: cycles, utilization and the FXP16 speedup, all measured."""
from __future__ import annotations

import json

from fixar.config import FixarConfig
from fixar.bench.cold import run_cold
from fixar.tb.rtl import generated

# HalfCheetah critic's largest layer (400 -> 300) at B = 64, both modes.
LAYERS = [[300, 400, 64, "FXP32"], [300, 400, 64, "FXP16"]]


def core_sim(cfg: FixarConfig) -> dict:
    res = run_cold(cfg, generated(cfg, array=True), "fixar_core", "fixar.tb.core_bench",
                   testcase="test_bench_layers", env={"FIXAR_BENCH_LAYERS": json.dumps(LAYERS)})
    if not res.passed:
        raise RuntimeError(f"core bench failed; see {res.results_xml}")
    recs = {r["mode"]: r for r in res.figures() if r["test"] == "bench_layer"}
    (speed,) = [r["cycles_per_s"] for r in res.figures() if r["test"] == "bench_layers"]
    return {
        "core_util_400x300_b64_fxp32": recs["FXP32"]["utilization"],
        "core_util_400x300_b64_fxp16": recs["FXP16"]["utilization"],
        "core_fxp16_speedup_400x300_b64": round(recs["FXP32"]["cycles"] / recs["FXP16"]["cycles"], 3),
        "core_cycles_400x300_b64_fxp32": recs["FXP32"]["cycles"],
        "core_sim_cycles_per_s": round(speed),
        "core_verilator_build_s": round(res.build_s, 1),
    }
