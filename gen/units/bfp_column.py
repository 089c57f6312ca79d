"""One column of FAST's fMAC (HPCA 2022) for block floating point, generated
from the config's ``[bfp]`` section and PE formats (docs/bfp.md, "The fMAC").

A column sums the products of one BFP group: ``rows`` weight mantissas (one
group of W along its input axis) times ``rows`` activation mantissas (one
group of a batch vector), all sharing one exponent per operand. Mantissas are
multiplied in 2-bit chunks, one chunk pair per pass, so one circuit serves
every width: m_w x m_a bits take (m_w / 2) (m_a / 2) passes. Chunk k of a
mantissa is its bits 2k+1..2k, unsigned, except the top chunk of its width,
which is signed (``w_top`` / ``a_top`` say that the chunk selected is the top
one). Mantissas arrive sign-extended to ``mant_bits``.

Per pass (one per cycle, ``valid``):
  G = (first ? 0 : G) + 4^(p + q) * sum_r chunk_p(wm[r]) * chunk_q(am[r])
and on the group's last pass (``last``), with the group's exponents folded
by the host into one shift ``scale`` (docs/bfp.md):
  acc = (clear ? 0 : acc) + G * 2^scale     (modulo 2^acc_bits)
``acc`` and ``acc_valid`` show the wide sum ``LATENCY`` edges after the last
pass was presented. The chunk products are 3 x 3-bit and the column sum is
a few bits wide: LUTs, no DSP48E2.

Pipeline: 1 inputs; 2 chunk products; 3 the column's sum; 4 G; 5 G shifted
by the scale; 6 the wide sum's low half; 7 its high half.

This module knows nothing of the golden model (fixar.golden.fmac); both
follow the config and docs/bfp.md.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fixar.config import FixarConfig
from fixar.config.bfp import CHUNK_BITS, fmac_shape
from fixar.config.timing import BFP_COLUMN_STAGES
from fixar.gen.lib.pipe import Stages, reg


def mantissa_chunk(m: Module, mant, sel, top, name: str):
    """Chunk ``sel`` of ``mant``: unsigned, or signed when ``top``; one extra bit holds both.
    (A part-select rather than a case statement: an ``always @*`` block would
    stay X in a four-state simulator until ``sel`` first changed.)"""
    raw = Signal(unsigned(CHUNK_BITS), name=f"{name}_raw")
    m.d.comb += raw.eq(mant.as_unsigned().word_select(sel, CHUNK_BITS))
    out = Signal(signed(CHUNK_BITS + 1), name=name)
    m.d.comb += out.eq(Mux(top, raw.as_signed(), raw))
    return out


class BfpColumn(wiring.Component):
    """One fMAC column. Ports (``sync`` domain):

    valid          a pass is presented
    wm, am         ``rows`` weight and activation mantissas (signed, ``mant_bits`` each)
    p, q           the chunk of the weights and of the activations this pass multiplies
    w_top, a_top   chunk p (q) is the top, signed chunk of its mantissa's width
    first          G starts from zero with this pass
    last           the group is complete: G * 2^scale enters the wide sum
    clear          (with ``last``) the wide sum starts from zero
    scale          the group's shift, 0..scale_max
    acc, acc_valid the wide sum, after each last pass
    """

    LATENCY = BFP_COLUMN_STAGES

    def __init__(self, cfg: FixarConfig):
        self.shape = sh = fmac_shape(cfg)
        chunk_sel = unsigned(max(sh.chunks - 1, 1).bit_length())
        super().__init__({
            "valid": In(1),
            "wm": In(data.ArrayLayout(signed(sh.mant_bits), sh.rows)),
            "am": In(data.ArrayLayout(signed(sh.mant_bits), sh.rows)),
            "p": In(chunk_sel),
            "q": In(chunk_sel),
            "w_top": In(1),
            "a_top": In(1),
            "first": In(1),
            "last": In(1),
            "clear": In(1),
            "scale": In(unsigned(sh.scale_bits)),
            "acc": Out(signed(sh.acc_bits)),
            "acc_valid": Out(1),
        })

    def elaborate(self, platform):
        sh = self.shape
        m = Module()
        stages = Stages("BfpColumn", self.LATENCY)

        # Stage 1: inputs.
        ctrl = {name: reg(m, getattr(self, name), f"{name}1")
                for name in ("valid", "p", "q", "w_top", "a_top", "first", "last", "clear", "scale")}
        wm1 = reg(m, self.wm.as_value(), "wm1")
        am1 = reg(m, self.am.as_value(), "am1")
        stages.stage()

        # Stage 2: one 3 x 3-bit chunk product per row.
        layout = data.ArrayLayout(signed(sh.mant_bits), sh.rows)
        wv, av = data.View(layout, wm1), data.View(layout, am1)
        prods = []
        for r in range(sh.rows):
            cw = mantissa_chunk(m, wv[r], ctrl["p"], ctrl["w_top"], f"cw{r}")
            ca = mantissa_chunk(m, av[r], ctrl["q"], ctrl["a_top"], f"ca{r}")
            prods.append(reg(m, cw * ca, f"prod{r}_2"))
        ctrl2 = {k: reg(m, v, f"{k}2") for k, v in ctrl.items()}
        stages.stage()

        # Stage 3: the column's sum of the chunk products, and the pass's weight 4^(p + q).
        col3 = reg(m, sum(prods), "col3")
        pos3 = reg(m, ctrl2["p"] + ctrl2["q"], "pos3")
        ctrl3 = {k: reg(m, v, f"{k}3") for k, v in ctrl2.items() if k not in ("p", "q", "w_top", "a_top")}
        stages.stage()

        # Stage 4: the group sum G over the passes (held while no pass is presented).
        g4 = Signal(signed(sh.group_bits), name="g4")
        with m.If(ctrl3["valid"]):
            m.d.sync += g4.eq(Mux(ctrl3["first"], 0, g4) + (col3 << (CHUNK_BITS * pos3)))
        ctrl4 = {k: reg(m, v, f"{k}4") for k, v in ctrl3.items() if k != "first"}
        stages.stage()

        # Stage 5: G at its place in the wide sum.
        shifted5 = reg(m, g4 << ctrl4["scale"], "shifted5", signed(sh.acc_bits))
        last5 = reg(m, ctrl4["valid"] & ctrl4["last"], "last5")
        clear5 = reg(m, ctrl4["clear"], "clear5")
        stages.stage()

        # Stages 6 and 7: the wide sum in two halves, the high one a cycle
        # behind with the low one's carry, so no carry chain spans all
        # acc_bits (one did not meet the logic budget); wrapping modulo 2^acc_bits.
        half = sh.acc_bits // 2
        lo6 = Signal(unsigned(half), name="lo6")
        carry6 = Signal(name="carry6")
        lo_sum = Signal(unsigned(half + 1), name="lo_sum")
        m.d.comb += lo_sum.eq(Mux(clear5, 0, lo6) + shifted5.as_unsigned()[:half])
        with m.If(last5):
            m.d.sync += lo6.eq(lo_sum[:half])
        m.d.sync += carry6.eq(last5 & lo_sum[half])
        hi_in6 = reg(m, shifted5.as_unsigned()[half:], "hi_in6")
        last6, clear6 = reg(m, last5, "last6"), reg(m, clear5, "clear6")
        stages.stage()

        hi7 = Signal(unsigned(sh.acc_bits - half), name="hi7")
        lo7 = reg(m, lo6, "lo7")
        with m.If(last6):
            m.d.sync += hi7.eq(Mux(clear6, 0, hi7) + hi_in6 + carry6)
        m.d.sync += self.acc_valid.eq(last6)
        m.d.comb += self.acc.eq(Cat(lo7, hi7).as_signed())
        stages.stage()
        stages.check()
        return m
