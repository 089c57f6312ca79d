"""Stimulus for the PE bench: directed corners and seeded random traces.

Pure numpy (no cocotb), so tests can inspect what the bench will drive. A
trace is a dict of equal-length int64 arrays, one entry per input cycle:
mode, acc_en, clear, a (activation word bit pattern), w (weight code),
rnd_lo, rnd_hi (random words; ignored unless the output rounds stochastically).
"""
from __future__ import annotations

import numpy as np

from fixar.config import PEConfig, PEMode

FIELDS = ("mode", "acc_en", "clear", "a", "w", "rnd_lo", "rnd_hi")


class TraceBuilder:
    def __init__(self, cfg: PEConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.rows: dict[str, list[int]] = {f: [] for f in FIELDS}

    # Activation words from lane or FXP32 codes.
    def word(self, mode: PEMode, lo: int, hi: int | None = None) -> int:
        cfg = self.cfg
        if mode == PEMode.FXP32:
            return lo & ((1 << cfg.act32.bits) - 1)
        mask = (1 << cfg.lane_bits) - 1
        return ((hi & mask) << cfg.lane_bits) | (lo & mask)

    def push(self, mode, a, w, acc_en=1, clear=0, rnd_lo=None, rnd_hi=None) -> None:
        top = 1 << self.cfg.rnd_bits
        self.rows["mode"].append(int(mode))
        self.rows["acc_en"].append(int(acc_en))
        self.rows["clear"].append(int(clear))
        self.rows["a"].append(int(a))
        self.rows["w"].append(int(w))
        self.rows["rnd_lo"].append(int(self.rng.integers(top)) if rnd_lo is None else rnd_lo)
        self.rows["rnd_hi"].append(int(self.rng.integers(top)) if rnd_hi is None else rnd_hi)

    def build(self) -> dict[str, np.ndarray]:
        return {f: np.asarray(v, dtype=np.int64) for f, v in self.rows.items()}


def special_acts(cfg: PEConfig, mode: PEMode) -> list[int]:
    fmt = cfg.act32 if mode == PEMode.FXP32 else cfg.act16
    shift = cfg.shift32 if mode == PEMode.FXP32 else cfg.shift16
    vals = {0, 1, -1, 2, fmt.max_int, fmt.min_int, fmt.max_int - 1, fmt.min_int + 1}
    if shift > 0:  # exact ties of the output rounding (with weight +-1)
        half = 1 << (shift - 1)
        vals |= {half, -half, 3 * half, -3 * half, half + 1, half - 1}
    return sorted(v for v in vals if fmt.min_int <= v <= fmt.max_int)


def special_weights(cfg: PEConfig) -> list[int]:
    f = cfg.weight
    return sorted({0, 1, -1, 2, -2, f.max_int, f.min_int, f.max_int - 1, f.min_int + 1, 1 << f.frac})


def corners(cfg: PEConfig, mode: PEMode, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Directed cases; see the inline list. Deterministic apart from rnd words."""
    t = TraceBuilder(cfg, rng)
    acts, weights = special_acts(cfg, mode), special_weights(cfg)
    act_fmt = cfg.act32 if mode == PEMode.FXP32 else cfg.act16
    # 1. Every special weight x special activation as a one-term sum
    #    (0, +-1 LSB, max, min, rounding ties). In FXP16 the high lane
    #    carries a different activation so the lanes cannot mask each other.
    for i, w in enumerate(weights):
        for j, x in enumerate(acts):
            t.push(mode, t.word(mode, x, acts[(i + j + 1) % len(acts)]), w, clear=1)
    # 2. Saturation both ways: a few largest products of each sign.
    for w, x in ((cfg.weight.max_int, act_fmt.max_int), (cfg.weight.min_int, act_fmt.min_int),
                 (cfg.weight.max_int, act_fmt.min_int), (cfg.weight.min_int, act_fmt.max_int)):
        for k in range(6):
            t.push(mode, t.word(mode, x, -x if mode == PEMode.FXP16 else None), w, clear=int(k == 0))
    # 3. Accumulator wrap-around: more than 2**guard_bits largest products.
    n = (1 << cfg.guard_bits) + 37
    x = act_fmt.min_int
    for k in range(n):
        t.push(mode, t.word(mode, x, x), cfg.weight.min_int, clear=int(k == 0))
    # 4. Hold (acc_en = 0) in the middle of a sum, then continue.
    for k in range(12):
        t.push(mode, t.word(mode, 3, -5), 7 + k, acc_en=int(not 4 <= k < 9), clear=int(k == 0))
    # 5. Clear during accumulation: clear with acc_en (restart with this
    #    product) and clear without acc_en (restart from zero).
    for k in range(10):
        t.push(mode, t.word(mode, 1000 + k, -1000 - k), 12345, clear=int(k in (0, 4)))
    for k in range(6):
        t.push(mode, t.word(mode, 77, 88), -999, clear=int(k in (0, 3)), acc_en=int(k != 3))
    # 6. Mode switch mid-accumulation: the sums are shared by both modes.
    other = PEMode.FXP16 if mode == PEMode.FXP32 else PEMode.FXP32
    for k in range(10):
        m = mode if k < 5 else other
        t.push(m, t.word(m, 4097 - k, 12 + k), -31 + 5 * k, clear=int(k == 0))
    return t.build()


def _codes(rng, n: int, lo: int, hi: int, frac: int) -> np.ndarray:
    """Operand codes from a mixture: full range, around +-1.0, a few LSBs, extremes."""
    kind = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    full = rng.integers(lo, hi + 1, size=n)
    one = min(1 << frac, hi)
    near = rng.integers(-one, one + 1, size=n)
    tiny = rng.integers(-16, 17, size=n)
    ext = rng.choice(np.array([lo, hi, 0, 1, -1, lo + 1, hi - 1]), size=n)
    out = np.select([kind == 0, kind == 1, kind == 2], [full, near, tiny], ext)
    return np.clip(out, lo, hi)


def random_trace(cfg: PEConfig, n: int, rng: np.random.Generator, mode: PEMode | None,
                 switch_prob: float = 0.0) -> dict[str, np.ndarray]:
    """``n`` random cycles: sums of random length (mostly short, some long),
    random holds; fixed ``mode`` or, if None, random modes that also switch
    mid-sum with probability ``switch_prob`` per cycle."""
    seg = np.where(rng.random(n) < 0.05, rng.integers(64, 1500, n), rng.geometric(1 / 12, n))
    starts = np.cumsum(seg)
    clear = np.zeros(n, dtype=np.int64)
    clear[0] = 1
    clear[starts[starts < n]] = 1
    acc_en = (rng.random(n) < 0.9).astype(np.int64)
    if mode is None:
        seg_mode = rng.integers(0, 2, n)
        idx = np.maximum.accumulate(np.where(clear == 1, np.arange(n), 0))
        modes = seg_mode[idx]
        flip = rng.random(n) < switch_prob
        modes = modes ^ (np.cumsum(flip) & 1)
    else:
        modes = np.full(n, int(mode), dtype=np.int64)
    w = _codes(rng, n, cfg.weight.min_int, cfg.weight.max_int, cfg.weight.frac)
    a32 = _codes(rng, n, cfg.act32.min_int, cfg.act32.max_int, cfg.act32.frac)
    lo16 = _codes(rng, n, cfg.act16.min_int, cfg.act16.max_int, cfg.act16.frac)
    hi16 = _codes(rng, n, cfg.act16.min_int, cfg.act16.max_int, cfg.act16.frac)
    lane = (1 << cfg.lane_bits) - 1
    word16 = ((hi16 & lane) << cfg.lane_bits) | (lo16 & lane)
    word32 = a32 & ((1 << cfg.act32.bits) - 1)
    top = 1 << cfg.rnd_bits
    return {
        "mode": modes.astype(np.int64),
        "acc_en": acc_en,
        "clear": clear,
        "a": np.where(modes == PEMode.FXP16, word16, word32).astype(np.int64),
        "w": w.astype(np.int64),
        "rnd_lo": rng.integers(0, top, n),
        "rnd_hi": rng.integers(0, top, n),
    }


def concat(*traces: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f: np.concatenate([t[f] for t in traces]) for f in FIELDS}
