"""The lane array, the golden half (docs/bfp.md, "The lane array"): the
wide sums of one fully connected layer in BFP, straight from the operands'
mantissas and exponents, with no passes, lanes or memories (those are the
hardware's business, fixar.gen.units.bfp_lane_array; the two meet in the
arithmetic alone).

Output i of vector j is sum over groups k of G * 2^s modulo 2^acc_bits,
where G is the group's integer dot product of mantissas and s = s_w + s_a +
frac_extra; a group whose G is not zero must have s in 0..scale_max, as the
lane column's scale port holds it (else ValueError).
"""
from __future__ import annotations

import numpy as np

from fixar.config import FixarConfig
from fixar.config.bfp import lane_shape
from fixar.golden.bfp import BfpTensor
from fixar.golden.fmac import wrap


def layer_sums(cfg: FixarConfig, w: BfpTensor, a: BfpTensor) -> list[list[int]]:
    """(M, B) wide sums of W (M x K, groups along K) times the vectors of
    ``a`` (B x K, groups along K: X transposed), as Python integers."""
    f = lane_shape(cfg).fmac
    if w.mant.shape[1:] != a.mant.shape[1:] or w.fmt.group != f.rows or a.fmt.group != f.rows:
        raise ValueError(f"both operands need the same groups of {f.rows} along the reduction")
    g = np.einsum("ikr,jkr->ijk", w.mant.astype(np.int64), a.mant.astype(np.int64))
    s = (w.lsb_exp + w.frac)[:, None, :] + (a.lsb_exp + a.frac)[None, :, :] + f.frac_extra
    bad = (g != 0) & ((s < 0) | (s > f.scale_max))
    if bad.any():
        i, j, k = (int(x[0]) for x in np.nonzero(bad))
        raise ValueError(f"output {i}, vector {j}, group {k}: scale {int(s[i, j, k])} outside 0..{f.scale_max}")
    out = [[0] * g.shape[1] for _ in range(g.shape[0])]
    for i, j, k in zip(*np.nonzero(g)):
        out[i][j] += wrap(int(g[i, j, k]), f.group_bits) << int(s[i, j, k])
    return [[wrap(v, f.acc_bits) for v in row] for row in out]
