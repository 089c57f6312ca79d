"""The golden model executing a training program (fixar.compiler.program): the same
instructions the accelerator's controller runs, on named tensors, with the
golden arithmetic of every unit (layer products, weight gradients, vector
unit, Adam). Activation tensors are held padded to whole feature tiles, as
they lie in the hardware's memories; the tests check that one program step
equals :class:`fixar.golden.ddpg.FixedDDPG`'s step bit for bit.
"""
from __future__ import annotations

import math

import numpy as np

from fixar.compiler.array_ops import LayerOp
from fixar.compiler.program import BFP_NETS, Adam, Grad, Matmul, Program, Soft, Sync, Vec
from fixar.config import FixarConfig, VecOp, mask_no_limit, packed_code_offset
from fixar.golden.adam import AdamCodes, adam_update
from fixar.golden.bfp import bfp_quantize
from fixar.golden.ddpg import bias_grad, weight_grad
from fixar.golden.fixed import I64
from fixar.golden.layer import linear, transposed
from fixar.golden.noise import jenkins32
from fixar.golden.qat import dequantize16, quantize16
from fixar.golden.vector import noise_add, vector_op


class ProgramState:
    """Every tensor of a program (zeros until written), gradients and Adam moments."""

    def __init__(self, cfg: FixarConfig, program: Program, batch: int):
        self.cfg, self.program, self.batch = cfg, program, batch
        R = cfg.array.rows
        self.t: dict[str, np.ndarray] = {}
        for name, t in program.tensors.items():
            if t.space in ("A", "T", "M"):
                self.t[name] = np.zeros((math.ceil(t.shape[0] / R) * R, t.shape[1]), dtype=I64)
            else:
                self.t[name] = np.zeros(t.shape, dtype=I64)
        params = [n for n, t in program.tensors.items() if t.space in ("W", "B") and not n.split(".")[0].endswith("_t")]
        self.grad = {n: np.zeros_like(self.t[n]) for n in params}
        self.m = {n: np.zeros_like(self.t[n]) for n in params}
        self.v = {n: np.zeros_like(self.t[n]) for n in params}
        self.prng = cfg.prng.seed      # the vector unit's noise generator
        # the output stage's QAT quantizers: ranges (phase 1), (Delta, z) (phase 2)
        self.lo = [0] * cfg.array.quantizers
        self.hi = [0] * cfg.array.quantizers
        self.quant: list[tuple[int, int] | None] = [None] * cfg.array.quantizers
        # non-zero errors a ReLU mask stopped at its limit (inputs at their
        # quantizer's top, QAT phase 2): shows the benches exercised the limit
        self.clipped_errors = 0
        # the array's mask memory: per stored tensor, 0 < y < limit of every
        # element as the store left it, and that limit (a masked transposed
        # product reads these bits, not the tensor)
        self.mask: dict[str, np.ndarray] = {}
        self.mask_limit: dict[str, int] = {}

    def write(self, name: str, value, first_feature: int = 0) -> None:
        value = np.asarray(value, dtype=I64)
        self.t[name][first_feature:first_feature + value.shape[0]] = value

    def store(self, name: str, value, limit: int, first_feature: int = 0) -> None:
        """An array product's store: the values, and their mask bits beside them."""
        value = np.asarray(value, dtype=I64)
        self.write(name, value, first_feature)
        bits = self.mask.setdefault(name, np.zeros(self.t[name].shape, dtype=bool))
        bits[first_feature:first_feature + value.shape[0]] = (value > 0) & (value < limit)
        self.mask_limit[name] = limit


def execute(st: ProgramState, scalars: dict[str, int], codes: AdamCodes | None, acting: bool = False) -> None:
    """One pass over the training program (or, with ``acting``, the acting
    program). ``scalars``: gamma, tau, loss_scale, noise and the step-size
    codes the Adam instructions name (critic_lr, actor_lr); a BFP program's
    seed bases too (:func:`bfp_seed_key`)."""
    cfg, p, T = st.cfg, st.program, st.t
    R = cfg.array.rows
    for ins in (p.act_instrs if acting else p.instrs):
        if isinstance(ins, Matmul):
            _matmul(st, ins, scalars)
        elif isinstance(ins, Grad):
            M = ins.op.M
            D = T[ins.d][:M]
            if ins.op.pq_q:                 # the error's codes, as the load path dequantizes them
                D = D << _table_shift(st, ins.op.pq_q)
            if ins.x is None:
                st.grad[ins.param] = bias_grad(cfg, D)
            else:
                K = p.tensors[ins.param].shape[1]
                X = T[ins.x][:ins.op.K]         # a packed gradient's: the codes, in feature pairs on chip
                if ins.op.packed:
                    X = _dequantized(st, ins.op, X)
                Dw, X = _bfp_operands(st, ins.op, scalars, D, X, 1, 1) if ins.op.bfp else (D, X)
                st.grad[ins.param] = weight_grad(cfg, Dw, X)[:, :K]
                if ins.bias is not None:    # the same product's ones slot (GStore.BOTH)
                    st.grad[ins.bias] = bias_grad(cfg, D)
        elif isinstance(ins, Vec) and ins.op == VecOp.NOISE:
            n = ins.lanes
            y, st.prng = noise_add(cfg, T[ins.a][:n, 0], st.prng, scalars[ins.coef])
            T[ins.y][:n, 0] = y
        elif isinstance(ins, Vec):
            n = (ins.n_tiles if ins.n_tiles is not None else T[ins.y].shape[0] // R) * R
            a = T[ins.a][ins.a_tile * R:ins.a_tile * R + n]
            b = T[ins.b][ins.b_tile * R:ins.b_tile * R + n] if ins.b else 0
            flag = T[ins.flag][:n] != 0 if ins.flag else False
            T[ins.y][:n] = vector_op(cfg, ins.op, a, b, flag, scalars.get(ins.coef, 0) if ins.coef else 0,
                                     ins.limit)
            if ins.op == VecOp.RELU_MASK and ins.limit is not None:
                st.clipped_errors += int(np.count_nonzero((b >= ins.limit) & (a != 0)))
        elif isinstance(ins, Adam):
            for (w, b, _), (wt, _, _) in zip(p.nets[ins.net], p.nets[ins.net + "_t"]):
                for name in (w, b):
                    T[name], st.m[name], st.v[name] = adam_update(cfg, codes, scalars[ins.lr], T[name],
                                                                  st.grad[name], st.m[name], st.v[name])
                if ins.soft:       # the target's weights in the same pass, from the updated weights
                    T[wt] = vector_op(cfg, VecOp.SOFT, T[w], T[wt], c=scalars["tau"])
        elif isinstance(ins, Soft):
            for (w, b, _), (wt, bt, _) in zip(p.nets[ins.net], p.nets[ins.net + "_t"]):
                for name, tgt in ((w, wt), (b, bt))[0 if ins.weights else 1:]:
                    T[tgt] = vector_op(cfg, VecOp.SOFT, T[name], T[tgt], c=scalars["tau"])
        elif not isinstance(ins, Sync):     # Sync: timing only (one instruction at a time here)
            raise TypeError(f"unknown instruction {ins!r}")


def bfp_seed_key(stream: int) -> str:
    """The scalar that holds seed stream ``stream``'s base for this step: the
    network's seed plus its conversions so far (fixar.golden.bfp_train)."""
    return f"bfp_base_{BFP_NETS[stream]}"


def _bfp_operands(st: ProgramState, op: LayerOp, scalars: dict[str, int], A: np.ndarray, X: np.ndarray,
                  axis_a: int, axis_x: int) -> tuple[np.ndarray, np.ndarray]:
    """A BFP product's operands as its cores convert them: A (W, or a
    gradient's D) at bfp_w bits along ``axis_a``, then X at bfp_x along ``axis_x``."""
    cfg = st.cfg
    base = scalars[bfp_seed_key(op.bfp_stream)]
    seeds = [int(jenkins32(np.uint32((base + op.bfp_conv + n) & 0xFFFFFFFF))) for n in (0, 1)]
    frac_a = cfg.pe.act32.frac if op.grad else cfg.pe.weight.frac
    # (a width of 0: that operand is used as it is)
    return (bfp_quantize(A, frac_a, cfg.bfp.format(op.bfp_w), seeds[0], axis_a) if op.bfp_w else A,
            bfp_quantize(X, cfg.pe.act32.frac, cfg.bfp.format(op.bfp_x), seeds[1], axis_x) if op.bfp_x else X)


def _matmul(st: ProgramState, ins: Matmul, scalars: dict[str, int]) -> None:
    """An array product, its output stage in the hardware's order: a
    transposed product's mask, then the range tracker (a forward product
    widens its entry's range; a transposed one, a hidden error's, restarts
    it: the last step's range), then the quantizer, then the stores."""
    cfg, op, T, R = st.cfg, ins.op, st.t, st.cfg.array.rows
    W = T[ins.w]
    if op.transpose:
        X = T[ins.x][:op.M]
        X = _dequantized(st, op, X) if op.packed else X
        Wc, X = _bfp_operands(st, op, scalars, W, X, 0, 0) if op.bfp else (W, X)
        Y = transposed(cfg, Wc, X, op.func)
        if op.mask:
            Y = _masked(st, ins.m, Y)
    else:
        X = T[ins.x][:op.K]
        X = _dequantized(st, op, X) if op.packed else X
        Wc, X = _bfp_operands(st, op, scalars, W, X, 1, 0) if op.bfp else (W, X)
        Y = linear(cfg, Wc, X, T[ins.b], op.func)
    if op.track:
        q = op.qidx
        lo, hi = (0, 0) if op.transpose else (st.lo[q], st.hi[q])
        st.lo[q], st.hi[q] = min(lo, int(Y.min())), max(hi, int(Y.max()))
    q16 = None          # the quantizer's 16-bit codes of the outputs
    if op.fq:
        if st.quant[op.qidx] is None:
            raise ValueError(f"{ins.w}: quantizer {op.qidx} is used before it was set")
        D, z = st.quant[op.qidx]
        q16 = quantize16(cfg, D, z, Y)
        Y = dequantize16(cfg, D, z, q16)
    if op.packed or op.pq_lane == 3:
        _packed_stores(st, ins, Y, q16, st.quant[op.qidx] if op.fq else None)
        return
    if ins.y is not None:
        st.store(ins.y, Y, mask_no_limit(cfg) if op.limit is None else op.limit, ins.y_tile * R)
    if ins.yt is not None:
        st.write(ins.yt, Y)


def _table_shift(st: ProgramState, pq_q: int) -> int:
    """e of quantizer table entry pq_q - 1, whose Delta is 2^(e + 16) (16-bit errors)."""
    entry = st.quant[pq_q - 1]
    if entry is None:
        raise ValueError(f"quantizer {pq_q - 1} is read before it was set")
    return entry[0].bit_length() - 1 - st.cfg.pe.act16.bits


def _dequantized(st: ProgramState, op, X: np.ndarray) -> np.ndarray:
    """A packed product's inputs, the codes q - 2^15, as the values (q - z) 2^e
    they stand for (e from the quantizer table with pq_q, which on a gradient
    names D's entry: X's step is pq_e)."""
    half = packed_code_offset(st.cfg)
    e = _table_shift(st, op.pq_q) if op.pq_q and not op.grad else op.pq_e
    return (X + (half - op.pq_zero)) << e


def _packed_stores(st: ProgramState, ins: Matmul, Y: np.ndarray, codes: np.ndarray | None, quant) -> None:
    """A packed product's stores (docs/array.md, "Packed QAT products"): its
    outputs' codes q - 2^15 (``y``), or with a lane store one lane's FXP32
    values (each core's even or odd batch entries: a core's slice is
    contiguous and holds whole pairs); their mask bits in rows of their own
    (``ym``); their codes again in feature pairs (``yt`` with pq_t), every
    feature of the output tiles: the padding outputs' are 0's code."""
    op, R = ins.op, st.cfg.array.rows
    if ins.y is not None and op.pq_lane in (1, 2):
        lane = op.pq_lane - 1
        st.t[ins.y][:Y.shape[0], lane::2] = Y[:, lane::2]
    elif ins.y is not None:
        st.write(ins.y, codes - packed_code_offset(st.cfg), ins.y_tile * R)
    if ins.ym is not None:
        st.store(ins.ym, Y, mask_no_limit(st.cfg) if op.limit is None else op.limit)
    if ins.yt is not None and op.pq_t:
        full = np.zeros((st.t[ins.yt].shape[0], Y.shape[1]), dtype=I64)
        full[:Y.shape[0]] = Y
        st.write(ins.yt, quantize16(st.cfg, *quant, full) - packed_code_offset(st.cfg))
    elif ins.yt is not None:
        st.write(ins.yt, Y)


def _masked(st: ProgramState, src: str, Y: np.ndarray) -> np.ndarray:
    """A masked transposed product's output: zero where the mask bits of ``src``
    (left by the store that wrote it) are 0. The same as VEC RELU_MASK of Y by
    ``src`` with the store's limit: Y is already rounded and saturated, and
    the bits are that compare on the values stored."""
    bits = st.mask[src][:Y.shape[0]]
    limit = st.mask_limit[src]
    if limit < mask_no_limit(st.cfg):
        st.clipped_errors += int(np.count_nonzero((st.t[src][:Y.shape[0]] >= limit) & (Y != 0)))
    return Y * bits


def program_params(ddpg, program: Program) -> dict[str, np.ndarray]:
    """A FixedDDPG's parameters as the program's tensors: the critics' first
    weight matrix gets zero columns where s is padded to whole tiles."""
    out = {}
    obs = ddpg.obs_dim
    for net in ("actor", "critic", "actor_t", "critic_t"):
        model = getattr(ddpg, net)
        for (w, b, _), W, bias in zip(program.nets[net], model.W, model.b):
            shape = program.tensors[w].shape
            if shape != W.shape:          # [s; a] with s padded: a's columns move right
                Wp = np.zeros(shape, dtype=I64)
                Wp[:, :obs], Wp[:, shape[1] - (W.shape[1] - obs):] = W[:, :obs], W[:, obs:]
                W = Wp
            out[w], out[b] = W.copy(), np.asarray(bias).copy()
    return out
