"""IPS of the whole platform as FIXAR defines it (batch size over the wall
time of one environment step, training included), measured end to end by
the loop's own timers on Pendulum-v1 with FIXAR's networks (400-300, B = 64),
for the float32 and golden backends, with the env / host / accelerator split."""
from __future__ import annotations

import tempfile

from fixar.rl.hyper import Hyper
from fixar.rl.loop import RunSettings, Trainer

WARMUP, TRAIN_STEPS = 64, 400


def host_ips(backend: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        run = RunSettings(env="Pendulum-v1", backend=backend, steps=WARMUP + TRAIN_STEPS, warmup=WARMUP,
                          eval_every=10**9, eval_episodes=1, checkpoint_every=10**9, out=out, hyper=Hyper())
        trainer = Trainer(run, log=lambda *_: None)
        # time only the training steps: run the warm-up first, then reset the timers
        trainer.run = RunSettings.from_dict({**run.to_dict(), "steps": WARMUP})
        trainer.train(progress=False)
        trainer.timers = {k: 0.0 for k in trainer.timers}
        trainer.run = run
        trainer.train(progress=False)
    t = trainer.timers
    busy = sum(t.values())
    key = f"host_ips_{backend}_b64"
    figs = {key: round(run.hyper.batch * TRAIN_STEPS / busy, 1)}
    for part, v in t.items():
        figs[f"{key}_{part}_frac"] = round(v / busy, 3)
    return figs
