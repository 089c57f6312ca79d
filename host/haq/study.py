"""Runs of every method over several seeds at one budget, resumable, on Ray
or in this process; the figures and plots (docs/haq.md).

A run is (method, seed): ``budget`` evaluations of HaqEnv. Each finished run
is written to ``<out>/runs/<method>_s<seed>.json`` and not redone when the
command is repeated; an interrupted run starts over (a run is minutes).
"""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fixar.config import DEFAULT
from fixar.haq import cost
from fixar.haq.actor import ActorQuality
from fixar.haq.env import HaqEnv
from fixar.haq.quality import Quality
from fixar.haq.search import METHODS
from fixar.haq.space import DEFAULT_LATENCY, Policy, uniform


@dataclass(frozen=True)
class Plan:
    methods: tuple[str, ...] = tuple(METHODS)
    seeds: int = 1
    budget: int = 40                # evaluations per run
    latency_fraction: float | None = None   # the budget: this share of uniform 8-bit's latency (None: the default)
    size_fraction: float | None = None   # and, if set, this share of uniform 8-bit's model bits
    quality: Quality | ActorQuality = Quality()

    @property
    def task(self) -> str:
        return "pendulum" if isinstance(self.quality, ActorQuality) else "digits"

    @property
    def prefix(self) -> str:
        """Figure keys: haq_* for the digits MLP, haq_pendulum_* for the actor."""
        return "haq_" if self.task == "digits" else "haq_pendulum_"

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "digits" else "return"

    def max_cycles(self) -> int:
        share = DEFAULT_LATENCY[self.task] if self.latency_fraction is None else self.latency_fraction
        return self._share_of_uniform8(cost.latency, share)

    def max_bits(self) -> int | None:
        return None if self.size_fraction is None else self._share_of_uniform8(cost.model_bits, self.size_fraction)

    def _share_of_uniform8(self, measure, fraction: float) -> int:
        wl = self.quality.workload
        return int(measure(DEFAULT, wl, uniform(wl, max(DEFAULT.bfp.widths))) * fraction)


def make_env(plan: Plan) -> HaqEnv:
    cache: dict[Policy, float] = {}

    def cached_score(policy: Policy) -> float:
        # one policy always scores the same (seeded), so repeats are looked up; each still counts
        if policy not in cache:
            cache[policy] = plan.quality.score(policy)
        return cache[policy]

    return HaqEnv(plan.quality.workload, cached_score, plan.quality.reference(), plan.max_cycles(),
                  relative=plan.quality.relative, max_bits=plan.max_bits())


def run_one(method: str, seed: int, plan: Plan) -> dict:
    env = make_env(plan)

    def progress(records):
        r = records[-1]
        best = max(records, key=lambda x: x["quality"])
        print(f"  {method} seed {seed}: {len(records)}/{plan.budget} {plan.metric} {r['quality']:.4f} "
              f"latency {r['latency']} best {best['quality']:.4f} ({policy_text(best['policy'])})", flush=True)

    return {"method": method, "seed": seed, "records": METHODS[method](env, plan.budget, seed, progress)}


def _path(out: Path, method: str, seed: int) -> Path:
    return out / "runs" / f"{method}_s{seed}.json"


def run_all(plan: Plan, out: Path, address: str | None = None, use_ray: bool = True) -> list[dict]:
    """Every (method, seed) of ``plan``; finished ones are read back, the rest run."""
    jobs = [(m, s) for m in plan.methods for s in range(plan.seeds)]
    todo = [j for j in jobs if not _path(out, *j).exists()]
    if todo:
        print(f"haq: {len(todo)} of {len(jobs)} runs to do ({len(jobs) - len(todo)} done before)", flush=True)
        # what every run shares (the Pendulum actor, trained into one folder) is made here, once, before
        # the runs start: runs on two workers each found it missing and trained it into the same files
        plan.quality.reference()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    if todo and use_ray:
        import ray

        from fixar.rl.study_ray import start_ray
        print(f"haq: runs on {start_ray(address, min(len(todo), os.cpu_count() or 1))} "
              "(a Ray task's own progress lines stay in its worker; each run is reported when it ends)", flush=True)
        try:
            task = ray.remote(num_cpus=1)(run_one)
            pending = {task.remote(m, s, plan): (m, s) for m, s in todo}
            while pending:
                done, _ = ray.wait(list(pending))
                for ref in done:
                    run = ray.get(ref)
                    _save(out, run)
                    pending.pop(ref)
                    best = max(run["records"], key=lambda r: r["quality"])
                    print(f"haq: {run['method']} seed {run['seed']} done, best {best['quality']:.4f} "
                          f"({policy_text(best['policy'])}); {len(todo) - len(pending)}/{len(todo)} runs", flush=True)
        finally:
            ray.shutdown()
    else:
        for m, s in todo:
            _save(out, run_one(m, s, plan))
    return [json.loads(_path(out, m, s).read_text()) for m, s in jobs]


def _save(out: Path, run: dict) -> None:
    path = _path(out, run["method"], run["seed"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(run) + "\n")
    tmp.replace(path)      # a run file is whole or absent


def first_reaching(accuracies: list[float], target: float) -> int | None:
    """1-based evaluation at which the best-so-far first reaches ``target``."""
    hits = np.flatnonzero(np.maximum.accumulate(accuracies) >= target - 1e-12)
    return int(hits[0]) + 1 if hits.size else None


def policy_text(bits: list[int]) -> str:
    return ",".join(f"w{bits[i]}a{bits[i + 1]}" for i in range(0, len(bits), 2))


def figures(runs: list[dict], plan: Plan) -> dict:
    wl, ref, P, q = plan.quality.workload, plan.quality.reference(), plan.prefix, plan.metric
    top = max(DEFAULT.bfp.widths)
    figs = {f"{P}reference_{q}": round(ref, 4), f"{P}max_cycles": plan.max_cycles(),
            f"{P}budget_evals": plan.budget, f"{P}seeds": plan.seeds}
    if plan.max_bits() is not None:
        figs[f"{P}max_model_bits"] = plan.max_bits()
    for w in DEFAULT.bfp.widths:
        p = uniform(wl, w)
        figs[f"{P}uniform{w}_{q}"] = round(plan.quality.score(p), 4)
        figs[f"{P}uniform{w}_latency"] = cost.latency(DEFAULT, wl, p)
    by = {m: [r for r in runs if r["method"] == m] for m in plan.methods}
    for m, rs in by.items():
        qs = [[x["quality"] for x in r["records"]] for r in rs]
        figs[f"{P}{m}_best_{q}"] = round(statistics.median(max(a) for a in qs), 4)
        figs[f"{P}{m}_evals_to_own_best"] = statistics.median(first_reaching(a, max(a)) for a in qs)
    baselines = [m for m in plan.methods if m != "haq"]
    if "haq" in by and baselines:
        reached = []
        for seed in range(plan.seeds):
            target = max(max(x["quality"] for x in r["records"]) for m in baselines for r in by[m]
                         if r["seed"] == seed)
            (h,) = [r for r in by["haq"] if r["seed"] == seed]
            reached.append(first_reaching([x["quality"] for x in h["records"]], target))
        figs[f"{P}seeds_reaching_baselines_best"] = sum(x is not None for x in reached)
        got = [x for x in reached if x is not None]
        figs[f"{P}evals_to_baselines_best"] = statistics.median(got) if got else None
    if "haq" in by:
        best = max((x for r in by["haq"] for x in r["records"]), key=lambda x: (x["quality"], -x["latency"]))
        figs[f"{P}latency_speedup_vs_uniform8"] = round(figs[f"{P}uniform{top}_latency"] / best["latency"], 2)
        # digits: accuracy points lost (a fraction); the actor: the return's loss as a fraction of |reference|
        drop = ref - best["quality"]
        figs[f"{P}quality_drop"] = round(drop / abs(ref) if plan.quality.relative else drop, 4)
        figs[f"{P}policy"] = policy_text(best["policy"])
        figs[f"{P}model_bits_vs_uniform8"] = round(
            best["model_bits"] / cost.model_bits(DEFAULT, wl, uniform(wl, top)), 3)
    return figs


def plots(runs: list[dict], figs: dict, plan: Plan, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = [out / "convergence.png"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in plan.methods:
        curves = np.array([np.maximum.accumulate([x["quality"] for x in r["records"]])
                           for r in runs if r["method"] == m])
        ax.plot(np.arange(1, plan.budget + 1), np.median(curves, axis=0), label=m)
    ax.axhline(figs[f"{plan.prefix}reference_{plan.metric}"], color="gray", ls="--", label="FXP32")
    ax.set_xlabel("evaluations")
    what = "test accuracy" if plan.task == "digits" else "mean return"
    ax.set_ylabel(f"best {what} so far (median over seeds)")
    ax.set_title(f"{plan.quality.workload.name} {plan.quality.workload.sizes}, "
                 f"latency <= {plan.latency_fraction:g} x uniform 8-bit", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    if f"{plan.prefix}policy" in figs:
        pairs = [p[1:].split("a") for p in figs[f"{plan.prefix}policy"].split(",")]
        x = np.arange(len(pairs))
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.bar(x - 0.2, [int(w) for w, _ in pairs], 0.4, label="weights")
        ax.bar(x + 0.2, [int(a) for _, a in pairs], 0.4, label="activations")
        ax.set_xticks(x, [f"layer {i}" for i in x])
        ax.set_ylabel("mantissa bits")
        ax.set_title("HAQ's best policy")
        ax.legend()
        fig.tight_layout()
        paths.append(out / "policy.png")
        fig.savefig(paths[1], dpi=120)
    plt.close("all")
    return paths

