"""Accelerator backends behind one interface (what the loop calls):

    act(state, explore) -> action in [-1, 1]       (noise added by the backend)
    train(s, a, r, s2, done) -> statistics         (one DDPG step on a batch)
    set_precision_phase(phase)                     (QAT switch: fxp32 -> fxp16)
    state_dict() / load_state_dict(d)              (weights, moments, targets, noise state)

`float` (float32 numpy), `golden` (the bit-exact fixed-point model, the
default) and `rtl` (the generated training engine under Verilator, through
a co-simulation link) exist; `xrt` needs the U50 kernel (issue 6). `golden`
and `rtl` take the engine's config (``--config``: a name or a TOML file).
"""
from __future__ import annotations

from fixar.rl.hyper import Hyper

NOT_YET = {
    "xrt": "the U50 kernel and its XRT backend are not built yet (issue 6); use --backend golden or rtl",
}
BACKENDS = ("float", "golden", "rtl", *NOT_YET)


class BackendUnavailable(RuntimeError):
    pass


def make_backend(name: str, obs_dim: int, act_dim: int, hyper: Hyper, seed: int, config: str = "default",
                 log=print):
    if name == "float":
        from fixar.rl.float_backend import FloatBackend
        return FloatBackend(obs_dim, act_dim, hyper, seed)
    if name in ("golden", "rtl"):
        from fixar.config import load
        cfg = load(config)
        if name == "golden":
            from fixar.rl.golden_backend import GoldenBackend
            return GoldenBackend(obs_dim, act_dim, hyper, seed, cfg)
        from fixar.rl.rtl_backend import RtlBackend
        return RtlBackend(obs_dim, act_dim, hyper, seed, cfg, log=log)
    if name in NOT_YET:
        raise BackendUnavailable(f"backend {name!r}: {NOT_YET[name]}")
    raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
