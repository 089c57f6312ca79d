"""FAST's fMAC column for block floating point, the golden half (docs/bfp.md,
"The fMAC"): what one column computes pass by pass, on Python integers, and
the passes of a BFP dot product.

A pass multiplies chunk p of every weight mantissa of a group by chunk q of
every activation mantissa (2-bit chunks, unsigned except the top chunk of a
mantissa's width, which is signed), sums the column, and adds the sum at
4^(p + q) to the group sum G; the group's last pass adds G * 2^scale to the
wide sum. G and the wide sum wrap at their widths (fixar.config.bfp.FmacShape),
as the hardware's registers do. With scale = s_w + s_a + frac_extra (s: each
group's mantissa LSB in code units) the wide sum of a dot product is the
exact sum of the BFP codes' products times 2^frac_extra: the FXP32 product
of the converted codes, before its one rounding.
"""
from __future__ import annotations

import numpy as np

from fixar.config import FixarConfig
from fixar.config.bfp import CHUNK_BITS, FmacShape, fmac_shape
from fixar.golden.bfp import BfpTensor

FIELDS = ("valid", "p", "q", "w_top", "a_top", "first", "last", "clear", "scale")


def wrap(x: int, bits: int) -> int:
    """x modulo 2^bits as a signed two's-complement value."""
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def chunk(x: int, k: int, top: bool) -> int:
    """Chunk k (bits 2k+1..2k) of the two's-complement integer x; signed when ``top``."""
    raw = (x >> (CHUNK_BITS * k)) & ((1 << CHUNK_BITS) - 1)
    return raw - (1 << CHUNK_BITS) if top and raw >> (CHUNK_BITS - 1) else raw


def column_trace(cfg: FixarConfig, trace: dict[str, np.ndarray]) -> list[int]:
    """The wide sum after every valid last pass of ``trace`` (FIELDS, and
    ``wm``/``am`` of shape (cycles, rows)), in order."""
    sh = fmac_shape(cfg)
    g = acc = 0
    out = []
    cols = {k: [int(v) for v in trace[k]] for k in FIELDS}
    wm, am = trace["wm"].tolist(), trace["am"].tolist()
    for i in range(len(cols["valid"])):
        if not cols["valid"][i]:
            continue
        p, q, wt, at = cols["p"][i], cols["q"][i], cols["w_top"][i], cols["a_top"][i]
        col = sum(chunk(w, p, wt) * chunk(a, q, at) for w, a in zip(wm[i], am[i]))
        g = wrap((0 if cols["first"][i] else g) + (col << (CHUNK_BITS * (p + q))), sh.group_bits)
        if cols["last"][i]:
            shifted = wrap(g << cols["scale"][i], sh.acc_bits)
            acc = wrap((0 if cols["clear"][i] else acc) + shifted, sh.acc_bits)
            out.append(acc)
    return out


def group_passes(sh: FmacShape, wm, am, m_w: int, m_a: int, scale: int, clear: bool) -> dict[str, np.ndarray]:
    """The passes of one group: weight chunks outer, activation chunks inner
    ((m_w / 2) (m_a / 2) cycles); ``wm``/``am`` the group's ``rows`` mantissas."""
    cw, ca = m_w // CHUNK_BITS, m_a // CHUNK_BITS
    n = cw * ca
    p, q = np.divmod(np.arange(n), ca)
    one = np.ones(n, dtype=np.int64)
    return {"valid": one, "p": p, "q": q, "w_top": (p == cw - 1).astype(np.int64),
            "a_top": (q == ca - 1).astype(np.int64), "first": (np.arange(n) == 0).astype(np.int64),
            "last": (np.arange(n) == n - 1).astype(np.int64), "clear": (np.arange(n) == n - 1) & clear,
            "scale": one * scale, "wm": np.tile(np.asarray(wm, dtype=np.int64), (n, 1)),
            "am": np.tile(np.asarray(am, dtype=np.int64), (n, 1))}


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([np.asarray(t[k], dtype=np.int64) for t in parts]) for k in parts[0]}


def dot_passes(cfg: FixarConfig, w: BfpTensor, a: BfpTensor, i: int, j: int) -> dict[str, np.ndarray]:
    """The passes of output (i, j) of W @ X: row i of ``w`` (W, groups along
    its input axis) with row j of ``a`` (X.T, groups along the same axis),
    group by group, the first group clearing the wide sum. Every scale is
    s_w + s_a + frac_extra; an all-zero group (mantissas 0, its offset the
    lowest) may fall outside 0..scale_max and is sent with scale 0."""
    sh = fmac_shape(cfg)
    if w.mant.shape[1:] != a.mant.shape[1:] or w.fmt.group != sh.rows or a.fmt.group != sh.rows:
        raise ValueError(f"both operands need the same groups of {sh.rows} along the reduction")
    s_w = w.lsb_exp + w.frac
    s_a = a.lsb_exp + a.frac
    parts = []
    for k in range(w.mant.shape[1]):
        wm, am = w.mant[i, k], a.mant[j, k]
        scale = int(s_w[i, k] + s_a[j, k]) + sh.frac_extra
        if not wm.any() or not am.any():
            scale = 0
        elif not 0 <= scale <= sh.scale_max:
            raise ValueError(f"group {k}: scale {scale} outside 0..{sh.scale_max}")
        parts.append(group_passes(sh, wm, am, w.fmt.mantissa_bits, a.fmt.mantissa_bits, scale, k == 0))
    return concat(parts)
