"""Host-side replay buffer (FIXAR keeps it on the host): a ring of transitions
with normalized actions, sampled uniformly with the loop's generator."""
from __future__ import annotations

import numpy as np


class Replay:
    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.s = np.zeros((capacity, obs_dim), np.float32)
        self.a = np.zeros((capacity, act_dim), np.float32)
        self.r = np.zeros(capacity, np.float32)
        self.s2 = np.zeros((capacity, obs_dim), np.float32)
        self.d = np.zeros(capacity, np.float32)
        self.n = 0     # filled entries
        self.pos = 0   # next write

    def add(self, s, a, r, s2, done) -> None:
        i = self.pos
        self.s[i], self.a[i], self.r[i], self.s2[i], self.d[i] = s, a, r, s2, float(done)
        self.pos = (i + 1) % self.capacity
        self.n = min(self.n + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch: int):
        idx = rng.integers(0, self.n, batch)
        return self.s[idx], self.a[idx], self.r[idx], self.s2[idx], self.d[idx]

    def state_dict(self) -> dict[str, np.ndarray]:
        n = self.n
        return {"s": self.s[:n], "a": self.a[:n], "r": self.r[:n], "s2": self.s2[:n], "d": self.d[:n],
                "pos": np.array(self.pos), "capacity": np.array(self.capacity)}

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        if int(d["capacity"]) != self.capacity or d["s"].shape[1:] != self.s.shape[1:] \
                or d["a"].shape[1:] != self.a.shape[1:]:
            raise ValueError("checkpoint's replay buffer does not match this run (capacity or dimensions)")
        n = d["s"].shape[0]
        for k in ("s", "a", "r", "s2", "d"):
            getattr(self, k)[:n] = d[k]
        self.n, self.pos = n, int(d["pos"])
