"""Accelerator backends behind one interface (what the loop calls):

    act(state, explore) -> action in [-1, 1]       (noise added by the backend)
    train(s, a, r, s2, done) -> statistics         (one DDPG step on a batch)
    set_precision_phase(phase)                     (QAT switch: fxp32 -> fxp16)
    state_dict() / load_state_dict(d)              (weights, moments, targets, noise state)

`float` (float32 numpy), `golden` (the bit-exact fixed-point model, the
default) and `rtl` (the generated training engine under Verilator, through
a co-simulation link) and `xrt` (the U50 through pyxrt; ``--xclbin``)
exist. `golden`, `rtl` and `xrt` take the engine's config (``--config``).
"""
from __future__ import annotations

from fixar.rl.backends.base import Backend, BackendUnavailable
from fixar.rl.hyper import Hyper

BACKENDS = ("float", "golden", "rtl", "xrt")
__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "make_backend"]


def make_backend(name: str, obs_dim: int, act_dim: int, hyper: Hyper, seed: int, config: str = "default",
                 log=print, xclbin: str | None = None, multiplier: str | None = None) -> Backend:
    if name == "float":
        from fixar.rl.backends.float32 import FloatBackend
        return FloatBackend(obs_dim, act_dim, hyper, seed)
    if name in ("golden", "rtl", "xrt"):
        from fixar.rl.inputs import engine_config
        cfg = engine_config(config, multiplier)
        if name == "golden":
            from fixar.rl.backends.golden import GoldenBackend, check_fits
            check_fits(cfg, obs_dim, act_dim, hyper)
            return GoldenBackend(obs_dim, act_dim, hyper, seed, cfg)
        if name == "rtl":
            from fixar.rl.backends.rtl import RtlBackend
            return RtlBackend(obs_dim, act_dim, hyper, seed, cfg, log=log)
        from fixar.rl.backends.xrt import XrtBackend
        return XrtBackend(obs_dim, act_dim, hyper, seed, cfg, xclbin=xclbin, log=log)
    raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
