"""The `golden` backend: the bit-exact fixed-point DDPG step of
fixar.golden.ddpg, i.e. what the accelerator computes, in numpy. States,
actions and rewards are quantized at this boundary (round to nearest even,
saturating), as the host does before sending a batch to the board."""
from __future__ import annotations

import json

import numpy as np

from fixar.config import ActFunc, FixarConfig, load
from fixar.golden.ddpg import FixedDDPG, quantize_net
from fixar.golden.fixed import dequantize, quantize
from fixar.rl.backends.float32 import MLP
from fixar.rl.checkpoint import check_backend_state
from fixar.rl.heap import keep_temporaries_in_heap
from fixar.rl.hyper import Hyper
from fixar.rl.threads import largest_product_macs, size_blas_threads


def check_fits(cfg: FixarConfig, obs_dim: int, act_dim: int, hyper: Hyper) -> None:
    """The networks and batch fit the accelerator's memories and units, as the
    rtl and xrt backends require (their host compiles the same program): a
    golden run stands for a run on the engine, so one that no engine of this
    config could make is refused before it starts. Raises ProgramError."""
    from fixar.compiler.program import ProgramError, compile_ddpg

    try:
        compile_ddpg(cfg, obs_dim, act_dim, tuple(hyper.hidden), hyper.batch)
    except ProgramError as exc:
        raise not_fitting(cfg, hyper, exc) from None


def not_fitting(cfg: FixarConfig, hyper: Hyper, exc: Exception):
    """The compiler's reason as one line that names the options to change."""
    from fixar.compiler.program import ProgramError

    h1, h2 = hyper.hidden
    return ProgramError(f"--hidden {h1},{h2} --batch {hyper.batch} do not fit the engine of config {cfg.name!r}: "
                        f"{exc}")


class GoldenBackend:
    name = "golden"

    def __init__(self, obs_dim: int, act_dim: int, hyper: Hyper, seed: int, cfg: FixarConfig | None = None):
        keep_temporaries_in_heap()    # page faults of fresh temporaries cost more than the arithmetic
        self.cfg = cfg or load("default")
        self.obs_dim, self.act_dim, self.hp = obs_dim, act_dim, hyper
        size_blas_threads(largest_product_macs(obs_dim, act_dim, tuple(hyper.hidden), hyper.batch))
        rng = np.random.default_rng(seed)  # the float backend's initial weights, quantized
        h1, h2 = hyper.hidden
        relu = [ActFunc.RELU, ActFunc.RELU]
        actor = MLP([obs_dim, h1, h2, act_dim], "tanh", rng)
        critic = MLP([obs_dim + act_dim, h1, h2, 1], "identity", rng)
        self.ddpg = FixedDDPG(
            self.cfg, quantize_net(self.cfg, actor.W, actor.b, relu + [ActFunc.TANH]),
            quantize_net(self.cfg, critic.W, critic.b, relu + [ActFunc.IDENTITY]), obs_dim,
            batch=hyper.batch, gamma=hyper.gamma, tau=hyper.tau, noise=hyper.noise, actor_lr=hyper.actor_lr,
            critic_lr=hyper.critic_lr, beta1=hyper.adam_beta1, beta2=hyper.adam_beta2, eps=hyper.adam_eps,
            seed=seed + 1)

    def _q(self, x) -> np.ndarray:
        return quantize(np.asarray(x, dtype=np.float64), self.cfg.pe.act32)

    def act(self, state: np.ndarray, explore: bool) -> np.ndarray:
        a = self.ddpg.act(self._q(state), explore)
        return dequantize(a, self.cfg.pe.act32).astype(np.float32)

    def train(self, s, a, r, s2, done) -> dict:
        return self.ddpg.train(self._q(s).T, self._q(a).T, self._q(r), self._q(s2).T, np.asarray(done) > 0.5)

    def set_precision_phase(self, phase: str) -> None:
        """fxp32: 32-bit throughout; qat: 32-bit while tracking activation
        ranges, 16-bit after :meth:`switch_to_fxp16`; fxp16: 16-bit layer
        inputs in the fixed format pe.act16 from the start (no ranges); bfp:
        every product in block floating point with FAST's precision schedule
        (fixar.golden.bfp_train)."""
        if phase == "qat":
            self.ddpg.enable_qat()
        elif phase == "fxp16":
            self.ddpg.use_fxp16_from_scratch()
        elif phase == "bfp":
            self.ddpg.use_bfp()
        elif phase != "fxp32":
            raise ValueError(f"precision {phase!r}: the golden backend runs fxp32, qat, fxp16 and bfp")

    def switch_to_fxp16(self) -> None:
        self.ddpg.switch_to_fxp16()

    def precision_history(self) -> dict[str, list] | None:
        """BFP's schedule so far per network: (training step, layer, r(X),
        width after) of every check (None in the other precisions)."""
        if self.ddpg.phase != "bfp":
            return None
        return {name: list(q.history) for name, q in self.ddpg.qat.items()}

    def precision_note(self) -> str | None:
        """The BFP layers' mantissa widths (None in the other precisions)."""
        if self.ddpg.phase != "bfp":
            return None
        return "BFP mantissa widths " + ", ".join(f"{name} {','.join(map(str, q.widths))}"
                                                  for name, q in self.ddpg.qat.items())

    # ------------------------------------------------------------- checkpoint
    def _arrays(self) -> dict[str, np.ndarray]:
        d = self.ddpg
        out = {}
        for name, net in (("actor", d.actor), ("critic", d.critic), ("actor_t", d.actor_t),
                          ("critic_t", d.critic_t)):
            for i, p in enumerate(d._params(net)):
                out[f"{name}.{i}"] = p
        for name, (m, v) in d.moments.items():
            out[f"{name}_opt.m"], out[f"{name}_opt.v"] = m, v
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        out = dict(self._arrays())
        for name, sched in self.ddpg.steps.items():
            st = sched.state()
            out[f"{name}_opt.t"] = np.array(st["t"])
            out[f"{name}_opt.p"] = np.array([st["p1"], st["p2"]])
        out["prng"] = np.array(int(self.ddpg.prng), dtype=np.uint32)
        qat = None if self.ddpg.qat is None else {k: q.state() for k, q in self.ddpg.qat.items()}
        out["qat"] = np.frombuffer(json.dumps(qat).encode(), dtype=np.uint8)
        return out

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        check_backend_state(self.state_dict(), d, opaque=("qat",))
        for k, arr in self._arrays().items():
            arr[...] = d[k]
        dd = self.ddpg
        for name in dd.moments:
            dd.moments[name] = (np.array(d[f"{name}_opt.m"]), np.array(d[f"{name}_opt.v"]))
        for name, sched in dd.steps.items():
            p1, p2 = d[f"{name}_opt.p"]
            sched.load({"t": int(d[f"{name}_opt.t"]), "p1": float(p1), "p2": float(p2)})
        dd.prng = np.uint32(int(d["prng"]))
        qat = json.loads(bytes(d["qat"]).decode())
        dd.qat = None
        if qat is not None and all(st.get("kind") == "fxp16" for st in qat.values()):
            dd.use_fxp16_from_scratch()
        elif qat is not None:
            if all(st.get("kind") == "bfp" for st in qat.values()):
                dd.use_bfp()
            else:
                dd.enable_qat()
            for k, st in qat.items():
                dd.qat[k].load(st)
