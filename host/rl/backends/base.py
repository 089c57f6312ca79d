"""What every accelerator backend offers the RL loop, and the error it raises.

Backends live in their own modules and import only this one from the
package, so the factory (``fixar.rl.backends``) can import them lazily: a
golden run never loads the simulator or pyxrt.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class BackendUnavailable(RuntimeError):
    """A backend cannot be made or has failed (a missing tool, a dead
    simulator, an unknown name); the message says which and what to do."""


class Backend(Protocol):
    """One DDPG agent on one accelerator (or its model)."""

    def act(self, state: np.ndarray, explore: bool) -> np.ndarray:
        """An action in [-1, 1]; with ``explore`` the backend adds its noise."""

    def train(self, s, a, r, s2, done) -> dict:
        """One DDPG step on a batch; returns statistics."""

    def set_precision_phase(self, phase: str) -> None:
        """QAT's switch: "fxp32" -> "fxp16"."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """Weights, moments, targets and noise state, for a checkpoint."""

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        """Restore what state_dict returned."""
