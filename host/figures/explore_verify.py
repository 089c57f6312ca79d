"""Issue 26, item 4: a design the search found, built for real. The design
(default: docs/explore/results.json's verify_b64_design, ConfuciuX's best at
B = 64 unless that is the default config's shape: fixar.explore.study.verify_target) becomes a
config through the search's own fixar.explore.space.config_from; its training
engine is generated and simulated (Verilator, the training-engine bench: two
DDPG steps of 64-64 networks at B = 64 through the QAT switch, every weight,
moment and action against the golden model, every step's cycles against the
cycle model the search used), and its U50 kernel is synthesised with Yosys as
make bench's synth-kernel part does; the resources are set beside the
search's model (fixar.explore.resources.place)."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from fixar.compiler.program import compile_ddpg, step_cycles
from fixar.config import load
from fixar.explore.resources import place
from fixar.explore.space import config_from
from fixar.figures.synth import kernel_resources
from fixar.figures.trainer_sim import engine_bench

ROOT = Path(__file__).resolve().parents[2]
NETS = (17, 6, (64, 64), 64)          # HalfCheetah's sizes, the studies' 64-64 networks, B = 64
# the model's resource names -> make bench's kernel_* names
KINDS = {"dsp48e2": "dsp48e2", "lut": "lut", "ff": "ff", "bram36": "bram", "uram": "uram"}


def design_config(key: str = "verify_b64_design", root: Path = ROOT):
    data = json.loads((root / "docs" / "explore" / "results.json").read_text())
    if key not in data:
        raise KeyError(f"docs/explore/results.json has no {key!r} (run `python -m fixar.explore`)")
    values = data[key]["config"]
    return dataclasses.replace(config_from(values, load("default")), name="explore_verified"), values


def simulate(cfg) -> dict:
    """Two training steps through the QAT switch and an acting pass, bit-exact
    and cycle-exact (the bench asserts both); the cycles it measured."""
    obs, act, hidden, batch = NETS
    res, rec = engine_bench(cfg, [obs, act, list(hidden), batch], steps=2, qat_switch=1)
    if not res.passed or rec is None:
        raise RuntimeError(f"the found design's training-engine bench failed; see {res.results_xml}")
    model = step_cycles(cfg, compile_ddpg(cfg, obs, act, hidden, batch), batch)
    return {"identical_steps": rec["identical_steps"], "train_step_cycles": rec["cycles_fxp32"],
            "model_cycles": model, "act_cycles": rec["act_cycles"]}


def explore_verify(key: str = "verify_b64_design") -> dict:
    cfg, values = design_config(key)
    t = time.perf_counter()
    print(f"explore-verify: {key} = {values}: Verilator, two 64-64 training steps at B = 64 ...", flush=True)
    sim = simulate(cfg)
    print("explore-verify: Yosys, the whole kernel (cores one by one) ...", flush=True)
    synth = kernel_resources(cfg)
    placed = place(cfg)["total"]
    why = json.loads((ROOT / "docs" / "explore" / "results.json").read_text())[key].get("why", key)
    figs = {"explore_verified_design": f"{values['cores']} x {values['rows']} x {values['rows']} ({why})",
            "explore_verified_identical_steps": sim["identical_steps"],
            "explore_verified_train_step_cycles_64x64_b64": sim["train_step_cycles"],
            "explore_verified_cycles_equal_model": int(sim["train_step_cycles"] == sim["model_cycles"])}
    worst = 0.0
    for kind, name in KINDS.items():
        model = sum(slr[kind] for slr in placed)
        got = synth[f"kernel_{name}"]
        err = abs(model - got) / got if got else float(model != 0)
        figs[f"explore_verified_{kind}_yosys"] = got
        figs[f"explore_verified_{kind}_model"] = round(model, 1)
        figs[f"explore_verified_{kind}_rel_err"] = round(err, 4)
        worst = max(worst, err)
    figs["explore_verified_resource_rel_err_max"] = round(worst, 4)
    figs["explore_verify_s"] = round(time.perf_counter() - t)
    return figs
