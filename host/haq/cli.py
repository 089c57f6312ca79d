"""``python -m fixar.haq``: HAQ's search and its baselines on the digits MLP
or a Pendulum actor (docs/haq.md). The default is small (1 seed, 40
evaluations per method: a few minutes here); the figures go to
``<out>/results.json`` and the plots beside it."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fixar.haq.search import METHODS
from fixar.haq.space import DEFAULT_LATENCY


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m fixar.haq", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--task", default="digits", choices=["digits", "pendulum"],
                    help="digits: the digits MLP's test accuracy after a fine-tune; pendulum: the mean return "
                         "of a golden-trained Pendulum actor deployed in the policy")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {list(METHODS)}")
    ap.add_argument("--seeds", type=int, default=1, help="search seeds per method")
    ap.add_argument("--budget", type=int, default=40, help="evaluations (episodes) per run")
    ap.add_argument("--latency", type=float, default=None,
                    help="latency budget as a share of uniform 8-bit's (the lane array's cycles; "
                         f"default {DEFAULT_LATENCY})")
    ap.add_argument("--size", type=float, default=None,
                    help="model-size budget as a share of uniform 8-bit's model bits (mantissas, exponents, "
                         "biases); none by default")
    ap.add_argument("--finetune-epochs", type=int, default=1, help="digits: fine-tune epochs before each score")
    ap.add_argument("--actor-dir", default="runs/haq-pendulum-actor",
                    help="pendulum: the actor's training run (trained here first if it has not finished)")
    ap.add_argument("--episodes", type=int, default=5, help="pendulum: evaluation episodes per score")
    ap.add_argument("--out", default="runs/haq", help="folder of runs/, results.json and the plots")
    ap.add_argument("--address", default=None, help="a Ray cluster's address (default: a local Ray)")
    ap.add_argument("--no-ray", action="store_true", help="run in this process instead of Ray tasks")
    return ap.parse_args(argv)


def check(args) -> None:
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SystemExit(f"haq: --methods {args.methods!r}: unknown {unknown}; known {list(METHODS)}")
    for name in ("seeds", "budget"):
        if getattr(args, name) < 1:
            raise SystemExit(f"haq: --{name} must be at least 1, got {getattr(args, name)}")
    if args.latency is None:
        args.latency = DEFAULT_LATENCY[args.task]
    if args.episodes < 1:
        raise SystemExit(f"haq: --episodes must be at least 1, got {args.episodes}")
    if not 0 < args.latency <= 1:
        raise SystemExit(f"haq: --latency must be in (0, 1], got {args.latency}")
    if args.size is not None and not 0 < args.size <= 1:
        raise SystemExit(f"haq: --size must be in (0, 1], got {args.size}")
    if args.finetune_epochs < 0:
        raise SystemExit(f"haq: --finetune-epochs must be >= 0, got {args.finetune_epochs}")


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    check(args)
    from fixar.haq import cost
    from fixar.haq.actor import ActorQuality
    from fixar.haq.quality import Quality
    from fixar.haq.study import Plan, figures, plots, run_all
    quality = Quality(finetune_epochs=args.finetune_epochs) if args.task == "digits" else \
        ActorQuality(folder=str(Path(args.actor_dir).resolve()), episodes=args.episodes)
    plan = Plan(methods=tuple(m for m in args.methods.split(",") if m), seeds=args.seeds, budget=args.budget,
                latency_fraction=args.latency, size_fraction=args.size, quality=quality)
    out = Path(args.out)
    try:
        # a budget even the narrowest widths miss fails here, before any run
        from fixar.config import DEFAULT
        from fixar.haq.space import uniform
        cost.enforce(DEFAULT, plan.quality.workload, uniform(plan.quality.workload, max(DEFAULT.bfp.widths)),
                     plan.max_cycles(), tuple(DEFAULT.bfp.widths), plan.max_bits())
    except ValueError as exc:
        flag = f"--size {args.size}" if str(exc).startswith("model-size") else f"--latency {args.latency}"
        raise SystemExit(f"haq: {flag}: {exc}") from None
    batch = cost.priced_batch(DEFAULT, plan.quality.workload)
    print(f"haq: {plan.quality.workload.name} {plan.quality.workload.sizes}, latency <= {plan.max_cycles()} cycles "
          f"for {batch} vector(s) ({args.latency:g} x uniform 8-bit)"
          + (f", model <= {plan.max_bits()} bits ({args.size:g} x uniform 8-bit)" if args.size else "")
          + f", {plan.budget} evaluations x {plan.seeds} seed(s) x {list(plan.methods)}", flush=True)
    from fixar.rl.study_ray import StudyError
    try:
        runs = run_all(plan, out, args.address, use_ray=not args.no_ray)
    except StudyError as exc:
        raise SystemExit(f"haq: {exc}") from None
    except KeyboardInterrupt:
        print("haq: interrupted; finished runs are kept, run the same command to go on", file=sys.stderr)
        return 130
    figs = figures(runs, plan)
    (out / "results.json").write_text(json.dumps(figs, indent=1) + "\n")
    for path in plots(runs, figs, plan, out):
        print(f"wrote {path}")
    for k, v in figs.items():
        print(f"{k}: {v}")
    return 0
