"""The BFP converter: one group of fixed-point codes into block floating point
per cycle, as the array will convert each operand group as it streams past
(docs/bfp.md, "The converter"; issue 23 item 2).

A group is ``bfp.group`` codes of the PE's 32-bit formats. The converter
finds the group's exponent from the bit length of its largest magnitude,
rounds every code to the group's mantissa LSB (stochastically with one
Jenkins-hash word per element, or to nearest, as ``bfp.rounding`` says) and
saturates it to the run-time width ``m``. Outputs: the mantissas,
sign-extended to the widest of ``bfp.widths``, and the group's ``shift`` s,
the LSB's weight in codes (value = mant * 2^s codes). An all-zero group
gives mantissas 0 (its shift is then 1 - m and means nothing).

The rules are docs/bfp.md's steps 2-6 with the per-tensor base left out:
that is exact when ``bfp.group_local`` holds for the codes' width (the
default e = 5 for 32-bit codes), because then no group's offset saturates
and s = bitlen(max |q|) - m + 1 for every nonzero group.

Element r of the group with flat index ``group`` (its index in the
tensor's rows x groups layout, docs/bfp.md "Random words and seeds") takes
the top ``rnd_bits`` bits of H(seed XOR (group * g + r)) as its word.

Pipeline (``LATENCY`` edges from inputs to outputs): 1 inputs; 2 the
magnitudes, the first three hash rounds; 3 the group's shift (an OR tree
and a priority encoder), the last three rounds; 4 each element's rounding
addend added; 5 the shift down (or up, for a group kept exactly) and the
saturation to m bits.

This module knows nothing of the golden model (fixar.golden.bfp); both
follow the config and docs/bfp.md.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fixar.config import ConfigError, FixarConfig
from fixar.config.bfp import code_bits
from fixar.config.timing import BFP_CONVERT_STAGES
from fixar.gen.lib.bfp_round import (
    bit_length,
    magnitude,
    mantissa,
    rounding_sum,
    shift_controls,
    shift_shape,
    sum_shape,
    width_limits,
)
from fixar.gen.lib.noise import hash_rounds
from fixar.gen.lib.pipe import Stages, reg


class BfpConvert(wiring.Component):
    """Ports (``sync`` domain):

    valid       a group is presented
    q           ``bfp.group`` codes (signed, ``code_bits`` each)
    m           the mantissa width, one of ``bfp.widths``
    seed        the tensor's 32-bit rounding seed
    group       the group's flat index (its random words' keys follow from it)
    mant        the mantissas (signed, the widest width's bits)
    shift       the group's LSB in codes, log2 (signed)
    out_valid   ``mant`` and ``shift`` hold a converted group
    """

    LATENCY = BFP_CONVERT_STAGES

    def __init__(self, cfg: FixarConfig):
        bfp = cfg.bfp
        self.cfg, self.bits = cfg, code_bits(cfg)
        if not bfp.group_local(self.bits):
            raise ConfigError(f"bfp.exp_bits = {bfp.exp_bits}: the converter needs 2^exp_bits >= {self.bits} "
                              f"(the codes' bits), so that a group converts alone (docs/bfp.md)")
        self.mant_bits = max(bfp.widths)
        self.shift_shape = shift_shape(cfg, self.bits)
        super().__init__({
            "valid": In(1),
            "q": In(data.ArrayLayout(signed(self.bits), bfp.group)),
            "m": In(unsigned(max(bfp.widths).bit_length())),
            "seed": In(32),
            "group": In(32),
            "mant": Out(data.ArrayLayout(signed(self.mant_bits), bfp.group)),
            "shift": Out(self.shift_shape),
            "out_valid": Out(1),
        })

    def elaborate(self, platform):
        bfp, bits = self.cfg.bfp, self.bits
        g, R = bfp.group, bfp.rnd_bits
        m = Module()
        stages = Stages("BfpConvert", self.LATENCY)

        # Stage 1: inputs.
        valid1, m1 = reg(m, self.valid, "valid1"), reg(m, self.m, "m1")
        seed1, group1 = reg(m, self.seed, "seed1"), reg(m, self.group, "group1")
        q1 = [reg(m, self.q[r], f"q{r}_1") for r in range(g)]
        stages.stage()

        # Stage 2: each magnitude; the hash's first rounds.
        mag2 = [reg(m, magnitude(q, bits), f"mag{r}_2", unsigned(bits)) for r, q in enumerate(q1)]
        hashes2 = []
        for r in range(g):
            key = Signal(32, name=f"key{r}")
            m.d.comb += key.eq((group1 * g + r)[:32])
            hashes2.append(reg(m, hash_rounds(m, seed1 ^ key, 0, 3, f"w{r}a"), f"h{r}_2"))
        q2 = [reg(m, q, f"q{r}_2") for r, q in enumerate(q1)]
        valid2, m2 = reg(m, valid1, "valid2"), reg(m, m1, "m2")
        stages.stage()

        # Stage 3: the group's shift from the bit length of its largest magnitude; the hash's last rounds.
        ored = mag2[0]
        for v in mag2[1:]:
            ored = ored | v
        top = Signal(bits, name="top")
        m.d.comb += top.eq(ored)
        bitlen = bit_length(m, top, bits, "bitlen")
        s3 = reg(m, bitlen - m2 + 1, "s3", self.shift_shape)
        words3 = [reg(m, hash_rounds(m, h, 3, 3, f"w{r}b")[32 - R:], f"word{r}_3", unsigned(R))
                  for r, h in enumerate(hashes2)]
        q3 = [reg(m, q, f"q{r}_3") for r, q in enumerate(q2)]
        valid3, m3 = reg(m, valid2, "valid3"), reg(m, m2, "m3")
        stages.stage()

        # Stage 4: each element's rounding addend added.
        ctl = shift_controls(m, self.cfg, s3, bits, "round")
        sums4 = [reg(m, rounding_sum(self.cfg, q, words3[r], ctl), f"sum{r}_4", sum_shape(bits))
                 for r, q in enumerate(q3)]
        kept4 = reg(m, ctl["kept"], "kept4")
        s4, m4, valid4 = reg(m, s3, "s4"), reg(m, m3, "m4"), reg(m, valid3, "valid4")
        q4 = [reg(m, q, f"q{r}_4") for r, q in enumerate(q3)]
        stages.stage()

        # Stage 5: down by the kept bits (or up, for a group whose codes fit unrounded), saturated to m bits.
        lo, hi = width_limits(m, self.cfg, m4, "sat")
        for r in range(g):
            m.d.sync += self.mant[r].eq(mantissa(m, self.cfg, sums4[r], kept4, q4[r], s4, lo, hi, f"mant{r}"))
        m.d.sync += [self.shift.eq(s4), self.out_valid.eq(valid4)]
        stages.stage()
        stages.check()
        return m
