"""Accelerator backends behind one interface (what the loop calls):

    act(state, explore) -> action in [-1, 1]       (noise added by the backend)
    train(s, a, r, s2, done) -> statistics         (one DDPG step on a batch)
    set_precision_phase(phase)                     (QAT switch: fxp32 -> fxp16)
    state_dict() / load_state_dict(d)              (weights, moments, targets, noise state)

`float` and `golden` (FXP32 phase) exist; `rtl` needs the on-chip training
step (issue 4) and `xrt` the U50 kernel (issue 6).
"""
from __future__ import annotations

from fixar.rl.hyper import Hyper

NOT_YET = {
    "rtl": "training on the simulated RTL needs the on-chip training step (issue 4); use --backend float",
    "xrt": "the U50 kernel and its XRT backend are not built yet (issue 6); use --backend float",
}
BACKENDS = ("float", "golden", *NOT_YET)


class BackendUnavailable(RuntimeError):
    pass


def make_backend(name: str, obs_dim: int, act_dim: int, hyper: Hyper, seed: int):
    if name == "float":
        from fixar.rl.float_backend import FloatBackend
        return FloatBackend(obs_dim, act_dim, hyper, seed)
    if name == "golden":
        from fixar.rl.golden_backend import GoldenBackend
        return GoldenBackend(obs_dim, act_dim, hyper, seed)
    if name in NOT_YET:
        raise BackendUnavailable(f"backend {name!r}: {NOT_YET[name]}")
    raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
