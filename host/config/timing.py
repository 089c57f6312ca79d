"""Pipeline latencies and the target clock: the facts of the generated
hardware that the compiler's cycle model needs, derived from the config
alone, with no Amaranth, so the golden path never loads the generator.

The generator builds each pipeline to these numbers and fails elaboration
when the stages it built disagree (fixar.gen.lib.pipe.Stages); every bench
times its outputs by them (the manifest carries them), so a wrong number
here fails a bench too.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from fixar.config import FixarConfig, PEConfig
from fixar.config.bfp import lane_array_shape
from fixar.config.multipliers import get as multiplier

# Register stages of each unit, named as the generator's docstrings name them.
PE_STAGES = 6            # input, products, accumulate, recombine, rounding halves (2) (gen/units/pe.py)
ACTIVATION_STAGES = 7    # input, |x|, table read, its words again, product, point + product, sign and function
# input, products, column sums (carry-save pairs), finished sums (the pairs added to the partial sums),
# the other cores' sums registered where they arrive (an SLR crossing on the U50), cross-core add,
# recombined sum, the roundings' first halves
CORE_FRONT_STAGES = 8
# The core's partial-sum buffer: read with the item's stage 0, registered,
# added in stage 2, written back from stage 3's register, so a read misses
# the writes of the 3 items ahead (a slot's items must be further apart).
PSUM_WRITE_BEHIND = 3
# The QAT quantizer at the core's output (passed through when off): n's sign
# and magnitude; times the magic number (partial products, then
# QUANTIZER_MAGIC_LEVELS adder levels); shifted and clamped; plus the zero
# point; clipped minus the zero point; times Delta (partial products, then
# QUANTIZER_DELTA_LEVELS levels); rounded into pe.act32. Fixed, so that the
# array's latency is one number: a config whose products need more levels is
# rejected (gen/units/core.py), fewer are padded.
QUANTIZER_MAGIC_LEVELS = 3
QUANTIZER_DELTA_LEVELS = 1
QUANTIZER_STAGES = 5 + (1 + QUANTIZER_MAGIC_LEVELS) + (1 + QUANTIZER_DELTA_LEVELS)
ARRAY_PIPE_STAGES = 2    # controller -> cores: the request, then the memories' read
# cores -> stores: each core's outputs registered where they are used (in its
# own SLR, and core 0's again in each other core's for intra-layer stores)
ARRAY_OUT_STAGES = 1
# Adam: inputs; the moments' products, their sums, m rounded and C2 g^2's
# product, v's sum (two halves), v rounded; v + E2, the leading one, normalise, seed; P's product, P rounded,
# q's product; the guard shift, the clamp, the increment, w - update (ADAM_FIXED_STAGES
# counts each product step as one: its adder tree's levels come on top, from
# the operand widths, in adam_stages). Each Newton step: y^2, times the
# mantissa, 3 minus it, times y (ADAM_NEWTON_STAGES, likewise).
ADAM_FIXED_STAGES = 18
ADAM_NEWTON_STAGES = 4
PRNG_STAGES = 0          # the xorshift state is the output
# The BFP fMAC column (gen/units/bfp_column.py): input, chunk products, the
# column's sum, the group sum G, G shifted by the scale, the wide sum's low
# half, its high half (with the low half's carry).
BFP_COLUMN_STAGES = 7
# The BFP lane column (gen/units/bfp_lanes.py): input, the chunk products,
# each multiplier's column sum, the lanes' sums at the activation width,
# the lanes' group sums G, G shifted by each lane's scale, the wide sums'
# low halves, their high halves.
BFP_LANE_STAGES = 8
# The lane array (gen/units/bfp_lane_array.py): a pass is issued, its words
# read from the memories (registered), then the lane columns' stages; the
# run's parameters are taken the cycle before the first pass, and a tile's
# sums leave one lane a cycle from the shadow registers, the first the cycle
# after the tile's last wide sum.
LANE_ARRAY_START_STAGES = 1
LANE_ARRAY_READ_STAGES = 1
# The BFP converter (gen/units/bfp_convert.py): input, magnitudes and the
# hash's first rounds, the group's shift and the last rounds, the rounding
# addend, the shift to the mantissa and its saturation.
BFP_CONVERT_STAGES = 5
# A BFP product in the array (gen/units/array.py, core.py; docs/bfp.md "BFP
# in the array"): each item passes the converter and one stage that turns
# the mantissas back into codes, so a BFP operation's outputs come
# BFP_ITEM_STAGES later; a weight tile converts two PE rows per cycle, each
# pair's codes written BFP_WEIGHT_STAGES cycles after it was issued (the rows
# read, the hash's two halves, the rounding addend, the mantissa, the code).
BFP_CODE_STAGES = 1
BFP_ITEM_STAGES = BFP_CONVERT_STAGES + BFP_CODE_STAGES
BFP_WEIGHT_STAGES = 6
CORE_STAGES = CORE_FRONT_STAGES + ACTIVATION_STAGES + QUANTIZER_STAGES
ARRAY_STAGES = ARRAY_PIPE_STAGES + CORE_STAGES + ARRAY_OUT_STAGES
# Registers inside a multiplier, by kind, ahead of the product's own register
# (the PE's stage 2, the core's stage 1), which every multiplier has. The
# exact one has one: a DSP48E2's M register (beside the register of the part
# multiplied in LUTs, exact_split below), the sum of the parts then going into
# the product register, the DSP's P. In
# one stage the approximate products were LUT logic of 7-9 ns (pe_<name>_logic_ns
# before the cuts), so each is cut where gen/lib/multipliers.py says: the
# operands' magnitudes and leading ones | the fractions and their sum (or
# DRUM's fields) | the shift (or DRUM's k x k product) | the shift back |
# the sign; the truncated array: magnitudes | its rows to a carry-save pair
# | the pair added | the sign.
MULTIPLIER_STAGES = {"exact": 1, "mitchell": 4, "mbm": 4, "drum": 4, "truncated": 3}


def multiplier_stages(pe: PEConfig) -> int:
    """The registers inside the PE's multiplier (MULTIPLIER_STAGES)."""
    return MULTIPLIER_STAGES[multiplier(pe.multiplier).kind]


def pe_stages(pe: PEConfig) -> int:
    return PE_STAGES + multiplier_stages(pe)


def core_stages(pe: PEConfig) -> int:
    return CORE_STAGES + multiplier_stages(pe)


def array_stages(pe: PEConfig) -> int:
    return ARRAY_STAGES + multiplier_stages(pe)


# A wide product is built as partial products that each fit one DSP48E2
# multiplier (27 x 18 signed ports: unsigned chunks of 26 and 17 bits, the
# top chunk signed), registered, then summed by a tree of two-input adds, one
# level per stage (fixar.gen.lib.products).
DSP_PORTS = (27, 18)


def dsp_chunks(bits: int, port: int) -> int:
    return -(-bits // (port - 1))


def product_orientation(a_bits: int, b_bits: int) -> bool:
    """True when ``a`` goes on the wide port (fewer partial products)."""
    wide, narrow = DSP_PORTS
    here = dsp_chunks(a_bits, wide) * dsp_chunks(b_bits, narrow)
    return here <= dsp_chunks(b_bits, wide) * dsp_chunks(a_bits, narrow)


def exact_split(a_bits: int, b_bits: int, lut_bits: int) -> int | None:
    """How many low bits of the wide operand ``a`` (a_bits >= b_bits)
    multiply in LUTs, its top bits going to one DSP48E2 (27 x 18 signed
    ports); None when the product is left to synthesis whole: it fits one
    DSP, the narrow operand needs more than one, or the low part is wider
    than ``lut_bits`` (``pe.lut_product_bits``; 0: never split). The PE's
    32-bit weight times a 17-bit lane is one DSP and a 5 x 17 LUT product
    (gen/lib/multipliers.py), so a PE is two DSPs, not four."""
    wide, narrow = DSP_PORTS
    if b_bits > narrow or a_bits <= wide or a_bits - wide > lut_bits:
        return None
    return a_bits - wide


def partial_products(a_bits: int, b_bits: int) -> int:
    wide, narrow = DSP_PORTS
    if not product_orientation(a_bits, b_bits):
        a_bits, b_bits = b_bits, a_bits
    return dsp_chunks(a_bits, wide) * dsp_chunks(b_bits, narrow)


def product_levels(a_bits: int, b_bits: int, addend: bool = False) -> int:
    """Adder-tree levels after the partial products' register (an addend,
    when given, rides in the first add, or takes one of its own)."""
    n, levels = partial_products(a_bits, b_bits), 0
    while n > 1:
        n, levels = -(-n // 2), levels + 1
    return levels + (1 if addend and levels == 0 else 0)


def vector_stages(cfg: FixarConfig) -> int:
    """The vector unit's latency: its longest path, DTANH's (inputs; b
    clipped; b^2; 1 - rne(b^2); a (1 - b^2); its rounding in two halves; the
    choice by operation into the output register), made odd with a register
    more when it is even (the Adam pass's fused soft update needs SOFT's
    latency, this plus one, even: gen/units/trainer.py)."""
    fmt = cfg.pe.act32
    n = 1 + 1 + (1 + product_levels(fmt.frac + 2, fmt.frac + 2)) + 1 \
        + (1 + product_levels(fmt.bits, fmt.frac + 3)) + 2 + 1
    return n if n % 2 else n + 1


def adam_stages(cfg: FixarConfig) -> int:
    """The Adam unit's latency (gen/units/adam.py builds the operands at these widths)."""
    ad = cfg.adam
    rf, coef = ad.rsqrt_frac, ad.coef_frac + 1
    g_m = ad.grad.bits + ad.m.frac - ad.grad.frac
    lv = lambda *pairs: max(product_levels(a, b) for a, b in pairs)
    moments = lv((coef, ad.m.bits), (coef, g_m), (coef, ad.v.bits), (ad.grad.bits, ad.grad.bits)) \
        + lv((coef, ad.v.bits))
    newton = ADAM_NEWTON_STAGES + lv((rf + 1, rf + 1)) + lv((rf + 2, rf + 2)) + lv((rf + 1, rf + 6))
    update = lv((ad.m.bits, rf + 1)) + lv((ad.m.bits, ad.lr_frac + 1))
    return ADAM_FIXED_STAGES + moments + ad.rsqrt_newton * newton + update


@dataclass(frozen=True)
class Timing:
    """Latencies in clock cycles from an input to its output, and the clock."""

    pe: int
    activation: int
    core: int
    array_pipe: int
    array: int
    vector: int
    adam: int
    prng: int
    clock_hz: float


def timing(cfg: FixarConfig) -> Timing:
    return Timing(pe=pe_stages(cfg.pe), activation=ACTIVATION_STAGES, core=core_stages(cfg.pe),
                  array_pipe=ARRAY_PIPE_STAGES, array=array_stages(cfg.pe), vector=vector_stages(cfg),
                  adam=adam_stages(cfg), prng=PRNG_STAGES, clock_hz=cfg.target.clock_mhz * 1e6)


def bfp_tile_period(rows: int) -> int:
    """The shortest tile step of a BFP product: the next tile's rows convert
    two a cycle from the step's start and must be written before its end."""
    return max(rows, -(-rows // 2) + BFP_WEIGHT_STAGES)


def lane_array_layer_cycles(cfg: FixarConfig, fan_out: int, fan_in: int, batch: int, m_w: int, m_a: int) -> int:
    """Cycles of one layer on the lane array, from the cycle ``start`` is
    taken to the last sum out. ceil(M / columns) output tiles, each over
    ceil(B / lanes(m_a)) batch passes; a tile takes a pass per group and
    weight chunk, but at least a cycle per lane it hands out (the shadow
    registers' rate: one output a column a cycle), and the last batch pass
    hands out only the vectors it holds. The last tile's sums leave as soon
    as its passes are done; then come the pipeline's fill and its lanes."""
    sh = lane_array_shape(cfg)
    lanes = sh.lanes.lanes(m_a)
    work = ceil(fan_in / sh.lanes.fmac.rows) * sh.lanes.passes(m_w)
    passes = ceil(batch / lanes)
    last = batch - (passes - 1) * lanes
    per_output_tile = (passes - 1) * max(work, lanes) + max(work, last)
    fill = LANE_ARRAY_START_STAGES + LANE_ARRAY_READ_STAGES + BFP_LANE_STAGES
    return ceil(fan_out / sh.columns) * per_output_tile - max(work, last) + work + fill + last - 1
