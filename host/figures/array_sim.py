"""The default array (2 cores of 16 x 16) running HalfCheetah's DDPG networks
in cycle-accurate RTL simulation (Verilator): utilization, FXP16 speedup and
simulation speed, every operation checked bit for bit on the way."""
from __future__ import annotations

import json

from fixar.config import FixarConfig
from fixar.figures.cold import run_cold
from fixar.sim.rtl import generated

WORKLOADS = [["infer", 1, "FXP32"], ["train", 64, "FXP32"], ["train", 64, "FXP16"], ["train", 512, "FXP32"]]


def array_sim(cfg: FixarConfig) -> dict:
    res = run_cold(cfg, generated(cfg, array=True), "fixar_array", "fixar.tb.test_array",
                   testcase="test_bench_figures", env={"FIXAR_BENCH_OPS": json.dumps(WORKLOADS)})
    if not res.passed:
        raise RuntimeError(f"array bench failed; see {res.results_xml}")
    recs = {(r["label"], r["batch"], r["mode"]): r for r in res.figures() if r["test"] == "bench_workload"}
    big = [r for r in res.figures() if r["test"] == "bench_op" and r["M"] == 300 and r["K"] == 400
           and r["batch"] == 64 and r["mode"] == "FXP32" and not r["transpose"]]
    cycles = sum(r["cycles"] for r in recs.values())
    wall = sum(r["wall_s"] for r in recs.values())
    t32, t16 = recs[("train", 64, "FXP32")], recs[("train", 64, "FXP16")]
    return {
        "array_util_infer_b1": recs[("infer", 1, "FXP32")]["utilization"],
        "array_util_train_b64": t32["utilization"],
        "array_util_train_b64_fxp16": t16["utilization"],
        "array_util_train_b512": recs[("train", 512, "FXP32")]["utilization"],
        "array_util_400x300_b64": big[0]["utilization"],
        "array_fxp16_speedup_b64": round(t32["workload_cycles"] / t16["workload_cycles"], 3),
        "array_cycles_infer_b1": recs[("infer", 1, "FXP32")]["workload_cycles"],
        "array_cycles_train_b64": t32["workload_cycles"],
        "array_cycles_train_b512": recs[("train", 512, "FXP32")]["workload_cycles"],
        "array_sim_cycles_per_s": round(cycles / wall),
        "array_verilator_build_s": round(res.build_s, 1),
    }
