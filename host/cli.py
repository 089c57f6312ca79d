"""fixar: train DDPG agents on an accelerator backend, evaluate checkpoints, measure figures.

    fixar train [--env Pendulum-v1] [--backend golden|float|rtl|xrt] [--config default] [--steps N]
                [--multiplier exact|mitchell|mbm|drum6|trunc16]
                [--batch B] [--seed S] [--out DIR] [--resume | --force]
    fixar eval RUN_DIR_OR_CHECKPOINT [--episodes 10]
    fixar bench [all|pe|array|synth|synth-array|golden]

Every error the user can cause is one line on stderr and a non-zero exit
(2: a bad input; 1: the run failed, e.g. a full disk; 128 + the signal
number: stopped by SIGINT or SIGTERM); docs/cli.md lists them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fixar.config.multipliers import MULTIPLIERS  # plain Python: the parser's choices cost nothing

PRECISIONS = ("fp32", "fxp32", "qat", "fxp16", "bfp")

TRAIN_EPILOG = """\
The defaults are FIXAR's workload: 400-300 networks, Adam 1e-4, batch 64,
20 000 steps. `make train` runs a quicker Pendulum demo instead
(--hidden 64,64 --lr 1e-3 --steps 10000 --out runs/pendulum-golden), which
learns within its 10 000 steps; the reward study measured that setting.

Ctrl-C (or SIGTERM) stops at the end of the current step and saves a
checkpoint that --resume continues exactly; a second one stops at once
without saving, leaving the previous checkpoint as it was."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole
    usage first, which buries the message)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (when it has one)."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if "%(default)" not in text and action.option_strings and d is not None and d is not False \
                and d is not argparse.SUPPRESS:
            text += " (default: %(default)s)"
        return text


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v
    return parse


def _step_size(text: str) -> float:
    """An Adam step size: in (0, 1), as the fixed-point Adam unit can hold it
    (and beyond 1 the float backend only diverges)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return v


def _hidden(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected two positive layer sizes like 400,300, got {text!r}")
    return int(parts[0]), int(parts[1])


def _error(message, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _io_error(exc: OSError) -> str:
    """An OSError as one line naming the file."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def _settings(args):
    """The run's settings from the options, or a ValueError naming the option."""
    from fixar.config import ConfigError
    from fixar.rl.checkpoint import CheckpointError, read_settings
    from fixar.rl.hyper import Hyper
    from fixar.rl.inputs import InputError, load_config, resolve_config
    from fixar.rl.loop import RunSettings

    backend = args.backend or ("float" if args.precision == "fp32" else "golden")
    precision = args.precision or ("fp32" if backend == "float" else "fxp32")
    if backend == "float" and precision != "fp32":
        raise InputError(f"--precision {precision} needs a fixed-point backend (golden, rtl or xrt); the float "
                         "backend is fp32")
    if backend != "float" and precision == "fp32":
        raise InputError(f"--precision fp32 is the float backend's; drop --backend {backend} or use --backend float")
    if backend == "float" and args.config is not None:
        raise InputError("--config: the float backend has no engine config (it is float32 numpy); drop --config, "
                         "or use a fixed-point backend (--backend golden)")
    if args.multiplier is not None and backend not in ("golden", "rtl"):
        raise InputError(f"--multiplier: the {backend} backend has no generated multiplier (the float backend is "
                         "float32 numpy; a board runs the multiplier of its xclbin); use --backend golden or rtl")
    if args.xclbin is not None and backend != "xrt":
        raise InputError(f"--xclbin: only the xrt backend loads a board image (the backend is {backend})")
    if args.resume and args.force:
        raise InputError("--resume and --force: choose one (continue the run in --out, or replace it)")
    config = resolve_config(args.config or "default")
    try:
        load_config(config)
    except ConfigError as exc:
        raise InputError(f"--config: {exc}") from None
    qat_delay = args.qat_delay
    if precision == "qat" and qat_delay is None:
        # the switch step is part of the run: a resumed run keeps its checkpoint's,
        # however far --steps now goes
        if args.resume:
            try:
                qat_delay = read_settings(Path(args.out) / "checkpoint.npz").get("qat_delay")
            except CheckpointError:
                pass          # the trainer reports the missing or broken checkpoint
        if qat_delay is None:
            qat_delay = args.steps // 2
    hyper = Hyper(batch=args.batch, hidden=args.hidden, actor_lr=args.lr, critic_lr=args.lr)
    return RunSettings(env=args.env, backend=backend, steps=args.steps, seed=args.seed, warmup=args.warmup,
                       eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                       checkpoint_every=args.checkpoint_every, out=args.out, precision=precision, config=config,
                       xclbin=args.xclbin, qat_delay=qat_delay, multiplier=args.multiplier, hyper=hyper)


def _train(args) -> int:
    from fixar.rl.backends import BackendUnavailable
    from fixar.rl.envs import EnvError
    from fixar.rl.inputs import check_out, clear_run
    from fixar.rl.loop import Interrupted, Trainer

    try:
        run = _settings(args)
        run.check_trainable()
        folder = check_out(run.out, args.resume, args.force)
        trainer = Trainer(run, resume=args.resume)
    except (ValueError, EnvError, BackendUnavailable) as exc:
        return _error(exc)
    except OSError as exc:
        return _error(_io_error(exc))
    try:
        if args.force:
            clear_run(folder)
        result = trainer.train()
    except Interrupted as exc:
        print(exc, file=sys.stderr)
        return 128 + exc.signum
    except BackendUnavailable as exc:     # e.g. the rtl backend's simulator died mid-run
        return _error(exc)
    except OSError as exc:                # a full disk, a folder removed under the run
        return _error(f"{_io_error(exc)}; the run stopped (its last checkpoint, if any, is intact)", 1)
    finally:
        trainer.close()
    print(f"done: final evaluation return {result['final_eval_return']:.1f}; log {run.out}/log.csv, "
          f"curve {run.out}/learning_curve.png, checkpoint {run.out}/checkpoint.npz, "
          f"summary {run.out}/result.json")
    return 0


def _eval(args) -> int:
    from fixar.rl.backends import BackendUnavailable
    from fixar.rl.checkpoint import CheckpointError, read_settings
    from fixar.rl.envs import EnvError
    from fixar.rl.loop import RunSettings, Trainer, evaluate

    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "checkpoint.npz"
    try:
        settings = read_settings(path)
        try:
            run = RunSettings.from_dict({**settings, "out": str(path.parent)})
        except (TypeError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"{path}: settings this fixar cannot read ({exc})") from None
        # the weights of this very file (a run folder may hold several checkpoints)
        trainer = Trainer(run, resume=True, checkpoint=path, log=lambda *_: None)
        ret = evaluate(trainer.backend, run.env, run.seed, args.episodes)
    except (ValueError, EnvError, BackendUnavailable) as exc:
        return _error(exc)
    except OSError as exc:
        return _error(_io_error(exc))
    print(f"{run.env}, {run.backend} backend, step {trainer.step}: mean return over {args.episodes} episodes "
          f"{ret:.1f}")
    return 0


def _train_parser(sub) -> None:
    from fixar.rl.inputs import preset_names

    t = sub.add_parser("train", help="train a DDPG agent", formatter_class=_Help, epilog=TRAIN_EPILOG,
                       description="Train a DDPG agent on a gymnasium task with one of the accelerator's backends.")
    t.add_argument("--env", default="Pendulum-v1", help="gymnasium id with continuous actions")
    t.add_argument("--backend", default=None, choices=("golden", "float", "rtl", "xrt"),
                   help="golden (bit-exact fixed-point model), float (float32 numpy), rtl (the generated "
                        "engine under Verilator: slow, for verification runs) or xrt (the U50 board, --xclbin) "
                        "(default: golden; float with --precision fp32)")
    t.add_argument("--xclbin", default=None, help="xrt only: the board image `make bitstream` writes")
    t.add_argument("--config", default=None,
                   help=f"engine config of the golden, rtl and xrt backends: a shipped name "
                        f"({', '.join(preset_names())}) or a TOML file (default: default)")
    t.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="fp32 (the float backend), fxp32, qat (16-bit activations after --qat-delay) or fxp16 "
                        "(golden: 16-bit Q0.15 activations from the start, the paper's failing baseline) or bfp "
                        "(golden: block floating point with FAST's precision schedule, docs/bfp.md) "
                        "(default: fxp32; fp32 with --backend float)")
    t.add_argument("--multiplier", default=None, choices=MULTIPLIERS,
                   help="the PE's weight x lane multiplier in place of the config's: exact (DSP48E2s) or an "
                        "approximate one built in LUTs (docs/multipliers.md); golden and rtl backends")
    t.add_argument("--qat-delay", type=_int_at_least(1), default=None,
                   help="qat: the switch step, after the warm-up (default: half of --steps; a resumed run keeps "
                        "its checkpoint's)")
    t.add_argument("--steps", type=_int_at_least(1), default=20_000, help="environment steps of the run")
    t.add_argument("--batch", type=_int_at_least(1), default=64, help="transitions per update")
    t.add_argument("--hidden", type=_hidden, default="400,300",
                   help="the two hidden layer sizes, e.g. 400,300 (FIXAR's)")
    t.add_argument("--lr", type=_step_size, default=1e-4,
                   help="Adam step size of the actor and the critic (FIXAR: 1e-4)")
    t.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the weights, noise and environment")
    t.add_argument("--warmup", type=_int_at_least(0), default=1_000, help="random-action steps before learning")
    t.add_argument("--eval-every", type=_int_at_least(1), default=5_000, help="steps between evaluations")
    t.add_argument("--eval-episodes", type=_int_at_least(1), default=10, help="episodes of one evaluation")
    t.add_argument("--checkpoint-every", type=_int_at_least(1), default=5_000, help="steps between checkpoints")
    t.add_argument("--out", default="runs/latest", help="folder for log.csv, checkpoint.npz, result.json")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.npz")
    t.add_argument("--force", action="store_true",
                   help="start a new run in an --out that holds one, deleting that run's files")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["study"]:
        from fixar.rl.study import main as study_main
        return study_main(argv[1:])
    ap = _Parser(prog="fixar", description=__doc__.split("\n\n")[0], formatter_class=_Help)
    sub = ap.add_subparsers(dest="cmd", required=True)
    _train_parser(sub)
    e = sub.add_parser("eval", help="evaluate a checkpoint", formatter_class=_Help,
                       description="Mean return of noise-free episodes of a checkpoint's agent.")
    e.add_argument("checkpoint", help="a run folder (its checkpoint.npz) or a checkpoint file")
    e.add_argument("--episodes", type=_int_at_least(1), default=10, help="episodes to average")
    # listed here for `fixar --help`; its own parser (fixar.rl.study) reads its options
    sub.add_parser("study", help="the reward study, each run a Ray task (fixar study --help)", add_help=False)
    b = sub.add_parser("bench", help="measure figures into bench/results/summary.json", formatter_class=_Help)
    b.add_argument("what", nargs="?", default="all", help="which figures")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "train":
            return _train(args)
        if args.cmd == "eval":
            return _eval(args)
        from fixar.figures.summary import main as bench_main
        return bench_main([args.what])
    except KeyboardInterrupt:     # outside a run's own handling (imports, building the backend, eval, bench)
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
