"""The golden fixed-point DDPG step against float64 DDPG on the same weights
and batch: relative error of every gradient (issue 4's "tracks a float64
reference closely enough to learn"), and the step's wall time against the
float32 backend's."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from fixar.config import FixarConfig
from fixar.golden.fixed import dequantize, quantize
from fixar.rl.backends.float32 import MLP
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper


def _float_net(cfg: FixarConfig, net, out_act: str) -> MLP:
    return MLP.of([dequantize(w, cfg.pe.weight) for w in net.W], [dequantize(b, cfg.pe.out) for b in net.b],
                  out_act)


def gradient_errors(cfg: FixarConfig, obs: int = 17, act: int = 6, batch: int = 64, seed: int = 0) -> dict:
    """Relative L2 error of the golden gradients (all parameters of each
    network together) against float64 computed from the dequantized weights
    and the quantized batch."""
    hp = Hyper(batch=batch)
    gb = GoldenBackend(obs, act, hp, seed, cfg)
    d = gb.ddpg
    rng = np.random.default_rng(seed)
    q = lambda x: quantize(x, cfg.pe.act32)
    S, S2 = q(rng.normal(0, 1, (obs, batch))), q(rng.normal(0, 1, (obs, batch)))
    A = q(rng.uniform(-1, 1, (act, batch)))
    R = q(rng.normal(-1, 1, batch))[None, :]
    done = (rng.random(batch) < 0.05)[None, :]
    c_grads, _, _ = d.critic_gradients(S, A, R, S2, done)
    a_grads = d.actor_gradients(S)
    f = lambda x: dequantize(x, cfg.pe.act32)
    actor, critic = _float_net(cfg, d.actor, "tanh"), _float_net(cfg, d.critic, "identity")
    actor_t, critic_t = _float_net(cfg, d.actor_t, "tanh"), _float_net(cfg, d.critic_t, "identity")
    y = f(R) + hp.gamma * (1 - done) * critic_t.forward(np.vstack([f(S2), actor_t.forward(f(S2))]))
    qv, acts = critic.forward(np.vstack([f(S), f(A)]), keep=True)
    want_c, _ = critic.backward(acts, 2 * (qv - y) / batch)
    mu, a_acts = actor.forward(f(S), keep=True)
    qa, c_acts = critic.forward(np.vstack([f(S), mu]), keep=True)
    _, dx = critic.backward(c_acts, -np.ones_like(qa) / batch)
    want_a, _ = actor.backward(a_acts, dx[obs:])
    gf = cfg.adam.grad

    def rel(got, want, scale_log2=0):
        g = np.concatenate([dequantize(x, gf).ravel() for x in got]) * 2.0 ** -scale_log2
        w = np.concatenate([x.ravel() for x in want])
        return float(np.linalg.norm(g - w) / np.linalg.norm(w))

    ad = cfg.adam
    return {"critic": rel(c_grads, want_c, ad.critic_grad_scale_log2),
            "actor": rel(a_grads, want_a, ad.actor_grad_scale_log2)}


def _interleaved_ms(steps: dict, reps: int) -> dict:
    """Median ms per call of each function, the functions called in turn so
    that a load that comes and goes on the machine hits all of them alike."""
    times = {name: [] for name in steps}
    for _ in range(reps):
        for name, fn in steps.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: 1e3 * float(np.median(ts)) for name, ts in times.items()}


def _step_ms(cfg: FixarConfig, obs: int, act: int, batch: int, reps: int) -> dict:
    """Median ms of one training step: golden (numba), golden (numpy only), float32."""
    import os

    from fixar.rl.backends.float32 import FloatBackend
    rng = np.random.default_rng(1)
    batch_data = (rng.normal(0, 1, (batch, obs)), rng.uniform(-1, 1, (batch, act)), rng.normal(-1, 1, batch),
                  rng.normal(0, 1, (batch, obs)), np.zeros(batch))
    golden = GoldenBackend(obs, act, Hyper(batch=batch), 0, cfg)
    numpy_only = GoldenBackend(obs, act, Hyper(batch=batch), 0, cfg)
    fp32 = FloatBackend(obs, act, Hyper(batch=batch), 0)

    def without_numba():
        os.environ["FIXAR_NO_NUMBA"] = "1"
        try:
            numpy_only.train(*batch_data)
        finally:
            del os.environ["FIXAR_NO_NUMBA"]

    steps = {"golden": lambda: golden.train(*batch_data), "numpy": without_numba,
             "float": lambda: fp32.train(*batch_data)}
    for fn in steps.values():      # first calls: numba's compile (or cache load), allocations
        fn()
    return _interleaved_ms(steps, reps)


def step_time_ratio_here(cfg: FixarConfig, obs: int = 17, act: int = 6, batches=(64, 512), reps: int = 15) -> dict:
    """One DDPG training step of FIXAR's 400-300 networks: the golden model
    (numba kernels, and the numpy-only route that FIXAR_NO_NUMBA=1 selects)
    against the float32 backend, in this process with the same BLAS threads."""
    figs = {}
    for batch in batches:
        ms = _step_ms(cfg, obs, act, batch, reps)
        figs.update({f"golden_step_ms_b{batch}": ms["golden"], f"golden_numpy_only_step_ms_b{batch}": ms["numpy"],
                     f"float_step_ms_b{batch}": ms["float"]})
    return figs


def step_time_ratio(cfg: FixarConfig, processes: int = 5, **kw) -> dict:
    """:func:`step_time_ratio_here` in ``processes`` fresh processes, one
    after another: the median of each time over them, each ratio the
    median of the processes' ratios, and the golden/float ratios' smallest
    and largest (``..._min``, ``..._max``). On this 2-core VM one process's
    golden step is about 7.5 ms or about 11.5 ms at B = 64 for the whole of
    its life (thread placement), while the float step is not: the ratio of
    one process is a draw of that, the median over several is the figure."""
    script = ("import json, sys; from fixar.config import FixarConfig; "
              "from fixar.figures.golden_ddpg import step_time_ratio_here; "
              "args = json.loads(sys.stdin.read()); "
              "print(json.dumps(step_time_ratio_here(FixarConfig.from_dict(args.pop('cfg')), **args)))")
    runs = []
    for _ in range(processes):
        out = subprocess.run([sys.executable, "-c", script], input=json.dumps({"cfg": cfg.to_dict(), **kw}),
                             capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    figs = {key: round(float(np.median([r[key] for r in runs])), 2) for key in runs[0]}
    for batch in [k.removeprefix("golden_step_ms_b") for k in runs[0] if k.startswith("golden_step_ms_b")]:
        golden = [r[f"golden_step_ms_b{batch}"] / r[f"float_step_ms_b{batch}"] for r in runs]
        numpy_only = [r[f"golden_numpy_only_step_ms_b{batch}"] / r[f"float_step_ms_b{batch}"] for r in runs]
        figs.update({f"golden_vs_float_step_ratio_b{batch}": round(float(np.median(golden)), 2),
                     f"golden_vs_float_step_ratio_b{batch}_min": round(min(golden), 2),
                     f"golden_vs_float_step_ratio_b{batch}_max": round(max(golden), 2),
                     f"golden_numpy_only_ratio_b{batch}": round(float(np.median(numpy_only)), 2)})
    return figs
