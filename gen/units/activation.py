"""Activation unit: identity, ReLU or piecewise-linear tanh on one ``pe.out`` value per cycle.

The tanh table (config.activation.tanh_table) sits in a small ROM holding,
per point k, T[k] and the step T[k+1] - T[k]; the unit interpolates with one
multiply. Pipeline: input register, then lookup + interpolate + sign into the
output register (``LATENCY`` = 2). The rules are written in docs/numerics.md
and independently in the golden model (fixar.golden.activation).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fixar.config import ActFunc, FixarConfig, enum_bits
from fixar.config.timing import ACTIVATION_STAGES
from fixar.gen.lib.pipe import Stages


class ActivationUnit(wiring.Component):
    """Ports: ``func`` (:class:`fixar.config.ActFunc`), ``x`` in, ``y`` out, both in ``pe.out``."""

    LATENCY = ACTIVATION_STAGES

    def __init__(self, cfg: FixarConfig):
        self.cfg = cfg
        fmt = cfg.pe.out
        super().__init__({
            "func": In(enum_bits(ActFunc)),
            "x": In(signed(fmt.bits)),
            "y": Out(signed(fmt.bits)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        fmt, act = cfg.pe.out, cfg.activation
        F = fmt.frac
        s = F - act.tanh_segments_log2  # fraction bits inside one segment
        table = act.tanh_table(F)
        steps = [b - a for a, b in zip(table, table[1:])] + [0]
        y_bits = max(table).bit_length()
        d_bits = max(max(steps).bit_length(), 1)
        m = Module()

        m.submodules.tanh_rom = rom = Memory(
            shape=unsigned(y_bits + d_bits), depth=len(table),
            init=[y | (d << y_bits) for y, d in zip(table, steps)])
        rd = rom.read_port(domain="comb")

        x1 = Signal(signed(fmt.bits))
        func1 = Signal(enum_bits(ActFunc))
        m.d.sync += [x1.eq(self.x), func1.eq(self.func)]
        stages = Stages("activation unit", self.LATENCY)
        stages.stage()

        # |x|, with |min_int| saturated to max_int.
        t = Signal(unsigned(fmt.bits - 1))
        m.d.comb += t.eq(Mux(x1 == fmt.min_int, fmt.max_int, Mux(x1 < 0, -x1, x1)))
        limit = 1 << (act.tanh_range_log2 + F)
        inside = t < limit
        last = len(table) - 1
        m.d.comb += rd.addr.eq(Mux(inside, t >> s, last))
        y0 = rd.data[:y_bits]
        step = rd.data[y_bits:]
        mag = Signal(unsigned(y_bits + 1))
        if s > 0:
            r = Mux(inside, t[:s], 0)
            m.d.comb += mag.eq(y0 + ((step * r + (1 << (s - 1))) >> s))
        else:
            m.d.comb += mag.eq(y0)
        tanh_y = Mux(x1 < 0, -mag, mag)
        relu_y = Mux(x1 < 0, 0, x1)

        with m.Switch(func1):
            with m.Case(ActFunc.RELU):
                m.d.sync += self.y.eq(relu_y)
            with m.Case(ActFunc.TANH):
                m.d.sync += self.y.eq(tanh_y)
            with m.Default():  # IDENTITY (and the unused code 3)
                m.d.sync += self.y.eq(x1)
        stages.stage()
        stages.check()
        return m
