"""Resources per SLR of a config on the U50, and the per-SLR budget.

UltraRAM and block RAM: fixar.gen.kernel.floorplan's count of the
generator's own memories (its objects' row counts, Vivado's URAM288 and
RAMB36/18 aspect ratios), valid for any shape because the memory list comes
from the generator.

DSP48E2, LUT and FF are modelled here, not taken from the floorplan: the
floorplan scales a core's DSPs as R C x PE + 2C x activation + C x (the
rest of the 16 x 16 core per column) and keeps the vector unit's at its
16-lane figure, while the vector unit has ``array.rows`` lanes and a core's
rest (output rounding, quantizers, address arithmetic) is not known to grow
per column. So:
* a core: a R^2 + b R + c per resource, fitted to Yosys runs of single
  cores of a few small shapes (fixar.explore.synthfit, held-out error stated);
* the Adam unit: ``array.cols`` lanes x one lane's Yosys figures (make bench);
* the vector unit: ``array.rows`` lanes x its 16-lane figures / 16;
* the rest of the kernel (controller, DMA, AXI): the whole kernel's Yosys
  figures less the parts above at the default shape, kept constant.
Yosys counts LUTs before Vivado's packing, so LUTs are an upper bound.

Placement follows the floorplan: core n in SLR n, the control part (vector
unit, bias memory, DMA FIFOs) and the rest in SLR0, the weights, the
gradients and the Adam lanes, the most UltraRAM first, in SLR0 when they
fit, else SLR1. Budgets: the floorplan's (URAM, BRAM36, DSP48E2: 90 % of
the dynamic region per SLR), and the same 90 % of 365 000 LUT and 730 000 FF
per SLR (the source the floorplan cites: FINN's Alveo_NxU50_Platform).
"""
from __future__ import annotations

import json
import math
from functools import lru_cache

from fixar.config import FixarConfig, load
from fixar.explore import synthfit

KINDS = ("uram", "bram36", "dsp48e2", "lut", "ff")
LOGIC = ("dsp48e2", "lut", "ff")
SLRS = 2
LUT_PER_SLR, FF_PER_SLR = 365_000, 730_000
FLOATING = ("weights", "adam", "gradients")


def budget() -> dict[str, float]:
    from fixar.gen.kernel.floorplan import MARGIN, SLR_BUDGET
    return {**SLR_BUDGET, "lut": math.floor(LUT_PER_SLR * (1 - MARGIN)), "ff": math.floor(FF_PER_SLR * (1 - MARGIN))}


@lru_cache(maxsize=1)
def summary() -> dict:
    from fixar.gen.kernel.floorplan import SUMMARY
    return json.loads(SUMMARY.read_text())


@lru_cache(maxsize=1)
def core_model() -> dict:
    return synthfit.fit(synthfit.load_measured())


def core_logic(rows: int) -> dict[str, float]:
    return synthfit.predict(core_model(), rows)


def unit_logic(unit: str) -> dict[str, float]:
    s = summary()
    return {k: float(s[f"{unit}_{k}"]) for k in LOGIC}


def kernel_rest() -> dict[str, float]:
    """The kernel's logic outside the cores, Adam and vector units (the default shape's Yosys run less the models)."""
    s, ref = summary(), load("default").array
    core, adam, vec = core_logic(ref.rows), unit_logic("adam"), unit_logic("vector")
    return {k: max(0.0, s[f"kernel_{k}"] - ref.cores * core[k] - ref.cols * adam[k] - vec[k]) for k in LOGIC}


def group_logic(cfg: FixarConfig, name: str) -> dict[str, float]:
    R, C = cfg.array.rows, cfg.array.cols
    ref_lanes = load("default").array.rows
    if name.startswith("core_"):
        return core_logic(R)
    if name == "adam":
        return {k: C * v for k, v in unit_logic("adam").items()}
    if name == "control":
        return {k: R * v / ref_lanes for k, v in unit_logic("vector").items()}
    if name == "rest":
        return kernel_rest()
    return {k: 0.0 for k in LOGIC}


def groups(cfg: FixarConfig) -> dict[str, dict[str, float]]:
    """Every part's resources: memories from the floorplan's count, logic from the models above."""
    from fixar.gen.kernel.floorplan import group_resources, measured_units
    mem = group_resources(cfg, measured_units(summary()))
    return {name: {"uram": float(r["uram"]), "bram36": float(r["bram36"]), **group_logic(cfg, name)}
            for name, r in mem.items()}


def _add(a: dict, b: dict) -> dict:
    return {k: a[k] + b[k] for k in KINDS}


def overuse(total: dict, cap: dict) -> float:
    """How far the most used resource is past its budget, as a fraction of the budget (<= 0: fits)."""
    return max(total[k] / cap[k] - 1.0 for k in KINDS)


def excess(totals: list[dict], cap: dict) -> float:
    """The sum over SLRs and resources of the fractions past the budget (0: fits).
    A sum, not the largest: shrinking any overused part lowers it, so a
    search is not left on a plateau while another part is the worst."""
    return sum(max(0.0, t[k] / cap[k] - 1.0) for t in totals for k in KINDS)


def place(cfg: FixarConfig) -> dict:
    """{"slr": part -> SLR, "total": per-SLR resources, "overuse": the worst fraction over budget,
    "excess": the sum of the fractions over budget, "worst": (slr, kind)}.
    Never raises for a budget overrun: the search needs to know by how much."""
    cap, res = budget(), groups(cfg)
    if cfg.array.cores > SLRS:
        raise ValueError(f"array.cores = {cfg.array.cores}: the U50 has {SLRS} SLRs and each core takes one")
    fixed = {f"core_{n}": n for n in range(cfg.array.cores)} | {"control": 0, "rest": 0}
    total = [{k: 0.0 for k in KINDS} for _ in range(SLRS)]
    for name, slr in fixed.items():
        total[slr] = _add(total[slr], res[name])
    where = dict(fixed)
    for name in sorted(FLOATING, key=lambda n: (-res[n]["uram"], FLOATING.index(n))):
        trial = [overuse(_add(total[s], res[name]), cap) for s in range(SLRS)]
        slr = next((s for s in range(SLRS) if trial[s] <= 0), min(range(SLRS), key=trial.__getitem__))
        where[name] = slr
        total[slr] = _add(total[slr], res[name])
    worst = max(((s, k) for s in range(SLRS) for k in KINDS), key=lambda sk: total[sk[0]][sk[1]] / cap[sk[1]])
    return {"slr": where, "total": total, "overuse": max(overuse(t, cap) for t in total),
            "excess": excess(total, cap), "worst": worst}
