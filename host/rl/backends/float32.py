"""The `float` backend: DDPG in float32 numpy with the networks and
hyper-parameters the accelerator uses. It is the reward reference for the
fixed-point backends and the baseline of the speed figures.

Networks: actor state -> h1 -> h2 -> action (ReLU, ReLU, tanh); critic
[state, action] -> h1 -> h2 -> 1 (ReLU, ReLU, identity). Initialisation as in
the DDPG paper: uniform +-1/sqrt(fan_in), the last layer +-3e-3. Actions are
in [-1, 1]; the loop maps them to the environment's bounds.
"""
from __future__ import annotations

import numpy as np

from fixar.rl.checkpoint import check_backend_state
from fixar.rl.heap import keep_temporaries_in_heap
from fixar.rl.hyper import Hyper
from fixar.rl.threads import largest_product_macs, size_blas_threads

F32 = np.float32


class MLP:
    """Fully-connected network with hand-written backward pass (no autograd)."""

    def __init__(self, sizes: list[int], out_act: str, rng: np.random.Generator):
        self.sizes, self.out_act = sizes, out_act
        self.W, self.b = [], []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            lim = 3e-3 if i == len(sizes) - 2 else 1 / np.sqrt(fan_in)
            self.W.append(rng.uniform(-lim, lim, (fan_out, fan_in)).astype(F32))
            self.b.append(rng.uniform(-lim, lim, fan_out).astype(F32))

    @classmethod
    def of(cls, W: list[np.ndarray], b: list[np.ndarray], out_act: str) -> MLP:
        """A network with the given parameters (copied), no initialisation."""
        net = object.__new__(cls)
        net.sizes = [W[0].shape[1]] + [w.shape[0] for w in W]
        net.out_act = out_act
        net.W, net.b = [w.copy() for w in W], [x.copy() for x in b]
        return net

    def params(self) -> list[np.ndarray]:
        return [p for pair in zip(self.W, self.b) for p in pair]

    def forward(self, x: np.ndarray, keep: bool = False):
        """x: (in, B) -> (out, B); with keep, also the per-layer inputs and outputs."""
        acts = [x]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = W @ acts[-1] + b[:, None]
            last = i == len(self.W) - 1
            acts.append(np.maximum(z, 0) if not last else np.tanh(z) if self.out_act == "tanh" else z)
        return (acts[-1], acts) if keep else acts[-1]

    def backward(self, acts: list[np.ndarray], dy: np.ndarray):
        """Gradients of sum(dy * y) w.r.t. the parameters and the input."""
        grads = []
        d = dy * (1 - acts[-1] ** 2) if self.out_act == "tanh" else dy
        for i in range(len(self.W) - 1, -1, -1):
            grads.append((d @ acts[i].T, d.sum(axis=1)))
            d = self.W[i].T @ d
            if i > 0:
                d = d * (acts[i] > 0)
        flat = [g for pair in reversed(grads) for g in pair]
        return flat, d


class Adam:
    def __init__(self, params: list[np.ndarray], lr: float, b1: float, b2: float, eps: float):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, b1, b2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= (self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(F32)


class FloatBackend:
    name = "float"

    def __init__(self, obs_dim: int, act_dim: int, hyper: Hyper, seed: int):
        keep_temporaries_in_heap()    # page faults of fresh temporaries cost more than the arithmetic
        self.obs_dim, self.act_dim, self.hp = obs_dim, act_dim, hyper
        size_blas_threads(largest_product_macs(obs_dim, act_dim, tuple(hyper.hidden), hyper.batch))
        rng = np.random.default_rng(seed)
        self.noise_rng = np.random.default_rng(seed + 1)
        h1, h2 = hyper.hidden
        self.actor = MLP([obs_dim, h1, h2, act_dim], "tanh", rng)
        self.critic = MLP([obs_dim + act_dim, h1, h2, 1], "identity", rng)
        self.actor_t = MLP.of(self.actor.W, self.actor.b, self.actor.out_act)
        self.critic_t = MLP.of(self.critic.W, self.critic.b, self.critic.out_act)
        hp = hyper
        self.actor_opt = Adam(self.actor.params(), hp.actor_lr, hp.adam_beta1, hp.adam_beta2, hp.adam_eps)
        self.critic_opt = Adam(self.critic.params(), hp.critic_lr, hp.adam_beta1, hp.adam_beta2, hp.adam_eps)


    def act(self, state: np.ndarray, explore: bool) -> np.ndarray:
        a = self.actor.forward(np.asarray(state, F32).reshape(-1, 1))[:, 0]
        if explore and self.hp.noise > 0:
            a = np.clip(a + self.noise_rng.normal(0, self.hp.noise, a.shape).astype(F32), -1, 1)
        return a

    def train(self, s, a, r, s2, done) -> dict:
        """One DDPG step on a batch (rows are samples); returns statistics."""
        hp = self.hp
        S, A, S2 = (np.asarray(x, F32).T for x in (s, a, s2))
        R, D = np.asarray(r, F32)[None, :], np.asarray(done, F32)[None, :]
        B = S.shape[1]
        # critic: y = r + gamma (1 - done) Q'(s', mu'(s'))
        q2 = self.critic_t.forward(np.vstack([S2, self.actor_t.forward(S2)]))
        y = R + hp.gamma * (1 - D) * q2
        q, acts = self.critic.forward(np.vstack([S, A]), keep=True)
        grads, _ = self.critic.backward(acts, 2 * (q - y) / B)
        self.critic_opt.step(grads)
        # actor: maximise Q(s, mu(s)); dQ/da through the (just updated) critic, not updating it
        mu, a_acts = self.actor.forward(S, keep=True)
        qa, c_acts = self.critic.forward(np.vstack([S, mu]), keep=True)
        _, dx = self.critic.backward(c_acts, -np.ones_like(qa) / B)
        a_grads, _ = self.actor.backward(a_acts, dx[self.obs_dim:])
        self.actor_opt.step(a_grads)
        for net, tgt in ((self.actor, self.actor_t), (self.critic, self.critic_t)):
            for p, pt in zip(net.params(), tgt.params()):
                pt += hp.tau * (p - pt)
        return {"critic_loss": float(np.mean((q - y) ** 2)), "q_mean": float(np.mean(q))}

    def switch_to_fxp16(self) -> None:
        raise ValueError("the float backend has no 16-bit phase")

    def set_precision_phase(self, phase: str) -> None:
        if phase != "fp32":
            raise ValueError(f"the float backend computes in float32 only; phase {phase!r} needs a "
                             "fixed-point backend")

    # ------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, np.ndarray]:
        out = {}
        for name, net in (("actor", self.actor), ("critic", self.critic), ("actor_t", self.actor_t),
                          ("critic_t", self.critic_t)):
            for i, p in enumerate(net.params()):
                out[f"{name}.{i}"] = p
        for name, opt in (("actor_opt", self.actor_opt), ("critic_opt", self.critic_opt)):
            for i, (m, v) in enumerate(zip(opt.m, opt.v)):
                out[f"{name}.m{i}"], out[f"{name}.v{i}"] = m, v
            out[f"{name}.t"] = np.array(opt.t)
        out["noise_rng"] = np.frombuffer(repr(self.noise_rng.bit_generator.state).encode(), dtype=np.uint8)
        return out

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        check_backend_state(self.state_dict(), d, opaque=("noise_rng",))
        for name, net in (("actor", self.actor), ("critic", self.critic), ("actor_t", self.actor_t),
                          ("critic_t", self.critic_t)):
            for i, p in enumerate(net.params()):
                p[...] = d[f"{name}.{i}"]
        for name, opt in (("actor_opt", self.actor_opt), ("critic_opt", self.critic_opt)):
            for i, (m, v) in enumerate(zip(opt.m, opt.v)):
                m[...], v[...] = d[f"{name}.m{i}"], d[f"{name}.v{i}"]
            opt.t = int(d[f"{name}.t"])
        import ast
        self.noise_rng.bit_generator.state = ast.literal_eval(bytes(d["noise_rng"]).decode())
