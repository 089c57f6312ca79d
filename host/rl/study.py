"""The reward study (`make study`): FP32 vs FXP32 vs QAT (FIXAR) vs FXP16
from scratch, on Pendulum-v1 and the MuJoCo tasks, several seeds each, with
the same loop, networks and hyper-parameters; a results table and learning
curves written next to FIXAR's figures.

    fixar study --envs Pendulum-v1,HalfCheetah-v5 --steps 100000 --seeds 3 --out docs/study [--address HEAD:PORT]

Every run is an ordinary `fixar train` run in ``OUT/runs/<env>/<precision>/seed<k>``
(checkpoints, log.csv, result.json), run as a Ray task (fixar.rl.study_ray:
a local Ray, or a cluster by --address / RAY_ADDRESS; docs/study.md): a
finished run is not redone, and an interrupted study continues where it
stopped (each run resumes from its checkpoint). QAT switches at half the
steps, as in the paper.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

# precision -> backend that runs it
PRECISIONS = {"fp32": "float", "fxp32": "golden", "qat": "golden", "fxp16": "golden", "bfp": "golden"}
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


def train_job(job: dict, log=None) -> dict:
    """One run of the study (in a Ray task): an ordinary training run in the
    job's folder, resumed from its checkpoint when it has one; a finished
    run's result is read back, not redone. ``log`` receives its progress
    lines."""
    from fixar.rl.hyper import Hyper
    from fixar.rl.loop import RunSettings, Trainer

    out = Path(job["out"])
    result = out / "result.json"
    if result.exists():
        return json.loads(result.read_text())
    steps = job["steps"]
    multiplier = job.get("multiplier", "exact")
    run = RunSettings(env=job["env"], backend=PRECISIONS[job["precision"]], steps=steps, seed=job["seed"],
                      warmup=min(1_000, steps // 10), eval_every=job["eval_every"],
                      eval_episodes=job["eval_episodes"], checkpoint_every=max(steps // 10, 1), out=str(out),
                      precision=job["precision"], qat_delay=steps // 2 if job["precision"] == "qat" else None,
                      config=job["config"], multiplier=None if multiplier == "exact" else multiplier,
                      hyper=Hyper(hidden=tuple(job["hidden"]), actor_lr=job["lr"], critic_lr=job["lr"]))
    trainer = Trainer(run, resume=(out / "checkpoint.npz").exists(), log=log or (lambda *_: None))
    try:
        return trainer.train(progress=log is not None)
    finally:
        trainer.close()


def column(precision: str, multiplier: str = "exact") -> str:
    """A table column: the precision, and the PE's multiplier when not exact (e.g. qat_mbm)."""
    return precision if multiplier == "exact" else f"{precision}_{multiplier}"


def jobs_for(envs, precisions, seeds, steps, hidden, out: Path, eval_episodes: int, lr: float = 1e-4,
             config: str = "default", eval_every: int | None = None, multipliers=("exact",)) -> list[dict]:
    """Every run: env x precision x multiplier x seed; an approximate
    multiplier only for the fixed-point precisions (fp32 has no PE)."""
    return [{"env": env, "precision": p, "multiplier": m, "column": column(p, m), "seed": seed, "steps": steps,
             "hidden": list(hidden), "lr": lr, "config": config, "eval_every": eval_every or max(steps // 10, 1),
             "eval_episodes": eval_episodes, "out": str(out / "runs" / env / column(p, m) / f"seed{seed}")}
            for env in envs for p in precisions for m in multipliers for seed in range(seeds)
            if m == "exact" or PRECISIONS[p] != "float"]


def summarize(jobs: list[dict], results: list[dict]) -> dict:
    """Per env and precision: final and best evaluation returns over seeds."""
    table: dict = {}
    for job, res in zip(jobs, results):
        cell = table.setdefault(job["env"], {}).setdefault(job.get("column", job["precision"]),
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
             f"{jobs[0]['eval_episodes']} noise-free episodes every {jobs[0]['eval_every']} steps; QAT switches at "
             f"step {steps // 2}; \"second half\" averages the evaluations after it (QAT's 16-bit phase; the "
             "last evaluation alone swings widely between neighbouring evaluations). "
             "fp32: float32 numpy backend; fxp32, qat, fxp16, bfp: the bit-exact golden model (bfp: block floating "
             "point with FAST's precision schedule, docs/bfp.md); a column such as "
             "qat_mbm: that precision with the PE's approximate multiplier (docs/multipliers.md). "
             "qat (after the switch) and fxp16 stop the error where a 16-bit layer input is clipped (the clipped "
             "straight-through estimator, docs/training.md). "
             f"qat's 16-bit quantizer {QAT_ROUNDING_TEXT[_qat_rounding(jobs[0]['config'])]} "
             f"(array.quantizer_rounding). Engine config of the fixed-point runs: `{jobs[0]['config']}`. "
             "Written by `make study` (`python -m fixar.rl.study`).", "",
             "| env | precision | final return (mean +- std over seeds) | second half: mean evaluation "
             "(mean over seeds) | best evaluation (mean) | FIXAR (HalfCheetah, 1M steps) |",
             "|---|---|---|---|---|---|"]
    for env, row in table.items():
        for p, c in row.items():
            ref = FIXAR_HALFCHEETAH.get(p, "") if env.startswith("HalfCheetah") else ""
            lines.append(f"| {env} | {p} | {c['final_mean']} +- {c['final_std']} | {c['second_half_mean']} | "
                         f"{c['best_mean']} | {ref} |")
    lines += ["", "Goal (issue 5): QAT within 5 % of FXP32 and within 10 % of FP32 (final returns):", "",
              "| env | QAT - FXP32 | QAT - FP32 |", "|---|---|---|"]
    for env, row in table.items():
        lines.append(f"| {env} | {_ratio(row, 'qat', 'fxp32')} | {_ratio(row, 'qat', 'fp32')} |")
    approx = [c for c in next(iter(table.values())) if "_" in c]
    if approx:
        lines += ["", "Approximate multipliers (issue 24's goal: a QAT agent within 5 % of the exact multiplier's):",
                  "", "| env | column | against the exact multiplier's |", "|---|---|---|"]
        for env, row in table.items():
            lines += [f"| {env} | {c} | {_ratio(row, c, c.split('_')[0])} |" for c in row if "_" in c]
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


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):      # one line and exit 2, as every fixar command
        self.exit(2, f"error: {message} (see `fixar study --help`)\n")


def _parser() -> argparse.ArgumentParser:
    ap = _OneLineParser(prog="fixar study", description=__doc__.splitlines()[0])
    ap.add_argument("--envs", default="Pendulum-v1,HalfCheetah-v5,Hopper-v5,Swimmer-v5")
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--multipliers", default="exact",
                    help="the PE's multipliers to train the fixed-point precisions with, e.g. exact,mbm,drum6 "
                         "(docs/multipliers.md); columns such as qat_mbm")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--hidden", default="400,300")
    ap.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default: steps / 10)")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam step size, actor and critic (FIXAR: 1e-4)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="a local Ray's CPUs: runs in parallel on this machine (ignored with --address)")
    ap.add_argument("--cpus-per-run", type=int, default=1, help="CPUs (BLAS and golden threads) of each run")
    ap.add_argument("--address", default=None,
                    help="a Ray cluster to run on, e.g. ray://head:10001 or auto (default: RAY_ADDRESS, else a "
                         "local Ray)")
    ap.add_argument("--out", default="docs/study")
    ap.add_argument("--config", default="default",
                    help="engine config of the golden runs (a shipped name or a TOML file; fp32 ignores it)")
    return ap


def _check(args) -> str | None:
    """The first thing wrong with the study's arguments, before any run."""
    unknown = [p for p in args.precisions.split(",") if p not in PRECISIONS]
    if unknown:
        return f"unknown precision(s) {unknown}; known: {', '.join(PRECISIONS)}"
    from fixar.config import MULTIPLIERS
    unknown = [m for m in args.multipliers.split(",") if m not in MULTIPLIERS]
    if unknown:
        return f"--multipliers: unknown multiplier(s) {unknown}; known: {', '.join(MULTIPLIERS)}"
    if min(args.seeds, args.steps, args.jobs, args.cpus_per_run, args.eval_episodes, args.eval_every or 1) < 1:
        return "--seeds, --steps, --jobs, --cpus-per-run, --eval-every and --eval-episodes must be >= 1"
    from fixar.config import ConfigError, load
    from fixar.rl.envs import EnvError, make_env
    try:
        for env in args.envs.split(","):
            make_env(env).close()      # a missing MuJoCo or a typo fails before hours of work
        load(args.config)
        hidden = tuple(int(h) for h in args.hidden.split(","))
        if len(hidden) != 2 or min(hidden) < 1:
            raise ValueError
    except (EnvError, ConfigError) as exc:
        return str(exc)
    except ValueError:
        return f"--hidden: two positive layer sizes expected, got {args.hidden!r}"
    return None


def main(argv=None) -> int:
    from fixar.rl.study_ray import StudyError, run_all

    args = _parser().parse_args(argv)
    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs_for(args.envs.split(","), args.precisions.split(","), args.seeds, args.steps,
                    tuple(int(h) for h in args.hidden.split(",")), out, args.eval_episodes, args.lr, args.config,
                    args.eval_every, args.multipliers.split(","))
    try:
        results = run_all(jobs, args.address, args.cpus_per_run, args.jobs)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        saved = f" ({exc})" if str(exc) else ""
        print(f"study interrupted{saved}; run the same command again to continue", file=sys.stderr)
        return 130
    table = summarize(jobs, results)
    (out / "results.json").write_text(json.dumps(
        {"steps": args.steps, "hidden": args.hidden, "seeds": args.seeds, "lr": args.lr,
         "eval_every": jobs[0]["eval_every"], "config": args.config,
         "qat_quantizer_rounding": _qat_rounding(args.config),
         "table": {env: {p: {k: v for k, v in c.items() if k != "curves"} for p, c in row.items()}
                   for env, row in table.items()}}, indent=2) + "\n")
    print(f"wrote {write_report(table, jobs, out)} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
