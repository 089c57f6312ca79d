"""The steps of converting a group of fixed-point codes into BFP (docs/bfp.md,
steps 2-6, without the per-tensor base: exact when ``bfp.group_local``
holds), as combinational pieces that the converter unit
(gen/units/bfp_convert.py) and the array core's weight converter
(gen/units/core.py) register as they need.

A group's shift s = bitlen(max |q|) - m + 1 is the mantissa LSB in codes
(log2). Per element, s >= 1 rounds (stochastically: floor(q / 2^s + w / 2^R)
as ((q >> k) + (w >> (R - r))) >> r with r = min(s, R), k = s - r; or to
nearest, ties to even), s <= 0 keeps the code exactly (q << -s); then the
mantissa saturates to m bits. A mantissa's code is mant * 2^s.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed

from fixar.config import FixarConfig


def magnitude(q, bits: int):
    """|q| of a signed ``bits``-bit code, unsigned (-2^(bits-1) has bit length ``bits``)."""
    return Mux(q[-1], -q, q)[:bits]


def bit_length(m: Module, value, bits: int, name: str) -> Signal:
    """The bit length of an unsigned ``bits``-bit value (0 for 0), combinational."""
    n = Signal(range(bits + 1), name=name)
    for i in range(bits):           # the last assignment wins: the highest set bit
        with m.If(value[i]):
            m.d.comb += n.eq(i + 1)
    return n


def shift_shape(cfg: FixarConfig, bits: int):
    """Signed shape of s: from 1 - (widest m) (an all-zero group) to bits - (narrowest m) + 1."""
    lo, hi = 1 - max(cfg.bfp.widths), bits - min(cfg.bfp.widths) + 1
    return signed(max(-lo, hi).bit_length() + 1)


def shift_controls(m: Module, cfg: FixarConfig, s, bits: int, name: str) -> dict:
    """One group's rounding controls from its shift s (combinational)."""
    R = cfg.bfp.rnd_bits
    ctl = {"pos": Signal(name=f"{name}_pos"), "s_pos": Signal(range(bits + 1), name=f"{name}_s_pos")}
    m.d.comb += [ctl["pos"].eq(s > 0), ctl["s_pos"].eq(Mux(s > 0, s, 0))]
    if cfg.bfp.rounding == "stochastic":
        for k in ("kept", "down", "noise_drop"):
            ctl[k] = Signal(range(bits + 1), name=f"{name}_{k}")
        m.d.comb += [ctl["kept"].eq(Mux(ctl["s_pos"] > R, R, ctl["s_pos"])),
                     ctl["down"].eq(ctl["s_pos"] - ctl["kept"]), ctl["noise_drop"].eq(R - ctl["kept"])]
    else:
        ctl["kept"] = ctl["s_pos"]
        ctl["half_less"] = Signal(bits, name=f"{name}_half_less")     # 2^(s-1) - 1 for s >= 1
        m.d.comb += ctl["half_less"].eq(Mux(ctl["pos"], ((1 << ctl["s_pos"]) >> 1) - 1, 0))
    return ctl


def rounding_sum(cfg: FixarConfig, q, word, ctl: dict):
    """An element's code plus its rounding addend, at the LSB's place less the
    bits the final shift keeps (combinational; ``word``: its R-bit random word)."""
    if cfg.bfp.rounding == "stochastic":
        return (q >> ctl["down"]) + (word >> ctl["noise_drop"])
    return q + ctl["half_less"] + Mux(ctl["pos"], (q >> ctl["s_pos"])[0], 0)


def sum_shape(bits: int):
    return signed(bits + 2)


def width_limits(m: Module, cfg: FixarConfig, width, name: str) -> tuple[Signal, Signal]:
    """The m-bit mantissa's range for the run-time width ``width`` (one of bfp.widths)."""
    mb = max(cfg.bfp.widths)
    lo, hi = Signal(signed(mb + 1), name=f"{name}_lo"), Signal(signed(mb + 1), name=f"{name}_hi")
    with m.Switch(width):
        for w in cfg.bfp.widths[:-1]:
            with m.Case(w):
                m.d.comb += [lo.eq(-(1 << (w - 1))), hi.eq((1 << (w - 1)) - 1)]
        with m.Default():           # the widest (the width is one of bfp.widths)
            w = cfg.bfp.widths[-1]
            m.d.comb += [lo.eq(-(1 << (w - 1))), hi.eq((1 << (w - 1)) - 1)]
    return lo, hi


def mantissa(m: Module, cfg: FixarConfig, total, kept, q, s, lo, hi, name: str):
    """The element's saturated mantissa (combinational): the rounded sum shifted
    down by ``kept`` for s >= 1, else the code shifted up (a group whose codes fit
    unrounded has |q| < 2^(m - 1 + s): its low mantissa bits hold it)."""
    mb = max(cfg.bfp.widths)
    up = Signal(range(mb + 1), name=f"{name}_up")
    m.d.comb += up.eq(Mux(s < 0, -s, 0))
    exact = (q[:mb + 1].as_signed() << up)[:mb + 1].as_signed()
    value = Signal(signed(len(total)), name=f"{name}_value")
    m.d.comb += value.eq(Mux(s > 0, total >> kept, exact))
    out = Signal(signed(mb), name=name)
    m.d.comb += out.eq(Mux(value < lo, lo, Mux(value > hi, hi, value)))
    return out


def code(mant, s, bits: int):
    """mant * 2^s as a ``bits``-bit code (combinational; exact: a group with
    s < 0 kept its codes, whose mantissas are multiples of 2^-s)."""
    mb = len(mant)
    down = Mux(s < 0, -s, 0)[:mb.bit_length()]
    up = Mux(s > 0, s, 0)[:max(bits.bit_length(), 1)]
    return Mux(s < 0, mant >> down, (mant.as_signed() << up)[:bits].as_signed())
