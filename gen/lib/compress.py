"""Carry-save addition: many terms reduced to two without a carry chain.

A sum of n terms written as ``a + b + c + ...`` becomes a chain of two-input
adders, one carry chain each; Yosys may rebalance them, but the path still
crosses several chains. A 3:2 compressor (a full adder per bit: sum = a ^ b
^ c, carry = majority(a, b, c) one place up) turns three terms into two with
one LUT level and no carry at all, so a tree of them brings n terms down to
a pair in about log_1.5(n / 2) LUT levels, and the pair is added by one
carry chain, possibly a stage later.

Every value here is taken modulo 2^width: the carries out of the top bit are
dropped, which is exact for sums that wrap at that width anyway (the array's
partial sums do, see gen/units/core.py).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned


def full_adders(m: Module, a, b, c, width: int, name: str) -> tuple[Signal, Signal]:
    """One 3:2 level over ``width``-bit unsigned a, b, c: a + b + c = s + k (mod 2^width)."""
    s = Signal(unsigned(width), name=f"{name}_s")
    k = Signal(unsigned(width), name=f"{name}_k")
    m.d.comb += [s.eq(a ^ b ^ c), k.eq(((a & b) | (a & c) | (b & c)) << 1)]
    return s, k


def _modular(m: Module, x, width: int, name: str) -> Signal:
    """x's own value (sign-extended if it is signed) modulo 2^width."""
    w = Signal(unsigned(width), name=name)
    m.d.comb += w.eq(x)
    return w


def carry_save(m: Module, terms: list, width: int, name: str) -> tuple:
    """``terms`` (signed or unsigned values, each taken as its own value and
    then modulo 2^width) reduced to a pair (s, k) of ``width``-bit unsigned
    signals with sum(terms) = s + k (mod 2^width). One term gives (term, 0);
    none gives (0, 0)."""
    level = [_modular(m, t, width, f"{name}_t{i}") for i, t in enumerate(terms)]
    zero = Const(0, unsigned(width))
    if len(level) < 2:
        return (level[0] if level else zero), zero
    depth = 0
    while len(level) > 2:
        nxt = []
        for i in range(0, len(level) - 2, 3):
            nxt.extend(full_adders(m, level[i], level[i + 1], level[i + 2], width, f"{name}_l{depth}_{i // 3}"))
        nxt.extend(level[len(level) - len(level) % 3:])
        level = nxt
        depth += 1
    return level[0], level[1]



def carry_select_add(m: Module, a, b, width: int, name: str) -> Signal:
    """a + b as a signed ``width``-bit sum, its carry chain cut in two: the
    upper half added twice beside the lower half (carry in 0 and 1), then
    picked by the lower half's carry out. The core's packed QAT total is a
    76-bit add where FXP32's recombination has 59 bits of carry chain; one
    chain of that length was the core's longest path (docs/array.md)."""
    k = width // 2
    ax, bx = Signal(signed(width), name=f"{name}_a"), Signal(signed(width), name=f"{name}_b")
    m.d.comb += [ax.eq(a), bx.eq(b)]
    low = Signal(k + 1, name=f"{name}_low")
    m.d.comb += low.eq(ax[:k] + bx[:k])
    high0 = Signal(width - k, name=f"{name}_high0")
    high1 = Signal(width - k + 1, name=f"{name}_high1")
    m.d.comb += [high0.eq(ax[k:] + bx[k:]),
                 high1.eq(Cat(Const(1, 1), ax[k:]) + Cat(Const(1, 1), bx[k:]))]   # 2a + 1 + 2b + 1: carry in 1
    out = Signal(signed(width), name=f"{name}_sum")
    m.d.comb += out.eq(Cat(low[:k], Mux(low[k], high1[1:], high0)))
    return out
