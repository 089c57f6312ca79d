"""Activation unit: identity, ReLU or piecewise-linear tanh on one ``pe.out`` value per cycle.

The tanh table (config.activation.tanh_table) sits in a small ROM holding,
per point k, T[k] and the step T[k+1] - T[k]; the unit interpolates with one
multiply. Pipeline (``LATENCY`` = fixar.config.timing's ACTIVATION_STAGES):
input register; |x|; the table read; its words registered again; the
interpolation's product; point +
rounded product; sign and function into the output register. The rules are written in docs/numerics.md
and independently in the golden model (fixar.golden.activation).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fixar.config import ActFunc, FixarConfig, enum_bits
from fixar.config.timing import ACTIVATION_STAGES
from fixar.gen.lib.pipe import Stages, reg


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
        stages = Stages("activation unit", self.LATENCY)

        def carry(*signals, stage: int):     # x, func (and the point) riding on to ``stage``
            return [reg(m, v, f"{v.name.rsplit('_s', 1)[0]}_s{stage}") for v in signals]

        # ---- input register
        x, func = reg(m, self.x, "x_s1", signed(fmt.bits)), reg(m, self.func, "func_s1", enum_bits(ActFunc))
        stages.stage()
        # ---- |x|, with |min_int| saturated to max_int
        t = reg(m, Mux(x == fmt.min_int, fmt.max_int, Mux(x < 0, -x, x)), "abs_s2", unsigned(fmt.bits - 1))
        x, func = carry(x, func, stage=2)
        stages.stage()
        # ---- the table read at |x|'s segment (the last point beyond the range)
        inside = t < (1 << (act.tanh_range_log2 + F))
        m.d.comb += rd.addr.eq(Mux(inside, t >> s, len(table) - 1))
        y0 = reg(m, rd.data[:y_bits], "point_s3")
        step = reg(m, rd.data[y_bits:], "step_s3")
        r = reg(m, Mux(inside, t[:s], 0), "within_s3", unsigned(max(s, 1)))
        x, func = carry(x, func, stage=3)
        stages.stage()
        # ---- the table's words registered again: the block RAM's read
        # register is slow to its output (2.5 ns), so the product's operands
        # come from registers of their own (the RAM's output register, the
        # DSP48E2's A and B registers)
        y0, step, r, x, func = carry(y0, step, r, x, func, stage=4)
        stages.stage()
        # ---- the interpolation's product
        prod = reg(m, step * r, "product_s5")
        y0, x, func = carry(y0, x, func, stage=5)
        stages.stage()
        # ---- the point plus the rounded product: (p + 2^(s-1)) >> s is
        # floor(p / 2^s) + bit s-1 of p, so the rounding rides in the point's add
        mag = Signal(unsigned(y_bits + 1), name="mag_s6")
        if s > 0:
            m.d.sync += mag.eq(y0 + (prod >> s) + prod[s - 1])
        else:
            m.d.sync += mag.eq(y0)
        x, func = carry(x, func, stage=6)
        stages.stage()
        # ---- the sign, the function
        tanh_y = Mux(x < 0, -mag, mag)
        relu_y = Mux(x < 0, 0, x)
        with m.Switch(func):
            with m.Case(ActFunc.RELU):
                m.d.sync += self.y.eq(relu_y)
            with m.Case(ActFunc.TANH):
                m.d.sync += self.y.eq(tanh_y)
            with m.Default():  # IDENTITY (and the unused code 3)
                m.d.sync += self.y.eq(x)
        stages.stage()
        stages.check()
        return m
