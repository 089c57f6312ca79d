"""Gymnasium environments the loop can train on: continuous (Box) actions
and flat (1-D Box) observations only, anything else is a clear error."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

MUJOCO_HINT = "MuJoCo tasks need the extra: pip install -e '.[mujoco]'"


class EnvError(ValueError):
    pass


def make_env(name: str, seed: int | None = None) -> gym.Env:
    try:
        env = gym.make(name)
    except gym.error.Error as exc:
        ids = sorted(k for k in gym.registry if not k.startswith(("ALE/", "Gym")))
        close = [k for k in ids if name.split("-")[0].lower() in k.lower()][:5]
        hint = f"; did you mean {close}?" if close else ""
        raise EnvError(f"unknown or unavailable environment {name!r}: {exc}{hint}") from None
    except ImportError as exc:
        raise EnvError(f"environment {name!r} needs a missing package ({exc}); {MUJOCO_HINT}") from None
    act, obs = env.action_space, env.observation_space
    if not isinstance(act, gym.spaces.Box):
        env.close()
        raise EnvError(f"{name} has {type(act).__name__} actions; DDPG needs continuous (Box) actions")
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        env.close()
        raise EnvError(f"{name} has observations of shape {getattr(obs, 'shape', None)}; the loop takes flat "
                       "vectors (image observations are not supported)")
    if not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
        env.close()
        raise EnvError(f"{name} has unbounded actions; DDPG's tanh actor needs finite bounds")
    if seed is not None:
        env.reset(seed=seed)
        act.seed(seed)
    return env


def to_env_action(env: gym.Env, a: np.ndarray) -> np.ndarray:
    """[-1, 1] (the actor's range) -> the environment's [low, high]."""
    low, high = env.action_space.low, env.action_space.high
    return (low + (np.asarray(a, dtype=np.float64) + 1) * 0.5 * (high - low)).astype(env.action_space.dtype)
