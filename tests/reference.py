"""Deliberately slow, obviously-correct Python-int references for the golden model.

They use unbounded Python integers and Fraction, no numpy tricks, so a bug
in the vectorized golden code cannot be copied here by construction.
"""
from __future__ import annotations

import math
from fractions import Fraction

from fixar.config import FixedFormat, PEConfig, PEMode


def overflow(q: int, fmt: FixedFormat) -> int:
    if fmt.overflow == "saturate":
        return max(fmt.min_int, min(fmt.max_int, q))
    q &= (1 << fmt.bits) - 1
    return q - (1 << fmt.bits) if fmt.signed and q >> (fmt.bits - 1) else q


def round_shift(v: int, shift: int, fmt: FixedFormat, rnd: int = 0, rnd_bits: int = 0) -> int:
    """v / 2**shift rounded by fmt.rounding, then fmt.overflow."""
    if fmt.rounding == "floor":
        q = v // (1 << shift)
    elif fmt.rounding == "rne":
        q = round(Fraction(v, 1 << shift))  # Python rounds halves to even
    elif fmt.rounding == "zero":
        q = int(Fraction(v, 1 << shift))    # int() truncates toward zero
    else:
        q = (v + (rnd >> (rnd_bits - shift) if shift else 0)) // (1 << shift)
    return overflow(q, fmt)


def signed(u: int, bits: int) -> int:
    u &= (1 << bits) - 1
    return u - (1 << bits) if u >> (bits - 1) else u


def pe_step_outputs(cfg: PEConfig, mode, acc_en, clear, a, w, rnd_lo, rnd_hi):
    """Cycle-by-cycle PE reference (list in, list of (y_lo, y_hi) out)."""
    L, acc_lo, acc_hi, out = cfg.lane_bits, 0, 0, []
    for m, en, clr, word, wt, r_lo, r_hi in zip(mode, acc_en, clear, a, w, rnd_lo, rnd_hi):
        lo_u = word & ((1 << L) - 1)
        lo = signed(lo_u, L) if m == PEMode.FXP16 else lo_u
        hi = signed(word >> L, L)
        acc_lo = signed((0 if clr else acc_lo) + (wt * lo if en else 0), cfg.acc_bits)
        acc_hi = signed((0 if clr else acc_hi) + (wt * hi if en else 0), cfg.acc_bits)
        if m == PEMode.FXP32:
            y = round_shift(acc_hi * (1 << L) + acc_lo, cfg.shift32, cfg.out, r_lo, cfg.rnd_bits)
            out.append((y, 0))
        else:
            out.append((round_shift(acc_lo, cfg.shift16, cfg.out, r_lo, cfg.rnd_bits),
                        round_shift(acc_hi, cfg.shift16, cfg.out, r_hi, cfg.rnd_bits)))
    return out


def adam_reference(cfg, codes, lr_code: int, w: int, g: int, m: int, v: int) -> tuple[int, int, int]:
    """One fixed-point Adam update of one weight, with Python ints and Fractions
    (docs/adam.md), independent of fixar.golden.adam's numpy limbs and shifts."""
    ad, wf = cfg.adam, cfg.pe.weight
    cf, rf = ad.coef_frac, ad.rsqrt_frac
    square = lambda x: round(Fraction(x * x) * Fraction(2) ** (ad.v.frac - 2 * ad.grad.frac))  # exact when d >= 0
    # g clipped to the largest magnitude whose square v holds (searched, not derived)
    top = math.isqrt(math.floor(Fraction(ad.v.max_int) / Fraction(2) ** (ad.v.frac - 2 * ad.grad.frac)))
    while square(top) > ad.v.max_int:
        top -= 1
    while square(top + 1) <= ad.v.max_int:
        top += 1
    g = max(-min(top, ad.grad.max_int), min(g, top, ad.grad.max_int))
    m = round_shift(codes.b1 * m + codes.c1 * g * 2 ** (ad.m.frac - ad.grad.frac), cf, ad.m)
    g2 = min(square(g), ad.v.max_int)
    v = round_shift(codes.b2 * v + codes.c2 * g2, cf, ad.v)
    x = v + codes.e2
    e = x.bit_length() - 1
    k = e - ad.v.frac
    odd = k % 2
    mant = (x * 2 ** rf // 2 ** e) * 2 ** odd  # floor-normalised mantissa in [1, 4), rf fraction bits
    half = ad.rsqrt_table_bits - 1
    seg = (mant - (2 ** (rf + odd))) // 2 ** (rf + odd - half)
    y = ad.rsqrt_table()[seg + odd * 2 ** half]
    for _ in range(ad.rsqrt_newton):
        t1 = y * y // 2 ** rf
        t2 = mant * t1 // 2 ** rf
        y = y * (3 * 2 ** rf - t2) // 2 ** (rf + 1)
    s = -(k - odd) // 2
    p = round_shift(m * y, rf, ad.m)
    d = round(Fraction(p * lr_code) * Fraction(2) ** s / 2 ** (ad.m.frac + ad.lr_frac - wf.frac))
    return max(wf.min_int, min(wf.max_int, w - d)), m, v


def vector_reference(cfg, op: str, a: int, b: int, flag: bool, c: int, limit: int | None = None) -> int:
    """One element of a vector-unit operation, from docs/vector.md's rules."""
    fmt, cf = cfg.pe.act32, cfg.vector.coef_frac
    one = 1 << fmt.frac
    sat = lambda x: max(fmt.min_int, min(fmt.max_int, x))
    scale = lambda x: sat(round(Fraction(x * c, 1 << cf)))
    if op == "ADD":
        return sat(a + b)
    if op == "SUB":
        return sat(a - b)
    if op == "SCALE":
        return scale(a)
    if op == "TD":
        return sat(a + (0 if flag else scale(b)))
    if op == "SOFT":
        return sat(b + scale(a - b))
    if op == "RELU_MASK":
        return a if 0 < b < (2 ** (fmt.bits - 1) if limit is None else limit) else 0
    if op == "DTANH":   # at or beyond +-limit b counts as a saturated tanh (+-one)
        top = 2 ** (fmt.bits - 1) if limit is None else limit
        bc = one if abs(b) >= top else max(-one, min(one, b))
        return sat(round(Fraction(a * (one - round(Fraction(bc * bc, one))), one)))
    raise ValueError(op)


def noise_reference(cfg, state: int, n: int, c: int) -> tuple[list[int], int]:
    """Irwin-Hall noise: two xorshift32 words per element, four 16-bit halves."""
    H = cfg.prng.width // 2
    out = []
    for _ in range(n):
        u = 0
        for _ in range(2):
            state ^= (state << 13) & 0xFFFFFFFF
            state ^= state >> 17
            state ^= (state << 5) & 0xFFFFFFFF
            u += (state >> H) + (state & ((1 << H) - 1))
        val = Fraction((u - (2 << H)) * c, 1 << (cfg.vector.coef_frac + H - cfg.pe.act32.frac))
        out.append(math.floor(val + Fraction(1, 2)))   # round half up
    return out, state
