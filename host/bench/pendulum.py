"""`make train`'s run, measured: Pendulum-v1 on the golden backend with the
same settings as the Makefile, evaluation returns and speed."""
from __future__ import annotations

import tempfile
import time

from fixar.rl.hyper import Hyper
from fixar.rl.loop import RunSettings, Trainer

STEPS = 15_000


def pendulum_golden() -> dict:
    with tempfile.TemporaryDirectory() as out:
        run = RunSettings(env="Pendulum-v1", backend="golden", steps=STEPS, eval_every=2_500, eval_episodes=10,
                          out=out, hyper=Hyper(hidden=(64, 64)))
        t = time.perf_counter()
        result = Trainer(run, log=lambda *_: None).train(progress=False)
        wall = time.perf_counter() - t
    returns = [r for _, r in result["evals"]]
    return {"pendulum_golden_64x64_final_return": round(returns[-1], 1),
            "pendulum_golden_64x64_best_return": round(max(returns), 1),
            "pendulum_golden_64x64_steps_per_s": round(STEPS / wall, 1),
            "pendulum_golden_64x64_wall_s": round(wall)}
