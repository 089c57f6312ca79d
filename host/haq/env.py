"""HAQ's search as a gymnasium environment: one episode walks the workload's
decisions (each layer's weights, then its activations); an action in [0, 1]
picks a width; after the last one the policy is held to the latency budget
(and the model-size budget, if one is set) by HAQ's rule (fixar.haq.cost.enforce) and scored.

Reward (HAQ's): lambda x (quality - the FXP32 model's quality) in
percentage points (``relative``: in percent of |the reference|, for a
return), lambda = 0.1, given at the last step; 0 before. ``info`` of the
last step carries the policy as enforced, its quality, latency and model size.
"""
from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from fixar.config import DEFAULT, FixarConfig
from fixar.haq import cost
from fixar.haq.space import STATE_FEATURES, Policy, Workload, action_to_width, from_widths, normalised_features

REWARD_SCALE = 0.1      # HAQ's lambda


class HaqEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, workload: Workload, score: Callable[[Policy], float], reference: float,
                 max_cycles: int, cfg: FixarConfig = DEFAULT, relative: bool = False,
                 max_bits: int | None = None):
        self.workload, self.score, self.reference, self.relative = workload, score, reference, relative
        self.max_cycles, self.max_bits, self.cfg = max_cycles, max_bits, cfg
        self.widths = tuple(cfg.bfp.widths)
        self.features = normalised_features(workload)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (len(STATE_FEATURES),), dtype=np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
        self._t, self._bits, self._prev = 0, [], 0.0

    def _obs(self) -> np.ndarray:
        row = self.features[self._t].copy()
        row[-1] = self._prev
        return row.astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t, self._bits, self._prev = 0, [], 0.0
        return self._obs(), {}

    def step(self, action):
        a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if not np.isfinite(a):
            raise ValueError(f"action {action!r} is not a finite number")
        self._bits.append(action_to_width(a, self.widths))
        self._prev = float(np.clip(a, 0.0, 1.0))
        self._t += 1
        if self._t < len(self.workload.steps):
            return self._obs(), 0.0, False, False, {}
        asked = from_widths(self.workload, self._bits)
        policy = cost.enforce(self.cfg, self.workload, asked, self.max_cycles, self.widths, self.max_bits)
        q = self.score(policy)
        info = {"asked": asked, "policy": policy, "quality": q,
                "latency": cost.latency(self.cfg, self.workload, policy),
                "model_bits": cost.model_bits(self.cfg, self.workload, policy)}
        self._t -= 1         # the last observation again: the episode is over
        points = 100.0 * (q - self.reference) / (abs(self.reference) if self.relative else 1.0)
        return self._obs(), REWARD_SCALE * points, True, False, info
