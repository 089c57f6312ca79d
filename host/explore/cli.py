"""``python -m fixar.explore [search|fit|show]``.

    search (the default): every method over --seeds search seeds at --budget
        evaluations, IPS at B = 64 under the U50 budget, then ConfuciuX at
        B = 512; every method again for IPS per DSP48E2 and on the second
        workload (64-64 networks on Hopper); writes docs/explore/results.json,
        runs_b64.json, runs_ips_per_dsp_b64.json, runs_b64_hopper64.json and
        convergence_b64.png (about eight minutes with the defaults)
    fit: the Yosys runs of small cores the LUT / FF / DSP model is fitted to
        (about ten minutes; their results are kept in docs/explore/core_synth.json)
    show: evaluate one design (--cores, --rows, --psum, --uram, --level) for
        an --objective and a --workload, and print it
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fixar.explore.cost import WORKLOADS
from fixar.explore.evaluate import OBJECTIVES
from fixar.explore.search import METHODS


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit 2), as the fixar command has."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def parser() -> _Parser:
    ap = _Parser(prog="python -m fixar.explore", description=__doc__.splitlines()[0],
                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("command", nargs="?", default="search", choices=("search", "fit", "show"))
    ap.add_argument("--budget", type=_positive, default=400, help="evaluations per search run (default 400)")
    ap.add_argument("--seeds", type=_positive, default=5, help="search seeds per method (default 5)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated, of {', '.join(METHODS)} (default all)")
    ap.add_argument("--address", default=None,
                    help="run the searches as Ray tasks: 'local' (a new local Ray) or a cluster's address "
                         "(default: in this process)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default docs/explore)")
    ap.add_argument("--cores", type=int, default=2, help="show: array.cores (default 2)")
    ap.add_argument("--rows", type=int, default=16, help="show: array.rows = array.cols (default 16)")
    ap.add_argument("--psum", type=int, default=512, help="show: array.psum_slots (default 512)")
    ap.add_argument("--uram", type=int, default=20480, help="show: memory.uram_min_rows (default 20480)")
    ap.add_argument("--level", type=int, default=0, help="show: every memory's depth level (default 0)")
    ap.add_argument("--objective", default="ips", choices=tuple(OBJECTIVES),
                    help="show: the fitness's objective (default ips)")
    ap.add_argument("--workload", default="halfcheetah", choices=tuple(WORKLOADS),
                    help="show: DDPG 400-300 on HalfCheetah (default) or 64-64 on Hopper")
    return ap


def main(argv=None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    methods = tuple(m for m in args.methods.split(",") if m)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        print(f"error: unknown method(s) {bad or [args.methods]}; known: {', '.join(METHODS)}", file=sys.stderr)
        return 2
    if args.command == "search" and "confuciux" not in methods:
        print("error: --methods must include confuciux (its figures are the point of the run)", file=sys.stderr)
        return 2
    try:
        return _run(args, methods)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1


def _run(args, methods) -> int:
    from fixar.explore import study, synthfit

    if args.command == "fit":
        pts = synthfit.measure()
        err = synthfit.held_out_error(pts, synthfit.fit(pts))
        print(json.dumps(err["max"], indent=1))
        return 0
    if args.command == "show":
        return _show(args)
    figs = study.figures(methods, args.seeds, args.budget, args.address, args.out or study.OUT)
    print(json.dumps({k: v for k, v in figs.items() if not isinstance(v, dict)}, indent=1))
    return 0


def _show(args) -> int:
    from fixar.explore.space import MEMORIES
    from fixar.explore.study import evaluator

    ev = evaluator(64, args.objective, args.workload)
    space = ev.space
    v = dict(cores=args.cores, rows=args.rows, psum_slots=args.psum, uram_min_rows=args.uram) | dict.fromkeys(
        MEMORIES, args.level)
    for d in space.dims:
        if v[d.name] not in d.values:
            print(f"error: {d.name} = {v[d.name]} is not on its menu {list(d.values)}", file=sys.stderr)
            return 2
    cand = space.index(v)
    e = ev.evaluate(cand)
    print(json.dumps({"values": v, "status": e.status, "message": e.message, "fitness": e.fitness, "ips": e.ips,
                      "ips_per_dsp": e.place and OBJECTIVES["ips_per_dsp"](e.ips[64], e.place),
                      "cycles": e.cycles, "slr_total": e.place and e.place["total"],
                      "slr_of": e.place and e.place["slr"]}, indent=1))
    return 0 if e.ok else 1
