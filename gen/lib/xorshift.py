"""xorshift32 (Marsaglia 2003) advanced k steps as one flat XOR per bit.

One step, x ^= x << 13; x ^= x >> 17; x ^= x << 5, is linear over GF(2):
every bit of the state k steps on is the XOR of a fixed set of the present
state's bits. Written as k chained steps, the vector unit's 32 draws a
cycle were 96 dependent XOR layers that synthesis had to flatten itself
(Yosys's ABC did not finish the unit in an hour); written as one XOR of at
most 32 bits per output bit, each draw is two LUT6 levels deep whatever k
is. The sets are found here by stepping each basis vector (one bit set) k
times with ordinary integer arithmetic.
"""
from __future__ import annotations

import functools

from amaranth.hdl import Cat, Const

MASK = 0xFFFF_FFFF


def _step(x: int) -> int:
    x ^= (x << 13) & MASK
    x ^= x >> 17
    return x ^ ((x << 5) & MASK)


@functools.cache
def advance_masks(k: int) -> tuple[int, ...]:
    """Output bit i of k steps is the XOR of the state bits set in mask i."""
    columns = []
    for j in range(32):                 # the image of state bit j
        x = 1 << j
        for _ in range(k):
            x = _step(x)
        columns.append(x)
    return tuple(sum(((columns[j] >> i) & 1) << j for j in range(32)) for i in range(32))


def advanced(state, k: int):
    """The 32-bit xorshift32 state ``k`` steps after ``state`` (combinational)."""
    return Cat(*[(state & Const(mask, 32)).xor() for mask in advance_masks(k)])
