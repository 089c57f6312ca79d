"""The BFP lane column, the golden half (docs/bfp.md, "Lanes: several
products per PE"): what the column computes pass by pass, on Python
integers, and the passes of a dot product of one weight row with several
batch vectors at once.

A row's activation word packs one m_a-bit mantissa per lane (lane l at bits
l m_a up, ``lane_shape(cfg).lanes(m_a)`` of them; ``a_sel`` picks m_a from
``bfp.widths``). A pass multiplies chunk p of every weight mantissa (signed
when ``w_top``) by every lane's whole mantissa and adds each lane's column
sum at 4^p to that lane's group sum G_l; the group's last pass adds
G_l * 2^scale_l to lane l's wide sum. Lanes the width leaves unused, and
every lane when ``a_sel`` names no width, add zero. G and the wide sums wrap
at the fMAC's widths, as the hardware's registers do.

The hardware multiplies 2-bit chunks of the word and recombines them per
lane; this model takes each lane's mantissa whole, so the two meet only in
the arithmetic.
"""
from __future__ import annotations

import numpy as np

from fixar.config import FixarConfig
from fixar.config.bfp import CHUNK_BITS, lane_shape
from fixar.golden.bfp import BfpTensor
from fixar.golden.fmac import chunk, concat, wrap

FIELDS = ("valid", "p", "w_top", "a_sel", "first", "last", "clear")


def lane_mantissa(word: int, lane: int, m_a: int) -> int:
    """Lane ``lane``'s m_a-bit two's-complement mantissa in ``word``."""
    return wrap(word >> (lane * m_a), m_a)


def lane_trace(cfg: FixarConfig, trace: dict[str, np.ndarray]) -> list[tuple[int, ...]]:
    """Every lane's wide sum after each valid last pass of ``trace`` (FIELDS,
    ``wm`` and ``aw`` of shape (cycles, rows), ``scale`` of shape (cycles, max_lanes))."""
    sh = lane_shape(cfg)
    f, widths = sh.fmac, cfg.bfp.widths
    g = [0] * sh.max_lanes
    acc = [0] * sh.max_lanes
    out = []
    cols = {k: [int(v) for v in trace[k]] for k in FIELDS}
    wm, aw, scale = trace["wm"].tolist(), trace["aw"].tolist(), trace["scale"].tolist()
    for i in range(len(cols["valid"])):
        if not cols["valid"][i]:
            continue
        sel = cols["a_sel"][i]
        m_a = widths[sel] if sel < len(widths) else None
        used = sh.lanes(m_a) if m_a else 0
        wch = [chunk(w, cols["p"][i], cols["w_top"][i]) for w in wm[i]]
        for lane in range(sh.max_lanes):
            col = sum(c * lane_mantissa(a, lane, m_a) for c, a in zip(wch, aw[i])) if lane < used else 0
            g[lane] = wrap((0 if cols["first"][i] else g[lane]) + (col << (CHUNK_BITS * cols["p"][i])),
                           f.group_bits)
        if cols["last"][i]:
            for lane in range(sh.max_lanes):
                shifted = wrap(g[lane] << scale[i][lane], f.acc_bits)
                acc[lane] = wrap((0 if cols["clear"][i] else acc[lane]) + shifted, f.acc_bits)
            out.append(tuple(acc))
    return out


def pack_word(mants, m_a: int) -> int:
    """The activation word of one row: lane l's mantissa at bits l m_a up."""
    return sum((int(v) & ((1 << m_a) - 1)) << (lane * m_a) for lane, v in enumerate(mants))


def lane_dot_passes(cfg: FixarConfig, w: BfpTensor, a: BfpTensor, i: int, js: list[int]) -> dict[str, np.ndarray]:
    """The passes of outputs (i, j) for every j of ``js`` (at most
    ``lanes(m_a)`` of them, lane l holding js[l]) of W @ X: row i of ``w`` (W,
    groups along its input axis) with rows js of ``a`` (X.T), group by group,
    m_w / 2 passes a group, the first group clearing the wide sums. Lane l's
    scale is s_w + s_a + frac_extra, 0 for an all-zero group or an unused lane."""
    sh = lane_shape(cfg)
    f = sh.fmac
    m_w, m_a = w.fmt.mantissa_bits, a.fmt.mantissa_bits
    if w.mant.shape[1:] != a.mant.shape[1:] or w.fmt.group != f.rows or a.fmt.group != f.rows:
        raise ValueError(f"both operands need the same groups of {f.rows} along the reduction")
    if not 0 < len(js) <= sh.lanes(m_a):
        raise ValueError(f"{len(js)} batch vectors for {sh.lanes(m_a)} lanes at {m_a}-bit mantissas")
    s_w, s_a = w.lsb_exp + w.frac, a.lsb_exp + a.frac
    parts = []
    for k in range(w.mant.shape[1]):
        wm = w.mant[i, k]
        scales = [0] * sh.max_lanes
        for lane, j in enumerate(js):
            s = int(s_w[i, k] + s_a[j, k]) + f.frac_extra
            if wm.any() and a.mant[j, k].any():
                if not 0 <= s <= f.scale_max:
                    raise ValueError(f"group {k}, lane {lane}: scale {s} outside 0..{f.scale_max}")
                scales[lane] = s
        words = [pack_word([a.mant[j, k, r] for j in js], m_a) for r in range(f.rows)]
        parts.append(group_passes(cfg, wm, words, m_w, m_a, scales, k == 0))
    return concat(parts)


def group_passes(cfg: FixarConfig, wm, words, m_w: int, m_a: int, scales, clear: bool) -> dict[str, np.ndarray]:
    """The m_w / 2 passes of one group: ``wm`` the rows' weight mantissas,
    ``words`` their activation words at width m_a, ``scales`` one per lane."""
    n = lane_shape(cfg).passes(m_w)
    p = np.arange(n)
    return {"valid": np.ones(n, dtype=np.int64), "p": p, "w_top": (p == n - 1).astype(np.int64),
            "a_sel": np.full(n, cfg.bfp.widths.index(m_a)), "first": (p == 0).astype(np.int64),
            "last": (p == n - 1).astype(np.int64), "clear": ((p == n - 1) & clear).astype(np.int64),
            "wm": np.tile(np.asarray(wm, dtype=np.int64), (n, 1)),
            "aw": np.tile(np.asarray(words, dtype=np.int64), (n, 1)),
            "scale": np.tile(np.asarray(scales, dtype=np.int64), (n, 1))}
