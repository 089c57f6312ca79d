"""The second quality of issue 25: a DDPG actor trained on Pendulum-v1 with
the golden FXP32 model, deployed in a policy's mixed BFP (post-training
quantization: no RL fine-tune, which would be a training run per
evaluation), scored by its mean return over noise-free episodes.

The actor is trained once per folder (make train's settings: 64-64
networks, Adam 1e-3, 10 000 steps; a few minutes here) and read back from
its checkpoint. In the deployed forward pass each layer's weights are
converted to BFP once (a fixed seed per layer, as a deployed network is
stored) and each input vector at every step (seeds hashed from a counter, so
an evaluation is reproducible, numbered as the engine's acting program
numbers them: fixar.haq.verify runs the actor there); products, bias, rounding and activation
functions are the golden model's (fixar.golden.layer.linear).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fixar.config import DEFAULT, FixarConfig
from fixar.golden.bfp import bfp_quantize
from fixar.golden.fixed import dequantize, quantize
from fixar.golden.layer import linear
from fixar.golden.noise import jenkins32
from fixar.haq.space import Policy, Workload

# priced at B = 1: acting on one observation, so activation widths pack no lanes
PENDULUM = Workload("pendulum_actor", (3, 64, 64, 1), batch=1)
TRAIN = {"env": "Pendulum-v1", "hidden": (64, 64), "lr": 1e-3, "steps": 10_000, "seed": 0}


@functools.lru_cache(maxsize=4)
def trained_actor(folder: Path, log=print):
    """The golden backend of the Pendulum run in ``folder``, trained first if it has not finished."""
    from fixar.rl.hyper import Hyper
    from fixar.rl.loop import RunSettings, Trainer
    run = RunSettings(env=TRAIN["env"], backend="golden", steps=TRAIN["steps"], seed=TRAIN["seed"],
                      out=str(folder), eval_every=TRAIN["steps"],
                      hyper=Hyper(hidden=TRAIN["hidden"], actor_lr=TRAIN["lr"], critic_lr=TRAIN["lr"]))
    if not (folder / "result.json").exists():
        log(f"haq: training the Pendulum actor once into {folder} (golden FXP32, {TRAIN['steps']} steps) ...")
        Trainer(run, resume=(folder / "checkpoint.npz").exists(), log=log).train(progress=False)
    return Trainer(run, resume=True, log=lambda *_: None).backend


def input_seed_place(call: int, layer: int, layers: int) -> int:
    """Where acting pass ``call`` draws layer ``layer``'s input conversion
    seed from (it is jenkins32 of this): the numbering the engine's acting
    program uses, each pass a base of 2 x layers places and layer i's input
    the place 2i + 1 on it (fixar.driver.engine.EngineHost.deploy_bfp), so
    the deployed actor runs on the RTL bit for bit."""
    return (call * 2 * layers + 2 * layer + 1) & 0xFFFFFFFF


class BfpActor:
    """The actor's noise-free forward pass in a policy's mixed BFP; act() as a backend's."""

    def __init__(self, cfg: FixarConfig, net, policy: Policy):
        self.cfg, self.net, self.policy, self.calls = cfg, net, policy, 0
        wf = cfg.pe.weight.frac
        self.W = [bfp_quantize(W, wf, cfg.bfp.format(w), int(jenkins32(0x5EED0000 + i)), axis=1)
                  for i, (W, (w, _)) in enumerate(zip(net.W, policy))]

    def act(self, state: np.ndarray, explore: bool = False) -> np.ndarray:
        cfg = self.cfg
        x = quantize(np.asarray(state, dtype=np.float64), cfg.pe.act32).reshape(-1, 1)
        for i, (W, b, func, (_, a)) in enumerate(zip(self.W, self.net.b, self.net.funcs, self.policy)):
            seed = int(jenkins32(input_seed_place(self.calls, i, len(self.W))))
            x = linear(cfg, W, bfp_quantize(x, cfg.pe.act32.frac, cfg.bfp.format(a), seed, axis=0), b, func)
        self.calls += 1
        return dequantize(x[:, 0], cfg.pe.act32).astype(np.float32)


@dataclass(frozen=True)
class ActorQuality:
    """Mean return of the deployed actor over ``episodes`` evaluation episodes."""

    folder: str = "runs/haq-pendulum-actor"
    episodes: int = 5
    workload: Workload = PENDULUM
    relative: bool = True        # the reward's points are percent of the reference return

    def _backend(self):
        return trained_actor(Path(self.folder))

    def reference(self, cfg: FixarConfig = DEFAULT) -> float:
        return _reference(self)

    def score(self, policy: Policy, cfg: FixarConfig = DEFAULT) -> float:
        from fixar.rl.loop import evaluate
        return evaluate(BfpActor(cfg, self._backend().ddpg.actor, policy), TRAIN["env"], TRAIN["seed"],
                        self.episodes)


@functools.lru_cache(maxsize=4)
def _reference(quality: ActorQuality) -> float:
    """The FXP32 actor's mean return (the golden backend's own noise-free action)."""
    from fixar.rl.loop import evaluate
    return evaluate(quality._backend(), TRAIN["env"], TRAIN["seed"], quality.episodes)
