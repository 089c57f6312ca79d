"""Where a training step's cycles go, from the program's cycle model (equal
to the RTL's cycles on every step the engine bench runs: tb/test_engine.py
asserts it): for HalfCheetah's 400-300 networks on the default config, each
instruction kind's share of the step, and the whole step's utilization,
useful MACs / (PEs x step cycles), where the useful MACs are every array
product's M x K x batch (forward, transposed, weight and bias gradients;
padding excluded) and a PE counts one MAC per cycle (FXP32). The shares
are of the controller's time (fixar.compiler.program.timeline): an ADAM
that overlaps the array counts its bias pass, a SYNC its wait; they add
up to the step."""
from __future__ import annotations

from collections import Counter

from fixar.compiler.array_ops import useful_macs
from fixar.compiler.program import Grad, Matmul, compile_ddpg, timeline
from fixar.config import FixarConfig

BATCHES = (64, 128, 256, 512)
NETS = (17, 6, (400, 300))          # HalfCheetah: obs, act, hidden (FIXAR's workload)


def _kind(ins) -> str:
    """The instruction's name in the breakdown: array products by role."""
    if isinstance(ins, Matmul):
        return "transposed" if ins.op.transpose else "forward"
    if isinstance(ins, Grad):
        return "weight_grad" if ins.x is not None else "bias_grad"
    name = type(ins).__name__.lower()
    return f"{name}_{ins.op.name.lower()}" if name == "vec" else name


def step_breakdown(cfg: FixarConfig, batch: int, nets=NETS) -> tuple[int, dict, int]:
    """(step cycles, cycles per instruction kind, useful MACs) of one step."""
    obs, act, hidden = nets
    p = compile_ddpg(cfg, obs, act, hidden, batch)
    S = batch // cfg.array.cores
    kinds: Counter = Counter(bias_grad=0)     # 0 where every bias gradient rides in its weight gradient
    cycles = timeline(cfg, p, p.instrs, S)
    for ins, n in zip(p.instrs, cycles):
        kinds[_kind(ins)] += n
    macs = sum(useful_macs(i.op) for i in p.instrs if isinstance(i, (Matmul, Grad)))
    return sum(cycles), dict(kinds), macs


def schedule_figures(cfg: FixarConfig, batches=BATCHES) -> dict:
    figs: dict = {}
    for batch in batches:
        cycles, kinds, macs = step_breakdown(cfg, batch)
        figs[f"step_util_b{batch}"] = round(macs / (cfg.array.pes * cycles), 4)
        if batch in (64, 512):
            for kind, n in kinds.items():
                figs[f"step_share_{kind}_b{batch}"] = round(n / cycles, 4)
    return figs
