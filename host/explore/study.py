"""The comparison: every method over several search seeds at the same
number of evaluations, the convergence plot, and the figures.

Evaluations are cheap (a compile, the cycle model, the resource model:
tens of milliseconds), so the runs go in this process by default, sharing
one cache; ``address`` runs each (method, seed) as a Ray task instead
(``"local"`` for a local Ray, else a cluster's address), each task with its
own cache.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

from fixar.config import load
from fixar.explore import cost, resources, synthfit
from fixar.explore.evaluate import OBJECTIVES, Evaluator
from fixar.explore.search import METHODS
from fixar.explore.space import MEMORIES, Space

WITHIN = 0.01                 # "reached the best": within 1 % of the best any method found
OUT = Path(__file__).resolve().parents[2] / "docs" / "explore"


def evaluator(batch: int, objective: str = "ips", workload: str = "halfcheetah") -> Evaluator:
    return Evaluator(Space(workload=cost.WORKLOADS[workload]), batch, objective)


def run_one(method: str, seed: int, budget: int, batch: int, objective: str = "ips", workload: str = "halfcheetah",
            ev: Evaluator | None = None) -> dict:
    ev = ev or evaluator(batch, objective, workload)
    t = time.perf_counter()
    hist = METHODS[method](ev, ev.space.sizes, budget, seed)
    best_c, best_y = max(hist, key=lambda cy: cy[1])
    evs = [ev.evaluate(c) for c, _ in hist]
    ev.calls -= len(evs)                  # looked up again for the record, not searched
    return {"method": method, "seed": seed, "fitness": [y for _, y in hist],
            "ips": [e.ips[batch] if e.ok else 0.0 for e in evs], "best": list(best_c),
            "best_fitness": best_y, "best_ips": ev.evaluate(best_c).ips.get(batch, 0.0),
            "seconds": round(time.perf_counter() - t, 2)}


def _run_ray(jobs: list[tuple], address: str) -> list[dict]:
    import ray

    # "local" is Ray's own word for a new local instance: never joins a cluster already running here
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(run_one)
        return ray.get([task.remote(*job) for job in jobs])
    finally:
        ray.shutdown()


SEED0 = 10     # search seeds 10, 11, ...: seeds 0-4 were used to choose ConfuciuX's step size and batch


def run_all(methods, seeds: int, budget: int, batch: int, address: str | None = None, log=print,
            objective: str = "ips", workload: str = "halfcheetah") -> list[dict]:
    jobs = [(m, s, budget, batch, objective, workload) for m in methods for s in range(SEED0, SEED0 + seeds)]
    if address:
        return _run_ray(jobs, address)
    ev, runs = evaluator(batch, objective, workload), []
    for job in jobs:
        runs.append(run_one(*job, ev=ev))
        r = runs[-1]
        log(f"  {r['method']:9s} seed {r['seed']}: best fitness {r['best_fitness']:.4f} ({r['seconds']} s)")
    return runs


def best_so_far(fitness: list[float]) -> np.ndarray:
    return np.maximum.accumulate(np.asarray(fitness))


def evals_to(fitness: list[float], target: float) -> int | None:
    """1-based evaluation at which the best so far first reaches ``target``, or None."""
    hit = np.nonzero(best_so_far(fitness) >= target)[0]
    return int(hit[0]) + 1 if hit.size else None


def median_evals(values: list[int | None]) -> float | None:
    """Median over seeds; a seed that never reached the target counts as
    infinitely many, and an infinite median is None (more than the budget)."""
    med = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(med) else float(med)


def level0_variants(space: Space):
    """(cores, rows, candidate) for every cores x rows x psum x URAM threshold
    of the space with every memory at level 0 (the smallest depth that fits)."""
    vals = {d.name: d.values for d in space.dims}
    for cores in vals["cores"]:
        for rows in vals["rows"]:
            for psum in vals["psum_slots"]:
                for th in vals["uram_min_rows"]:
                    v = dict(cores=cores, rows=rows, psum_slots=psum, uram_min_rows=th) | dict.fromkeys(MEMORIES, 0)
                    yield cores, rows, space.index(v)


def sweep(batch: int, objective: str = "ips", workload: str = "halfcheetah") -> dict:
    """Every level-0 variant (level0_variants): deeper memories add no cycle
    and no DSP, so this is the space's optimum up to the memories' URAM /
    block RAM mix (a deeper memory can move from block RAM to UltraRAM)."""
    ev = evaluator(batch, objective, workload)
    best = None
    for _, _, cand in level0_variants(ev.space):
        e = ev.evaluate(cand)
        if best is None or e.fitness > best.fitness:
            best = e
    return {"evaluations": ev.calls, "best": best}


GOAL = 1.2     # issue 26: a design with 1.2 x the default config's IPS at B = 64


def shapes(batch: int = 64) -> dict:
    """Every cores x rows of the space, its best variant (the sweep's menus:
    psum slots x URAM threshold, memories at level 0), its IPS over the
    default config's, and how far over the U50 budget it is. A core's logic
    (LUT, FF, DSP48E2) does not depend on the memories, so a shape whose
    best variant is over budget has no variant that fits; the shapes at
    GOAL x the default's IPS or more, and the least any of them is over,
    say whether the goal is reachable in this space at all."""
    ev = evaluator(batch)
    best: dict = {}
    for cores, rows, cand in level0_variants(ev.space):
        e, name = ev.evaluate(cand), f"{cores}x{rows}x{rows}"
        cur = best.get(name)
        if e.place and (cur is None or e.place["overuse"] < cur.place["overuse"]):
            best[name] = e
        best.setdefault(name, None)
    table = {}
    for name, e in best.items():
        if e is None:
            table[name] = {"status": "rejected"}
            continue
        slr, kind = e.place["worst"]
        table[name] = {"ips_ratio": round(e.ips[batch] / ev.reference_ips, 3), "status": e.status,
                       "overuse": round(e.place["overuse"], 4), "worst": f"SLR{slr} {kind}"}
    faster = {k: r for k, r in table.items() if r.get("ips_ratio", 0) >= GOAL}
    least = min(faster.items(), key=lambda kv: kv[1]["overuse"], default=None)
    return {"table": table, "faster_feasible": sorted(k for k, r in faster.items() if r["status"] == "ok"),
            "least_over": least}


def verify_target(ev: Evaluator, winner: tuple) -> tuple[tuple, str]:
    """The design make bench's explore-verify part builds: the search's winner,
    unless it has the default config's shape (which the trainer and
    synth-kernel parts already build, and at which the resource model is
    fitted), then the fittest feasible level-0 design of another shape."""
    shape = lambda c: tuple(ev.space.values(c)[k] for k in ("cores", "rows"))
    default = load(ev.space.base).array
    if shape(winner) != (default.cores, default.rows):
        return winner, "ConfuciuX's best at B = 64"
    others = [c for _, _, c in level0_variants(ev.space) if shape(c) != shape(winner) and ev.evaluate(c).ok]
    if not others:
        return winner, "ConfuciuX's best at B = 64 (no feasible design of another shape)"
    return max(others, key=ev), "ConfuciuX's best has the default's shape: the best feasible design of another shape"


def model_error() -> dict:
    pts = synthfit.load_measured()
    return synthfit.held_out_error(pts, synthfit.fit(pts))


def describe(ev: Evaluator, cand) -> dict:
    """A found design: its values, IPS at each batch, per-SLR resources and placement."""
    e = ev.evaluate(cand)
    try:
        values = ev.space.resolve(tuple(cand))
    except ValueError:          # ProgramError: no depth fits the shape
        values = ev.space.values(tuple(cand))
    out = {"config": values, "status": e.status,
           **{f"ips_b{b}": round(v, 1) for b, v in e.ips.items()}}
    if e.place:
        out["ips_per_dsp"] = round(OBJECTIVES["ips_per_dsp"](e.ips[ev.batch], e.place), 3)
        for s, tot in enumerate(e.place["total"]):
            out |= {f"slr{s}_{k}": round(tot[k], 1) for k in resources.KINDS}
        out["slr_of"] = e.place["slr"]
    return out


def compare(runs: list[dict], methods, prefix: str = "", ips_curve: bool = False) -> dict:
    """Per method over its seeds: how many reached within WITHIN of the best
    any method found, the median evaluations that took, the median best;
    with ``ips_curve`` also the evaluations to within WITHIN of the best IPS."""
    top = max(r["best_fitness"] for r in runs)
    top_ips = max(r["best_ips"] for r in runs)
    figs = {f"{prefix}best_fitness_any_method": round(top, 5)}
    for m in methods:
        mine = [r for r in runs if r["method"] == m]
        reach = [evals_to(r["fitness"], top - WITHIN * abs(top)) for r in mine]
        figs[f"{prefix}{m}_evals_to_best"] = median_evals(reach)
        figs[f"{prefix}{m}_seeds_reaching_best"] = sum(v is not None for v in reach)
        if ips_curve:
            figs[f"{m}_evals_to_best_ips"] = median_evals([evals_to(r["ips"], top_ips * (1 - WITHIN)) for r in mine])
        figs[f"{prefix}{m}_median_best_fitness"] = round(statistics.median(r["best_fitness"] for r in mine), 5)
    return figs


def _confuciux_best_cand(runs: list[dict]) -> tuple:
    return tuple(max((r for r in runs if r["method"] == "confuciux"), key=lambda r: r["best_fitness"])["best"])


def _confuciux_best(runs: list[dict], ev: Evaluator) -> dict:
    return describe(ev, _confuciux_best_cand(runs))


def figures(methods=tuple(METHODS), seeds: int = 5, budget: int = 400, address: str | None = None,
            out: Path = OUT, log=print) -> dict:
    """Runs the comparison at B = 64 (every method) and ConfuciuX at B = 512;
    then every method for the second objective (IPS per DSP48E2) and on
    the second workload (the studies' 64-64 Hopper networks);
    writes the plots and results.json."""
    t0 = time.perf_counter()
    figs: dict = {}
    ev64, ev512 = evaluator(64), evaluator(512)
    default = load("default")
    default_steps = {b: cost.step(default, b) for b in (64, 512)}
    figs["default_config_ips_b64"] = round(default_steps[64]["ips"], 1)
    figs["default_config_ips_b512"] = round(default_steps[512]["ips"], 1)
    log(f"search at B = 64: {', '.join(methods)} x {seeds} seeds x {budget} evaluations")
    runs = run_all(methods, seeds, budget, 64, address, log)
    figs |= compare(runs, methods, ips_curve=True)
    win = _confuciux_best(runs, ev64)
    figs["confuciux_best_ips_b64"] = win.get("ips_b64") if win["status"] == "ok" else None
    figs["confuciux_best_b64_design"] = win
    target, why = verify_target(ev64, _confuciux_best_cand(runs))
    figs["verify_b64_design"] = describe(ev64, target) | {"why": why}
    log(f"search at B = 512: confuciux x {seeds} seeds x {budget} evaluations")
    runs512 = run_all(("confuciux",), seeds, budget, 512, address, log)
    win512 = _confuciux_best(runs512, ev512)
    figs["confuciux_best_ips_b512"] = win512.get("ips_b512") if win512["status"] == "ok" else None
    figs["confuciux_best_b512_design"] = win512
    log("structured sweep (the optimum to compare with)")
    for b in (64, 512):
        sw = sweep(b)
        figs[f"sweep_best_ips_b{b}"] = round(sw["best"].ips[b], 1)
        figs[f"sweep_evaluations_b{b}"] = sw["evaluations"]
    sh = shapes(64)
    figs["shapes_b64"] = sh["table"]
    figs["goal_shapes_feasible_b64"] = len(sh["faster_feasible"])
    if sh["least_over"]:
        name, row = sh["least_over"]
        figs["goal_shape_least_over_b64"] = name
        figs["goal_shape_least_overuse_b64"] = row["overuse"]
        figs["goal_shape_least_over_ips_ratio_b64"] = row["ips_ratio"]
        figs["goal_shape_least_over_resource_b64"] = row["worst"]
    figs |= _second_objective(methods, seeds, budget, address, log, out)
    figs |= _second_workload(methods, seeds, budget, address, log, out)
    err = model_error()
    figs["resource_model_rel_err"] = round(max(err["max"].values()), 4)
    figs["resource_model_rel_err_by_kind"] = {k: round(v, 4) for k, v in err["max"].items()}
    figs["search_budget"], figs["search_seeds"] = budget, seeds
    figs["explore_seconds"] = round(time.perf_counter() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    plot(runs, ev64.reference_ips, out / "convergence_b64.png", budget, seeds)
    (out / "results.json").write_text(json.dumps(figs, indent=1, default=str) + "\n")
    (out / "runs_b64.json").write_text(json.dumps(runs) + "\n")
    return figs


def _second_objective(methods, seeds: int, budget: int, address, log, out: Path) -> dict:
    """Every method for IPS per DSP48E2 at B = 64, and the sweep's optimum for it."""
    ev = evaluator(64, "ips_per_dsp")
    log(f"search for IPS per DSP48E2 at B = 64: {', '.join(methods)} x {seeds} seeds x {budget} evaluations")
    runs = run_all(methods, seeds, budget, 64, address, log, objective="ips_per_dsp")
    figs = compare(runs, methods, "ips_per_dsp_")
    figs["ips_per_dsp_default_config_b64"] = round(ev.reference, 3)
    win = _confuciux_best(runs, ev)
    figs["confuciux_best_ips_per_dsp_b64"] = win.get("ips_per_dsp") if win["status"] == "ok" else None
    figs["confuciux_best_ips_per_dsp_b64_design"] = win
    sw = sweep(64, "ips_per_dsp")
    figs["ips_per_dsp_sweep_best_b64"] = round(ev.value(sw["best"].ips[64], sw["best"].place), 3)
    figs["ips_per_dsp_sweep_best_b64_design"] = describe(ev, sw["best"].cand)
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs_ips_per_dsp_b64.json").write_text(json.dumps(runs) + "\n")
    return figs


def _second_workload(methods, seeds: int, budget: int, address, log, out: Path) -> dict:
    """Every method for IPS at B = 64 on the 64-64 Hopper networks, and the
    sweep's optimum: a workload that most designs' memories hold, so the
    searches are compared on a landscape with a wide feasible region too."""
    name = cost.HOPPER64.name
    ev = evaluator(64, workload=name)
    log(f"search on {name} at B = 64: {', '.join(methods)} x {seeds} seeds x {budget} evaluations")
    runs = run_all(methods, seeds, budget, 64, address, log, workload=name)
    win = _confuciux_best(runs, ev)
    sw = sweep(64, workload=name)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"runs_b64_{name}.json").write_text(json.dumps(runs) + "\n")
    return compare(runs, methods, f"{name}_") | {
        f"default_config_ips_b64_{name}": round(ev.reference_ips, 1),
        f"confuciux_best_ips_b64_{name}": win.get("ips_b64") if win["status"] == "ok" else None,
        f"confuciux_best_b64_{name}_design": win,
        f"sweep_best_ips_b64_{name}": round(sw["best"].ips[64], 1),
        f"sweep_best_b64_{name}_design": describe(ev, sw["best"].cand)}


def plot(runs: list[dict], ref_ips: float, path: Path, budget: int, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(1, budget + 1)
    for key, ax, scale, label in (("fitness", axes[0], 1.0, "best fitness so far (IPS / default's - memory term)"),
                                  ("ips", axes[1], 1e-3, "best feasible IPS so far, B = 64 (thousands)")):
        for m in dict.fromkeys(r["method"] for r in runs):
            curves = np.array([best_so_far(r[key]) * scale for r in runs if r["method"] == m])
            lo, med, hi = np.percentile(curves, [25, 50, 75], axis=0)
            (line,) = ax.plot(x, med, label=m)
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("evaluations")
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-2.05, 1.1)     # -2 rejected, -1..-2 memories short, -1..0 over budget, > 0 feasible
    for y, text in ((-1.5, "workload does not fit"), (-0.5, "over the U50 budget"), (0.5, "feasible")):
        axes[0].text(budget * 0.02, y, text, fontsize=7, color="grey", va="center")
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].axhline(-1, color="grey", lw=0.8)
    axes[1].axhline(ref_ips * 1e-3, color="grey", ls=":", lw=1, label="default config")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"DDPG 400-300 HalfCheetah on the U50 (per-SLR budget): median of {seeds} search seeds, "
                 "25-75 % band", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
