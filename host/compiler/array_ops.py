"""Layer operations on the adaptive array: memory layouts, the descriptor the
array's controller executes, the cycle model, and output unpacking.

This is host-side software shared by every path that talks to the array (the
cocotb benches now, the program compiler and the board's DMA buffers later),
so what the benches verify is what the host will send. It imports neither the
generator nor the golden model; the hardware implements the same layouts and
schedule independently (gen/array.py), and the benches check that they agree.

Memories (docs/array.md):
* weights: ``array.cols`` banks of ``memory.weight_words / C`` words. A
  layer's W (M x K, zero-padded to C x C tiles) takes tile rows from
  ``w_base``; tile T = it * n_kc + kt covers rows ``w_base + T*C ...``; word
  (i, j) of a tile sits in bank (i + j) mod C at row ``T*C + i``. A tile
  column and a tile row are then each one word per bank, so the forward
  product (W's columns down the PE rows) and the transposed product (W's
  rows down the PE rows) read the same copy of W: no transpose.
* activations: per core, rows of R words. Vector slot s of k-tile kt is row
  ``x_base + kt * S + s`` (S = slots per core); FXP16 packs vectors 2s and
  2s+1 into the low and high lanes of each word.
* biases: rows of C words of ``pe.out``; output tile it uses row ``b_base + it``.

Parallelism:
* intra-batch (training): core n takes batch slots [n*S, (n+1)*S) and all
  cores use the same weight tiles.
* intra-layer (one vector, inference): every core holds the whole vector,
  core n takes k-tiles n, n+N, ... ("rounds" of N k-tiles), and core 0 adds
  the other cores' wide sums before rounding. Only core 0's outputs are valid.

ReLU masks: every store also keeps one bit per element, 0 < y < ``limit``, in
the core's mask memory at the stored rows; a transposed product with ``mask``
zeroes each output whose bit at row ``m_base + it*S + slot`` is 0 (the
backward's ReLU, and in QAT phase 2 its quantizer's top, with no vector pass;
same cycles).

Weight gradients (``grad=True``): dW = D X^T for D (M x B) and X (K x B),
rounded once into ``adam.grad``. Core n reduces over its own batch slice
[n*S, (n+1)*S) (the slice it computed D and X for in intra-batch mode) and
core 0 adds the cores' wide sums, as in intra-layer mode. D comes from the
core's activation memory, slot-major as the transposed product stored it (row
``w_base + ot*S + b``: D[ot*R .. ot*R + R-1, b], one PE row of a weight tile
per row); X^T from the core's X^T memory, feature-major (row
``x_base + j*K + k``: X[k, j*R .. j*R + R-1] of the slice, word r in bank
(r + k) mod R), which a forward product with ``store_t`` writes directly
(row ``t_base + j*(n_ot*C) + f`` for output feature f). Output slot k of tile
ot carries dW[ot*C .. ot*C + C-1, k]. With ``gstore`` 3 the layer's bias
gradient rides along: one more slot, k = K, whose input is the constant one
(no X^T row: the row stride stays K), carries db[ot*C .. ot*C + C-1] into the
bias-gradient memory at row ``b_base + ot``. It is the product a separate
bias-gradient operation (K = 1, an input row of ones) makes, bit for bit, in
one cycle per tile step instead of a whole operation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fixar.config import (
    ActFunc,
    FixarConfig,
    GStore,
    PEMode,
    mask_no_limit,
    packed_code_offset,
    packed_shift_max,
    weight_groups,
)
from fixar.config.bfp import BFP_CONV_BITS, BFP_STREAMS, code_bits
from fixar.config.timing import BFP_ITEM_STAGES, bfp_tile_period


class ArrayOpError(ValueError):
    """A layer operation that the array cannot run as asked (shape, batch or
    memory). Raised when the operation is built, never during execution."""


@dataclass(frozen=True)
class LayerOp:
    """One array operation: Y = act(W X + b) (``transpose=False``) or
    Y = W^T X (``transpose=True``, no bias; backpropagation's data product)."""

    M: int                      # rows of the stored W
    K: int                      # columns of the stored W
    batch: int
    mode: PEMode = PEMode.FXP32
    func: ActFunc = ActFunc.IDENTITY
    transpose: bool = False
    intra_layer: bool = False   # one vector across all cores (inference)
    bias: bool = True
    store: bool = False         # write Y back to activation memory (FXP32 only)
    grad: bool = False          # weight gradient dW = D X^T (M x K) of D (M x batch), X (K x batch)
    store_t: bool = False       # also write Y feature-major into the X^T memory (a gradient's operand)
    t_base: int = 0             # X^T memory row of Y when store_t
    gstore: int = 0             # gradient products: keep dW in the gradient memory (1, weight layout)
                                # or a bias gradient (K = 1, ones) in the bias-gradient memory (2),
                                # or both (3: dW, then the bias gradient from one more slot whose
                                # input is the constant one, into bias-gradient rows b_base + tile)
    g_base: int = 0             # row there (the layer's w_base / b_base, so Adam streams them together)
    w_base: int = 0             # weight memory row of the layer's first tile row
    x_base: int = 0             # activation memory row of X (per core)
    y_base: int = 0             # activation memory row of Y when stored
    b_base: int = 0             # bias memory row of the layer's bias
    track: bool = False         # QAT phase 1: widen quantizer qidx's range by every output (and zero)
    fq: bool = False            # QAT phase 2: outputs leave through quantizer qidx (their 16-bit value)
    qidx: int = 0               # the quantizer (of the layer these outputs feed)
    # the ReLU mask (docs/array.md, "ReLU masks"): a store also keeps one bit per
    # element, 0 < y < limit (None: mask_no_limit, a plain ReLU), in the core's mask
    # memory at Y's rows; a transposed product with ``mask`` zeroes each output
    # whose bit at row m_base + (its activation row) is 0 before it leaves
    limit: int | None = None
    mask: bool = False
    m_base: int = 0             # mask memory row of the masking tensor (per core, the activation rows)
    # A packed QAT product (docs/array.md, "Packed QAT products"): X holds the
    # offset codes q - 2^15 of a power-of-two quantizer (zero point ``pq_zero``,
    # step 2^pq_e act32 codes), two vectors per word in FXP16; the result is the
    # FXP32 product of the inputs (q - z) 2^e, bit for bit.
    packed: bool = False
    pq_zero: int = 0
    pq_e: int = 0
    # what a packed product's store writes: 0 the two vectors' codes, one packed
    # word per item (needs fq); 1 or 2 the low or high lane's FXP32 values, at
    # their rows in the FXP32 slot-major layout (2 (tile S' + slot) + lane - 1):
    # two products, one per lane, give a layer's FXP32 outputs (the networks'
    # last layers, whose outputs feed no packed product); 3 (a pair store: an
    # FXP32 product with fq) its quantizer's codes, slots 2s' and 2s' + 1 in
    # one word, the packed layout a packed product reads (the top error of
    # QAT's 16-bit backward errors)
    pq_lane: int = 0
    # a packed product's input step from the quantizer table instead of pq_e:
    # entry pq_q - 1, e = log2(Delta) - 16 (QAT's 16-bit backward errors, whose
    # step changes every step: docs/program.md, "16-bit errors"); the codes are
    # signed (pq_zero 2^15). On a weight gradient: D is that entry's codes,
    # two batch entries a word, read as (q - 2^15) 2^e. 0: not used
    pq_q: int = 0
    # the packed weight gradient's operand (docs/array.md, "Packed weight
    # gradients"): a packed product's store_t writes its outputs' codes in
    # feature pairs, word (features 2k', 2k' + 1) of batch entry b in bank
    # (b + 2k') mod R at X^T row t_base + (b div R) (n_ot C / 2) + k'; a
    # packed gradient product (grad, packed) reads X^T in that layout
    pq_t: bool = False
    # A BFP product (docs/bfp.md, "BFP in the compiler"): both operands converted
    # into block floating point as they enter the cores, grouped along the
    # product's reduction (W, or a gradient's D, at bfp_w mantissa bits; X at
    # bfp_x), then the FXP32 product of the converted codes with its one
    # rounding. Their rounding seeds are jenkins32(base + bfp_conv) and
    # jenkins32(base + bfp_conv + 1), base the seed stream bfp_stream's per-step
    # scalar (0 the actor's, 1 the critic's). bfp_w = bfp_x = 0: not BFP.
    bfp_w: int = 0
    bfp_x: int = 0
    bfp_stream: int = 0
    bfp_conv: int = 0

    @property
    def bfp(self) -> bool:
        return bool(self.bfp_w or self.bfp_x)


@dataclass(frozen=True)
class Descriptor:
    """What the controller's registers hold for one operation."""

    transpose: int
    intra: int
    mode: int
    func: int
    bias: int
    store: int
    n_ot: int   # output tiles (C outputs each)
    n_kt: int   # k-tiles of the reduction
    n_kr: int   # k-tile rounds per output tile (n_kt, or ceil(n_kt / cores) in intra-layer mode)
    slots: int  # batch slots per core
    w_base: int
    x_base: int
    y_base: int
    b_base: int
    grad: int = 0   # weight-gradient product
    batch: int = 0  # gradient products: batch entries per core (rows of D beyond it read as zero)
    store_t: int = 0
    t_base: int = 0
    gstore: int = 0
    g_base: int = 0
    track: int = 0
    fq: int = 0
    qidx: int = 0
    mask: int = 0
    m_base: int = 0
    limit: int = 0  # describe() writes mask_no_limit(cfg) when the op gives none
    pq: int = 0     # packed QAT product: slot 0 is the zero point's correction (the other slots hold X)
    pq_e: int = 0   # the lanes' shift to the FXP32 product's scale
    pq_c: int = 0   # the correction's input word: (2^15 - z) 2^e, an act32 code (its bits, unsigned)
    pq_lane: int = 0  # a packed store's words: 0 the codes, 1 / 2 the low / high lane's FXP32 values
    pq_t: int = 0   # a packed store_t's layout: 1 the codes in feature pairs (a packed gradient's X^T)
    pq_q: int = 0   # the input step from quantizer table entry pq_q - 1 (a gradient's: D's codes); 0 none
    bfp_w: int = 0  # a BFP product: W's and X's mantissa widths (0: FXP32), the seed stream and
    bfp_x: int = 0  # the conversions' place in it (LayerOp)
    bfp_stream: int = 0
    bfp_conv: int = 0

    def ports(self) -> dict[str, int]:
        return {f"op_{k}": int(v) for k, v in self.__dict__.items()}


def vectors_per_slot(mode: PEMode) -> int:
    return 2 if mode == PEMode.FXP16 else 1


def data_slots(d: Descriptor) -> int:
    """Slots per core that carry batch vectors (a packed QAT product's first slot is its correction)."""
    return d.slots - d.pq


def out_dims(op: LayerOp) -> tuple[int, int]:
    """(outputs, reduction length) of the product."""
    return (op.K, op.M) if op.transpose else (op.M, op.K)


def weight_rows(cfg: FixarConfig, M: int, K: int) -> int:
    C = cfg.array.cols
    return math.ceil(M / C) * math.ceil(K / C) * C


def describe(cfg: FixarConfig, op: LayerOp) -> Descriptor:
    """Check that ``op`` fits the array and its memories; build its descriptor."""
    ar, mem = cfg.array, cfg.memory
    R, C, N = ar.rows, ar.cols, ar.cores
    for name in ("M", "K", "batch"):
        if getattr(op, name) < 1:
            raise ArrayOpError(f"{name} = {getattr(op, name)}: must be at least 1")
    if op.bfp:
        _check_bfp(cfg, op)
    if op.grad:
        return _describe_grad(cfg, op)
    mode = PEMode(op.mode)
    per = vectors_per_slot(mode)
    n_out, n_red = out_dims(op)
    n_ot, n_kt = math.ceil(n_out / C), math.ceil(n_red / R)
    if op.intra_layer:
        if op.batch > per:
            raise ArrayOpError(f"intra-layer mode computes one vector ({per} packed in {mode.name}); "
                               f"batch {op.batch} needs intra-batch mode")
        S, n_kr = 1, math.ceil(n_kt / N)
    else:
        S, n_kr = math.ceil(math.ceil(op.batch / per) / N), n_kt
    extra = int(op.packed)     # the packed product's correction slot
    if S + extra > ar.psum_slots:
        raise ArrayOpError(f"batch {op.batch} needs {S + extra} partial-sum slots per core in {mode.name}; "
                           f"array.psum_slots = {ar.psum_slots} (largest batch {(ar.psum_slots - extra) * per * N})")
    if op.pq_lane == 3:
        _check_pair_store(cfg, op, mode)
    elif op.pq_lane and not op.packed:
        raise ArrayOpError("pq_lane picks a packed QAT product's stored lane: it needs packed")
    _check_table_step(cfg, op)
    pq_c = _check_packed(cfg, op, mode, n_red) if op.packed else 0
    if op.transpose and op.bias:
        raise ArrayOpError("the transposed product takes no bias (set bias=False)")
    if op.track or op.fq:
        if (mode != PEMode.FXP32 and not op.packed) or (op.transpose and not op.mask):
            raise ArrayOpError("track and fq (the QAT quantizers at the output stage) need an FXP32 or packed "
                               "forward product, or a masked transposed one (a hidden layer's error: the mask "
                               "comes first, then the range tracker, restarted per operation, and the quantizer)")
        if not 0 <= op.qidx < ar.quantizers:
            raise ArrayOpError(f"qidx = {op.qidx}: the array has array.quantizers = {ar.quantizers} quantizers")
    if op.pq_t and not (op.packed and op.store_t and op.fq):
        raise ArrayOpError("pq_t (the codes in feature pairs, a packed weight gradient's X^T) is a packed "
                           "product's store_t of its quantizer's codes: it needs packed, store_t and fq")
    if op.store_t:
        if (mode != PEMode.FXP32 and not op.packed) or op.transpose or op.intra_layer \
                or cfg.pe.out != cfg.pe.act32:
            raise ArrayOpError("store_t (the feature-major copy a weight gradient reads) needs an intra-batch "
                               "FXP32 forward product and pe.out == pe.act32")
        t_rows = mem.xt_words_per_core // R
        # a packed beat's two vectors are two batch entries; the pair layout holds two features a word
        need = math.ceil(S * per / R) * n_ot * (C // 2 if op.pq_t else C)
        if op.t_base < 0 or op.t_base + need > t_rows:
            raise ArrayOpError(f"Y^T needs X^T-memory rows {op.t_base}..{op.t_base + need - 1} per core; "
                               f"it has {t_rows} rows of {R} words")
    _check_mask(cfg, op, mode, n_ot, S)
    if op.store and op.packed and not op.fq and not op.pq_lane:
        raise ArrayOpError("a packed QAT product stores the 16-bit codes of its outputs' quantizer: store needs fq")
    if op.store and not op.packed and (mode != PEMode.FXP32 or cfg.pe.out != cfg.pe.act32):
        raise ArrayOpError("store needs FXP32 mode and pe.out == pe.act32: FXP16 results need the "
                           "QAT quantizer before they can feed a layer")
    w_rows = mem.weight_words // C
    need = weight_rows(cfg, op.M, op.K)
    if op.w_base < 0 or op.w_base + need > w_rows:
        raise ArrayOpError(f"W ({op.M} x {op.K}) needs weight rows {op.w_base}..{op.w_base + need - 1}; "
                           f"the weight memory has {w_rows} rows of {C} words")
    half = weight_groups(cfg)[1][0]
    if op.w_base < half < op.w_base + need:
        raise ArrayOpError(f"W ({op.M} x {op.K}) at weight rows {op.w_base}..{op.w_base + need - 1} crosses "
                           f"row {half}, where the weight memory's second group of RAMs starts "
                           "(fixar.config.weight_groups)")
    a_rows = mem.act_words_per_core // R
    # a lane store writes FXP32 rows, two per packed item; a pair store one row per two items
    y_slots = {1: 2 * S, 2: 2 * S, 3: S // 2}.get(op.pq_lane, S)
    for name, base, rows in (("X", op.x_base, n_kt * S), ("Y", op.y_base, n_ot * y_slots if op.store else 0)):
        if base < 0 or base + rows > a_rows:
            raise ArrayOpError(f"{name} needs activation rows {base}..{base + rows - 1} per core; "
                               f"a core's activation memory has {a_rows} rows of {R} words")
    if op.bias and (op.b_base < 0 or op.b_base + n_ot > mem.bias_words // C):
        raise ArrayOpError(f"the bias needs bias rows {op.b_base}..{op.b_base + n_ot - 1}; "
                           f"the bias memory has {mem.bias_words // C} rows of {C} words")
    return Descriptor(transpose=int(op.transpose), intra=int(op.intra_layer), mode=int(mode), func=int(op.func),
                      bias=int(op.bias), store=int(op.store), n_ot=n_ot, n_kt=n_kt, n_kr=n_kr, slots=S + extra,
                      w_base=op.w_base, x_base=op.x_base, y_base=op.y_base, b_base=op.b_base,
                      store_t=int(op.store_t), t_base=op.t_base, track=int(op.track), fq=int(op.fq),
                      qidx=op.qidx if (op.track or op.fq) else 0, mask=int(op.mask),
                      m_base=op.m_base if op.mask else 0,     # a packed store's mask rows, or a masked read's
                      limit=mask_no_limit(cfg) if op.limit is None else op.limit,
                      pq=extra, pq_e=op.pq_e if op.packed else 0, pq_c=pq_c, pq_lane=op.pq_lane,
                      pq_t=int(op.pq_t), pq_q=op.pq_q, **_bfp_fields(op))


def _bfp_fields(op: LayerOp) -> dict:
    return {"bfp_w": op.bfp_w, "bfp_x": op.bfp_x, "bfp_stream": op.bfp_stream, "bfp_conv": op.bfp_conv}


def _check_bfp(cfg: FixarConfig, op: LayerOp) -> None:
    """A BFP product's limits (those of every array; whether this config's
    array has a BFP front, and which products it runs, encoding checks:
    :func:`bfp_runs_in_array`). The golden executor runs them all."""
    bfp, R = cfg.bfp, cfg.array.rows
    for name in ("bfp_w", "bfp_x"):
        if getattr(op, name) not in (0, *bfp.widths):
            raise ArrayOpError(f"{name} = {getattr(op, name)}: a BFP product's mantissa widths are among "
                               f"bfp.widths {list(bfp.widths)}, or 0 for an operand used as it is")
    if bfp.group != R:
        raise ArrayOpError(f"a BFP group is one PE column's reduction: bfp.group = {bfp.group} must equal "
                           f"array.rows = {R}")
    if not bfp.group_local(code_bits(cfg)):
        raise ArrayOpError(f"BFP products convert each group alone, which needs 2^bfp.exp_bits >= "
                           f"{code_bits(cfg)} (the codes' bits); bfp.exp_bits = {bfp.exp_bits}")
    if op.mode != PEMode.FXP32 or op.packed or op.track or op.fq or op.pq_lane or op.pq_q:
        raise ArrayOpError("a BFP product converts FXP32 operands and has no QAT quantizer, packing or lane")
    if op.grad and op.gstore == GStore.BOTH:
        raise ArrayOpError("a BFP weight gradient converts D, and the bias gradient needs D unconverted: "
                           "gstore 1 with a separate bias-gradient product")
    if op.grad and math.ceil(op.batch / cfg.array.cores) % bfp.group:
        raise ArrayOpError(f"a BFP weight gradient groups the batch by {bfp.group}, and no group may straddle "
                           f"two cores: batch {op.batch} on {cfg.array.cores} cores is not whole groups per core")
    if not 0 <= op.bfp_stream < BFP_STREAMS or not 0 <= op.bfp_conv < 1 << BFP_CONV_BITS:
        raise ArrayOpError(f"bfp_stream = {op.bfp_stream} (0..{BFP_STREAMS - 1}), bfp_conv = {op.bfp_conv} "
                           f"(0..{(1 << BFP_CONV_BITS) - 1})")


def _check_packed(cfg: FixarConfig, op: LayerOp, mode: PEMode, K: int) -> int:
    """A packed QAT product's limits; returns its correction's input word (2^15 - z) 2^e (two's complement).

    The lanes sum W (q - 2^15) in pe.acc_bits each and the result must equal
    the FXP32 product on (q - z) 2^e, whose own lanes hold sums of K products
    of a weight and 16 bits: both stay exact while K 2^(weight bits + 16 - 1)
    is below 2^(acc_bits - 1)."""
    pe = cfg.pe
    if mode != PEMode.FXP16:
        raise ArrayOpError("a packed QAT product takes its inputs two per word: mode must be FXP16")
    unsupported = [n for n in ("intra_layer",) if getattr(op, n)] + (["track"] if op.track and not op.transpose
                                                                     else [])
    if unsupported:
        raise ArrayOpError(f"a packed QAT product with {', '.join(unsupported)} is not built yet "
                           "(docs/program.md, \"Not built yet\")")
    N = cfg.array.cores
    if (op.store_t or op.mask or op.pq_lane) and op.batch % (2 * N):
        raise ArrayOpError(f"a packed QAT product's feature-major copy, mask bits and lane stores are the FXP32 "
                           f"layout's, whose cores split the batch as the packed one only when it is a multiple "
                           f"of 2 x {N} cores; batch {op.batch}")
    if op.pq_lane not in (0, 1, 2):
        raise ArrayOpError(f"pq_lane = {op.pq_lane}: 0 (store the codes), 1 or 2 (the low or high lane's values)")
    if op.pq_lane and (not op.store or op.store_t or op.mask):
        raise ArrayOpError("a lane store (pq_lane) writes one lane's values and nothing else: it needs store, "
                           "and takes no store_t or mask (the codes' store keeps those)")
    if pe.out.needs_random:
        raise ArrayOpError("a packed QAT product with stochastic pe.out rounding is not built yet")
    return _packed_correction(cfg, op, K)


def _check_pair_store(cfg: FixarConfig, op: LayerOp, mode: PEMode) -> None:
    """A pair store (pq_lane 3): an intra-batch FXP32 product's quantizer codes,
    two batch entries a word, as a packed product reads them."""
    N = cfg.array.cores
    if op.packed or mode != PEMode.FXP32 or op.intra_layer:
        raise ArrayOpError("a pair store (pq_lane 3) pairs an intra-batch FXP32 product's codes; a packed "
                           "product stores its codes with pq_lane 0")
    if not (op.store and op.fq) or op.store_t:
        raise ArrayOpError("a pair store (pq_lane 3) writes its quantizer's codes: it needs store and fq, "
                           "and takes no store_t")
    if op.batch % (2 * N):
        raise ArrayOpError(f"a pair store puts two batch entries in a word on every core: batch {op.batch} "
                           f"is not a multiple of 2 x {N} cores")


def _check_table_step(cfg: FixarConfig, op: LayerOp) -> None:
    """pq_q: a packed product's input step read from the quantizer table (its
    codes signed: pq_zero 2^15, no static pq_e), or a gradient's D as codes."""
    if op.pq_q == 0:
        return
    if not 0 < op.pq_q <= cfg.array.quantizers:
        raise ArrayOpError(f"pq_q = {op.pq_q}: a quantizer table entry + 1, at most array.quantizers = "
                           f"{cfg.array.quantizers}")
    if op.grad:
        if op.batch % (2 * cfg.array.cores):
            raise ArrayOpError(f"a weight gradient on codes (pq_q) reads two batch entries a word on every core: "
                               f"batch {op.batch} is not a multiple of 2 x {cfg.array.cores} cores")
        return
    if not op.packed or op.pq_zero != packed_code_offset(cfg) or op.pq_e:
        raise ArrayOpError("pq_q (the input step from the quantizer table) is a packed product's on signed codes: "
                           f"it needs packed, pq_zero = {packed_code_offset(cfg)} and pq_e = 0")


def _packed_correction(cfg: FixarConfig, op: LayerOp, K: int) -> int:
    """The packed input's step and zero point, the reduction's length (K
    inputs: the lanes stay exact), and the correction's input word."""
    pe = cfg.pe
    if not 0 <= op.pq_e <= packed_shift_max(cfg):
        raise ArrayOpError(f"pq_e = {op.pq_e}: a packed input's step is 2^e act32 codes, "
                           f"0 <= e <= {packed_shift_max(cfg)}")
    half = packed_code_offset(cfg)
    if not 0 <= op.pq_zero <= 2 * half:
        raise ArrayOpError(f"pq_zero = {op.pq_zero}: a quantizer's zero point is in [0, {2 * half}]")
    c = (half - op.pq_zero) << op.pq_e
    if not pe.act32.min_int <= c <= pe.act32.max_int:
        raise ArrayOpError(f"the correction's input (2^15 - z) 2^e = {c} (z = {op.pq_zero}, e = {op.pq_e}) "
                           f"is not a {pe.act32.bits}-bit code: no quantizer has that zero point and step")
    most = (1 << (pe.acc_bits - pe.weight.bits - pe.lane_bits)) - 1
    if K > most:
        raise ArrayOpError(f"a packed QAT product over {K} inputs: its lanes equal the FXP32 product "
                           f"for at most {most} (pe.acc_bits = {pe.acc_bits})")
    return c & ((1 << pe.act32.bits) - 1)      # the word's bits, as the instruction slot carries them


def _check_mask(cfg: FixarConfig, op: LayerOp, mode: PEMode, n_ot: int, S: int) -> None:
    """The mask bits' limit, and a masked product: FXP32 transposed (one bit per
    word), reading mask rows that exist; or a packed store's mask rows (two
    vectors per beat, at their FXP32 rows from m_base)."""
    if op.limit is not None and not 0 <= op.limit <= mask_no_limit(cfg):
        raise ArrayOpError(f"limit = {op.limit}: must be in [0, 2^{cfg.pe.act32.bits - 1}]")
    if not op.mask:
        return
    if op.packed:
        if not op.store:
            raise ArrayOpError("a packed QAT product's mask keeps its stored outputs' mask bits: it needs store")
        a_rows = cfg.memory.act_words_per_core // cfg.array.rows
        if op.m_base < 0 or op.m_base + n_ot * 2 * S > a_rows:
            raise ArrayOpError(f"the mask bits need mask rows {op.m_base}..{op.m_base + n_ot * 2 * S - 1} per core; "
                               f"a core's mask memory has {a_rows} rows")
        return
    if not op.transpose or mode != PEMode.FXP32:
        raise ArrayOpError("mask (the ReLU mask at the output stage) needs an FXP32 transposed product")
    a_rows = cfg.memory.act_words_per_core // cfg.array.rows
    if op.m_base < 0 or op.m_base + n_ot * S > a_rows:
        raise ArrayOpError(f"the mask needs mask rows {op.m_base}..{op.m_base + n_ot * S - 1} per core; "
                           f"a core's mask memory has {a_rows} rows")


def _describe_grad(cfg: FixarConfig, op: LayerOp) -> Descriptor:
    ar, mem = cfg.array, cfg.memory
    R, C, N = ar.rows, ar.cols, ar.cores
    if op.mode != (PEMode.FXP16 if op.packed else PEMode.FXP32) or op.transpose or op.intra_layer or op.bias \
            or op.store or op.store_t or op.mask or op.pq_lane or op.pq_t or op.func != ActFunc.IDENTITY:
        raise ArrayOpError("a weight-gradient product is FXP32 (FXP16 when packed), intra-batch, with no bias, "
                           "store, transpose, mask, lane or activation function")
    # a packed gradient: its correction slot first, then one slot per feature pair
    pq_c = _check_packed_grad(cfg, op) if op.packed else 0
    _check_table_step(cfg, op)
    inputs = math.ceil(op.K / 2) if op.packed else op.K      # X^T rows per round
    slots = int(op.packed) + inputs + (op.gstore == GStore.BOTH)      # the folded bias gradient's ones slot
    if slots > ar.psum_slots:
        bias = " and the bias" if op.gstore == GStore.BOTH else ""
        raise ArrayOpError(f"a weight gradient with K = {op.K} inputs{bias} needs {slots} partial-sum slots; "
                           f"array.psum_slots = {ar.psum_slots}")
    S = math.ceil(op.batch / N)
    n_ot, n_kr = math.ceil(op.M / C), math.ceil(S / R)
    if op.gstore == GStore.BOTH and (op.b_base < 0 or op.b_base + n_ot > mem.bias_words // C):
        raise ArrayOpError(f"db needs bias-gradient rows {op.b_base}..{op.b_base + n_ot - 1}; "
                           f"there are {mem.bias_words // C} rows of {C} words")
    if op.gstore in (GStore.WEIGHT, GStore.BOTH):
        need, have = weight_rows(cfg, op.M, op.K), mem.grad_words // C
        if op.g_base < 0 or op.g_base + need > have:
            raise ArrayOpError(f"dW ({op.M} x {op.K}) needs gradient rows {op.g_base}..{op.g_base + need - 1}; "
                               f"the gradient memory has {have} rows of {C} words")
    elif op.gstore == GStore.BIAS:
        if op.K != 1:
            raise ArrayOpError(f"a bias gradient is a product with one (ones) input, not K = {op.K}")
        if op.g_base < 0 or op.g_base + n_ot > mem.bias_words // C:
            raise ArrayOpError(f"db needs bias-gradient rows {op.g_base}..{op.g_base + n_ot - 1}; "
                               f"there are {mem.bias_words // C} rows of {C} words")
    elif op.gstore != GStore.NONE:
        raise ArrayOpError(f"gstore = {op.gstore}: 0 (none), 1 (weight gradient), 2 (bias gradient) or 3 (both)")
    for name, base, rows, have, where in (
            ("D", op.w_base, n_ot * (S // 2 if op.pq_q else S), mem.act_words_per_core // R, "activation memory"),
            ("X^T", op.x_base, n_kr * inputs, mem.xt_words_per_core // R, "X^T memory")):
        if base < 0 or base + rows > have:
            raise ArrayOpError(f"{name} needs {where} rows {base}..{base + rows - 1} per core; "
                               f"a core's {where} has {have} rows of {R} words")
    return Descriptor(transpose=0, intra=0, mode=int(op.mode), func=int(ActFunc.IDENTITY), bias=0, store=0,
                      n_ot=n_ot, n_kt=n_kr, n_kr=n_kr, slots=slots, w_base=op.w_base, x_base=op.x_base, y_base=0,
                      b_base=op.b_base if op.gstore == GStore.BOTH else 0, grad=1, batch=S, gstore=op.gstore,
                      g_base=op.g_base, limit=mask_no_limit(cfg), pq=int(op.packed),
                      pq_e=op.pq_e if op.packed else 0, pq_c=pq_c, pq_q=op.pq_q, **_bfp_fields(op))


def _check_packed_grad(cfg: FixarConfig, op: LayerOp) -> int:
    """A packed weight gradient's limits (docs/array.md, "Packed weight
    gradients"); returns its correction's input word. Each lane sums D (q -
    2^15) over the batch, the cores' sums added: the same bound as a packed
    forward product's, with the batch as the reduction."""
    if cfg.array.rows % 2 or cfg.array.cols % 2:
        raise ArrayOpError("a packed weight gradient pairs features in a word: array.rows and cols must be even")
    if op.gstore not in (GStore.WEIGHT, GStore.BOTH):
        raise ArrayOpError("a packed weight gradient keeps dW in the gradient memory: gstore 1 or 3")
    return _packed_correction(cfg, op, op.batch)


def bfp_runs_in_array(cfg: FixarConfig, op: LayerOp) -> str | None:
    """None if this config's array runs the BFP product ``op``, else why not."""
    if not cfg.bfp.in_array:
        return (f"config {cfg.name}'s array has no BFP front (bfp.in_array = false; the shipped config "
                "\"bfp\" has one)")
    return None


def cycles(cfg: FixarConfig, d: Descriptor, latency: int) -> int:
    """Cycle model, from the clock edge that takes ``start`` up to and
    including the cycle in which ``done`` (and the last output) is visible.

    R cycles load the first tile's weights (one PE row per cycle); each of the
    G = n_ot * n_kr tile steps takes P = max(S, R) cycles (S items, while the
    next tile's R rows load into the shadow weights); the last step's S items
    leave ``latency`` cycles later. A BFP product with converted weights
    loads the second tile while the first converts (P' =
    fixar.config.timing.bfp_tile_period(R) cycles more before the first
    step) and its steps take max(S, P'); converted items pass the converter
    (BFP_ITEM_STAGES more).
    """
    R = cfg.array.rows
    G = d.n_ot * d.n_kr
    items = BFP_ITEM_STAGES if d.bfp_x else 0
    if d.bfp_w:     # BFP (docs/bfp.md, "BFP in the array"): two tiles load ahead, each converts before its swap
        P = bfp_tile_period(R)
        return R + P + (G - 1) * max(d.slots, P) + d.slots + latency + items
    return R + (G - 1) * max(d.slots, R) + d.slots + latency + items


def useful_macs(op: LayerOp) -> int:
    """Multiply-adds the operation needs: a folded bias gradient's ones slot counts (D times ones)."""
    return op.M * (op.K + (op.gstore == GStore.BOTH)) * op.batch


def utilization(cfg: FixarConfig, op: LayerOp, n_cycles: int) -> float:
    """Useful MACs / (PEs x cycles); a PE does two lane MACs per cycle in FXP16."""
    peak = cfg.array.pes * vectors_per_slot(PEMode(op.mode))
    return useful_macs(op) / (peak * n_cycles)


# ---------------------------------------------------------------- layouts

def _pack(values: np.ndarray, width: int) -> list[int]:
    """Rows of ``values`` (2-D, codes) -> one integer per row, element i at bits i*width."""
    mask = (1 << width) - 1
    out = []
    for row in np.asarray(values, dtype=np.int64):
        word = 0
        for i, v in enumerate(row.tolist()):
            word |= (v & mask) << (i * width)
        out.append(word)
    return out


def weight_image(cfg: FixarConfig, W: np.ndarray, bits: int | None = None) -> list[int]:
    """The weight memory rows of W (M x K codes), each a C-word integer (bank b
    at bits b*w; w = ``bits``, default the weight width: gradients and Adam
    moments use the same layout at their own widths)."""
    C = cfg.array.cols
    M, K = W.shape
    n_it, n_kc = math.ceil(M / C), math.ceil(K / C)
    Wp = np.zeros((n_it * C, n_kc * C), dtype=np.int64)
    Wp[:M, :K] = W
    tiles = Wp.reshape(n_it, C, n_kc, C).transpose(0, 2, 1, 3).reshape(n_it * n_kc, C, C)
    i = np.arange(C)[:, None]
    b = np.arange(C)[None, :]
    skewed = tiles[:, i, (b - i) % C]          # [T, i, bank] = tile[T, i, (bank - i) mod C]
    return _pack(skewed.reshape(-1, C), cfg.pe.weight.bits if bits is None else bits)


def weight_from_image(cfg: FixarConfig, rows: list[int], M: int, K: int, bits: int,
                      signed: bool = True) -> np.ndarray:
    """Inverse of :func:`weight_image`: memory rows (C words of ``bits``) -> M x K codes
    (also for the gradients and Adam moments kept at the weights' rows)."""
    C = cfg.array.cols
    n_it, n_kc = math.ceil(M / C), math.ceil(K / C)
    words = np.array([[(r >> (b * bits)) & ((1 << bits) - 1) for b in range(C)] for r in rows], dtype=np.int64)
    if signed:
        words = np.where(words >> (bits - 1), words - (1 << bits), words)
    words = words.reshape(n_it * n_kc, C, C)
    i = np.arange(C)[:, None]
    j = np.arange(C)[None, :]
    tiles = words[:, i, (i + j) % C]            # [T, i, j] = bank (i + j) mod C of row i
    full = tiles.reshape(n_it, n_kc, C, C).transpose(0, 2, 1, 3).reshape(n_it * C, n_kc * C)
    return full[:M, :K]


def bias_image(cfg: FixarConfig, bias: np.ndarray, bits: int | None = None) -> list[int]:
    C = cfg.array.cols
    n = math.ceil(len(bias) / C)
    bp = np.zeros(n * C, dtype=np.int64)
    bp[:len(bias)] = bias
    return _pack(bp.reshape(n, C), cfg.pe.out.bits if bits is None else bits)


def core_vectors(cfg: FixarConfig, op: LayerOp, d: Descriptor, core: int) -> range:
    """Which batch vectors core ``core`` computes (all of them in intra-layer mode)."""
    per = vectors_per_slot(PEMode(op.mode))
    if op.intra_layer:
        return range(op.batch)
    S = data_slots(d)
    lo = core * S * per
    return range(min(lo, op.batch), min(lo + S * per, op.batch))


def activation_image(cfg: FixarConfig, op: LayerOp, d: Descriptor, X: np.ndarray, core: int) -> list[int]:
    """Activation memory rows (from ``x_base``) of core ``core`` for X (reduction x batch codes)."""
    R, L = cfg.array.rows, cfg.pe.lane_bits
    per = vectors_per_slot(PEMode(op.mode))
    vecs = core_vectors(cfg, op, d, core)
    S = data_slots(d)
    Xp = np.zeros((d.n_kt * R, S * per), dtype=np.int64)
    Xp[:X.shape[0], :len(vecs)] = X[:, vecs.start:vecs.stop]
    if per == 2:
        mask = (1 << L) - 1
        words = ((Xp[:, 1::2] & mask) << L) | (Xp[:, 0::2] & mask)
    else:
        words = Xp
    # rows ordered (kt, slot): R words each
    rows = words.reshape(d.n_kt, R, S).transpose(0, 2, 1).reshape(-1, R)
    return _pack(rows, cfg.pe.act32.bits)


def unpack_outputs(cfg: FixarConfig, op: LayerOp, d: Descriptor,
                   outputs: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """Output beats (core, tile, slot, lo, hi) -> Y (outputs x batch) codes.
    Each (core, tile, slot) must arrive exactly once."""
    if op.grad:
        return unpack_grad(cfg, op, d, outputs)
    C, ob = cfg.array.cols, cfg.pe.out.bits
    per = vectors_per_slot(PEMode(op.mode))
    n_out, _ = out_dims(op)
    Y = np.zeros((d.n_ot * C, op.batch), dtype=np.int64)
    seen = set()
    shifts = np.arange(C) * ob

    def lanes(word: int) -> np.ndarray:
        v = np.array([(word >> int(s)) & ((1 << ob) - 1) for s in shifts], dtype=np.int64)
        return np.where(v >> (ob - 1), v - (1 << ob), v)

    for core, tile, slot, lo, hi in outputs:
        key = (core, tile, slot)
        if key in seen:
            raise AssertionError(f"output (core {core}, tile {tile}, slot {slot}) arrived twice")
        seen.add(key)
        if slot < d.pq:
            raise AssertionError(f"the correction slot of a packed product left the array (core {core}, tile {tile})")
        base = core_vectors(cfg, op, d, core).start + (slot - d.pq) * per
        for lane, word in enumerate((lo, hi)[:per]):
            if base + lane < op.batch:
                Y[tile * C:(tile + 1) * C, base + lane] = lanes(word)
    cores = 1 if op.intra_layer else cfg.array.cores
    want = {(c, t, s) for c in range(cores) for t in range(d.n_ot) for s in range(d.pq, d.slots)
            if base_in_batch(cfg, op, d, c, s - d.pq)}
    missing = want - seen
    if missing:
        raise AssertionError(f"{len(missing)} output beats never arrived, e.g. (core, tile, slot) = "
                             f"{sorted(missing)[0]}")
    return Y[:n_out]


def base_in_batch(cfg: FixarConfig, op: LayerOp, d: Descriptor, core: int, slot: int) -> bool:
    """Whether (core, data slot) carries at least one real batch vector."""
    per = vectors_per_slot(PEMode(op.mode))
    vecs = core_vectors(cfg, op, d, core)
    return vecs.start + slot * per < vecs.stop


# ------------------------------------------------------- weight gradients

def _slice(cfg: FixarConfig, d: Descriptor, A: np.ndarray, core: int) -> np.ndarray:
    """Columns of A (batch last) in core ``core``'s slice, zero-padded to d.batch."""
    out = np.zeros((A.shape[0], d.batch), dtype=np.int64)
    part = A[:, core * d.batch:(core + 1) * d.batch]
    out[:, :part.shape[1]] = part
    return out


def grad_images(cfg: FixarConfig, d: Descriptor, D: np.ndarray, X: np.ndarray, core: int
                ) -> tuple[list[int], list[int]]:
    """Activation memory rows of core ``core`` for a gradient product: (D from
    ``w_base``, slot-major; X^T from ``x_base``, feature-major)."""
    R, bits = cfg.array.rows, cfg.pe.act32.bits
    Dp = np.zeros((d.n_ot * R, d.batch), dtype=np.int64)
    Dp[:D.shape[0]] = _slice(cfg, d, D, core)
    d_rows = Dp.reshape(d.n_ot, R, d.batch).transpose(0, 2, 1).reshape(-1, R)
    # a folded bias gradient's ones slot and a packed one's correction slot have no X^T row
    stride = d.slots - (d.gstore == GStore.BOTH) - d.pq
    if d.pq:    # X: the offset codes q - 2^15, in feature pairs
        return _pack(d_rows, bits), pair_image(cfg, X, op_batch_total(cfg, d), core, stride)
    return _pack(d_rows, bits), feature_major_image(cfg, X, op_batch_total(cfg, d), core, stride)


def op_batch_total(cfg: FixarConfig, d: Descriptor) -> int:
    return d.batch * cfg.array.cores


def feature_major_image(cfg: FixarConfig, X: np.ndarray, batch: int, core: int, K: int | None = None) -> list[int]:
    """The X^T memory rows of core ``core`` for X (features x batch): row j*K + k
    holds X[k, slice j*R ..] (K: the row stride, default X's feature count)."""
    R, N = cfg.array.rows, cfg.array.cores
    S = math.ceil(batch / N)
    K = X.shape[0] if K is None else K
    n_kr = math.ceil(S / R)
    Xp = np.zeros((K, n_kr * R), dtype=np.int64)
    part = np.asarray(X)[:, core * S:(core + 1) * S]
    Xp[:part.shape[0], :part.shape[1]] = part
    rows = Xp.reshape(K, n_kr, R).transpose(1, 0, 2).reshape(-1, R)
    return _pack(xt_banks(cfg, rows, K), cfg.pe.act32.bits)


def pair_image(cfg: FixarConfig, codes: np.ndarray, batch: int, core: int, pairs: int | None = None,
               pad: int = 0) -> list[int]:
    """The X^T memory rows of core ``core`` for packed QAT codes q - 2^15
    (features x batch) in feature pairs, as a packed weight gradient reads
    them and a packed store with ``pq_t`` writes them: row j*pairs + k' holds
    features 2k' (low half) and 2k' + 1 of batch entries j*R .. j*R + R - 1,
    entry r's word in bank (r + 2k') mod R. ``pad``: the code of a feature
    past the last (an odd count's pair, and whole pairs up to ``pairs``)."""
    R, N, L = cfg.array.rows, cfg.array.cores, cfg.pe.act16.bits
    S = math.ceil(batch / N)
    pairs = math.ceil(codes.shape[0] / 2) if pairs is None else pairs
    n_kr = math.ceil(S / R)
    Xp = np.full((2 * pairs, n_kr * R), pad, dtype=np.int64)
    part = np.asarray(codes)[:, core * S:(core + 1) * S]
    Xp[:part.shape[0], :part.shape[1]] = part
    mask = (1 << L) - 1
    words = (Xp[0::2] & mask) | ((Xp[1::2] & mask) << L)         # pairs x entries
    rows = words.reshape(pairs, n_kr, R).transpose(1, 0, 2).reshape(-1, R)
    return _pack(xt_banks(cfg, rows, pairs, step=2), cfg.pe.act32.bits)


def slot_major_image(cfg: FixarConfig, X: np.ndarray, batch: int, core: int) -> list[int]:
    """The activation memory rows of core ``core`` for X (features x batch), as
    an intra-batch FXP32 product reads and stores them: row kt*S + s."""
    op = LayerOp(M=1, K=X.shape[0], batch=batch, bias=False)
    return activation_image(cfg, op, describe(cfg, op), np.asarray(X), core)


def packed_slot_major_image(cfg: FixarConfig, codes: np.ndarray, batch: int, core: int) -> list[int]:
    """The activation memory rows of core ``core`` for packed QAT codes q - 2^15
    (features x batch), as a packed product reads them: row kt*S' + s', each
    word two consecutive batch entries (the first in the low half)."""
    half = packed_code_offset(cfg)
    op = LayerOp(M=1, K=codes.shape[0], batch=batch, bias=False, mode=PEMode.FXP16, packed=True, pq_zero=half)
    return activation_image(cfg, op, describe(cfg, op), np.asarray(codes), core)


def xt_banks(cfg: FixarConfig, rows: np.ndarray, K: int, step: int = 1) -> np.ndarray:
    """Feature-major rows (j, k) -> the X^T memory's bank words: word r of
    feature k sits in bank (r + k) mod R (so a forward beat, one batch entry of
    R features, writes one word per bank); of feature pair k (``step`` 2), in
    bank (r + 2k) mod R (a packed beat's two entries fill the even and the
    odd banks)."""
    R = cfg.array.rows
    k = (np.arange(len(rows)) % K)[:, None] * step
    b = np.arange(R)[None, :]
    return rows[np.arange(len(rows))[:, None], (b - k) % R]


def unpack_grad(cfg: FixarConfig, op: LayerOp, d: Descriptor,
                outputs: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """Output beats (core, tile, slot, lo, hi) of a gradient product -> dW (M x K) codes;
    with a folded bias gradient (gstore 3) M x (K + 1), the bias gradient last.
    A packed gradient's beat (slot s > 0, not the ones slot) is inputs 2(s - 1)
    (low lane) and 2(s - 1) + 1 (high lane); its correction slot never leaves."""
    C, gb = cfg.array.cols, cfg.adam.grad.bits
    fold = d.gstore == GStore.BOTH
    inputs = d.slots - fold - d.pq
    cols = 2 * inputs if d.pq else inputs
    dW = np.zeros((d.n_ot * C, cols + fold), dtype=np.int64)
    seen = set()

    def words(x: int) -> np.ndarray:
        v = np.array([(x >> (c * gb)) & ((1 << gb) - 1) for c in range(C)], dtype=np.int64)
        return np.where(v >> (gb - 1), v - (1 << gb), v)

    for core, tile, slot, lo, hi in outputs:
        if core != 0 or (tile, slot) in seen or slot < d.pq:
            raise AssertionError(f"unexpected gradient beat (core {core}, tile {tile}, slot {slot})")
        seen.add((tile, slot))
        rows = slice(tile * C, (tile + 1) * C)
        if fold and slot == d.slots - 1:
            dW[rows, cols] = words(lo)
        elif d.pq:
            dW[rows, 2 * (slot - 1)], dW[rows, 2 * slot - 1] = words(lo), words(hi)
        else:
            dW[rows, slot] = words(lo)
    if len(seen) != d.n_ot * (d.slots - d.pq):
        raise AssertionError(f"{d.n_ot * (d.slots - d.pq) - len(seen)} gradient beats never arrived")
    keep = list(range(op.K)) + ([cols] if fold else [])
    return dW[:op.M][:, keep]
