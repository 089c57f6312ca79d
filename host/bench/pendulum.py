"""`make train`'s run, measured: Pendulum-v1 on the golden backend with the
same settings as the Makefile (and the same run with QAT), evaluation
returns and speed."""
from __future__ import annotations

import tempfile
import time

from fixar.rl.hyper import Hyper
from fixar.rl.loop import RunSettings, Trainer

STEPS = 15_000


def _run(precision: str) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as out:
        run = RunSettings(env="Pendulum-v1", backend="golden", steps=STEPS, eval_every=2_500, eval_episodes=10,
                          out=out, precision=precision, qat_delay=STEPS // 2 if precision == "qat" else None,
                          hyper=Hyper(hidden=(64, 64)))
        t = time.perf_counter()
        result = Trainer(run, log=lambda *_: None).train(progress=False)
        return [r for _, r in result["evals"]], time.perf_counter() - t


def pendulum_golden() -> dict:
    """FXP32 throughout (what `make train` runs) and QAT (16-bit activations
    from half way), same seed and settings otherwise."""
    figs = {}
    for precision, key in (("fxp32", "pendulum_golden_64x64"), ("qat", "pendulum_golden_qat_64x64")):
        returns, wall = _run(precision)
        figs.update({f"{key}_final_return": round(returns[-1], 1), f"{key}_best_return": round(max(returns), 1),
                     f"{key}_steps_per_s": round(STEPS / wall, 1), f"{key}_wall_s": round(wall)})
    return figs
