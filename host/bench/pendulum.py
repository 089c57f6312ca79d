"""`make train`'s run, measured: Pendulum-v1 on the golden backend with the
same settings as the Makefile (three seeds), and the same run with QAT:
evaluation returns and speed."""
from __future__ import annotations

import tempfile
import time

from fixar.rl.hyper import Hyper
from fixar.rl.loop import RunSettings, Trainer

STEPS = 15_000
LR = 1e-3          # the Makefile's TRAIN_LR
SEEDS = (0, 1, 2)


def _run(precision: str, seed: int) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as out:
        run = RunSettings(env="Pendulum-v1", backend="golden", steps=STEPS, eval_every=2_500, eval_episodes=10,
                          out=out, precision=precision, qat_delay=STEPS // 2 if precision == "qat" else None,
                          seed=seed, hyper=Hyper(hidden=(64, 64), actor_lr=LR, critic_lr=LR))
        t = time.perf_counter()
        result = Trainer(run, log=lambda *_: None).train(progress=False)
        return [r for _, r in result["evals"]], time.perf_counter() - t


def pendulum_golden() -> dict:
    """FXP32 throughout (what `make train` runs) over three seeds, and QAT
    (16-bit activations from half way) on seed 0, settings otherwise equal."""
    figs = {}
    finals, bests, walls = [], [], []
    for seed in SEEDS:
        returns, wall = _run("fxp32", seed)
        finals.append(returns[-1])
        bests.append(max(returns))
        walls.append(wall)
        print(f"  fxp32 seed {seed}: final {returns[-1]:.1f}, best {max(returns):.1f}, {wall:.0f} s", flush=True)
    key = "pendulum_golden_64x64"
    figs.update({f"{key}_final_return": round(sum(finals) / len(finals), 1),
                 f"{key}_final_return_worst_seed": round(min(finals), 1),
                 f"{key}_best_return": round(sum(bests) / len(bests), 1),
                 f"{key}_steps_per_s": round(STEPS * len(SEEDS) / sum(walls), 1),
                 f"{key}_wall_s": round(sum(walls) / len(walls))})
    returns, wall = _run("qat", 0)
    key = "pendulum_golden_qat_64x64"
    figs.update({f"{key}_final_return": round(returns[-1], 1), f"{key}_best_return": round(max(returns), 1),
                 f"{key}_steps_per_s": round(STEPS / wall, 1), f"{key}_wall_s": round(wall)})
    return figs
