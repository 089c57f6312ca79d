"""Combinational rounding and saturation for the generated units (the
arithmetic rules of docs/numerics.md, written once for the generator)."""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed

from fixar.config import FixedFormat


def rne(m: Module, value, shift: int, name: str):
    """Round-half-even of a signed ``value`` by ``shift`` bits (arithmetic shift)."""
    if shift <= 0:
        return value
    add = Const((1 << (shift - 1)) - 1, shift) + value[shift]
    rounded = Signal(signed(len(value) + 2), name=f"{name}_rounded")
    m.d.comb += rounded.eq(value.as_signed() + add)
    return rounded >> shift


def round_into(m: Module, value, shift: int, fmt: FixedFormat, name: str):
    """``value`` shifted right by ``shift`` bits, rounded as ``fmt.rounding``
    says: rne, or zero (truncation toward zero: a negative value adds
    2^shift - 1 before the arithmetic shift). Not yet saturated."""
    if fmt.rounding == "rne":
        return rne(m, value, shift, name)
    if fmt.rounding != "zero":
        raise ValueError(f"round_into: rounding {fmt.rounding!r} is not built here (rne, zero)")
    if shift <= 0:
        return value
    v = value.as_signed()
    add = Mux(v < 0, Const((1 << shift) - 1, shift), Const(0, shift))
    rounded = Signal(signed(len(value) + 2), name=f"{name}_rounded")
    m.d.comb += rounded.eq(v + add)
    return rounded >> shift


def saturate(m: Module, value, fmt: FixedFormat, name: str):
    """``value`` clamped into ``fmt``'s codes (signed compare, any width)."""
    q = Signal(signed(max(len(value), fmt.bits) + 1), name=f"{name}_q")
    m.d.comb += q.eq(value)
    out = Signal(signed(fmt.bits if fmt.signed else fmt.bits + 1), name=f"{name}_sat")
    m.d.comb += out.eq(Mux(q > fmt.max_int, fmt.max_int, Mux(q < fmt.min_int, fmt.min_int, q)))
    return out
