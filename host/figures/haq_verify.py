"""Issue 25 item 5 in make bench. Part haq-rtl: the Pendulum winner of the
haq part (docs/haq/pendulum/results.json) deployed on the 2 x 16 x 16
engine of config bfp under Verilator (`python -m fixar.haq.verify`), every
action against the golden model's and every acting pass's cycles against
the cycle model. Part haq-lanes: both winners' latency on the lane array's
RTL (`python -m fixar.haq.verify_lanes`). The commands are run as
processes: fixar.figures reads fixar.haq's results and never imports it
(the same layer)."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EPISODES = 1         # 200 acting passes


def haq_rtl_figures(root: Path = ROOT) -> dict:
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "verdict.json"
        proc = subprocess.run([sys.executable, "-m", "fixar.haq.verify", "--config", "bfp", "--episodes",
                               str(EPISODES), "--actor-dir", str(root / "runs" / "haq-pendulum-actor"),
                               "--out", str(out)], cwd=root)
        if not out.exists():
            raise RuntimeError(f"haq-rtl: python -m fixar.haq.verify exited with {proc.returncode} before a verdict")
        v = json.loads(out.read_text())
    if not v["passed"]:
        raise RuntimeError(f"haq-rtl: the deployed winner is not bit- and cycle-exact on the RTL: {v}")
    (cycles,) = v["act_cycles_rtl"]
    return {"haq_pendulum_rtl_policy": v["policy"], "haq_pendulum_rtl_acting_passes": v["steps"],
            "haq_pendulum_rtl_differing_actions": v["mismatches"], "haq_pendulum_rtl_act_cycles": cycles,
            "haq_pendulum_rtl_act_cycles_model": v["act_cycles_model"],
            # the same actor at uniform 8 bits on the same array, by the cycle model the RTL just matched
            "haq_pendulum_rtl_latency_speedup_vs_uniform8": round(v["uniform8_act_cycles_model"] / cycles, 4),
            "haq_rtl_s": round(time.perf_counter() - t)}


def haq_lanes_figures(root: Path = ROOT) -> dict:
    """Part haq-lanes: the haq part's two winners and uniform 8-bit layer by
    layer on the 2 x 16 x 16 lane array (config default) in RTL
    (`python -m fixar.haq.verify_lanes`): every sum bit-exact, every layer's
    cycles the model's, each policy's cycles the search's latency; the
    speedups over uniform 8-bit as the RTL measured them."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "verdict.json"
        proc = subprocess.run([sys.executable, "-m", "fixar.haq.verify_lanes", "--config", "default",
                               "--out", str(out)], cwd=root)
        if not out.exists():
            raise RuntimeError(f"haq-lanes: python -m fixar.haq.verify_lanes exited with {proc.returncode} "
                               "before a verdict")
        v = json.loads(out.read_text())
    if not v["passed"]:
        raise RuntimeError(f"haq-lanes: the policies' layers are not bit- and cycle-exact on the lane array: {v}")
    figs = {"haq_lanes_rtl_layers": v["layers"]}
    for task, prefix in (("digits", "haq_lanes_rtl_"), ("pendulum", "haq_pendulum_lanes_rtl_")):
        found, u8 = v["tasks"][task]["haq"], v["tasks"][task]["uniform8"]
        figs.update({f"{prefix}policy": found["policy"], f"{prefix}batch": found["batch"],
                     f"{prefix}cycles": found["cycles_rtl"], f"{prefix}uniform8_cycles": u8["cycles_rtl"],
                     f"{prefix}latency_speedup_vs_uniform8": round(u8["cycles_rtl"] / found["cycles_rtl"], 4)})
    figs["haq_lanes_rtl_s"] = round(time.perf_counter() - t)
    return figs
