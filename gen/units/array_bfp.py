"""The array's BFP front (``bfp.in_array``; docs/bfp.md, "BFP in the array"):
what the controller adds for a BFP product, kept apart from gen/units/array.py.

A BFP product is an FXP32 product whose operands convert as they enter the
cores, a group per PE column (one tile column of W, one streamed item):

* weights: the tiles load two steps ahead; while step k computes, the tile
  of step k + 1 (loaded during step k - 1) converts two PE rows a cycle in
  the core (gen/units/core.py), and the swap at step k + 1 makes it active.
  The prologue loads the first tile, then the second while the first
  converts; a step lasts at least ``bfp_tile_period(R)`` cycles.
  (bfp_w = 0: the weights are used as they are, e.g. a deployed network's,
  converted once by the host, and load as in FXP32.)
* items: each core's item passes a converter (gen/units/bfp_convert.py)
  and a stage that turns its mantissas back into codes, BFP_ITEM_STAGES
  cycles; everything else the cores see (control, weights, bias, mask bits)
  and the output bookkeeping is delayed as much in a BFP operation.
* seeds: jenkins32(base + bfp_conv) for W, + 1 for X, base the operation's
  seed stream's word on ``bfp_bases`` (the host's per-step scalar), taken at
  start.
* keys (the golden model's padded rows x groups layout): W's column c of
  output tile ot and k-tile kt is group (ot C + c) n_kt + kt; item (batch
  entry b, k-tile kt) is group b n_kt + kt, b the entry's index in the
  whole batch (0 for an intra-layer vector). Element r adds r to group * R.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib.wiring import In

from fixar.config import FixarConfig
from fixar.config.bfp import BFP_CONV_BITS, BFP_STREAMS
from fixar.config.timing import BFP_ITEM_STAGES, bfp_tile_period
from fixar.gen.lib.bfp_round import code
from fixar.gen.lib.noise import hash_rounds
from fixar.gen.lib.pipe import delay, reg
from fixar.gen.units.bfp_convert import BfpConvert


def op_ports(cfg: FixarConfig) -> dict:
    """The BFP fields of the ARRAY instruction (every array has them; without
    the front they are ignored and the compiler refuses BFP products)."""
    mb = max(cfg.bfp.widths)
    return {"op_bfp_w": In(range(mb + 1)), "op_bfp_x": In(range(mb + 1)),
            "op_bfp_stream": In(range(BFP_STREAMS)), "op_bfp_conv": In(range(1 << BFP_CONV_BITS))}


def host_ports(cfg: FixarConfig) -> dict:
    return {"bfp_bases": In(32 * BFP_STREAMS)} if cfg.bfp.in_array else {}


def period_floor(cfg: FixarConfig) -> int:
    return bfp_tile_period(cfg.array.rows)


def advance(m: Module, d: dict, it, j, name: str) -> tuple[Signal, Signal]:
    """The tile step after (it, j)."""
    a_it, a_j = Signal.like(it, name=f"{name}_it"), Signal.like(j, name=f"{name}_j")
    with m.If(j == d["n_kr"] - 1):
        m.d.comb += [a_it.eq(it + 1), a_j.eq(0)]
    with m.Else():
        m.d.comb += [a_it.eq(it), a_j.eq(j + 1)]
    return a_it, a_j


def schedule(m: Module, cfg: FixarConfig, d: dict, pro, run, t, it, j, last_step, fxp32: tuple) -> tuple:
    """This cycle's weight load (two steps ahead) and conversion in a BFP
    operation, muxed with FXP32's ``fxp32`` = (load, l_it, l_j) by ``d``'s
    BFP flag. Returns (load, l_it, l_j, conv), conv the conversion's
    requests: cv, cv_start, cv_i and the converting tile (it, j)."""
    R = cfg.array.rows
    bfp = d["bfp_w"] != 0
    n_it, n_j = advance(m, d, it, j, "bfp_next")          # the step after this one
    nn_it, nn_j = advance(m, d, n_it, n_j, "bfp_next2")   # and the one after that
    z_it, z_j = advance(m, d, 0, 0, "bfp_second")         # the second tile, for the prologue
    single = (d["n_ot"] == 1) & (d["n_kr"] == 1)
    second_last = (n_it == d["n_ot"] - 1) & (n_j == d["n_kr"] - 1)
    load = Signal(name="bfp_load")
    l_it, l_j = Signal.like(it, name="bfp_load_it"), Signal.like(j, name="bfp_load_j")
    conv = {"cv": Signal(name="bfp_cv"), "cv_start": Signal(name="bfp_cv_start"),
            "cv_i": Signal(range(max(R // 2, 2)), name="bfp_cv_i"),
            "it": Signal.like(it, name="bfp_cv_it"), "j": Signal.like(j, name="bfp_cv_j")}
    f_load, f_it, f_j = fxp32
    with m.If(~bfp):
        m.d.comb += [load.eq(f_load), l_it.eq(f_it), l_j.eq(f_j)]
    with m.Elif(pro):
        second = t >= R
        m.d.comb += [load.eq(~second | ((t < 2 * R) & ~single)),
                     l_it.eq(Mux(second, z_it, 0)), l_j.eq(Mux(second, z_j, 0)),
                     conv["cv"].eq(second & (t < R + R // 2)), conv["cv_start"].eq(t == R),
                     conv["cv_i"].eq((t - R)[:len(conv["cv_i"])]), conv["it"].eq(0), conv["j"].eq(0)]
    with m.Elif(run):
        m.d.comb += [load.eq((t < R) & ~last_step & ~second_last), l_it.eq(nn_it), l_j.eq(nn_j),
                     conv["cv"].eq((t < R // 2) & ~last_step), conv["cv_start"].eq((t == 0) & ~last_step),
                     conv["cv_i"].eq(t[:len(conv["cv_i"])]), conv["it"].eq(n_it), conv["j"].eq(n_j)]
    return load, l_it, l_j, conv


def seeds(m: Module, d: dict, bases) -> tuple[Signal, Signal]:
    """(W's seed, X's seed) of the operation, from ``bases`` latched with the
    descriptor: the hash in two registered halves, ready three cycles after start."""
    base = Signal(32, name="bfp_base")
    words = [bases[32 * i:32 * (i + 1)] for i in range(BFP_STREAMS)]
    m.d.comb += base.eq(words[0])
    for i, w in enumerate(words[1:], 1):
        with m.If(d["bfp_stream"] == i):
            m.d.comb += base.eq(w)
    out = []
    for n, name in ((0, "w"), (1, "x")):
        key = Signal(32, name=f"bfp_seed_{name}_in")
        m.d.comb += key.eq((base + d["bfp_conv"] + n)[:32])
        half = reg(m, hash_rounds(m, key, 0, 3, f"bfp_seed_{name}_a"), f"bfp_seed_{name}_half")
        out.append(reg(m, hash_rounds(m, half, 3, 3, f"bfp_seed_{name}_b"), f"bfp_seed_{name}"))
    return out[0], out[1]


def batch_tiles(d: dict, N: int):
    """A gradient product's batch tiles over all cores (its reduction: each
    core's n_kt tiles of its own batch slice, whole groups by the compiler's check)."""
    return N * d["n_kt"]


def item_groups(m: Module, cfg: FixarConfig, d: dict, t, j, k_tile, pipe: int) -> list:
    """Each core's item group, delayed to meet the item's data: b n_kt + kt
    (batch entry b, reduction tile kt), or in a gradient product, whose item
    is feature k = t's X^T row of batch tile j of the core's slice,
    k n_bt + (n n_kt + j) (X grouped along the whole batch)."""
    N = cfg.array.cores
    out = []
    for n in range(N):
        kt = k_tile(d, j, n, N)
        b = Mux(d["intra"], 0, n * d["slots"] + t)
        g = Signal(32, name=f"bfp_item_group_{n}")
        m.d.comb += g.eq(Mux(d["grad"], t * batch_tiles(d, N) + n * d["n_kt"] + j, b * d["n_kt"] + kt)[:32])
        out.append(delay(m, g, pipe, f"bfp_item_group_{n}"))
    return out


def weight_groups(cfg: FixarConfig, d: dict, conv: dict, n: int, k_tile) -> tuple:
    """(group of column 0, the step between columns) of the tile core ``n``
    converts: output feature i = it C + c and reduction tile kt give group
    i n_kt + kt (W along its inputs, forward; along its outputs, transposed:
    the descriptor's tiles are the product's either way), or in a gradient
    product, whose "weights" are D's rows of batch tile j of the core's
    slice, i n_bt + (n n_kt + j) (D grouped along the whole batch)."""
    C, N = cfg.array.cols, cfg.array.cores
    nbt = batch_tiles(d, N)
    i0 = conv["it"] * C
    group0 = Mux(d["grad"], i0 * nbt + n * d["n_kt"] + conv["j"], i0 * d["n_kt"] + k_tile(d, conv["j"], n, N))
    return group0[:32], Mux(d["grad"], nbt, d["n_kt"])


def item_converters(m: Module, cfg: FixarConfig, d: dict, a_data: list, valid, groups: list, seed_x) -> list:
    """Each core's item in a BFP operation: converted, then back to codes
    (BFP_ITEM_STAGES later); the item as it is otherwise."""
    R, ab = cfg.array.rows, cfg.pe.act32.bits
    bfp = d["bfp_x"] != 0
    out = []
    for n, a in enumerate(a_data):
        cv = BfpConvert(cfg)
        m.submodules[f"bfp_item_{n}"] = cv
        m.d.comb += [cv.valid.eq(valid & bfp), cv.q.eq(a), cv.m.eq(d["bfp_x"]), cv.seed.eq(seed_x),
                     cv.group.eq(groups[n])]
        codes = Signal(unsigned(R * ab), name=f"bfp_item_codes_{n}")
        # the code stage (BFP_ITEM_STAGES = the converter's and this one)
        for r in range(R):
            m.d.sync += codes[r * ab:(r + 1) * ab].eq(code(cv.mant[r], cv.shift, ab))
        out.append(Mux(bfp, codes, a))
    assert BfpConvert.LATENCY + 1 == BFP_ITEM_STAGES
    return out


def late(m: Module, d: dict, value, name: str, pulse: bool = False):
    """``value`` as the cores see it: BFP_ITEM_STAGES later in an operation
    whose items convert. A ``pulse`` enters the delay only in such an
    operation: an operation's last pulse (its done) would otherwise come out
    of the delay again in the next operation, had that one converted items."""
    items = d["bfp_x"] != 0
    v = Signal(value.shape(), name=f"bfp_early_{name}")
    m.d.comb += v.eq(value & items if pulse else value)
    return Mux(items, delay(m, v, BFP_ITEM_STAGES, f"bfp_late_{name}"), value)
