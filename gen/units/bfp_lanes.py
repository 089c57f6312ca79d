"""The BFP lane column: FAST's fMAC with several chunk multipliers per row,
so that narrow activation mantissas give several products per PE per cycle
(docs/bfp.md, "Lanes: several products per PE"). Generated from the
config's ``[bfp]`` section and ``pe.act32`` (fixar.config.bfp.lane_shape).

A row receives one weight mantissa (sign-extended to ``mant_bits``) and one
activation word of ``word_bits`` that packs a mantissa of m_a bits from
each of ``lanes(m_a)`` batch vectors (``a_sel`` picks m_a from
``bfp.widths`` at run time). The row has one 3 x 3-bit multiplier per 2-bit
chunk of the word, each taking chunk p of the weight: the chunk products
do not depend on the width, only which chunk is a lane's signed top one and
how the column sums recombine into lanes (4^q for a lane's chunk q) do.
Per pass (one per cycle, ``valid``), for every lane l:
  G_l = (first ? 0 : G_l) + 4^p * sum_r chunk_p(wm[r]) * mant_l(aw[r])
and on the group's last pass (``last``):
  acc_l = (clear ? 0 : acc_l) + G_l * 2^scale_l     (modulo 2^acc_bits)
So an m_w-bit weight group takes m_w / 2 passes for all lanes at once:
lanes(m_a) / (m_w / 2) products per row per cycle (16 at 2 x 2 bits, 4 at
4 x 4, 1 at 8 x 8, against the FXP32 PE's 1).

Pipeline: 1 inputs; 2 chunk products; 3 each multiplier's column sum;
4 the lanes' sums at the selected width; 5 G; 6 G shifted by each lane's
scale; 7 the wide sums' low halves; 8 their high halves.

This module knows nothing of the golden model (fixar.golden.fmac_lanes);
both follow the config and docs/bfp.md.
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fixar.config import FixarConfig
from fixar.config.bfp import CHUNK_BITS, lane_shape
from fixar.config.timing import BFP_LANE_STAGES
from fixar.gen.lib.pipe import Stages, reg
from fixar.gen.units.bfp_column import mantissa_chunk


class BfpLanes(wiring.Component):
    """One lane column. Ports (``sync`` domain):

    valid          a pass is presented
    wm             ``rows`` weight mantissas (signed, ``mant_bits`` each)
    aw             ``rows`` activation words, lane l's mantissa at bits l m_a up
    p, w_top       the weight chunk this pass multiplies, and whether it is the top, signed one
    a_sel          the activation width: index into ``bfp.widths`` (another value: every lane adds 0)
    first          every G starts from zero with this pass
    last           the group is complete: each G_l * 2^scale_l enters its wide sum
    clear          (with ``last``) the wide sums start from zero
    scale          each lane's shift, 0..scale_max
    acc, acc_valid the lanes' wide sums, after each last pass
    """

    LATENCY = BFP_LANE_STAGES

    def __init__(self, cfg: FixarConfig):
        self.shape = sh = lane_shape(cfg)
        self.widths = tuple(cfg.bfp.widths)
        f = sh.fmac
        super().__init__({
            "valid": In(1),
            "wm": In(data.ArrayLayout(signed(f.mant_bits), f.rows)),
            "aw": In(data.ArrayLayout(unsigned(sh.word_bits), f.rows)),
            "p": In(unsigned(max(f.chunks - 1, 1).bit_length())),
            "w_top": In(1),
            "a_sel": In(unsigned(max(len(self.widths) - 1, 1).bit_length())),
            "first": In(1),
            "last": In(1),
            "clear": In(1),
            "scale": In(data.ArrayLayout(unsigned(f.scale_bits), sh.max_lanes)),
            "acc": Out(data.ArrayLayout(signed(f.acc_bits), sh.max_lanes)),
            "acc_valid": Out(1),
        })

    def _top_chunks(self, m: Module, a_sel) -> Signal:
        """Bit j: the word's chunk j is a lane's top (signed) chunk at the selected width.
        (An OR of selects rather than a case statement, which a four-state
        simulator would leave X until ``a_sel`` first changed.)"""
        sh = self.shape
        top = Signal(sh.multipliers, name="a_top")
        table = []
        for s, m_a in enumerate(self.widths):
            per_lane = m_a // CHUNK_BITS
            bits = sum(1 << (lane * per_lane + per_lane - 1) for lane in range(sh.lanes(m_a)))
            table.append(Mux(a_sel == s, bits, 0))
        m.d.comb += top.eq(reduce(operator.or_, table))
        return top

    def _lane_sums(self, m: Module, sums: list, a_sel) -> list:
        """Each lane's column sum at the selected width: its chunks' sums at 4^q."""
        sh = self.shape
        lanes = [Signal(signed(sh.fmac.group_bits), name=f"lane{lane}_4") for lane in range(sh.max_lanes)]
        with m.Switch(a_sel):
            for s, m_a in enumerate(self.widths):
                per_lane = m_a // CHUNK_BITS
                with m.Case(s):
                    for lane in range(sh.max_lanes):
                        if lane < sh.lanes(m_a):
                            chunks = sums[lane * per_lane:(lane + 1) * per_lane]
                            m.d.sync += lanes[lane].eq(sum(c << (CHUNK_BITS * q) for q, c in enumerate(chunks)))
                        else:
                            m.d.sync += lanes[lane].eq(0)
            with m.Default():
                m.d.sync += [lane.eq(0) for lane in lanes]
        return lanes

    def elaborate(self, platform):
        sh = self.shape
        f = sh.fmac
        m = Module()
        stages = Stages("BfpLanes", self.LATENCY)

        # Stage 1: inputs.
        ctrl = {name: reg(m, getattr(self, name), f"{name}1")
                for name in ("valid", "p", "w_top", "a_sel", "first", "last", "clear")}
        scale = reg(m, self.scale.as_value(), "scale1")
        wv = data.View(self.wm.shape(), reg(m, self.wm.as_value(), "wm1"))
        av = data.View(self.aw.shape(), reg(m, self.aw.as_value(), "aw1"))
        stages.stage()

        # Stage 2: every row's chunk products: chunk p of its weight by each 2-bit chunk of its word.
        top = self._top_chunks(m, ctrl["a_sel"])
        prods = [[None] * sh.multipliers for _ in range(f.rows)]
        for r in range(f.rows):
            cw = mantissa_chunk(m, wv[r], ctrl["p"], ctrl["w_top"], f"cw{r}")
            for j in range(sh.multipliers):
                raw = av[r][CHUNK_BITS * j:CHUNK_BITS * (j + 1)]
                ca = Signal(signed(CHUNK_BITS + 1), name=f"ca{r}_{j}")
                m.d.comb += ca.eq(Mux(top[j], raw.as_signed(), raw))
                prods[r][j] = reg(m, cw * ca, f"prod{r}_{j}_2")
        ctrl2 = {k: reg(m, v, f"{k}2") for k, v in ctrl.items() if k not in ("w_top",)}
        scale2 = reg(m, scale, "scale2")
        stages.stage()

        # Stage 3: each multiplier's sum down the column.
        sums = [reg(m, sum(prods[r][j] for r in range(f.rows)), f"sum{j}_3", signed(sh.sum_bits))
                for j in range(sh.multipliers)]
        ctrl3 = {k: reg(m, v, f"{k}3") for k, v in ctrl2.items()}
        scale3 = reg(m, scale2, "scale3")
        stages.stage()

        # Stage 4: the lanes' sums, recombined from their chunks at the selected width.
        lanes = self._lane_sums(m, sums, ctrl3["a_sel"])
        ctrl4 = {k: reg(m, v, f"{k}4") for k, v in ctrl3.items() if k != "a_sel"}
        scale4 = reg(m, scale3, "scale4")
        stages.stage()

        # Stage 5: each lane's group sum G over the passes (held while no pass is presented).
        g5 = [Signal(signed(f.group_bits), name=f"g{lane}_5") for lane in range(sh.max_lanes)]
        with m.If(ctrl4["valid"]):
            m.d.sync += [g.eq(Mux(ctrl4["first"], 0, g) + (lane << (CHUNK_BITS * ctrl4["p"])))
                         for g, lane in zip(g5, lanes)]
        last5 = reg(m, ctrl4["valid"] & ctrl4["last"], "last5")
        clear5 = reg(m, ctrl4["clear"], "clear5")
        scale5 = data.View(self.scale.shape(), reg(m, scale4, "scale5"))
        stages.stage()

        # Stage 6: each G at its place in its wide sum.
        shifted6 = [reg(m, g << scale5[lane], f"shifted{lane}_6", signed(f.acc_bits)) for lane, g in enumerate(g5)]
        last6, clear6 = reg(m, last5, "last6"), reg(m, clear5, "clear6")
        stages.stage()

        # Stages 7 and 8: the wide sums in two halves, as the fMAC column
        # does (no carry chain spans all acc_bits), wrapping modulo 2^acc_bits.
        half = f.acc_bits // 2
        last7, clear7 = reg(m, last6, "last7"), reg(m, clear6, "clear7")
        for lane, shifted in enumerate(shifted6):
            lo7 = Signal(unsigned(half), name=f"lo{lane}_7")
            lo_sum = Signal(unsigned(half + 1), name=f"lo{lane}_sum")
            m.d.comb += lo_sum.eq(Mux(clear6, 0, lo7) + shifted.as_unsigned()[:half])
            with m.If(last6):
                m.d.sync += lo7.eq(lo_sum[:half])
            carry7 = reg(m, last6 & lo_sum[half], f"carry{lane}_7")
            hi_in7 = reg(m, shifted.as_unsigned()[half:], f"hi_in{lane}_7")
            hi8 = Signal(unsigned(f.acc_bits - half), name=f"hi{lane}_8")
            lo8 = reg(m, lo7, f"lo{lane}_8")
            with m.If(last7):
                m.d.sync += hi8.eq(Mux(clear7, 0, hi8) + hi_in7 + carry7)
            m.d.comb += self.acc[lane].eq(Cat(lo8, hi8).as_signed())
        stages.stage(2)
        m.d.sync += self.acc_valid.eq(last7)
        stages.check()
        return m
