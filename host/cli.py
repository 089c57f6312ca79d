"""fixar: train DDPG agents on an accelerator backend, evaluate checkpoints, measure figures.

    fixar train [--env Pendulum-v1] [--backend golden|float|rtl|xrt] [--config default] [--steps N]
                [--batch B] [--seed S] [--out DIR] [--resume]
    fixar eval RUN_DIR_OR_CHECKPOINT [--episodes 10]
    fixar bench [all|pe|array|synth|synth-array|golden]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

PRECISIONS = ("fp32", "fxp32", "qat", "fxp16")


def _train(args) -> int:
    from fixar.rl.backends import BackendUnavailable
    from fixar.rl.checkpoint import CheckpointError
    from fixar.rl.envs import EnvError
    from fixar.rl.hyper import Hyper
    from fixar.rl.loop import RunSettings, Trainer

    precision = args.precision or ("fp32" if args.backend == "float" else "fxp32")
    if args.backend == "float" and precision != "fp32":
        print(f"error: --precision {precision} needs a fixed-point backend; the float backend is fp32",
              file=sys.stderr)
        return 2
    if args.backend != "float" and precision == "fp32":
        print("error: --precision fp32 is the float backend's; use --backend float", file=sys.stderr)
        return 2
    try:
        hidden = tuple(int(h) for h in args.hidden.split(","))
        hyper = Hyper(batch=args.batch, hidden=hidden, actor_lr=args.lr, critic_lr=args.lr)
        run = RunSettings(env=args.env, backend=args.backend, steps=args.steps, seed=args.seed,
                          warmup=args.warmup, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                          checkpoint_every=args.checkpoint_every, out=args.out, precision=precision,
                          config=args.config, xclbin=args.xclbin,
                          qat_delay=(args.qat_delay if args.qat_delay is not None else args.steps // 2)
                          if precision == "qat" else args.qat_delay, hyper=hyper)
        trainer = Trainer(run, resume=args.resume)
    except (ValueError, EnvError, BackendUnavailable, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = trainer.train()
    except KeyboardInterrupt:
        return 130
    except BackendUnavailable as exc:     # e.g. the rtl backend's simulator died mid-run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        trainer.close()
    print(f"done: final evaluation return {result['final_eval_return']:.1f}; log {run.out}/log.csv, "
          f"curve {run.out}/learning_curve.png, checkpoint {run.out}/checkpoint.npz, "
          f"summary {run.out}/result.json")
    return 0


def _eval(args) -> int:
    from fixar.rl.checkpoint import CheckpointError, read_settings
    from fixar.rl.envs import EnvError
    from fixar.rl.loop import RunSettings, Trainer, evaluate

    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "checkpoint.npz"
    try:
        run = RunSettings.from_dict(read_settings(path))
        run = RunSettings.from_dict({**run.to_dict(), "out": str(path.parent)})
        trainer = Trainer(run, resume=True, log=lambda *_: None)
        ret = evaluate(trainer.backend, run.env, run.seed, args.episodes)
    except (ValueError, EnvError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{run.env}, {run.backend} backend, step {trainer.step}: mean return over {args.episodes} episodes "
          f"{ret:.1f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="fixar", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a DDPG agent")
    t.add_argument("--env", default="Pendulum-v1", help="gymnasium id with continuous actions")
    t.add_argument("--backend", default="golden",
                   help="golden (bit-exact fixed-point model), float (float32 numpy) or rtl (the generated "
                        "engine under Verilator: slow, for verification runs) or xrt (the U50 board, --xclbin)")
    t.add_argument("--xclbin", default=None, help="xrt: the board image `make bitstream` writes")
    t.add_argument("--config", default="default",
                   help="engine config of the golden and rtl backends: a shipped name (default, small) or a TOML file")
    t.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="fp32 (float backend), fxp32, qat (golden: 16-bit activations after --qat-delay) "
                        "or fxp16 (golden: 16-bit Q0.15 activations from the start, the paper's failing baseline)")
    t.add_argument("--qat-delay", type=int, default=None, help="qat: switch step (default: half of --steps)")
    t.add_argument("--steps", type=int, default=20_000)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--hidden", default="400,300", help="the two hidden layer sizes (FIXAR: 400,300)")
    t.add_argument("--lr", type=float, default=1e-4, help="Adam step size of the actor and the critic (FIXAR: 1e-4)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--warmup", type=int, default=1_000, help="random-action steps before learning")
    t.add_argument("--eval-every", type=int, default=5_000)
    t.add_argument("--eval-episodes", type=int, default=10)
    t.add_argument("--checkpoint-every", type=int, default=5_000)
    t.add_argument("--out", default="runs/latest", help="folder for log.csv, checkpoint.npz, result.json")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    e = sub.add_parser("eval", help="evaluate a checkpoint")
    e.add_argument("checkpoint", help="a run folder or its checkpoint.npz")
    e.add_argument("--episodes", type=int, default=10)
    b = sub.add_parser("bench", help="measure figures into bench/results/summary.json")
    b.add_argument("what", nargs="?", default="all")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        return _train(args)
    if args.cmd == "eval":
        return _eval(args)
    from fixar.figures.summary import main as bench_main
    return bench_main([args.what])


if __name__ == "__main__":
    sys.exit(main())
