"""ConfuciuX's policy in numpy: an MLP encoder, an LSTM cell and one softmax
head per choice, trained with REINFORCE (Kao, Jeong, Krishna, MICRO 2020).

An episode picks the design's dimensions in order. At step k the encoder
reads the previous pick (one-hot, over the widest menu) and the step
(one-hot), the LSTM cell carries what was picked before, and head k gives a
distribution over dimension k's menu. REINFORCE raises log pi(picks) in
proportion to (reward - baseline), the baseline a moving average of the
rewards; a small entropy bonus keeps the heads from collapsing early.
The gradient is hand-written backpropagation through time (tests check it
against finite differences). ConfuciuX's LSTM has 128 units; 32 do here
(nine choices of at most 13 values) and keep a numpy update at a millisecond.
"""
from __future__ import annotations

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


class Policy:
    def __init__(self, sizes: tuple[int, ...], seed: int = 0, hidden: int = 32, embed: int = 32,
                 lr: float = 0.02, entropy: float = 0.01):
        self.sizes, self.K, self.A = tuple(sizes), len(sizes), max(sizes)
        self.H, self.E, self.lr, self.beta = hidden, embed, lr, entropy
        self.rng = np.random.default_rng(seed)
        n_in = self.A + self.K
        g = lambda *shape: self.rng.normal(0.0, 1.0 / np.sqrt(shape[-1]), shape)
        self.p = {"We": g(embed, n_in), "be": np.zeros(embed),
                  "Wx": g(4 * hidden, embed), "Wh": g(4 * hidden, hidden), "bl": np.zeros(4 * hidden)}
        self.p["bl"][hidden:2 * hidden] = 1.0      # forget-gate bias 1: the usual LSTM start
        for k, n in enumerate(sizes):
            self.p[f"Wo{k}"] = g(n, hidden) * 0.1  # near-uniform heads at the start
            self.p[f"bo{k}"] = np.zeros(n)
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = 0

    # ---------------------------------------------------------------- forward

    def _input(self, k: int, prev: int | None) -> np.ndarray:
        x = np.zeros(self.A + self.K)
        if prev is not None:
            x[prev] = 1.0
        x[self.A + k] = 1.0
        return x

    def forward(self, actions=None, rng=None):
        """Samples an episode (``actions`` None) or scores given ones; returns (actions, caches)."""
        p, H = self.p, self.H
        h, c = np.zeros(H), np.zeros(H)
        acts, caches, prev = [], [], None
        for k in range(self.K):
            x = self._input(k, prev)
            e = np.tanh(p["We"] @ x + p["be"])
            z = p["Wx"] @ e + p["Wh"] @ h + p["bl"]
            i, f, o, g = _sigmoid(z[:H]), _sigmoid(z[H:2 * H]), _sigmoid(z[2 * H:3 * H]), np.tanh(z[3 * H:])
            c_new = f * c + i * g
            h_new = o * np.tanh(c_new)
            probs = _softmax(p[f"Wo{k}"] @ h_new + p[f"bo{k}"])
            a = int((rng or self.rng).choice(len(probs), p=probs)) if actions is None else int(actions[k])
            caches.append(dict(x=x, e=e, h=h, c=c, i=i, f=f, o=o, g=g, c_new=c_new, h_new=h_new, probs=probs, a=a))
            acts.append(a)
            h, c, prev = h_new, c_new, a
        return tuple(acts), caches

    def sample(self) -> tuple[int, ...]:
        return self.forward()[0]

    def log_prob(self, actions) -> float:
        _, caches = self.forward(actions)
        return float(sum(np.log(cc["probs"][cc["a"]]) for cc in caches))

    # --------------------------------------------------------------- backward

    def grad(self, actions, advantage: float) -> dict[str, np.ndarray]:
        """Gradient of the loss -advantage * log pi(actions) - beta * entropy (to be descended)."""
        p, H = self.p, self.H
        _, caches = self.forward(actions)
        gr = {k: np.zeros_like(v) for k, v in p.items()}
        dh_next, dc_next = np.zeros(H), np.zeros(H)
        for k in reversed(range(self.K)):
            cc = caches[k]
            pr = cc["probs"]
            logp = np.log(pr)
            dz_out = -advantage * (np.eye(len(pr))[cc["a"]] - pr) + self.beta * pr * (logp + (-(pr * logp).sum()))
            gr[f"Wo{k}"] += np.outer(dz_out, cc["h_new"])
            gr[f"bo{k}"] += dz_out
            dh = p[f"Wo{k}"].T @ dz_out + dh_next
            tc = np.tanh(cc["c_new"])
            do = dh * tc
            dc = dh * cc["o"] * (1 - tc ** 2) + dc_next
            di, df, dg = dc * cc["g"], dc * cc["c"], dc * cc["i"]
            dz = np.concatenate([di * cc["i"] * (1 - cc["i"]), df * cc["f"] * (1 - cc["f"]),
                                 do * cc["o"] * (1 - cc["o"]), dg * (1 - cc["g"] ** 2)])
            gr["Wx"] += np.outer(dz, cc["e"])
            gr["Wh"] += np.outer(dz, cc["h"])
            gr["bl"] += dz
            de = (p["Wx"].T @ dz) * (1 - cc["e"] ** 2)
            gr["We"] += np.outer(de, cc["x"])
            gr["be"] += de
            dh_next, dc_next = p["Wh"].T @ dz, dc * cc["f"]
        return gr

    def update(self, episodes, advantages) -> None:
        """One Adam step on the mean gradient of a batch of episodes."""
        total = None
        for acts, adv in zip(episodes, advantages):
            g = self.grad(acts, float(adv))
            total = g if total is None else {k: total[k] + g[k] for k in g}
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for k, g in total.items():
            g = g / len(episodes)
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            mh, vh = self.m[k] / (1 - b1 ** self.t), self.v[k] / (1 - b2 ** self.t)
            self.p[k] -= self.lr * mh / (np.sqrt(vh) + eps)
