"""DDPG hyper-parameters, defaulting to FIXAR's workload (../shared/spec/fixar.md):
400-300 networks, Adam 1e-4 for both, and the usual DDPG values where the
paper is silent (gamma 0.99, tau 0.005, Gaussian exploration noise 0.1)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Hyper:
    hidden: tuple[int, int] = (400, 300)
    actor_lr: float = 1e-4
    critic_lr: float = 1e-4
    gamma: float = 0.99
    tau: float = 0.005
    noise: float = 0.1            # std of the exploration noise, in units of the action range / 2
    batch: int = 64
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8

    def __post_init__(self) -> None:
        if len(self.hidden) != 2 or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden: two positive layer sizes expected, got {self.hidden}")
        for name in ("actor_lr", "critic_lr", "adam_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        for name in ("gamma", "tau", "adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1 or (name == "tau" and self.tau == 0):
                raise ValueError(f"{name}: must be in [0, 1), got {getattr(self, name)}")
        if self.noise < 0:
            raise ValueError(f"noise: must be >= 0, got {self.noise}")
        if self.batch < 1:
            raise ValueError(f"batch: must be >= 1, got {self.batch}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Hyper:
        d = dict(d)
        d["hidden"] = tuple(d["hidden"])
        return cls(**d)
