"""The searches, each over ``budget`` evaluations (episodes) of one HaqEnv:

* ``haq``: HAQ's agent, which is this project's own DDPG (the float32
  backend, fixar.rl.backends.float32: actor and critic 400-300, Adam): random
  actions for the first warm-up episodes, then the actor's action plus
  truncated normal noise (sigma 0.5 decaying 0.99 per episode, clipped to
  [0, 1]); every transition of an episode gets its final reward minus a
  moving average of past rewards (HAQ's baseline) and the agent trains on
  the replay after each episode.
* ``random``: uniformly random actions.
* ``tpe``: Optuna's TPE sampler, one categorical choice per decision.

Each returns one record per evaluation: the policy as enforced, quality (accuracy or return),
latency, model size.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fixar.haq.env import HaqEnv
from fixar.haq.space import flat, width_to_action

WARMUP = 0.25              # share of the budget spent on random episodes first (HAQ: 20 of 600)
SIGMA0, SIGMA_DECAY = 0.5, 0.99
BASELINE_DECAY = 0.95      # moving average of rewards subtracted from each episode's reward
UPDATES_PER_EPISODE = 16


def _record(info: dict, reward: float) -> dict:
    return {"policy": flat(info["policy"]), "quality": info["quality"], "latency": info["latency"],
            "model_bits": info["model_bits"], "reward": reward}


def episode(env: HaqEnv, choose: Callable[[np.ndarray], float]) -> tuple[list, dict, float]:
    """Run one episode with ``choose(obs) -> action``; (transitions, info, reward)."""
    obs, _ = env.reset()
    trans = []
    while True:
        a = choose(obs)
        nxt, r, done, _, info = env.step([a])
        trans.append((obs, a, nxt, done))
        obs = nxt
        if done:
            return trans, info, r


def random_search(env: HaqEnv, budget: int, seed: int, progress=None) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(budget):
        _, info, r = episode(env, lambda obs: float(rng.random()))
        out.append(_record(info, r))
        progress and progress(out)
    return out


def tpe(env: HaqEnv, budget: int, seed: int, progress=None) -> list[dict]:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    n, widths = len(env.workload.steps), env.widths
    out = []
    for _ in range(budget):
        trial = study.ask()
        picks = [trial.suggest_categorical(f"d{i}", list(widths)) for i in range(n)]
        actions = iter([width_to_action(b, widths) for b in picks])
        _, info, r = episode(env, lambda obs, it=actions: next(it))
        study.tell(trial, r)
        out.append(_record(info, r))
        progress and progress(out)
    return out


def haq(env: HaqEnv, budget: int, seed: int, progress=None) -> list[dict]:
    from fixar.rl.backends.float32 import FloatBackend
    from fixar.rl.hyper import Hyper
    obs_dim = env.observation_space.shape[0]
    # HAQ's agent: 400-300, actor 1e-4, critic 1e-3, tau 0.01, batch 64; no own noise (added below)
    agent = FloatBackend(obs_dim, 1, Hyper(actor_lr=1e-4, critic_lr=1e-3, tau=0.01, noise=0.0, batch=64), seed)
    rng = np.random.default_rng(seed)
    replay: list[tuple] = []
    baseline, sigma, out = None, SIGMA0, []
    warmup = max(1, int(budget * WARMUP))
    def explore(obs, sigma):
        mean = (float(agent.act(obs, False)[0]) + 1) / 2          # tanh output -> [0, 1]
        return float(np.clip(_truncated_normal(rng, mean, sigma), 0.0, 1.0))

    for ep in range(budget):
        if ep < warmup:
            trans, info, r = episode(env, lambda obs: float(rng.random()))
        else:
            trans, info, r = episode(env, lambda obs, s=sigma: explore(obs, s))
        baseline = r if baseline is None else BASELINE_DECAY * baseline + (1 - BASELINE_DECAY) * r
        replay += [(o, 2 * a - 1, r - baseline, n, d) for o, a, n, d in trans]
        if ep >= warmup:
            sigma *= SIGMA_DECAY
        if len(replay) >= 64:
            for _ in range(UPDATES_PER_EPISODE):
                idx = rng.integers(0, len(replay), 64)
                s, a, rr, s2, d = (np.array([replay[i][k] for i in idx]) for k in range(5))
                agent.train(s, a.reshape(-1, 1), rr, s2, d.astype(np.float64))
        out.append(_record(info, r))
        progress and progress(out)
    return out


def _truncated_normal(rng: np.random.Generator, mean: float, sigma: float) -> float:
    """N(mean, sigma) redrawn until inside [0, 1] (HAQ's truncated exploration noise)."""
    for _ in range(100):
        x = rng.normal(mean, sigma)
        if 0.0 <= x <= 1.0:
            return x
    return float(np.clip(mean, 0.0, 1.0))


METHODS = {"haq": haq, "random": random_search, "tpe": tpe}
