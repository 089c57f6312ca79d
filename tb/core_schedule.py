"""The stream a controller feeds one array core for a layer, and its cycle count.

Pure Python (no cocotb): the bench drives it, the cycle model counts it, and
the future hardware controller must produce the same stream.

Order: output tiles (C rows of W) outer, k-tiles (R columns of W) inner; per
tile, one item per batch slot (a vector in FXP32, a vector pair in FXP16).
Tile n+1's R weight rows load into the shadow registers during tile n, one
row per cycle, so a tile takes P = max(slots, R) cycles; the first tile's
rows load in a prologue of R cycles and the last output leaves LATENCY
cycles after the last item.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fixar.config import ActFunc, FixarConfig, PEMode


@dataclass
class Layer:
    W: np.ndarray          # (M, K) weight codes
    X: np.ndarray          # (K, B) activation codes (act32 or act16 by mode)
    bias: np.ndarray       # (M,) out codes
    func: ActFunc
    mode: PEMode


def slots(layer: Layer) -> int:
    B = layer.X.shape[1]
    return B if layer.mode == PEMode.FXP32 else math.ceil(B / 2)


def cycles(cfg: FixarConfig, layer: Layer, latency: int) -> int:
    """Cycle model: cycles from the first input (prologue included) up to and
    including the one in which the last output is visible."""
    R, C = cfg.array.rows, cfg.array.cols
    M, K = layer.W.shape
    tiles = math.ceil(M / C) * math.ceil(K / R)
    S = slots(layer)
    return R + (tiles - 1) * max(S, R) + S + latency


def stream(cfg: FixarConfig, layer: Layer):
    """Yield one dict of port values per cycle (prologue and tiles; no drain)."""
    R, C = cfg.array.rows, cfg.array.cols
    pe = cfg.pe
    L, wb, ob = pe.lane_bits, pe.weight.bits, pe.out.bits
    W, X, bias = layer.W, layer.X, layer.bias
    M, K = W.shape
    B = X.shape[1]
    S = slots(layer)
    if S > cfg.array.psum_slots:
        raise ValueError(f"batch of {B} needs {S} partial-sum slots; the core has "
                         f"array.psum_slots = {cfg.array.psum_slots}")
    n_it, n_kt = math.ceil(M / C), math.ceil(K / R)
    Wp = np.zeros((n_it * C, n_kt * R), dtype=np.int64)
    Wp[:M, :K] = W
    bp = np.zeros(n_it * C, dtype=np.int64)
    bp[:M] = bias
    wmask, omask, lmask = (1 << wb) - 1, (1 << ob) - 1, (1 << L) - 1

    # Activation words per (k-tile, slot): R words packed into one integer.
    Xp = np.zeros((n_kt * R, 2 * S if layer.mode == PEMode.FXP16 else S), dtype=np.int64)
    Xp[:K, :B] = X
    if layer.mode == PEMode.FXP32:
        words = Xp & ((1 << (2 * L)) - 1)
    else:
        words = ((Xp[:, 1::2] & lmask) << L) | (Xp[:, 0::2] & lmask)

    def pack(values, width, mask):
        out = 0
        for i, v in enumerate(values):
            out |= (int(v) & mask) << (i * width)
        return out

    def w_row(tile, r):
        it, kt = divmod(tile, n_kt)
        return pack(Wp[it * C:(it + 1) * C, kt * R + r], wb, wmask)

    idle = dict(w_ld=0, w_row=0, w_data=0, w_swap=0, valid=0, a=0, slot=0, first=0, last=0,
                bias=0, func=int(layer.func), mode=int(layer.mode))
    n_tiles = n_it * n_kt
    for r in range(R):  # prologue: tile 0's weights
        yield {**idle, "w_ld": 1, "w_row": r, "w_data": w_row(0, r)}
    P = max(S, R)
    for tile in range(n_tiles):
        it, kt = divmod(tile, n_kt)
        b_word = pack(bp[it * C:(it + 1) * C], ob, omask)
        for t in range(P):
            item = dict(idle)
            if t == 0:
                item["w_swap"] = 1
            if t < R and tile + 1 < n_tiles:
                item.update(w_ld=1, w_row=t, w_data=w_row(tile + 1, t))
            if t < S:
                item.update(valid=1, slot=t, first=int(kt == 0), last=int(kt == n_kt - 1), bias=b_word,
                            a=pack(words[kt * R:(kt + 1) * R, t], 2 * L, (1 << (2 * L)) - 1))
            yield item


def unpack_outputs(cfg: FixarConfig, layer: Layer, outputs: list[tuple[int, int, int]]) -> np.ndarray:
    """(slot, out_lo, out_hi) in arrival order -> (M, B) signed codes."""
    C, ob = cfg.array.cols, cfg.pe.out.bits
    M, B = layer.W.shape[0], layer.X.shape[1]
    S = slots(layer)
    Y = np.zeros((math.ceil(M / C) * C, B), dtype=np.int64)

    def signed(v):
        return v - (1 << ob) if v >> (ob - 1) else v

    for n, (slot, lo, hi) in enumerate(outputs):
        it = n // S
        for c in range(C):
            y_lo = signed((lo >> (c * ob)) & ((1 << ob) - 1))
            y_hi = signed((hi >> (c * ob)) & ((1 << ob) - 1))
            if layer.mode == PEMode.FXP32:
                Y[it * C + c, slot] = y_lo
            else:
                Y[it * C + c, 2 * slot] = y_lo
                if 2 * slot + 1 < B:
                    Y[it * C + c, 2 * slot + 1] = y_hi
    return Y[:M]
