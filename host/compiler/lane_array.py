"""One fully connected layer laid out for the lane array (docs/bfp.md,
"The lane array"): its two memory images, the run's parameters, the order
in which its sums come out, and its cycles from the cycle model.

Weight word t x groups + k: for each column c, the 16 (``rows``) weight
mantissas of output t x columns + c in group k, sign-extended to
``mant_bits``, then the group's s_w (``exp_bits``, signed). Activation word
b x groups + k: the ``rows`` activation words of group k, lane l's m_a-bit
mantissa (vector b x lanes + l) at bits l x m_a up, then each lane's
s_a + frac_extra. Outputs, vectors and groups past the layer's are zeros.
Out come the tiles in order, each as lanes(m_a) rows of every column's sum
(a tile of the last batch pass: one row per vector it holds).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from fixar.config import FixarConfig
from fixar.config.bfp import lane_array_shape
from fixar.config.timing import lane_array_layer_cycles
from fixar.golden.bfp import BfpTensor


@dataclass(frozen=True)
class LaneLayer:
    """What the host writes and starts for one layer, and how to read it back."""

    w_words: list[int]
    a_words: list[int]
    tiles: int
    groups: int
    passes: int
    last_lanes: int         # the vectors of the last batch pass
    w_sel: int
    a_sel: int
    outputs: int
    batch: int
    cycles: int             # the cycle model's, start to last sum


def _field(value: int, bits: int, what: str) -> int:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} does not fit the lane array's {bits}-bit exponent field")
    return value & ((1 << bits) - 1)


def lay_out(cfg: FixarConfig, w: BfpTensor, a: BfpTensor) -> LaneLayer:
    """W (M x K, groups along K) and the batch ``a`` (B x K, groups along K)."""
    sh = lane_array_shape(cfg)
    lw, f = sh.lanes, sh.lanes.fmac
    m_w, m_a = w.fmt.mantissa_bits, a.fmt.mantissa_bits
    if w.mant.shape[1:] != a.mant.shape[1:] or w.fmt.group != f.rows or a.fmt.group != f.rows:
        raise ValueError(f"both operands need the same groups of {f.rows} along the reduction")
    (outputs, groups, _), batch = w.mant.shape, a.mant.shape[0]
    lanes = lw.lanes(m_a)
    tiles, passes = ceil(outputs / sh.columns), ceil(batch / lanes)
    if tiles * groups > sh.w_depth or passes * groups > sh.a_depth:
        raise ValueError(f"a layer of {outputs} x {groups * f.rows} for {batch} vectors needs "
                         f"{tiles * groups} weight and {passes * groups} activation words; "
                         f"the lane array has {sh.w_depth} and {sh.a_depth}")
    s_w, s_a = w.lsb_exp + w.frac, a.lsb_exp + a.frac + f.frac_extra
    mmask, e = (1 << f.mant_bits) - 1, sh.exp_bits
    w_words = []
    for t in range(tiles):
        for k in range(groups):
            word = 0
            for c in range(sh.columns):
                i = t * sh.columns + c
                if i >= outputs:
                    continue
                field = sum((int(v) & mmask) << (r * f.mant_bits) for r, v in enumerate(w.mant[i, k]))
                field |= _field(int(s_w[i, k]), e, f"weight group ({i}, {k}): exponent") << (f.rows * f.mant_bits)
                word |= field << (c * sh.w_column_bits)
            w_words.append(word)
    amask = (1 << m_a) - 1
    a_words = []
    for b in range(passes):
        js = [j for j in range(b * lanes, (b + 1) * lanes) if j < batch]
        for k in range(groups):
            word = 0
            for r in range(f.rows):
                packed = sum((int(a.mant[j, k, r]) & amask) << (lane * m_a) for lane, j in enumerate(js))
                word |= packed << (r * lw.word_bits)
            for lane, j in enumerate(js):
                exp = _field(int(s_a[j, k]), e, f"vector {j}, group {k}: exponent")
                word |= exp << (f.rows * lw.word_bits + lane * e)
            a_words.append(word)
    widths = list(cfg.bfp.widths)
    last_lanes = batch - (passes - 1) * lanes
    return LaneLayer(w_words, a_words, tiles, groups, passes, last_lanes, widths.index(m_w), widths.index(m_a),
                     outputs, batch, lane_array_layer_cycles(cfg, outputs, groups * f.rows, batch, m_w, m_a))


def read_back(cfg: FixarConfig, layer: LaneLayer, rows: list[list[int]]) -> list[list[int]]:
    """The (M, B) sums from the rows the array handed out, in their order."""
    sh = lane_array_shape(cfg)
    lanes = sh.lanes.lanes(cfg.bfp.widths[layer.a_sel])
    order = [(t * sh.columns, b * lanes + lane) for t in range(layer.tiles) for b in range(layer.passes)
             for lane in range(layer.last_lanes if b == layer.passes - 1 else lanes)]
    if len(rows) != len(order):
        raise ValueError(f"{len(rows)} rows out of the lane array, {len(order)} expected")
    out = [[0] * layer.batch for _ in range(layer.outputs)]
    for (first, j), row in zip(order, rows):
        for c, v in enumerate(row):
            if first + c < layer.outputs:
                out[first + c][j] = v
    return out
