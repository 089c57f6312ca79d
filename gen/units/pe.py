"""FIXAR's dual-mode processing element, generated from a :class:`PEConfig`.

Two signed multipliers, weight x lane, share one activation word:

* FXP32 (mode 0): the word is one activation. The low lane is taken as
  unsigned, the high lane as signed; the two products are accumulated apart
  and recombined at the output as ``acc_hi * 2**lane_bits + acc_lo``, which
  is exactly one weight x 32-bit MAC (FIXAR's "upper product shifted and
  added"). Recombining after the sum instead of before it keeps the two
  accumulators identical for both modes.
* FXP16 (mode 1): the word holds two signed activations, one per lane, each
  with its own partial sum: two MACs per cycle.

Pipeline (one input per cycle, ``LATENCY`` clock edges from input to output):
  1. register the inputs             (maps onto DSP48E2 A/B registers)
  2. register the two products       (a multiplier's own registers come
     before this one, MULTIPLIER_STAGES in fixar.config.timing, and every
     later stage moves by as many: the exact one's is a DSP48E2's M register
     beside its LUT part's, gen/lib/multipliers.py, so this is the DSP's P)
  3. accumulate: acc = (clear ? 0 : acc) + (acc_en ? p : 0), modulo 2**acc_bits
  4. register FXP32's recombined sum hi * 2**L + lo beside the two lane sums
  5. register each rounding's first half: the floor narrowed, the carry
  6. register the output: the carry added, saturated or wrapped into ``cfg.out``
``acc_en = 0`` holds the sums; ``clear`` with ``acc_en`` starts a new sum.

This module knows nothing of the golden model; both follow the config and
the rules written in docs/numerics.md.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fixar.config import PEConfig, PEMode, enum_bits
from fixar.config.timing import multiplier_stages, pe_stages
from fixar.gen.lib.datapath import output_finish, output_stage, recombined, registered_parts, select_mode
from fixar.gen.lib.multipliers import lane_product, pe_lanes
from fixar.gen.lib.pipe import Stages, delay, reg


class PE(wiring.Component):
    """One dual-mode PE. Ports (all synchronous to the ``sync`` domain):

    mode     0 = FXP32, 1 = FXP16 (:class:`fixar.config.PEMode`)
    acc_en   add this cycle's products (0 holds the sums)
    clear    start from zero instead of the held sums
    a        activation word (one FXP32 value, or two packed FXP16 lanes)
    w        weight
    rnd_lo, rnd_hi   random words for stochastic rounding (only when the
             output format rounds stochastically)
    y_lo, y_hi       results in ``cfg.out``: y_lo is the FXP32 result or the
             low lane's, y_hi the high lane's (zero in FXP32 mode)
    """

    def __init__(self, cfg: PEConfig):
        self.cfg = cfg
        self.LATENCY = pe_stages(cfg)
        members = {
            "mode": In(enum_bits(PEMode)),
            "acc_en": In(1),
            "clear": In(1),
            "a": In(unsigned(cfg.act32.bits)),
            "w": In(signed(cfg.weight.bits)),
            "y_lo": Out(signed(cfg.out.bits)),
            "y_hi": Out(signed(cfg.out.bits)),
        }
        if cfg.out.needs_random:
            members["rnd_lo"] = In(unsigned(cfg.rnd_bits))
            members["rnd_hi"] = In(unsigned(cfg.rnd_bits))
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.cfg
        L = cfg.lane_bits
        stochastic = cfg.out.needs_random
        m = Module()
        stages = Stages("PE", self.LATENCY)

        # Stage 1: input registers.
        mode1, en1, clr1 = Signal(name="mode1"), Signal(name="en1"), Signal(name="clr1")
        a1 = Signal(unsigned(cfg.act32.bits))
        w1 = Signal(signed(cfg.weight.bits))
        m.d.sync += [mode1.eq(self.mode), en1.eq(self.acc_en), clr1.eq(self.clear),
                     a1.eq(self.a), w1.eq(self.w)]
        stages.stage()

        # Stage 2: products. Exact multiplier: the low lane is unsigned in FXP32
        # (the lower half of a two's-complement word) and signed in FXP16; one
        # extra bit holds both. Approximate: sign-magnitude lanes (pe_lanes).
        p_lo = Signal(signed(cfg.product_bits))
        p_hi = Signal(signed(cfg.product_bits))
        # by the config's multiplier: DSP48E2s for the exact one, LUTs for an
        # approximate one (on sign-magnitude lanes), with its own registers
        # (the controls wait beside them)
        products = [lane_product(m, w1, lane, cfg, f"mul_{n}")
                    for lane, n in zip(pe_lanes(m, a1, mode1, cfg, "a1"), ("lo", "hi"))]
        cuts = multiplier_stages(cfg)
        for k in range(cuts):
            mode1, en1, clr1 = (reg(m, x, f"{n}1_c{k + 1}") for x, n in ((mode1, "mode"), (en1, "en"), (clr1, "clr")))
        stages.stage(cuts)
        mode2, en2, clr2 = Signal(name="mode2"), Signal(name="en2"), Signal(name="clr2")
        m.d.sync += [p_lo.eq(products[0]), p_hi.eq(products[1]), mode2.eq(mode1), en2.eq(en1), clr2.eq(clr1)]
        stages.stage()

        # Stage 3: accumulators, wrapping modulo 2**acc_bits (associative, so
        # any summation order gives the same bits; docs/numerics.md).
        acc_lo = Signal(signed(cfg.acc_bits))
        acc_hi = Signal(signed(cfg.acc_bits))
        mode3 = Signal()
        m.d.sync += [
            acc_lo.eq(Mux(clr2, 0, acc_lo) + Mux(en2, p_lo, 0)),
            acc_hi.eq(Mux(clr2, 0, acc_hi) + Mux(en2, p_hi, 0)),
            mode3.eq(mode2),
        ]
        stages.stage()

        # Stage 4: FXP32's recombined sum (hi * 2**L + lo) and the lane sums,
        # registered apart from the rounding: two wide carry chains, one per stage.
        total4 = Signal(signed(cfg.acc_bits + L + 1), name="total4")
        lo4, hi4 = Signal.like(acc_lo, name="acc_lo4"), Signal.like(acc_hi, name="acc_hi4")
        mode4 = Signal(name="mode4")
        m.d.sync += [total4.eq(recombined(m, acc_lo, acc_hi, cfg, "sum")), lo4.eq(acc_lo), hi4.eq(acc_hi),
                     mode4.eq(mode3)]
        stages.stage()

        # Random words travel with their input so that each result is rounded
        # with the word that was presented alongside its last operand.
        rnd_lo4 = rnd_hi4 = None
        if stochastic:
            rnd_lo4, rnd_hi4 = delay(m, self.rnd_lo, 4 + cuts), delay(m, self.rnd_hi, 4 + cuts)

        # Stage 5: the roundings' first halves (each floor narrowed, its carry).
        parts = registered_parts(m, output_stage(m, total4, lo4, hi4, cfg, "out", rnd_lo4, rnd_hi4), "out5")
        mode5 = Signal(name="mode5")
        m.d.sync += mode5.eq(mode4)
        stages.stage()

        # Stage 6: the carries added, saturated or wrapped, into the output.
        out = output_finish(m, parts, dict.fromkeys(parts, cfg.out), "out")
        y_lo, y_hi = select_mode(out, mode5)
        m.d.sync += [self.y_lo.eq(y_lo), self.y_hi.eq(y_hi)]
        stages.stage()
        stages.check()
        return m
