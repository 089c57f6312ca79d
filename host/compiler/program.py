"""The training program: one DDPG step as a list of instructions for the
accelerator's units, with every tensor placed in a memory (docs/program.md).

``compile_ddpg`` turns the networks (sizes, batch, hyper-parameter names)
and the config into a :class:`Program`: array operations (``fixar.compiler.array_ops``
descriptors: forward, transposed and gradient products), vector-unit
operations (``fixar.config.VecOp``) and Adam and soft-update passes, each
naming its operands. Tensors get addresses from a bump allocator per memory;
anything that does not fit is a :class:`ProgramError` naming the tensor, the
memory, the rows needed and the rows there are. The golden model executes
the same instructions (``fixar.compiler.execute``); the controller (RTL, to
come) will execute their encoding.

Layout rules the compiler follows so that concatenations cost nothing:
the critic's input [s; a] keeps s in the first ceil(obs / R) feature tiles
and a from the next tile on, so the actor's output can be stored straight into
it; the critic's first weight matrix gets matching zero columns (their
gradients are zero and Adam leaves them zero, so nothing changes bit-wise).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fixar.compiler.array_ops import ArrayOpError, LayerOp, bfp_runs_in_array, describe, weight_rows
from fixar.config import (
    ISA_FIELD_BITS,
    ISA_FIELDS,
    ActFunc,
    FixarConfig,
    GStore,
    Opcode,
    PEMode,
    Scalar,
    VecOp,
    mask_no_limit,
    packed_code_offset,
    weight_groups,
)
from fixar.config.timing import timing


class ProgramError(ValueError):
    """A network or batch that the accelerator's memories or units cannot take."""


@dataclass(frozen=True)
class Tensor:
    """A named tensor in one memory. Activation-like tensors (``A``: slot-major
    per core, ``T``: feature-major per core) are features x batch; ``W`` and
    ``B`` hold weights and biases (their gradients and Adam moments sit at the
    same rows of the mirrored memories)."""

    name: str
    space: str      # W, B, A, T, M (mask rows)
    base: int       # first row
    rows: int
    shape: tuple[int, int]
    grad: int = -1  # an online network's parameter: its gradient's (and moments') first row
    # QAT phase 2's 16-bit codes q - 2^15: two batch vectors per word (A space), or
    # two features per word (T space: the packed weight gradient's X^T, in feature pairs)
    packed: bool = False


@dataclass(frozen=True)
class Matmul:
    op: LayerOp
    w: str          # weight tensor (W space)
    b: str | None   # bias tensor (B space)
    x: str          # input (A space)
    y: str | None   # stored output (A space), or None
    yt: str | None = None   # feature-major copy of the output (T space)
    y_tile: int = 0         # first feature tile of y the output goes to
    m: str | None = None    # masked transposed product: the tensor whose mask bits zero the output (A space)
    ym: str | None = None   # a packed store's mask bits: rows (A space, FXP32 layout) that hold no data


@dataclass(frozen=True)
class Grad:
    op: LayerOp
    d: str          # error (A space, slot-major)
    x: str | None   # input (T space); None: the ones row (bias gradient)
    param: str      # the parameter whose gradient this is (W or B space)
    ones: str | None = None  # the ones row (T space) of a bias gradient
    bias: str | None = None  # with a weight gradient (GStore.BOTH): the bias whose gradient rides along


@dataclass(frozen=True)
class Vec:
    """y = op(a, b) element-wise over feature tiles of slot-major tensors:
    a's tiles from ``a_tile``, b's from ``b_tile``, y's from 0, ``n_tiles``
    of them (None: all of y's), on every core's slice."""

    op: VecOp
    a: str
    b: str | None
    y: str
    coef: str | None = None     # name of a scalar code (gamma, tau, loss_scale, noise)
    flag: str | None = None     # tensor whose non-zero entries set the flags (TD's done)
    a_tile: int = 0
    b_tile: int = 0
    n_tiles: int | None = None
    lanes: int | None = None    # NOISE: elements of the row that draw noise (None: all)
    one_core: bool = False      # only core 0's rows (acting: one vector, held by every core)
    # RELU_MASK: b's quantizer top; DTANH: saturated tanh on b's grid (None: config.mask_no_limit)
    limit: int | None = None


@dataclass(frozen=True)
class Adam:
    net: str                    # actor or critic: all its weight and bias rows
    lr: str                     # name of the step-size code for this update
    soft: bool = False          # and, in the same pass, its target's weights <- SOFT(updated weights, target)
    overlap: bool = False       # the weight rows stream beside the next ARRAY instructions, until a Sync


@dataclass(frozen=True)
class Sync:
    """Wait for an overlapped Adam pass (before anything reads its network)."""


@dataclass(frozen=True)
class Soft:
    net: str                    # target <- target + tau (online - target), weights and biases
    weights: bool = True        # False: the biases only (the weights' went with the net's ADAM)


@dataclass
class Program:
    instrs: list = field(default_factory=list)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    nets: dict[str, list[tuple[str, str, ActFunc]]] = field(default_factory=dict)  # net -> [(W, b, func)]
    inputs: dict[str, str] = field(default_factory=dict)   # host-written: role -> tensor
    outputs: dict[str, str] = field(default_factory=dict)
    act_instrs: list = field(default_factory=list)          # acting: one state -> action with noise
    act_inputs: dict[str, str] = field(default_factory=dict)
    act_outputs: dict[str, str] = field(default_factory=dict)
    # BFP programs (compile_ddpg's ``bfp``): the conversions a training step
    # makes per network's seed stream, and each network's layer inputs in its
    # training forward pass, which FAST's schedule measures after the step
    bfp_conversions: dict[str, int] = field(default_factory=dict)
    bfp_inputs: dict[str, list[str]] = field(default_factory=dict)


_WHAT = {"W": "weight memory", "G": "gradient (and Adam moment) memory", "B": "bias memory",
         "A": "activation memory (per core)", "T": "feature-major memory (per core)",
         "M": "mask memory (per core)"}


def _limits(cfg: FixarConfig) -> dict[str, int]:
    R, C, mem = cfg.array.rows, cfg.array.cols, cfg.memory
    return {"W": mem.weight_words // C, "G": mem.grad_words // C, "B": mem.bias_words // C,
            "A": mem.act_words_per_core // R, "T": mem.xt_words_per_core // R, "M": mem.act_words_per_core // R}


def _too_big(name: str, space: str, rows: int, base: int, limit: int) -> ProgramError:
    return ProgramError(f"{name} needs {rows} rows of the {_WHAT[space]} at row {base}; it has {limit} rows "
                        "(raise memory sizes in the config, or use smaller networks or batch)")


def _uses(ins) -> tuple[list[str], list[str]]:
    """(tensors read, tensors written) of one instruction."""
    if isinstance(ins, Matmul):
        return [t for t in (ins.x, ins.m) if t], [t for t in (ins.y, ins.yt, ins.ym) if t]
    if isinstance(ins, Grad):
        return [ins.d, ins.x or ins.ones], []
    if isinstance(ins, Vec):
        return [t for t in (ins.a, ins.b, ins.flag) if t], [ins.y]
    return [], []


def _allocate(cfg: FixarConfig, p: Program, instrs: list, inputs: dict[str, str],
              outputs: dict[str, str] | None = None) -> None:
    """Rows for the activation-like tensors by liveness: a tensor lives from
    the instruction that first writes it (host inputs: from the start) to the
    last that reads or writes it (host outputs: to the end, so the host can read them
    after the program), and takes the lowest rows free for all of that time
    (two tensors of one instruction never share rows)."""
    limits = _limits(cfg)
    n = len(instrs)
    life: dict[str, list[int]] = {t: [0, 0] for t in inputs.values()}   # written before the start
    for i, ins in enumerate(instrs):
        reads, writes = _uses(ins)
        for t in writes:
            life.setdefault(t, [i, i])
        for t in reads + writes:
            if t not in life:
                raise AssertionError(f"compiler bug: {t} read before it is written")
            life[t][1] = max(life[t][1], i)
    for t in (outputs or {}).values():
        life[t][1] = n
    # M (a packed store's mask bits) is the mask memory's rows, which mirror the
    # activation memory's: an FXP32 array store writes mask bits at its own rows,
    # so the A tensors such stores write are in the way of M tensors too
    bits = {ins.y for ins in instrs if isinstance(ins, Matmul) and ins.y and not ins.op.packed
            and ins.op.pq_lane != 3}          # a pair store writes codes, and no mask bits
    placed: dict[str, list[tuple[int, int, int, int]]] = {"A": [], "T": [], "M": [], "A+bits": []}
    for name in sorted(life, key=lambda t: (life[t][0], t)):
        t = p.tensors[name]
        start, end = life[name]
        spaces = {"A": ["A", "M"] if name in bits else ["A"], "M": ["M", "A+bits"]}.get(t.space, [t.space])
        busy = sorted((b, b + r) for sp in spaces for b, r, s0, e0 in placed[sp] if not (e0 < start or end < s0))
        base = 0
        for lo, hi in busy:
            if base + t.rows <= lo:
                break
            base = max(base, hi)
        if base + t.rows > limits[t.space]:
            raise _too_big(name, t.space, t.rows, base, limits[t.space])
        placed[t.space].append((base, t.rows, start, end))
        if name in bits:
            placed["A+bits"].append((base, t.rows, start, end))
        p.tensors[name] = dataclasses.replace(t, base=base)


def quantizer_index(p: Program, net: str, layer: int) -> int:
    """The QAT quantizer of layer ``layer``'s input of ``net`` (targets share their network's)."""
    base = net.removesuffix("_t")
    return layer if base == "actor" else len(p.nets["actor"]) + layer


# The passes whose hidden errors QAT's 16-bit backward errors quantize, in
# table order (fixar.golden.ddpg.FixedDDPG.ERROR_QUANTIZERS: the critic's TD
# pass, its -Q pass in the actor update, the actor's pass)
ERROR_KEYS = ("actor.errors", "critic.errors", "critic.errors_from_q")
# the BFP rounding seed streams (LayerOp.bfp_stream): one per network, shared with its target
BFP_NETS = ("actor", "critic")


def step_scaled_errors(cfg: FixarConfig) -> bool:
    """Whether the engine quantizes the hidden errors (``array.qat_errors =
    "fxp16_delayed"``: each with the power-of-two step its range tracker
    took one step earlier; docs/program.md, "16-bit errors")."""
    return cfg.array.qat_errors == "fxp16_delayed"


def error_index(p: Program, key: str, layer: int) -> int:
    """The table entry of the error of layer ``layer``'s input (1 <= layer < L)
    in pass ``key``: after the 2 L layer inputs' entries."""
    L = len(p.nets["actor"])
    if not 1 <= layer < L:
        raise AssertionError(f"compiler bug: layer {layer}'s input has no error quantizer (1 <= layer < {L})")
    return 2 * L + ERROR_KEYS.index(key) * (L - 1) + layer - 1


def compile_ddpg(cfg: FixarConfig, obs_dim: int, act_dim: int, hidden: tuple[int, ...], batch: int,
                 quantized: bool = False, tops: Mapping[tuple[str, int], int] | None = None,
                 tanh_limit: int | None = None, fuse_soft: bool = True, packed: bool = False,
                 quantizers: Sequence[tuple[int, int] | None] | None = None,
                 bfp: Mapping[str, Sequence[tuple[int, int]]] | None = None, bfp_check: bool = True) -> Program:
    """The DDPG training step of docs/training.md for actor obs -> hidden ->
    act (ReLU, tanh) and critic obs+act -> hidden -> 1. Without ``quantized``
    (FXP32, and QAT phase 1) the forward passes of the updates track the
    ranges of the layer inputs they produce; with it (QAT phase 2) every
    product whose output feeds a layer sends it through that layer's
    quantizer, and the host writes the networks' inputs quantized. Phase 2
    needs ``tops``, each quantizer's largest value by (network, layer): the
    backward's ReLU masks stop the error there (docs/training.md), and
    ``tanh_limit``, where mu on the critic's input grid counts as a saturated
    tanh (DTANH passes no error there; :func:`fixar.golden.qat.tanh_limit`).
    ``fuse_soft``: the targets' weights soft-updated inside the ADAM passes
    (the default), else by SOFT passes after them (the same bits, more cycles).
    ``packed`` (phase 2 with ``array.quantizer_scale = "pow2"``): the forward
    products run packed FXP16 (docs/program.md, "Packed phase 2") with
    ``quantizers``, each table entry's (Delta, z). ``bfp``: every product
    in block floating point (docs/bfp.md, "BFP in the compiler"), each
    layer's (weight, input) mantissa widths by network ("actor", "critic"):
    no QAT, no 16-bit errors; ``bfp_check``: the training forward passes'
    layer inputs live to the step's end, for the host to read back for the
    schedule's check (a run at fixed widths never checks, and at 400-300
    and B = 512 they do not fit beside the step's other tensors)."""
    _check_shape(cfg, obs_dim, act_dim, hidden, batch)
    _check_bfp_widths(bfp, hidden, quantized or packed)
    if quantized and cfg.array.qat_errors not in ("fxp32", "fxp16_delayed"):
        raise ProgramError(f"config {cfg.name}: 16-bit backward errors scaled as array.qat_errors = "
                           f"{cfg.array.qat_errors!r} says are not compiled (the engine quantizes an error as it "
                           "writes it, with the step of one step earlier: \"fxp16_delayed\", config qat16d); "
                           "run it on the golden backend")
    if quantized and step_scaled_errors(cfg) and not packed:
        raise ProgramError(f"config {cfg.name}: 16-bit backward errors run in packed products: phase 2 needs "
                           f"packed=True (a batch that is a multiple of 2 x array.cores = {2 * cfg.array.cores})")
    _check_packed(cfg, batch, quantized, packed, quantizers)
    b = _Builder(cfg, batch, quantized, tops, quantizers if packed else None, bfp)
    obs_p = b.tiles(obs_dim) * b.R             # s padded to whole tiles; a starts at a tile
    _declare_nets(b, obs_dim, act_dim, hidden, obs_p)
    _check_quantizers(cfg, hidden, quantized, tops, tanh_limit)
    _declare_batch_inputs(b, obs_dim, act_dim, obs_p)
    _training_step(b, obs_dim, act_dim, tanh_limit, fuse_soft)
    p = b.p
    if bfp is not None:
        p.bfp_conversions = dict(b.conv)
        if not bfp_check:
            p.bfp_inputs = {}
    _check_masks(p.instrs)
    # (a BFP program's training inputs live to the step's end too: the host reads them)
    kept = {f"bfp {net} x{i}": t for net, names in p.bfp_inputs.items() for i, t in enumerate(names)}
    _allocate(cfg, p, p.instrs, p.inputs, {**p.outputs, **kept})
    p.instrs = [_addressed(cfg, p, ins, b.S) for ins in p.instrs]
    _acting_program(b, obs_dim, act_dim)
    _allocate(cfg, p, p.act_instrs, p.act_inputs, p.act_outputs)
    p.act_instrs = [_addressed(cfg, p, ins, 1) for ins in p.act_instrs]
    return p


def _check_bfp_widths(bfp: Mapping[str, Sequence[tuple[int, int]]] | None, hidden: tuple[int, ...],
                      quantized: bool) -> None:
    """A (weight, input) width pair for every layer of both networks, and no QAT beside it."""
    if bfp is None:
        return
    if quantized:
        raise ProgramError("a BFP program has no QAT phase 2 (quantized, packed): BFP replaces QAT")
    for net in BFP_NETS:
        widths = bfp.get(net)
        if widths is None or len(widths) != len(hidden) + 1 or any(len(tuple(w)) != 2 for w in widths):
            raise ProgramError(f"bfp[{net!r}]: one (weight, input) mantissa width pair per layer "
                               f"({len(hidden) + 1}), got {widths!r}")


def _check_packed(cfg: FixarConfig, batch: int, quantized: bool, packed: bool,
                  quantizers: Sequence[tuple[int, int] | None] | None) -> None:
    """What the packed phase 2 needs: the phase, power-of-two steps, whole pairs per core, the table."""
    if not packed:
        return
    if not quantized:
        raise ProgramError("packed products are QAT phase 2's (quantized=True): phase 1 runs FXP32")
    if cfg.array.quantizer_scale != "pow2":
        raise ProgramError("packed products need power-of-two quantizer steps (array.quantizer_scale = "
                           f"\"pow2\", config qat_pow2); this config's is {cfg.array.quantizer_scale!r}")
    N = cfg.array.cores
    if batch % (2 * N):
        raise ProgramError(f"batch = {batch}: packed products need a multiple of 2 x array.cores = {2 * N} "
                           "(two vectors per word on every core)")
    if quantizers is None:
        raise ProgramError("packed products need the quantizer table (each entry's Delta and z)")


def _check_masks(instrs: list) -> None:
    """Every masked product's mask bits were left by an array store of that
    whole tensor (the host and the vector unit write no mask bits); liveness
    keeps the tensor's rows, and so its bits, until the product."""
    stored: dict[str, LayerOp] = {}
    for ins in instrs:
        if isinstance(ins, Matmul) and ins.m is not None:
            if ins.m not in stored:
                raise AssertionError(f"compiler bug: the mask of {ins.y} comes from {ins.m}, which no array "
                                     "product stored whole")
        if isinstance(ins, Matmul) and ins.ym is not None:
            stored[ins.ym] = ins.op
        elif isinstance(ins, Matmul) and ins.y is not None and not ins.op.packed and ins.op.pq_lane != 3:
            stored[ins.y] = ins.op
            if ins.y_tile:
                stored.pop(ins.y)                # partly written: its other rows keep no bits
        elif isinstance(ins, Vec):
            stored.pop(ins.y, None)


def _check_shape(cfg: FixarConfig, obs_dim: int, act_dim: int, hidden: tuple[int, ...], batch: int) -> None:
    """The shapes the array and the batch split over the cores can take."""
    R, C, N = cfg.array.rows, cfg.array.cols, cfg.array.cores
    if R != C:
        raise ProgramError("the program needs square tiles (array.rows == array.cols)")
    for name, v in (("obs_dim", obs_dim), ("act_dim", act_dim), ("batch", batch), *(("hidden", h) for h in hidden)):
        if int(v) < 1:
            raise ProgramError(f"{name} = {v}: must be at least 1")
    if batch % N:
        # a gradient sums each core's whole slice: a short last slice would add slots no sample filled
        raise ProgramError(f"batch = {batch}: must be a multiple of array.cores = {N}")


def _check_quantizers(cfg: FixarConfig, hidden: tuple[int, ...], quantized: bool,
                      tops: Mapping[tuple[str, int], int] | None, tanh_limit: int | None) -> None:
    """Enough QAT quantizers for the layer inputs, and phase 2's tops and tanh limit given."""
    n_quant = len(hidden) * 2 + 2
    what = "layer inputs"
    if step_scaled_errors(cfg):      # and the hidden errors of three backward passes
        n_quant += len(ERROR_KEYS) * len(hidden)
        what = "layer inputs and hidden errors"
    if n_quant > cfg.array.quantizers:
        raise ProgramError(f"the networks have {n_quant} {what} to quantize; array.quantizers = "
                           f"{cfg.array.quantizers}")
    if quantized:
        missing = [(net, i) for net in ("actor", "critic") for i in range(1, len(hidden) + 1)
                   if tops is None or (net, i) not in tops]
        if missing:
            raise ProgramError(f"QAT phase 2: no quantizer top for the inputs {missing} (the ReLU masks need them)")
        if tanh_limit is None:
            raise ProgramError("QAT phase 2: no tanh_limit (DTANH needs mu's saturated value on the critic's grid)")


class _Builder:
    """What the compile steps share: the program being built, the bump pointers
    of the statically placed memories, and the emitters of tensors and of the
    forward and backward passes."""

    def __init__(self, cfg: FixarConfig, batch: int, quantized: bool,
                 tops: Mapping[tuple[str, int], int] | None,
                 quantizers: Sequence[tuple[int, int] | None] | None = None,
                 bfp: Mapping[str, Sequence[tuple[int, int]]] | None = None):
        self.cfg = cfg
        self.R = cfg.array.rows
        self.batch = batch
        self.S = batch // cfg.array.cores
        self.quantized = quantized
        self.tops = tops
        self.quantizers = quantizers           # packed phase 2: (Delta, z) per table entry
        self.packed = quantizers is not None
        self.p = Program()
        self.limits = _limits(cfg)
        self.bump = {"W": 0, "B": 0, "G": 0}
        self.ones: str | None = None           # the bias gradients' input, once declared
        self.bfp = bfp
        self.conv = {net: 0 for net in BFP_NETS}   # conversions so far per seed stream, in the golden's order

    def bfp_fields(self, net, i):
        """A BFP product's fields for layer i of ``net`` (or its target): the
        layer's widths and its two conversions' places in the network's seed
        stream. Called in emission order, which is the golden model's order
        of conversions (fixar.golden.bfp_train: forward W then X; a gradient's
        D then X before the same layer's transposed W then D)."""
        if self.bfp is None:
            return {}
        base = net.removesuffix("_t")
        m_w, m_x = self.bfp[base][i]
        conv = self.conv[base]
        self.conv[base] = conv + 2
        return {"bfp_w": m_w, "bfp_x": m_x, "bfp_stream": BFP_NETS.index(base), "bfp_conv": conv}

    def tiles(self, n):
        return math.ceil(n / self.R)

    def tensor(self, name, space, shape, rows, packed=False):
        p, bump, limits = self.p, self.bump, self.limits
        assert name not in p.tensors, f"compiler bug: tensor {name} allocated twice"
        base = -1                              # activation-like tensors: placed by liveness at the end
        if space in bump:
            base = bump[space]
            if base + rows > limits[space]:
                raise _too_big(name, space, rows, base, limits[space])
            bump[space] = base + rows
        grad = -1
        online = not name.split(".")[0].endswith("_t")
        if space == "W" and online:          # the gradients and moments, in the gradient memory
            grad = bump["G"]
            if grad + rows > limits["G"]:
                raise _too_big(name, "G", rows, grad, limits["G"])
            bump["G"] = grad + rows
        elif space == "B" and online:        # the bias gradients' memory mirrors the bias rows
            grad = base
        p.tensors[name] = Tensor(name, space, base, rows, shape, grad, packed)
        return name

    def act(self, name, features, packed=False):   # slot-major, per core: one row per (feature tile, slot)
        slots = self.S // 2 if packed else self.S      # packed: one per pair of slots
        return self.tensor(name, "A", (features, self.batch), self.tiles(features) * slots, packed)

    def mask_rows(self, name, features):   # a packed store's mask bits: the FXP32 layout's rows
        return self.tensor(name, "M", (features, self.batch), self.tiles(features) * self.S)

    def act_t(self, name, features, packed=False):
        """Feature-major, per core: row j*K + k, K = features padded to tiles;
        packed (the codes in feature pairs): row j*K/2 + k'."""
        tiles, R = self.tiles, self.R
        rows = tiles(self.S) * tiles(features) * R
        return self.tensor(name, "T", (tiles(features) * R, self.batch), rows // 2 if packed else rows, packed)

    def vec1(self, name, features):     # acting: one vector, one row per feature tile
        return self.tensor(name, "A", (features, 1), self.tiles(features))

    def quant_fields(self, net, i, last, out, track):
        """track / fq / qidx of layer i's product: its output feeds layer i + 1,
        or (the actor's last layer writing mu) the critic's first layer."""
        if last and not out:
            return {}
        q = quantizer_index(self.p, "critic", 0) if last else quantizer_index(self.p, net, i + 1)
        if self.quantized:
            return {"fq": True, "qidx": q}
        return {"track": True, "qidx": q} if (track and not last) else {}

    def forward(self, net, x, out=None, out_tile=0, keep_t=False, tag="", track=False, masks=False):
        """Chained forward pass from x (its first feature tiles); the last layer's
        output goes to ``out`` from feature tile ``out_tile`` when given. Returns
        the stored outputs and their feature-major copies (``keep_t``). In the
        packed phase 2 see :meth:`forward_packed` (``masks``: a backward pass
        will read the hidden layers' mask bits; FXP32 stores always keep them)."""
        if self.packed:
            return self.forward_packed(net, x, out, out_tile, keep_t, tag, masks or keep_t)
        p = self.p
        outs, outs_t = [], []
        for i, (w, b, f) in enumerate(p.nets[net]):
            mm, k = p.tensors[w].shape
            last = i == len(p.nets[net]) - 1
            y = out if (last and out) else self.act(f"{net}{tag}.y{i}", mm)
            yt = self.act_t(f"{net}{tag}.y{i}^T", mm) if keep_t and not last else None
            quant = {} if self.bfp else self.quant_fields(net, i, last, out, track)
            op = LayerOp(M=mm, K=k, batch=self.batch, func=f, store=True, store_t=yt is not None,
                         limit=self.mask_limit(net, i + 1) if not last else None,
                         **quant, **self.bfp_fields(net, i))
            p.instrs.append(Matmul(op, w, b, x, y, yt, out_tile if (last and out) else 0))
            outs.append(y)
            outs_t.append(yt)
            x = y
        return outs, outs_t

    def forward_packed(self, net, x, out, out_tile, keep_t, tag, masks):
        """The forward pass of QAT's phase 2 in packed products (docs/program.md,
        "Packed phase 2"): each layer's input is its quantizer's codes, two
        vectors a word; a hidden layer stores its outputs' codes for the next,
        with ``keep_t`` the codes again in feature pairs (the packed weight
        gradient's X^T) and with ``masks`` their
        mask bits in rows of their own (the FXP32 layout's); the last layer's
        FXP32 outputs come from two lane stores, the actor's also as codes in
        ``out``. Returns the outputs as the backward pass reads them (the mask
        rows of hidden layers; the last layer's FXP32 tensor, or with ``out``
        and no backward to feed, ``out``) and the feature-major copies."""
        p, cfg = self.p, self.cfg
        outs, outs_t = [], []
        layers = p.nets[net]
        for i, (w, b, f) in enumerate(layers):
            mm, k = p.tensors[w].shape
            delta, zero = self.quantizers[quantizer_index(p, net, i)]
            op = LayerOp(M=mm, K=k, batch=self.batch, func=f, mode=PEMode.FXP16, packed=True, pq_zero=zero,
                         pq_e=delta.bit_length() - 1 - cfg.pe.act16.bits)
            if i < len(layers) - 1:
                y = self.act(f"{net}{tag}.y{i}", mm, packed=True)
                yt = self.act_t(f"{net}{tag}.y{i}^T", mm, packed=True) if keep_t else None
                ym = self.mask_rows(f"{net}{tag}.y{i}.mask", mm) if masks else None
                fq = self.quant_fields(net, i, False, None, False)
                op = dataclasses.replace(op, store=True, store_t=yt is not None, pq_t=yt is not None,
                                         mask=ym is not None,
                                         limit=self.mask_limit(net, i + 1), **fq)
                p.instrs.append(Matmul(op, w, b, x, y, yt, ym=ym))
                outs.append(ym)
                outs_t.append(yt)
                x = y
                continue
            fq = self.quant_fields(net, i, True, out, False)
            if out:              # the actor's mu, as the critic's codes
                p.instrs.append(Matmul(dataclasses.replace(op, store=True, **fq), w, b, x, out, y_tile=out_tile))
            if out and not masks:          # the target actor's mu': only its codes are read
                outs.append(out)
            elif not out and tag:          # the critic on (s, mu): nothing reads its Q
                outs.append(None)
            else:                          # Q, or the actor's mu for DTANH: FXP32, one lane per product
                y = self.act(f"{net}{tag}.{'mu' if out else f'y{i}'}", mm)
                for lane in (1, 2):
                    p.instrs.append(Matmul(dataclasses.replace(op, store=True, pq_lane=lane, **fq), w, b, x, y))
                outs.append(y)
            outs_t.append(None)
        return outs, outs_t

    def mask_limit(self, net, i):
        """The limit of the mask bits a store of layer i's input keeps: its
        quantizer's top in QAT phase 2 (the clipped straight-through estimator),
        else none (a plain ReLU mask)."""
        return self.tops[(net.removesuffix("_t"), i)] if self.quantized else None

    def backward(self, net, d, xs, xs_t, want_input=False, grads=True, tag="", errors=None):
        """Backward from error d at the last layer's output (pre-activation);
        returns the stored input error when ``want_input``. Each hidden layer's
        ReLU (and, in QAT phase 2, its quantizer's top) is applied by the
        transposed product's output stage, from the mask bits its forward
        product stored with xs[i] (docs/array.md): no vector pass.
        ``errors``: the pass's key in ERROR_KEYS; with 16-bit backward errors
        (:func:`step_scaled_errors`) each hidden error is tracked in phase 1
        and leaves as its quantizer's codes in phase 2 (:meth:`error_product`)."""
        p, batch = self.p, self.batch
        layers = p.nets[net]
        d_entry = 0             # d as codes: its quantizer's entry + 1 (0: FXP32 values)
        for i in range(len(layers) - 1, -1, -1):
            w, b, _ = layers[i]
            mm, k = p.tensors[w].shape
            if grads:
                self.gradients(net, i, d, xs_t, d_entry)
            if i == 0 and not want_input:
                return None
            if i == 0:
                raw = self.act(f"{net}{tag}.e{i}", k)
                op = LayerOp(M=mm, K=k, batch=batch, transpose=True, bias=False, store=True,
                             **self.bfp_fields(net, i))
                if d_entry:          # codes in, FXP32 out: one product per lane
                    op = dataclasses.replace(op, **self.table_input(d_entry))
                    p.instrs += [Matmul(dataclasses.replace(op, pq_lane=lane), w, None, d, raw) for lane in (1, 2)]
                else:
                    p.instrs.append(Matmul(op, w, None, d, raw))
                return raw
            op = LayerOp(M=mm, K=k, batch=batch, transpose=True, bias=False, store=True, mask=True,
                         **self.bfp_fields(net, i))
            if errors is not None and step_scaled_errors(self.cfg) and not self.bfp:
                op, d_entry, packed = self.error_product(op, error_index(p, errors, i), d_entry)
            else:
                packed = False
            masked = self.act(f"{net}{tag}.d{i - 1}", k, packed=packed)
            p.instrs.append(Matmul(op, w, None, d, masked, m=xs[i]))
            d = masked
        return None

    def gradients(self, net, i, d, xs_t, d_entry):
        """Layer i's weight and bias gradients from error d (codes of table
        entry d_entry - 1 when d_entry) and its input's feature-major copy."""
        p, batch = self.p, self.batch
        w, b, _ = p.nets[net][i]
        mm, k = p.tensors[w].shape
        K = self.tiles(k) * self.R
        op = LayerOp(M=mm, K=K, batch=batch, grad=True, bias=False, pq_q=d_entry, **self.bfp_fields(net, i))
        slots = K
        if p.tensors[xs_t[i]].packed:     # the packed weight gradient: X^T in feature pairs
            delta, zero = self.quantizers[quantizer_index(p, net, i)]
            op = dataclasses.replace(op, mode=PEMode.FXP16, packed=True, pq_zero=zero,
                                     pq_e=delta.bit_length() - 1 - self.cfg.pe.act16.bits)
            slots = 1 + K // 2            # the correction slot, then the pairs
        # the bias gradient in one more slot of the same product (not in BFP: it needs D unconverted)
        if slots < self.cfg.array.psum_slots and not op.bfp:
            p.instrs.append(Grad(dataclasses.replace(op, gstore=GStore.BOTH), d, xs_t[i], w, bias=b))
        else:
            p.instrs.append(Grad(dataclasses.replace(op, gstore=GStore.WEIGHT), d, xs_t[i], w))
            op = LayerOp(M=mm, K=1, batch=batch, grad=True, bias=False, gstore=GStore.BIAS, pq_q=d_entry)
            p.instrs.append(Grad(op, d, None, b, ones=self.ones))

    def table_input(self, entry):
        """The fields of a packed product on signed codes whose step is table entry ``entry`` - 1's."""
        return {"mode": PEMode.FXP16, "packed": True, "pq_zero": packed_code_offset(self.cfg), "pq_q": entry}

    def error_product(self, op, q, d_entry):
        """A hidden error's masked transposed product with 16-bit errors: in
        phase 1 it tracks the error's range (restarted per operation: the
        last step's); in phase 2 also its quantizer (entry q, the host sets
        its step from that range) at the output stage, storing codes: a
        pair store from FXP32 inputs, or a packed product on the codes of
        the error above. Returns (op, the output's entry + 1 or 0, packed)."""
        if not self.quantized:
            return dataclasses.replace(op, track=True, qidx=q), 0, False
        op = dataclasses.replace(op, track=True, fq=True, qidx=q)
        if d_entry:
            return dataclasses.replace(op, **self.table_input(d_entry)), q + 1, True
        return dataclasses.replace(op, pq_lane=3), q + 1, True


def _declare_nets(b: _Builder, obs_dim: int, act_dim: int, hidden: tuple[int, ...], obs_p: int) -> None:
    """Weights and biases of the networks and their targets, bump-placed in W
    and B: the actor and its target in the weight memory's first group of
    rows, the critic and its target in the second (fixar.config.weight_groups),
    so that the critic's Adam pass can run while the array reads the actor."""
    funcs = {"actor": [ActFunc.RELU] * len(hidden) + [ActFunc.TANH],
             "critic": [ActFunc.RELU] * len(hidden) + [ActFunc.IDENTITY]}
    sizes = {"actor": [obs_dim, *hidden, act_dim], "critic": [obs_p + act_dim, *hidden, 1]}
    groups = weight_groups(b.cfg)
    for net in ("actor", "actor_t", "critic", "critic_t"):
        base = net.removesuffix("_t")
        start, rows = groups[base == "critic"]
        if net == "critic":
            b.bump["W"] = start
        if net.endswith("_t") and (b.bump["W"] - b.p.tensors[f"{base}.W0"].base) % 2 == 0:
            # the target an odd number of rows from its network: SOFT (and ADAM's fused soft
            # update) then reads both in one cycle from the weight memory's even and odd halves
            # (docs/program.md)
            b.bump["W"] += 1
        layers = []
        for i, (k, mm) in enumerate(zip(sizes[base], sizes[base][1:])):
            w = b.tensor(f"{net}.W{i}", "W", (mm, k), weight_rows(b.cfg, mm, k))
            bias = b.tensor(f"{net}.b{i}", "B", (mm,), b.tiles(mm))
            layers.append((w, bias, funcs[base][i]))
        b.p.nets[net] = layers
        if b.bump["W"] > start + rows:
            raise ProgramError(f"{base} and {base}_t need rows {start} to {b.bump['W']} of the weight memory; "
                               f"its {'second' if start else 'first'} half (the {base}'s group) ends at row "
                               f"{start + rows} (raise memory.weight_words, or use smaller networks)")


def _declare_batch_inputs(b: _Builder, obs_dim: int, act_dim: int, obs_p: int) -> None:
    """The host-written batch tensors (the actor's inputs apart from the critic's:
    after the QAT switch each goes through its own network's quantizer)."""
    act, act_t, p, pk = b.act, b.act_t, b.p, b.packed     # packed: the networks' inputs as codes
    s_in = act("s", obs_dim, pk)
    s2_in = act("s2", obs_dim, pk)
    smu = act("[s;mu]", obs_p + act_dim, pk)        # the host writes s; the actor adds mu
    s_t = act_t("s^T", obs_dim, pk)
    sa = act("[s;a]", obs_p + act_dim, pk)
    sa_t = act_t("[s;a]^T", obs_p + act_dim, pk)
    s2mu = act("[s2;mu']", obs_p + act_dim, pk)
    r = act("r", 1)
    done = act("done", 1)
    ones = act_t("ones^T", 1)                   # a bias gradient's one input: row stride 1
    p.tensors[ones] = dataclasses.replace(p.tensors[ones], shape=(1, b.batch))
    b.ones = ones
    d_actor = act("-2^k/B", 1)
    p.inputs = {"s": s_in, "[s;mu]": smu, "s^T": s_t, "[s;a]": sa, "[s;a]^T": sa_t, "s2": s2_in,
                "[s2;mu']": s2mu, "r": r, "done": done, "ones": ones, "actor_error": d_actor}


def _training_step(b: _Builder, obs_dim: int, act_dim: int, tanh_limit: int | None, fuse_soft: bool = True) -> None:
    """The training step's instructions: TD target, critic update, actor update, soft target updates."""
    p, act, forward, backward = b.p, b.act, b.forward, b.backward
    i = p.inputs
    s_in, smu, s_t, sa, sa_t = i["s"], i["[s;mu]"], i["s^T"], i["[s;a]"], i["[s;a]^T"]
    s2_in, s2mu, r, done, d_actor = i["s2"], i["[s2;mu']"], i["r"], i["done"], i["actor_error"]
    a_tile = b.tiles(obs_dim)                    # the action's feature tile in [s; a]
    # 1. TD target: mu' goes into the action tile of [s2; mu']
    forward("actor_t", s2_in, out=s2mu, out_tile=a_tile)
    (*_, q2), _ = forward("critic_t", s2mu)
    y = act("y", 1)
    p.instrs.append(Vec(VecOp.TD, r, q2, y, coef="gamma", flag=done))
    # 2. critic update
    c_outs, c_outs_t = forward("critic", sa, keep_t=True, track=True)
    dq0, dq = act("q-y", 1), act("dq", 1)
    p.instrs.append(Vec(VecOp.SUB, c_outs[-1], y, dq0))
    p.instrs.append(Vec(VecOp.SCALE, dq0, None, dq, coef="loss_scale"))
    backward("critic", dq, [sa] + c_outs[:-1], [sa_t] + c_outs_t[:-1], errors="critic.errors")
    # each target's weights are soft-updated inside its network's Adam pass (one row per cycle, after
    # the update: the same bits as a SOFT after both ADAMs, since nothing in between reads a target)
    # its weight rows stream beside the actor's forward pass (the critic's group of the weight
    # memory, the Adam lanes and the vector unit are the pass's; the actor's group, the bias memory
    # and the activation memories the array's), until the Sync before the critic is read again
    p.instrs.append(Adam("critic", "critic_lr", soft=fuse_soft, overlap=True))
    # 3. actor update through the updated critic: mu into the action tile of [s; mu]
    a_outs, a_outs_t = forward("actor", s_in, out=smu, out_tile=a_tile, keep_t=True, track=True)
    p.instrs.append(Sync())
    qa_outs, _ = forward("critic", smu, tag="(s,mu)", masks=True)
    dx = backward("critic", d_actor, [smu] + qa_outs[:-1], None, want_input=True, grads=False, tag="(s,mu)",
                  errors="critic.errors_from_q")
    d_mu = act("dmu", act_dim)
    # mu as the critic saw it: [s; mu]'s action tile, or packed, the actor's FXP32 lane stores
    mu, mu_tile = (a_outs[-1], 0) if b.packed else (smu, a_tile)
    p.instrs.append(Vec(VecOp.DTANH, dx, mu, d_mu, a_tile=a_tile, b_tile=mu_tile,
                        limit=tanh_limit if b.quantized else None))
    backward("actor", d_mu, [s_in] + a_outs[:-1], [s_t] + a_outs_t[:-1], errors="actor.errors")
    p.instrs.append(Adam("actor", "actor_lr", soft=fuse_soft))
    # 4. the targets' biases (the bias memory has two ports: not fused), and their weights unless fused
    p.instrs.append(Soft("actor", weights=not fuse_soft))
    p.instrs.append(Soft("critic", weights=not fuse_soft))
    p.outputs = {"q": c_outs[-1], "y": y}       # the host's training statistics
    if b.bfp is not None:      # the training forward passes' layer inputs, read after the step
        p.bfp_inputs = {"actor": [s_in] + a_outs[:-1], "critic": [sa] + c_outs[:-1]}


def _acting_program(b: _Builder, obs_dim: int, act_dim: int) -> None:
    """Acting: the actor on one state in intra-layer mode (every core holds the
    vector and takes a share of each layer's k-tiles), then the noise."""
    p = b.p
    b.conv = {net: 0 for net in BFP_NETS}        # acting converts with the next training step's seeds
    state = b.vec1("state", obs_dim)
    x = state
    for i, (w, bias, f) in enumerate(p.nets["actor"]):
        mm, k = p.tensors[w].shape
        y1 = b.vec1(f"act.y{i}", mm)
        q = {} if b.bfp else b.quant_fields("actor", i, i == len(p.nets["actor"]) - 1, None, False)
        p.act_instrs.append(Matmul(LayerOp(M=mm, K=k, batch=1, func=f, intra_layer=True, store=True, **q,
                                           **b.bfp_fields("actor", i)), w, bias, x, y1))
        x = y1
    action = b.vec1("action", act_dim)
    p.act_instrs.append(Vec(VecOp.NOISE, x, None, action, coef="noise", lanes=act_dim, one_core=True))
    p.act_inputs, p.act_outputs = {"state": state}, {"action": action, "mu": x}   # with and without noise


def _addressed(cfg: FixarConfig, p: Program, ins, S: int):
    """The instruction with its array descriptor's memory rows filled in, checked."""
    T = p.tensors
    if isinstance(ins, Matmul):
        m = ins.m or ins.ym          # the rows of the bits a masked product reads, or a packed store writes
        rows = {"w_base": T[ins.w].base, "x_base": T[ins.x].base,
                "y_base": T[ins.y].base + ins.y_tile * (S // 2 if T[ins.y].packed else S) if ins.y else 0,
                "b_base": T[ins.b].base if ins.b else 0, "t_base": T[ins.yt].base if ins.yt else 0,
                "m_base": T[m].base if m else 0}
        what = f"{ins.w}{'^T' if ins.op.transpose else ''} product"
    elif isinstance(ins, Grad):
        rows = {"w_base": T[ins.d].base, "x_base": T[ins.x or ins.ones].base, "g_base": T[ins.param].grad,
                "b_base": T[ins.bias].base if ins.bias else 0}
        what = f"gradient of {ins.param}"
    else:
        return ins
    op = LayerOp(**{**ins.op.__dict__, **rows})
    return dataclasses.replace(ins, op=_op(cfg, op, what))


def _op(cfg: FixarConfig, op: LayerOp, what: str) -> LayerOp:
    try:
        describe(cfg, op)
    except ArrayOpError as exc:
        raise ProgramError(f"{what}: {exc}") from None
    return op


# ------------------------------------------------------------ encoding

COEF = {"gamma": Scalar.GAMMA, "tau": Scalar.TAU, "loss_scale": Scalar.LOSS_SCALE, "noise": Scalar.NOISE,
        "critic_lr": Scalar.CRITIC_LR, "actor_lr": Scalar.ACTOR_LR}


def _word(op: Opcode, fields: dict[str, int]) -> int:
    names = ISA_FIELDS[op]
    if set(fields) != set(names):
        raise AssertionError(f"{op.name}: fields {sorted(fields)} != {sorted(names)}")
    word = int(op)
    for i, name in enumerate(names):
        v = int(fields[name])
        if not 0 <= v < 1 << ISA_FIELD_BITS:
            raise ProgramError(f"{op.name}.{name} = {v} does not fit its {ISA_FIELD_BITS}-bit field")
        word |= v << ((i + 1) * ISA_FIELD_BITS)
    return word


def _rows(p: Program, names: list[str], grad: bool = False) -> tuple[int, int]:
    """(first row, row count) of tensors that lie back to back in one memory
    (with ``grad``: of their gradients in the gradient memory)."""
    first = (lambda t: t.grad) if grad else (lambda t: t.base)
    ts = sorted((p.tensors[n] for n in names), key=first)
    for a, b in zip(ts, ts[1:]):
        if first(a) + a.rows != first(b):
            raise AssertionError(f"compiler bug: {a.name} and {b.name} are not contiguous")
    return first(ts[0]), sum(t.rows for t in ts)


def encode(cfg: FixarConfig, p: Program, batch: int) -> tuple[list[int], int]:
    """The program as the controller's instruction words: the training step,
    HALT, the acting program, HALT. Returns (words, first word of acting)."""
    words = _encode(cfg, p, p.instrs, math.ceil(batch / cfg.array.cores))
    act_pc = len(words)
    words += _encode(cfg, p, p.act_instrs, 1)
    if len(words) > cfg.memory.program_instrs:
        raise ProgramError(f"the program has {len(words)} instructions; memory.program_instrs = "
                           f"{cfg.memory.program_instrs}")
    return words, act_pc


def _encode(cfg: FixarConfig, p: Program, instrs: list, S: int) -> list[int]:
    R = cfg.array.rows
    words = []
    for ins in instrs:
        if isinstance(ins, (Matmul, Grad)) and ins.op.bfp and bfp_runs_in_array(cfg, ins.op):
            raise ProgramError(f"{bfp_runs_in_array(cfg, ins.op)}: run BFP on the golden backend")
        if isinstance(ins, (Matmul, Grad)):
            d = describe(cfg, ins.op)
            words.append(_word(Opcode.ARRAY, {n: getattr(d, n) for n in ISA_FIELDS[Opcode.ARRAY]}))
        elif isinstance(ins, Vec):
            T = p.tensors
            n_tiles = ins.n_tiles if ins.n_tiles is not None else math.ceil(T[ins.y].shape[0] / R)
            words.append(_word(Opcode.VEC, {
                "op": ins.op, "coef": COEF[ins.coef] if ins.coef else 0,
                "a_row": T[ins.a].base + ins.a_tile * S, "b_row": T[ins.b].base + ins.b_tile * S if ins.b else 0,
                "y_row": T[ins.y].base, "flag_row": T[ins.flag].base if ins.flag else 0,
                "use_flag": int(ins.flag is not None), "rows": n_tiles * S,
                "count": ins.lanes if ins.lanes is not None else R,
                "cores": 1 if ins.one_core else cfg.array.cores,
                "limit": mask_no_limit(cfg) if ins.limit is None else ins.limit}))
        elif isinstance(ins, (Adam, Soft)):
            ws = [w for w, _, _ in p.nets[ins.net]]
            bs = [b for _, b, _ in p.nets[ins.net]]
            (w_row, w_rows), (b_row, b_rows) = _rows(p, ws), _rows(p, bs)
            t = ins.net + "_t"
            (wt, _), (bt, _) = _rows(p, [w for w, _, _ in p.nets[t]]), _rows(p, [b for _, b, _ in p.nets[t]])
            # one weight row per cycle needs the target rows in the other half of the interleaved
            # weight memory (fixar.gen.lib.ram.InterleavedRAM): _declare_nets places them so
            assert (wt - w_row) % 2 == 1, f"compiler bug: {t}'s weights an even number of rows from {ins.net}'s"
            if isinstance(ins, Adam):
                g_row, _ = _rows(p, ws, grad=True)
                words.append(_word(Opcode.ADAM, {"w_row": w_row, "w_rows": w_rows, "b_row": b_row,
                                                 "b_rows": b_rows, "lr": COEF[ins.lr], "t_row": wt,
                                                 "soft": int(ins.soft), "g_row": g_row,
                                                 "overlap": int(ins.overlap)}))
            else:
                words.append(_word(Opcode.SOFT, {"w_src": w_row, "w_dst": wt, "w_rows": w_rows if ins.weights else 0,
                                                 "b_src": b_row, "b_dst": bt, "b_rows": b_rows}))
        elif isinstance(ins, Sync):
            words.append(_word(Opcode.SYNC, {}))
        else:
            raise TypeError(f"unknown instruction {ins!r}")
    words.append(_word(Opcode.HALT, {}))
    return words


# ------------------------------------------------------------ cycle model

def instr_cycles(cfg: FixarConfig, p: Program, ins, S: int, array_latency: int | None = None) -> int:
    """Cycles of one instruction from its fetch to the next fetch, run alone
    (docs/program.md); :func:`timeline` adds the waits for an overlapped ADAM.

    Latencies come from fixar.config.timing; ``array_latency`` overrides the
    array's (a bench passes the one in its RTL's manifest).
    fetch and decode: 2; ARRAY: the array's cycles (fixar.compiler.array_ops.cycles)
    and one settling cycle; streamed VEC and SOFT's bias rows: per core or pass
    2n + 2 + (vector latency + 1 hold + 1 final check) for n rows; SOFT's
    weight rows n + 3 + the vector latency; VEC with flags: the same stream
    and 2 (each row's flags read after its a and b); ADAM:
    per pass n + 2 + the Adam latency (with ``overlap``, the bias pass only:
    :func:`adam_passes`); SYNC: 2."""
    from fixar.compiler.array_ops import cycles as array_cycles

    R, N = cfg.array.rows, cfg.array.cores
    t = timing(cfg)
    if isinstance(ins, (Matmul, Grad)) and ins.op.bfp and bfp_runs_in_array(cfg, ins.op):
        raise ProgramError(f"no cycle model for this BFP product: {bfp_runs_in_array(cfg, ins.op)}")
    if isinstance(ins, (Matmul, Grad)):
        return 2 + array_cycles(cfg, describe(cfg, ins.op), t.array if array_latency is None else array_latency) + 1
    if isinstance(ins, Sync):
        return 2
    stream = lambda n: 2 * n + t.vector + 2 if n else 1
    stream1 = lambda n: n + t.vector + 3 if n else 1      # one row per cycle (SOFT's weight rows)
    if isinstance(ins, Vec):
        n_tiles = ins.n_tiles if ins.n_tiles is not None else math.ceil(p.tensors[ins.y].shape[0] / R)
        rows, cores = n_tiles * S, 1 if ins.one_core else N
        if ins.flag is not None:        # each row waits two cycles for its flags: the same stream, 2 later
            return 2 + cores * (stream(rows) + 2 if rows else 1)
        return 2 + cores * stream(rows)
    if isinstance(ins, Adam):
        bias, weights = adam_passes(cfg, p, ins)
        return 2 + bias + (0 if ins.overlap else weights)
    if isinstance(ins, Soft):
        ws = sum(p.tensors[w].rows for w, _, _ in p.nets[ins.net])
        bs = sum(p.tensors[b].rows for _, b, _ in p.nets[ins.net])
        return 2 + stream1(ws if ins.weights else 0) + stream(bs)
    raise TypeError(f"unknown instruction {ins!r}")


def adam_passes(cfg: FixarConfig, p: Program, ins: Adam) -> tuple[int, int]:
    """Cycles of an ADAM's bias pass (first) and weight pass: n + 2 + the
    Adam lanes' latency each, and a fused soft update's SOFT (the vector
    unit's latency + 1 hold) after the weight pass."""
    t = timing(cfg)
    ws = sum(p.tensors[w].rows for w, _, _ in p.nets[ins.net])
    bs = sum(p.tensors[b].rows for _, b, _ in p.nets[ins.net])
    adam = lambda n: n + 2 + t.adam if n else 1
    return adam(bs), adam(ws) + (t.vector + 1 if ins.soft and ws else 0)


def timeline(cfg: FixarConfig, p: Program, instrs: list, S: int, array_latency: int | None = None) -> list[int]:
    """Each instruction's cycles from its fetch to the next fetch in a run of
    ``instrs`` and the HALT after them (the last entry). An ADAM with
    ``overlap`` takes its bias pass; its weight pass runs on beside the
    ARRAY instructions that follow, but for a packed weight gradient (it
    writes the gradient memory through the port the pass reads). Every other
    instruction waits in decode until that pass's last cycle (an ADAM: the
    cycle after it)."""
    out, now, adam_end = [], 0, None     # now: the cycle of this instruction's fetch
    for ins in [*instrs, None]:
        cycles = 2 if ins is None else instr_cycles(cfg, p, ins, S, array_latency)
        beside = isinstance(ins, Matmul) or (isinstance(ins, Grad) and not ins.op.packed)
        if adam_end is not None and not beside:
            cycles += max(0, adam_end + isinstance(ins, Adam) - (now + 1))
            adam_end = None
        if isinstance(ins, Adam) and ins.overlap:
            bias, weights = adam_passes(cfg, p, ins)
            adam_end = now + 1 + bias + weights          # decode, then the passes' cycles
        out.append(cycles)
        now += cycles
    return out


def step_cycles(cfg: FixarConfig, p: Program, batch: int, array_latency: int | None = None,
                acting: bool = False) -> int:
    """Cycles of the training step (or the acting program) from the edge that
    takes ``start`` to the cycle of ``done``: the instructions, then the HALT's
    fetch and decode."""
    S = 1 if acting else batch // cfg.array.cores
    return sum(timeline(cfg, p, p.act_instrs if acting else p.instrs, S, array_latency))


def projected(cfg: FixarConfig, obs_dim: int, act_dim: int, hidden: tuple[int, ...], batch: int,
              clock_hz: float | None = None) -> dict:
    """The accelerator's time for one environment step of training (one acting
    program and one training step) from the cycle model, which the RTL bench
    matches cycle for cycle: labelled projected, not measured on a board."""
    clock_hz = clock_hz or timing(cfg).clock_hz
    p = compile_ddpg(cfg, obs_dim, act_dim, tuple(hidden), batch)
    train = step_cycles(cfg, p, batch)
    act = step_cycles(cfg, p, batch, acting=True)
    return {"clock_hz": clock_hz, "train_step_cycles": train, "act_cycles": act,
            "accel_s_per_env_step": (train + act) / clock_hz,
            "accel_ips": round(batch * clock_hz / (train + act), 1)}
