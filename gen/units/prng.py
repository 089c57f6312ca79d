"""xorshift32 pseudo-random generator (Marsaglia 2003) for stochastic rounding.

One step per cycle while ``en`` is high: x ^= x << 13; x ^= x >> 17;
x ^= x << 5. ``out`` is the state, reset to the configured non-zero seed.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fixar.config import PrngConfig


class Xorshift32(wiring.Component):
    def __init__(self, cfg: PrngConfig):
        self.cfg = cfg
        super().__init__({"en": In(1), "out": Out(unsigned(cfg.width))})

    def elaborate(self, platform):
        m = Module()
        state = Signal(unsigned(32), init=self.cfg.seed)
        x1 = state ^ (state << 13)[:32]
        x2 = x1 ^ (x1 >> 17)
        x3 = x2 ^ (x2 << 5)[:32]
        with m.If(self.en):
            m.d.sync += state.eq(x3)
        m.d.comb += self.out.eq(state)
        return m
