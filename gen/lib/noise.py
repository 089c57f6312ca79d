"""Random words for stochastic rounding in the array, as a hash of where an
output lands: word(i, b) = top bits of H(seed XOR (i << 16 | b)) for output
feature i and batch vector b of one operation, H being Bob Jenkins' 32-bit
six-shift integer hash (adds, XORs and shifts, no multiplier).

Indexing by coordinates instead of drawing from a stream keeps the words
independent of the schedule (tiles, cores, lanes, batch split), so the
golden model reproduces them from (seed, i, b) alone (docs/numerics.md);
for any one output the word is uniform over seeds, so the rounding is
unbiased. The host gives each operation a fresh seed.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal

MASK = 0xFFFF_FFFF
# (add or xor with a constant, then add or xor with a shift of the input)
ROUNDS = (("+", 0x7ED55D16, "+", 12), ("^", 0xC761C23C, "^", -19), ("+", 0x165667B1, "+", 5),
          ("+", 0xD3A2646C, "^", 9), ("+", 0xFD7046C5, "+", 3), ("^", 0xB55A4F09, "^", -16))


def _round(m: Module, a, spec, name: str):
    op1, const, op2, shift = spec
    left = (a + const)[:32] if op1 == "+" else a ^ const
    moved = (a << shift)[:32] if shift > 0 else a >> -shift
    out = Signal(32, name=name)
    m.d.comb += out.eq((left + moved)[:32] if op2 == "+" else left ^ moved)
    return out


def hash_rounds(m: Module, a, first: int, count: int, name: str):
    """Rounds ``first`` .. ``first + count - 1`` of H on the 32-bit ``a``
    (combinational), so a caller can put registers between groups."""
    for k in range(first, first + count):
        a = _round(m, a, ROUNDS[k], f"{name}_h{k}")
    return a
