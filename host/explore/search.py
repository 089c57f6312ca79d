"""The search methods, each ``method(f, sizes, budget, seed) -> [(candidate, fitness), ...]``
in evaluation order, exactly ``budget`` calls of ``f`` (every call counts,
repeats too: the comparison is at equal evaluations). Higher fitness is better.

* confuciux: REINFORCE on the policy of fixar.explore.policy for the first
  two thirds of the budget (ConfuciuX's split, ../shared/spec/extensions.md),
  then the genetic algorithm below, started from the best designs RL found;
* random: uniform over the menus;
* ga: the genetic algorithm alone (tournament selection, uniform crossover,
  mutation that steps a value to a neighbour or redraws it, one elite kept);
* sa: simulated annealing (a neighbour changes one dimension; Metropolis
  acceptance; geometric cooling);
* tpe: Optuna's tree-structured Parzen estimator (TPESampler), each
  dimension an integer index (the menus are ordered).
"""
from __future__ import annotations

import math

import numpy as np

from fixar.explore.policy import Policy

RL_SHARE = 2 / 3          # ConfuciuX: RL for the first two thirds, then GA fine-tuning
RL_BATCH = 8              # episodes per policy update
GA_POP = 16
RL_LR = 0.02             # Adam's step on the policy


class _Counted:
    """Calls f and records (candidate, fitness) until the budget is spent."""

    def __init__(self, f, budget: int):
        self.f, self.budget, self.history = f, budget, []

    @property
    def left(self) -> int:
        return self.budget - len(self.history)

    def __call__(self, cand) -> float:
        cand = tuple(int(i) for i in cand)
        y = float(self.f(cand))
        self.history.append((cand, y))
        return y


def random_search(f, sizes, budget: int, seed: int):
    rng = np.random.default_rng(seed)
    run = _Counted(f, budget)
    while run.left:
        run(tuple(int(rng.integers(n)) for n in sizes))
    return run.history


def _mutate(cand, sizes, rng, rate: float):
    """Each dimension with probability ``rate`` (at least one): a neighbouring value, or a fresh draw (1 in 4)."""
    out = list(cand)
    hit = [k for k in range(len(sizes)) if rng.random() < rate] or [int(rng.integers(len(sizes)))]
    for k in hit:
        if sizes[k] == 1:
            continue
        if rng.random() < 0.25:
            out[k] = int(rng.integers(sizes[k]))
        else:
            out[k] = int(np.clip(out[k] + rng.choice((-1, 1)), 0, sizes[k] - 1))
    return tuple(out)


def _ga(run: _Counted, sizes, rng, pop: list[tuple]) -> None:
    """Evolves ``pop`` ([(cand, fitness)]) while the budget lasts."""
    rate = 1.0 / len(sizes)

    def pick():
        a, b = rng.integers(len(pop), size=2)
        return pop[a] if pop[a][1] >= pop[b][1] else pop[b]

    while run.left:
        elite = max(pop, key=lambda cy: cy[1])
        children = [elite]
        while len(children) < len(pop) and run.left:
            p1, p2 = pick()[0], pick()[0]
            child = tuple(p1[k] if rng.random() < 0.5 else p2[k] for k in range(len(sizes)))
            child = _mutate(child, sizes, rng, rate)
            children.append((child, run(child)))
        pop = children


def ga_search(f, sizes, budget: int, seed: int, pop_size: int = GA_POP):
    rng = np.random.default_rng(seed)
    run = _Counted(f, budget)
    pop = []
    while len(pop) < min(pop_size, budget):
        c = tuple(int(rng.integers(n)) for n in sizes)
        pop.append((c, run(c)))
    _ga(run, sizes, rng, pop)
    return run.history


def sa_search(f, sizes, budget: int, seed: int, t0: float = 0.3, t1: float = 0.003):
    rng = np.random.default_rng(seed)
    run = _Counted(f, budget)
    cur = tuple(int(rng.integers(n)) for n in sizes)
    y = run(cur)
    n = max(1, budget - 1)
    while run.left:
        temp = t0 * (t1 / t0) ** (len(run.history) / n)
        nxt = _mutate(cur, sizes, rng, 0.0)            # one dimension
        yn = run(nxt)
        if yn >= y or rng.random() < math.exp((yn - y) / temp):
            cur, y = nxt, yn
    return run.history


def tpe_search(f, sizes, budget: int, seed: int):
    try:
        import optuna
    except ImportError:
        hint = "the TPE baseline needs Optuna: pip install optuna (or leave tpe out of --methods)"
        raise RuntimeError(hint) from None

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = _Counted(f, budget)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))

    def objective(trial):
        return run(tuple(trial.suggest_int(f"d{k}", 0, n - 1) for k, n in enumerate(sizes)))

    study.optimize(objective, n_trials=budget)
    return run.history


def confuciux_search(f, sizes, budget: int, seed: int, rl_share: float = RL_SHARE, batch: int = RL_BATCH,
                     pop_size: int = GA_POP, lr: float = RL_LR):
    """REINFORCE for rl_share of the budget, then GA seeded with the best distinct designs seen."""
    rng = np.random.default_rng(seed)
    run = _Counted(f, budget)
    pol = Policy(sizes, seed=seed, lr=lr)
    baseline = None
    rl_budget = int(budget * rl_share)
    while run.left and len(run.history) < rl_budget:
        eps = [pol.sample() for _ in range(min(batch, rl_budget - len(run.history)))]
        rewards = np.array([run(a) for a in eps])
        baseline = rewards.mean() if baseline is None else 0.8 * baseline + 0.2 * rewards.mean()
        adv = rewards - baseline
        scale = adv.std() if adv.std() > 1e-9 else 1.0     # normalised advantages: a step of steady size
        pol.update(eps, adv / scale)
    if run.left:
        seen = {}
        for c, y in run.history:
            seen[c] = y
        pop = sorted(seen.items(), key=lambda cy: -cy[1])[:pop_size]
        _ga(run, sizes, rng, pop)
    return run.history


METHODS = {"confuciux": confuciux_search, "random": random_search, "ga": ga_search, "sa": sa_search,
           "tpe": tpe_search}
