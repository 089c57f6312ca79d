"""Issue 25 item 5 in make bench (part haq-rtl): the Pendulum winner of the
haq part (docs/haq/pendulum/results.json) deployed on the 2 x 16 x 16
engine of config bfp under Verilator (`python -m fixar.haq.verify`), every
action against the golden model's and every acting pass's cycles against
the cycle model. The command is run as a process: fixar.figures reads
fixar.haq's results and never imports it (the same layer)."""
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
