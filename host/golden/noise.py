"""The array's stochastic-rounding words, as the golden model defines them
(docs/numerics.md): for output feature i and batch vector b of one
operation with seed s, the word is the top ``rnd_bits`` bits of
H(s XOR ((i mod 2^16) << 16 | (b mod 2^16))), H being Bob Jenkins' 32-bit
six-shift integer hash. Written here from that definition, apart from the
generator's version (fixar.gen.lib.noise); the array bench holds them equal.
"""
from __future__ import annotations

import numpy as np

U32 = np.uint32


def jenkins32(a: np.ndarray) -> np.ndarray:
    """Bob Jenkins' six-shift hash of uint32 words (wrapping arithmetic)."""
    a = np.asarray(a, dtype=U32).copy()
    with np.errstate(over="ignore"):
        a = (a + U32(0x7ED55D16)) + (a << U32(12))
        a = (a ^ U32(0xC761C23C)) ^ (a >> U32(19))
        a = (a + U32(0x165667B1)) + (a << U32(5))
        a = (a + U32(0xD3A2646C)) ^ (a << U32(9))
        a = (a + U32(0xFD7046C5)) + (a << U32(3))
        a = (a ^ U32(0xB55A4F09)) ^ (a >> U32(16))
    return a


def rounding_words(seed: int, n_out: int, batch: int, bits: int) -> np.ndarray:
    """(n_out, batch) int64 words of ``bits`` bits for one array operation."""
    if not 0 <= seed < 1 << 32:
        raise ValueError(f"rounding seed {seed} is not a 32-bit word")
    if not 1 <= bits <= 32:
        raise ValueError(f"rounding words of {bits} bits: the hash gives 1 to 32")
    i = (np.arange(n_out, dtype=np.int64) & 0xFFFF)[:, None]
    b = (np.arange(batch, dtype=np.int64) & 0xFFFF)[None, :]
    h = jenkins32(U32(seed) ^ ((i << 16) | b).astype(U32))
    return (h >> U32(32 - bits)).astype(np.int64)
