"""A variable right shift clamped to a power of two, without a comparator.

min(p >> s, 2^t) written as ``Mux(f > top, top, f)`` puts a comparator's
carry chain after the barrel shifter, in series. Here whether the clamp
applies is read off p itself, beside the shifter: p >> s exceeds 2^t exactly
when p has a set bit at s + t + 1 or above, or has bit s + t set and any of
bits s .. s + t - 1. The masks are shifts of constants by s (LUTs of the
shift amount's bits), so the test is an AND-OR tree of p's bits, a few LUT
levels that run in parallel with the shifter; one mux follows both.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned


def shift_right_clamped(m: Module, p, s, t: int, name: str) -> Signal:
    """min(p >> s, 2^t) for unsigned ``p`` and shift ``s``, as t + 1 bits."""
    w = len(p)
    p = p.as_unsigned()

    def mask(low_bits: int, at: int) -> Signal:
        """``low_bits`` ones starting at bit at + s (all ones up to the top if low_bits is None)."""
        ones = (1 << (w if low_bits is None else low_bits)) - 1
        x = Signal(unsigned(w), name=f"{name}_m{at}_{low_bits}")
        m.d.comb += x.eq((Const(ones, w + at) << at) << s)
        return x

    above = (p & mask(None, t + 1)).any()      # a bit at s + t + 1 or higher
    at_top = (p & mask(1, t)).any()            # bit s + t
    below = (p & mask(t, 0)).any()             # bits s .. s + t - 1
    over = Signal(name=f"{name}_over")
    m.d.comb += over.eq(above | (at_top & below))
    f = Signal(unsigned(t + 1), name=f"{name}_f")
    m.d.comb += f.eq(p >> s)                  # only its low t + 1 bits are needed when not over
    out = Signal(unsigned(t + 1), name=f"{name}_clamped")
    m.d.comb += out.eq(Mux(over, 1 << t, f))
    return out
