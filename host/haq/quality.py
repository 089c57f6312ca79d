"""The quality half of HAQ's reward on the digits MLP: a golden FXP32 model
trained once, then for each policy a short fine-tune in that policy's mixed
BFP (fixar.golden.digits, LayerBfp per layer) and its test accuracy, as HAQ
fine-tunes each quantized network briefly before scoring it.

Everything is seeded: one policy always scores the same, so a run can be
resumed or repeated bit for bit.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from fixar.config import DEFAULT, FixarConfig
from fixar.golden.digits import FixedMlp, LayerBfp, Setup, accuracy, batches, init_params, load_digits_split
from fixar.haq.space import DIGITS, Policy, Workload


@dataclass(frozen=True)
class Quality:
    """How a digits policy is scored: pre-training and fine-tuning epochs, the split's seed."""

    workload: Workload = DIGITS
    pretrain_epochs: int = 20
    finetune_epochs: int = 1
    seed: int = 0
    relative: bool = False       # the reward's points are accuracy points

    def setup(self, epochs: int) -> Setup:
        return Setup(hidden=0, epochs=epochs, seed=self.seed)

    def score(self, policy: Policy, cfg: FixarConfig = DEFAULT) -> float:
        return score(policy, self, cfg)

    def reference(self, cfg: FixarConfig = DEFAULT) -> float:
        return reference(self, cfg)


@functools.lru_cache(maxsize=8)
def pretrained(quality: Quality, cfg: FixarConfig = DEFAULT) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Weights and biases (codes) of the FXP32 model after pre-training, and its test accuracy."""
    data = load_digits_split(quality.seed)
    setup = quality.setup(quality.pretrain_epochs)
    model = FixedMlp(cfg, init_params(quality.workload.sizes, quality.seed), setup.lr_log2)
    for idx in batches(len(data.y_train), setup):
        model.step(data.x_train[idx], data.y_train[idx])
    return model.W, model.b, accuracy(model, data.x_test, data.y_test)


def policy_formats(cfg: FixarConfig, policy: Policy) -> list[LayerBfp]:
    return [LayerBfp(cfg.bfp.format(w), cfg.bfp.format(a)) for w, a in policy]


def score(policy: Policy, quality: Quality = Quality(), cfg: FixarConfig = DEFAULT) -> float:
    """Test accuracy of the pre-trained model fine-tuned and evaluated in ``policy``."""
    W, b, _ = pretrained(quality, cfg)
    data = load_digits_split(quality.seed)
    setup = quality.setup(quality.finetune_epochs)
    model = FixedMlp(cfg, init_params(quality.workload.sizes, quality.seed), setup.lr_log2,
                     policy_formats(cfg, policy))
    model.W, model.b = [w.copy() for w in W], [x.copy() for x in b]
    # a fine-tune batch order of its own, not the pre-training's first epoch again
    for idx in batches(len(data.y_train), replace(setup, seed=quality.seed + 1000)):
        model.step(data.x_train[idx], data.y_train[idx])
    return accuracy(model, data.x_test, data.y_test)


def reference(quality: Quality = Quality(), cfg: FixarConfig = DEFAULT) -> float:
    """The FXP32 model's test accuracy: what a policy's quality drop is measured from."""
    return pretrained(quality, cfg)[2]
