"""Issue 25 item 5: a policy's actor, deployed in mixed BFP, run on the
training engine's RTL (the `rtl` backend, Verilator) beside the golden
model's :class:`fixar.haq.actor.BfpActor`, every action compared bit for bit
and every acting pass's cycles compared with the compiler's cycle model.

The engine holds the weights as the host converted them (a deployed network
is stored converted, so the weight operand is used as it is) and converts
each layer's input in the array's BFP front at the policy's width, with the
seeds BfpActor draws (fixar.driver.engine.EngineHost.deploy_bfp). Needs a
config with the front (``bfp.in_array``: configs ``bfp``, ``small_bfp``).

    python -m fixar.haq.verify [--policy w8a6,w8a4,w8a2] [--config bfp] [--episodes 1]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fixar.compiler.program import compile_ddpg, step_cycles
from fixar.config import FixarConfig
from fixar.driver.engine import deployed_bfp_widths
from fixar.haq.actor import PENDULUM, TRAIN, BfpActor, trained_actor
from fixar.haq.space import Policy

RESULTS = Path("docs/haq/pendulum/results.json")


def parse_policy(text: str, layers: int) -> Policy:
    """``w8a6,w8a4,w8a2`` (results.json's haq_pendulum_policy) -> ((8, 6), (8, 4), (8, 2))."""
    pairs = [re.fullmatch(r"w(\d+)a(\d+)", p.strip()) for p in text.split(",")]
    if not all(pairs) or len(pairs) != layers:
        raise ValueError(f"policy {text!r}: one wXaY per layer ({layers}), e.g. "
                         f"{','.join(['w8a8'] * layers)}")
    return tuple((int(m[1]), int(m[2])) for m in pairs)


@dataclass
class Verdict:
    """What one verification found: actions and cycles, RTL against the golden model and the cycle model."""

    steps: int
    mismatches: int
    first_mismatch: int | None        # the acting pass of the first differing action
    mean_return: float                # of the golden actions the episodes were driven by
    act_cycles_rtl: list[int]         # the distinct per-pass counts the simulator reported
    act_cycles_model: int
    seconds: float

    @property
    def passed(self) -> bool:
        return self.mismatches == 0 and self.act_cycles_rtl == [self.act_cycles_model]


def deployed_act_cycles(cfg: FixarConfig, obs_dim: int, act_dim: int, hidden: tuple[int, ...],
                        batch: int, input_widths) -> int:
    """The cycle model's acting pass of a deployed actor (what the RTL must match)."""
    p = compile_ddpg(cfg, obs_dim, act_dim, hidden, batch, bfp=deployed_bfp_widths(input_widths))
    return step_cycles(cfg, p, batch, acting=True)


def run(cfg: FixarConfig, net, policy: Policy, engine, env_name: str, seed: int, episodes: int,
        log=print) -> Verdict:
    """Drive ``episodes`` noise-free episodes with the golden BfpActor's
    actions, asking ``engine`` (an EngineBackend: rtl, or xrt on a board) for
    the same pass each step."""
    from fixar.rl.envs import make_env, to_env_action
    from fixar.rl.loop import EVAL_SEED_OFFSET, episode_seed

    golden = BfpActor(cfg, net, policy)
    engine.deploy_bfp(golden.W, net.b, [a for _, a in policy])
    h = engine.host
    model = step_cycles(cfg, h.prog, h.batch, acting=True)
    env = make_env(env_name)
    steps = mismatches = 0
    first, cycles, total, t0 = None, set(), 0.0, time.monotonic()
    for j in range(episodes):
        s, _ = env.reset(seed=episode_seed(seed, 0) + EVAL_SEED_OFFSET + j)
        done = False
        while not done:
            before = engine.cycles["act"]
            a_gold, a_rtl = golden.act(s), engine.act(s, explore=False)
            cycles.add(engine.cycles["act"] - before)
            if not np.array_equal(a_gold, a_rtl):
                mismatches += 1
                first = steps if first is None else first
            steps += 1
            s, r, term, trunc, _ = env.step(to_env_action(env, a_gold))
            total += float(r)
            done = term or trunc
        log(f"haq verify: episode {j + 1}/{episodes}: {steps} acting passes, {mismatches} differing actions, "
            f"cycles per pass {sorted(cycles)} (model {model})")
    env.close()
    return Verdict(steps, mismatches, first, total / episodes, sorted(cycles), model,
                   round(time.monotonic() - t0, 1))


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m fixar.haq.verify", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--policy", default=None,
                    help=f"per-layer widths, e.g. w8a6,w8a4,w8a2 (default: haq_pendulum_policy of {RESULTS})")
    ap.add_argument("--config", default="bfp", help="engine config with the array's BFP front")
    ap.add_argument("--actor-dir", default="runs/haq-pendulum-actor",
                    help="the Pendulum actor's training run (trained here first if it has not finished)")
    ap.add_argument("--episodes", type=int, default=1, help="evaluation episodes (200 acting passes each)")
    ap.add_argument("--out", default=None, help="write the verdict here as JSON")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    from fixar.config import ConfigError, load
    try:
        cfg = load(args.config)
        text = args.policy or json.loads(RESULTS.read_text())["haq_pendulum_policy"]
        policy = parse_policy(text, len(PENDULUM.layers))
    except (ConfigError, ValueError, OSError, KeyError) as exc:
        raise SystemExit(f"haq verify: {exc}") from None
    if args.episodes < 1:
        raise SystemExit(f"haq verify: --episodes must be at least 1, got {args.episodes}")
    if not cfg.bfp.in_array:
        raise SystemExit(f"haq verify: config {cfg.name} has no BFP front in the array (bfp.in_array = false); "
                         "use --config bfp")
    from fixar.rl.backends.base import BackendUnavailable
    from fixar.rl.backends.rtl import RtlBackend
    source = trained_actor(Path(args.actor_dir).resolve())
    engine = RtlBackend(source.obs_dim, source.act_dim, source.hp, TRAIN["seed"], cfg=cfg)
    print(f"haq verify: policy {text} on the rtl backend, config {cfg.name}, {args.episodes} episode(s)", flush=True)
    try:
        verdict = run(cfg, source.ddpg.actor, policy, engine, TRAIN["env"], TRAIN["seed"], args.episodes)
    except (BackendUnavailable, ValueError) as exc:
        raise SystemExit(f"haq verify: {exc}") from None
    finally:
        engine.close()
    hidden = tuple(source.hp.hidden)
    uniform8 = deployed_act_cycles(cfg, source.obs_dim, source.act_dim, hidden, source.hp.batch,
                                   [max(cfg.bfp.widths)] * (len(hidden) + 1))
    out = {"policy": text, "config": cfg.name, **verdict.__dict__, "passed": verdict.passed,
           "uniform8_act_cycles_model": uniform8}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
