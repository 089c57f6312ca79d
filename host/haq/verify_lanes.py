"""The latency the search is fed, measured: the digits MLP's and the
Pendulum actor's HAQ policies (docs/haq/results.json,
docs/haq/pendulum/results.json) and uniform 8-bit run layer by layer on the
lane array's RTL (gen/units/bfp_lane_array.py) under Verilator, at the
batch the search prices (80 images; one observation). The bench
(tb/test_lane_array.py, test_given_layers) checks every sum against the
golden model and every layer's cycles against the cycle model; this adds
that each policy's cycles are fixar.haq.cost's latency, and reports the
speedups the RTL shows. The layers' codes are random: the cycles do not
depend on them, and the sums are checked whatever they are.

    python -m fixar.haq.verify_lanes [--config default] [--out verdict.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fixar.haq import cost
from fixar.haq.actor import PENDULUM
from fixar.haq.space import DIGITS, Policy, Workload, uniform
from fixar.haq.verify import parse_policy

RESULTS = {"digits": (DIGITS, Path("docs/haq/results.json"), "haq_policy"),
           "pendulum": (PENDULUM, Path("docs/haq/pendulum/results.json"), "haq_pendulum_policy")}
BENCH = "fixar.tb.test_lane_array"


def bench_layers(cfg, task: str, name: str, workload: Workload, policy: Policy) -> list[list]:
    """The bench's FIXAR_LANE_LAYERS entries of one policy: [outputs, inputs, batch, m_w, m_a, label]."""
    batch = cost.priced_batch(cfg, workload)
    return [[layer.fan_out, layer.fan_in, batch, w, a, f"{task}:{name}:{i}"]
            for i, (layer, (w, a)) in enumerate(zip(workload.layers, policy))]


def measure(cfg, policies: dict[str, dict[str, Policy]], log=print) -> dict:
    """Run every policy's layers in one bench run; per task and policy, the
    RTL's cycles beside the cost model's latency."""
    from fixar.sim.rtl import generated, run_module

    layers = [row for task, named in policies.items() for name, policy in named.items()
              for row in bench_layers(cfg, task, name, RESULTS[task][0], policy)]
    log(f"haq verify_lanes: {len(layers)} layers on the lane array of config {cfg.name} (Verilator) ...")
    res = run_module("verilator", cfg, generated(cfg, lanes=True), "fixar_bfp_lane_array", BENCH,
                     testcase="test_given_layers", env={"FIXAR_LANE_LAYERS": json.dumps(layers)})
    rows = {r["test"]: r for r in res.rows}
    out = {"passed": bool(res.passed) and len(rows) == len(layers), "layers": len(rows), "tasks": {}}
    for task, named in policies.items():
        workload = RESULTS[task][0]
        for name, policy in named.items():
            got = [rows.get(f"{task}:{name}:{i}", {}).get("cycles") for i in range(len(workload.layers))]
            model = cost.latency(cfg, workload, policy)
            rtl = sum(got) if None not in got else None
            out["tasks"].setdefault(task, {})[name] = {
                "policy": ",".join(f"w{w}a{a}" for w, a in policy), "cycles_rtl": rtl, "cycles_model": model,
                "layer_cycles_rtl": got, "batch": cost.priced_batch(cfg, workload)}
            out["passed"] &= rtl == model
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fixar.haq.verify_lanes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="default", help="the config whose lane array runs the layers")
    ap.add_argument("--out", default=None, help="write the verdict here as JSON")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    from fixar.config import ConfigError, load
    try:
        cfg = load(args.config)
        policies = {}
        for task, (workload, path, key) in RESULTS.items():
            found = parse_policy(json.loads(path.read_text())[key], len(workload.layers))
            policies[task] = {"haq": found, "uniform8": uniform(workload, max(cfg.bfp.widths))}
    except (ConfigError, ValueError, OSError, KeyError) as exc:
        raise SystemExit(f"haq verify_lanes: {exc}") from None
    t0 = time.monotonic()
    verdict = measure(cfg, policies)
    verdict.update(config=cfg.name, seconds=round(time.monotonic() - t0, 1))
    if args.out:
        Path(args.out).write_text(json.dumps(verdict, indent=1) + "\n")
    print(json.dumps(verdict))
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
