"""The reward study (`make study`): FP32 vs FXP32 vs QAT (FIXAR) vs FXP16
from scratch, on Pendulum-v1 and the MuJoCo tasks, several seeds each, with
the same loop, networks and hyper-parameters; a results table and learning
curves written next to FIXAR's figures.

    python -m fixar.rl.study --envs Pendulum-v1,HalfCheetah-v5 --steps 100000 --seeds 3 --jobs 2 --out docs/study

Every run is an ordinary `fixar train` run in ``OUT/runs/<env>/<precision>/seed<k>``
(checkpoints, log.csv, result.json): a finished run is not redone, and an
interrupted study continues where it stopped (each run resumes from its
checkpoint). QAT switches at half the steps, as in the paper.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# precision -> backend that runs it
PRECISIONS = {"fp32": "float", "fxp32": "golden", "qat": "golden", "fxp16": "golden"}
# FIXAR's reported HalfCheetah returns (docs: ../shared/spec/fixar.md, Headline figures)
FIXAR_HALFCHEETAH = {"fp32": "about 2 000 - 2 100", "fxp32": "about 1 800 - 1 900", "qat": "about 1 800 - 1 900",
                     "fxp16": "about -580"}


# what the report says of the QAT quantizer's rounding (fixar.config.QUANTIZER_ROUNDINGS)
QAT_ROUNDING_TEXT = {"half_up": "rounds to nearest, ties up (FIXAR's formula floors)",
                     "floor": "floors, as FIXAR's formula does"}


def _qat_rounding(config: str = "default") -> str:
    """The QAT quantizer's rounding in the study's runs."""
    from fixar.config import load
    return load(config).array.quantizer_rounding


def _run(job: dict) -> dict:
    from fixar.rl.hyper import Hyper
    from fixar.rl.loop import RunSettings, Trainer

    out = Path(job["out"])
    result = out / "result.json"
    if result.exists():
        return json.loads(result.read_text())
    steps = job["steps"]
    run = RunSettings(env=job["env"], backend=PRECISIONS[job["precision"]], steps=steps, seed=job["seed"],
                      warmup=min(1_000, steps // 10), eval_every=max(steps // 10, 1),
                      eval_episodes=job["eval_episodes"], checkpoint_every=max(steps // 10, 1), out=str(out),
                      precision=job["precision"], qat_delay=steps // 2 if job["precision"] == "qat" else None,
                      config=job["config"],
                      hyper=Hyper(hidden=tuple(job["hidden"]), actor_lr=job["lr"], critic_lr=job["lr"]))
    trainer = Trainer(run, resume=(out / "checkpoint.npz").exists(), log=lambda *_: None)
    try:
        return trainer.train(progress=False)
    finally:
        trainer.close()


# what sizes each library's thread pool when it is imported
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "FIXAR_THREADS")


@contextlib.contextmanager
def worker_pool(jobs: int):
    """``jobs`` worker processes sharing the cores: each gets cores // jobs
    threads for BLAS and the golden model. Without this every worker starts
    a thread per core in OpenBLAS, whose waiting threads spin: with two
    workers on two cores one golden step took about 3x longer (measured).
    Workers are spawned (the pool starts them at its first jobs, while these
    settings are in the environment), so they import numpy with them."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {k: threads for k in THREAD_ENV if k not in os.environ}   # the user's own settings win
    os.environ.update(env)
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
    finally:
        for k in env:       # this process's pools are already sized: its environment goes back as it was
            del os.environ[k]


def jobs_for(envs, precisions, seeds, steps, hidden, out: Path, eval_episodes: int, lr: float = 1e-4,
             config: str = "default") -> list[dict]:
    return [{"env": env, "precision": p, "seed": seed, "steps": steps, "hidden": list(hidden), "lr": lr,
             "config": config,
             "eval_episodes": eval_episodes, "out": str(out / "runs" / env / p / f"seed{seed}")}
            for env in envs for p in precisions for seed in range(seeds)]


def summarize(jobs: list[dict], results: list[dict]) -> dict:
    """Per env and precision: final and best evaluation returns over seeds."""
    table: dict = {}
    for job, res in zip(jobs, results):
        cell = table.setdefault(job["env"], {}).setdefault(job["precision"],
                                                           {"final": [], "best": [], "second_half": [], "curves": []})
        evals = res["evals"]
        cell["final"].append(res["final_eval_return"])
        cell["best"].append(max(r for _, r in evals))
        # the evaluations after QAT's switch (half the steps), every precision alike:
        # steadier than the last one alone, and where QAT's 16-bit phase shows
        late = [r for s, r in evals if s > job["steps"] // 2]
        cell["second_half"].append(float(np.mean(late)) if late else float("nan"))
        cell["curves"].append(evals)
    for row in table.values():
        for cell in row.values():
            f = np.array(cell["final"], dtype=float)
            cell["final_mean"], cell["final_std"] = round(float(f.mean()), 1), round(float(f.std()), 1)
            cell["best_mean"] = round(float(np.mean(cell["best"])), 1)
            cell["second_half_mean"] = round(float(np.mean(cell["second_half"])), 1)
    return table


def _ratio(table_row: dict, a: str, b: str) -> str:
    if a not in table_row or b not in table_row:
        return "-"
    x, y = table_row[a]["final_mean"], table_row[b]["final_mean"]
    return f"{x - y:+.1f} ({(x - y) / abs(y) * 100:+.1f} %)" if y else "-"


def write_report(table: dict, jobs: list[dict], out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, hidden = jobs[0]["steps"], jobs[0]["hidden"]
    seeds = len({j["seed"] for j in jobs})
    lines = ["# Reward study", "",
             f"DDPG, {'-'.join(map(str, hidden))} networks, batch 64, Adam step size {jobs[0]['lr']:g}, {steps} "
             "environment steps per run "
             f"(FIXAR's budget is 1M), {seeds} seed(s), evaluation = mean return of "
             f"{jobs[0]['eval_episodes']} noise-free episodes every {max(steps // 10, 1)} steps; QAT switches at "
             f"step {steps // 2}; \"second half\" averages the evaluations after it (QAT's 16-bit phase; the "
             "last evaluation alone swings widely between neighbouring evaluations). "
             "fp32: float32 numpy backend; fxp32, qat, fxp16: the bit-exact golden model. "
             "qat (after the switch) and fxp16 stop the error where a 16-bit layer input is clipped (the clipped "
             "straight-through estimator, docs/training.md). "
             f"qat's 16-bit quantizer {QAT_ROUNDING_TEXT[_qat_rounding(jobs[0]['config'])]} "
             f"(array.quantizer_rounding). Engine config of fxp32, qat and fxp16: `{jobs[0]['config']}`. "
             "Written by `make study` (`python -m fixar.rl.study`).", "",
             "| env | precision | final return (mean +- std over seeds) | second half: mean evaluation "
             "(mean over seeds) | best evaluation (mean) | FIXAR (HalfCheetah, 1M steps) |",
             "|---|---|---|---|---|---|"]
    for env, row in table.items():
        for p in PRECISIONS:
            if p in row:
                c = row[p]
                ref = FIXAR_HALFCHEETAH[p] if env.startswith("HalfCheetah") else ""
                lines.append(f"| {env} | {p} | {c['final_mean']} +- {c['final_std']} | {c['second_half_mean']} | "
                             f"{c['best_mean']} | {ref} |")
    lines += ["", "Goal (issue 5): QAT within 5 % of FXP32 and within 10 % of FP32 (final returns):", "",
              "| env | QAT - FXP32 | QAT - FP32 |", "|---|---|---|"]
    for env, row in table.items():
        lines.append(f"| {env} | {_ratio(row, 'qat', 'fxp32')} | {_ratio(row, 'qat', 'fp32')} |")
    lines.append("")
    for env, row in table.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        for p, cell in row.items():
            xs = [s for s, _ in cell["curves"][0]]
            ys = np.array([[r for _, r in c] for c in cell["curves"] if len(c) == len(xs)])
            ax.plot(xs, ys.mean(axis=0), label=p)
            if len(ys) > 1:
                ax.fill_between(xs, ys.min(axis=0), ys.max(axis=0), alpha=0.15)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.set_title(f"{env}: mean over seeds (band: min-max)")
        ax.legend()
        png = out / f"curves_{env}.png"
        fig.tight_layout()
        fig.savefig(png, dpi=100)
        plt.close(fig)
        lines.append(f"![{env}](curves_{env}.png)")
    md = out / "README.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fixar.rl.study", description=__doc__.splitlines()[0])
    ap.add_argument("--envs", default="Pendulum-v1,HalfCheetah-v5,Hopper-v5,Swimmer-v5")
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--hidden", default="400,300")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam step size, actor and critic (FIXAR: 1e-4)")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    ap.add_argument("--out", default="docs/study")
    ap.add_argument("--config", default="default",
                    help="engine config of the golden runs (a shipped name or a TOML file; fp32 ignores it)")
    args = ap.parse_args(argv)
    precisions = args.precisions.split(",")
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        print(f"error: unknown precision(s) {unknown}; known: {', '.join(PRECISIONS)}", file=sys.stderr)
        return 2
    from fixar.rl.envs import EnvError, make_env
    try:
        for env in args.envs.split(","):
            make_env(env).close()      # a missing MuJoCo or a typo fails before hours of work
    except EnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from fixar.config import ConfigError, load
    try:
        load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs_for(args.envs.split(","), precisions, args.seeds, args.steps,
                    tuple(int(h) for h in args.hidden.split(",")), out, args.eval_episodes, args.lr, args.config)
    print(f"study: {len(jobs)} runs of {args.steps} steps, {args.jobs} at a time; runs in {out / 'runs'}", flush=True)
    results = []
    with worker_pool(max(args.jobs, 1)) as pool:
        for job, res in zip(jobs, pool.map(_run, jobs)):
            print(f"  {job['env']} {job['precision']} seed {job['seed']}: final {res['final_eval_return']:.1f}",
                  flush=True)
            results.append(res)
    table = summarize(jobs, results)
    (out / "results.json").write_text(json.dumps(
        {"steps": args.steps, "hidden": args.hidden, "seeds": args.seeds, "lr": args.lr,
         "config": args.config, "qat_quantizer_rounding": _qat_rounding(args.config),
         "table": {env: {p: {k: v for k, v in c.items() if k != "curves"} for p, c in row.items()}
                   for env, row in table.items()}}, indent=2) + "\n")
    print(f"wrote {write_report(table, jobs, out)} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
