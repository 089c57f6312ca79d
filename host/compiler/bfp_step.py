"""What the host does around a BFP program's step (docs/bfp.md, "BFP in the
compiler"): the program for the networks' current widths, the seed bases the
step's conversions start from, and after the step, FAST's schedule on the
layer inputs read back. The networks' BFP state is the golden model's
(fixar.golden.bfp_train.BfpLayers, one per network), so a program step and
FixedDDPG's step move it the same way.
"""
from __future__ import annotations

import numpy as np

from fixar.compiler.execute import ProgramState, bfp_seed_key
from fixar.compiler.program import BFP_NETS, Program, compile_ddpg
from fixar.config import FixarConfig
from fixar.golden.bfp_train import BfpLayers

MASK32 = 0xFFFFFFFF


def bfp_widths(layers: dict[str, BfpLayers]) -> dict[str, list[tuple[int, int]]]:
    """Each layer's (weight, input) widths: the golden model gives both one width."""
    return {net: [(m, m) for m in layers[net].widths] for net in BFP_NETS}


def compile_bfp(cfg: FixarConfig, layers: dict[str, BfpLayers], obs_dim: int, act_dim: int,
                hidden: tuple[int, ...], batch: int, fuse_soft: bool = True) -> Program:
    """The training (and acting) program at the networks' current widths;
    compile again when the schedule widens a layer. Networks at fixed widths
    never check, so their program keeps no inputs for the host to read."""
    return compile_ddpg(cfg, obs_dim, act_dim, hidden, batch, fuse_soft=fuse_soft, bfp=bfp_widths(layers),
                        bfp_check=may_check(layers))


def may_check(layers: dict[str, BfpLayers]) -> bool:
    """Whether a step of these networks may check the schedule (not every network at fixed widths)."""
    return not all(layers[net].fixed for net in BFP_NETS)


def bfp_scalars(layers: dict[str, BfpLayers]) -> dict[str, int]:
    """The seed bases of the next step (or of acting, which uses the next
    step's seeds without using them up): each network's seed plus its
    conversions so far."""
    return {bfp_seed_key(i): (layers[net].seed + layers[net].conversions) & MASK32
            for i, net in enumerate(BFP_NETS)}


def begin_bfp_step(layers: dict[str, BfpLayers]) -> None:
    for net in BFP_NETS:
        layers[net].begin_step()


def end_bfp_step(st: ProgramState, layers: dict[str, BfpLayers], obs_dim: int) -> bool:
    """After a training step on the golden executor: :func:`finish_bfp_step` on its tensors."""
    return finish_bfp_step(st.program, lambda name: st.t[name], layers, obs_dim, st.cfg.array.rows)


def finish_bfp_step(p: Program, read, layers: dict[str, BfpLayers], obs_dim: int, rows: int) -> bool:
    """After a training step: count its conversions, and on a check step give
    the schedule each layer's input from the training forward passes
    (``read(tensor name)``: the tensor as the program holds it, rows padded to
    whole tiles; the critic's [s; a] loses its padding here: the golden model
    pads it itself). Returns whether a layer widened (the next step's program
    must be compiled again)."""
    obs_p = -(-obs_dim // rows) * rows
    widened = False
    for net in BFP_NETS:
        L = layers[net]
        before = list(L.widths)
        L.conversions += p.bfp_conversions[net]
        if L.checking:
            if net not in p.bfp_inputs:
                raise ValueError(f"a check step of the {net}'s schedule on a program compiled without its inputs")
            for i, name in enumerate(p.bfp_inputs[net]):
                X = read(name)[:p.tensors[name].shape[0]]
                if net == "critic" and i == 0:
                    X = np.vstack([X[:obs_dim], X[obs_p:]])
                L.watch(i, X)
        L.end_step()
        widened |= L.widths != before
    return widened


def checking(layers: dict[str, BfpLayers]) -> bool:
    """Whether this step is a check step (after begin_bfp_step): the host reads the inputs back."""
    return any(layers[net].checking for net in BFP_NETS)
