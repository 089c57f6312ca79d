"""One adaptive-array core: R x C weight-stationary PEs, column sums, partial-sum
buffer, output rounding and activation units (docs/array.md).

PE(r, c) holds weight W[i0 + c, k0 + r]; PE row r receives activation word
a[r] (one value, or two batch vectors packed in FXP16); column c sums its R
products per lane, adds them to the wide partial sum of this batch slot (or
to the bias on the first k-tile), and on the last k-tile the sum is rounded
once into ``pe.out`` and passed through the activation unit.

Stream interface, one item per cycle (``valid``):
  a          R activation words
  slot       partial-sum buffer entry (batch vector, or vector pair in FXP16)
  first      start from the bias instead of the buffer (first k-tile)
  last       emit the result (last k-tile)
  bias       C bias codes of ``pe.out`` (used when ``first`` and ``bias_en``)
  bias_en    start the first k-tile from the bias (else from zero)
  func, mode activation function and PE mode of this item
  grad       round into the gradient format ``adam.grad`` instead of ``pe.out``
             (a weight-gradient product; FXP32 or packed, identity function)
  corr       a packed operation's correction item (held in stage 6, not output)
  keep       2C bits, the low lane's C then the high lane's: column c's result
             in that lane leaves as 0 where its bit is 0 (the ReLU mask of a
             transposed product, both lanes' in a packed one; all ones
             otherwise); applied where the results enter the quantizer and
             its bypass registers, after rounding and saturation, so it
             costs no stage and equals zeroing the value (a hidden error's
             quantizer, QAT's 16-bit errors, sees it masked)
Cross-core accumulation (intra-layer mode): ``sum_lo``/``sum_hi`` are this
core's finished wide column sums (both lanes, ``acc_bits`` each), straight
from their registers; ``xin_lo``/``xin_hi`` (the other cores' sums, as they
come) are registered on entry and added to them before the rounding where
``xin_en`` is set (held for the operation), zero otherwise: the zeroing
comes after the entry register, so nothing but wire lies between the two
cores' registers.
Weights: ``w_ld`` writes row ``w_row`` of the shadow weights from ``w_data``
(C words); ``w_swap`` makes the shadow weights active for the item presented
in the same cycle and all later ones (a load in the same cycle still goes to
the shadow). Outputs appear ``LATENCY`` cycles after the item with ``last``:
``out_valid``, ``out_slot``, ``out_pre`` (both lanes' masked results
before the quantizer, low lane first: what a range tracker takes),
``out_lo`` (C results: FXP32, or the low lane's vector) and ``out_hi`` (the
high lane's vector in FXP16, zero in FXP32).

QAT quantizer (``fq``, FXP32 outputs): each result y leaves as its 16-bit
value for the layer it feeds, q = clip(floor(n / Delta) + z, 0, 2^16 - 1)
with n = y 2^16 (+ floor(Delta / 2) when ``array.quantizer_rounding`` is
half_up: rounding to nearest), and out = delta (q - z) = round((q - z) Delta
2^-16) in ``pe.act32``. The floor division multiplies by the host's
``q_magic`` and shifts right by ``q_shift`` (exact for every numerator below
2^NB: Granlund and Montgomery's round-up method; fixar.driver.engine computes both),
on n or, if n < 0, its one's complement (floor(n / D) = -floor(~n / D) - 1).
``q_delta``, ``q_zero``, ``q_magic``, ``q_shift`` hold for the whole operation.

Stage numbers in this file are without a multiplier's own registers (M of
them, fixar.config.timing's MULTIPLIER_STAGES: one for the exact one, the
DSP48E2's M register, more for an approximate one): they follow stage 0,
and every later stage, the partial-sum buffer's read included, comes M
cycles later.

The partial-sum buffer is read two stages before the add and written one
stage after it: a slot's next item must come at least PSUM_WRITE_BEHIND + 1
cycles later (fixar.config.timing), which the array's schedule gives when
R > PSUM_WRITE_BEHIND (a slot's items are max(S, R) cycles apart).
"""
from __future__ import annotations

from amaranth.hdl import Array as MuxArray
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fixar.config import ActFunc, ConfigError, FixarConfig, PEMode, enum_bits, packed_shift_max, quantizer_widths
from fixar.config.bfp import code_bits
from fixar.config.timing import (
    BFP_WEIGHT_STAGES,
    PSUM_WRITE_BEHIND,
    QUANTIZER_DELTA_LEVELS,
    QUANTIZER_MAGIC_LEVELS,
    QUANTIZER_STAGES,
    core_stages,
    multiplier_stages,
    product_levels,
)
from fixar.gen.lib import products
from fixar.gen.lib.arith import QUANTIZER_ADDENDS, requantize, requantize_parts
from fixar.gen.lib.bfp_round import (
    bit_length,
    code,
    magnitude,
    mantissa,
    rounding_sum,
    shift_controls,
    shift_shape,
    sum_shape,
    width_limits,
)
from fixar.gen.lib.compress import carry_save, carry_select_add
from fixar.gen.lib.datapath import output_finish, output_stage, registered_parts, select_mode
from fixar.gen.lib.multipliers import lane_product, pe_lanes
from fixar.gen.lib.noise import hash_rounds
from fixar.gen.lib.pipe import Schedule, Stages, Timed, reg
from fixar.gen.lib.shift import shift_right_clamped
from fixar.gen.units.activation import ActivationUnit

COORD_BITS = 16   # output feature and batch index enter the noise hash modulo 2^16 (gen/lib/noise.py)


def packed_lane(lane_sum, e):
    """A packed QAT item's lane sum at the FXP32 product's scale: its inputs
    were the codes q - 2^15 of steps of 2^e act32 codes."""
    return lane_sum << e


def quantizer_ports(cfg: FixarConfig) -> dict:
    w = quantizer_widths(cfg)
    return {"fq": In(1), "q_magic": In(unsigned(w["magic"])), "q_shift": In(unsigned(w["shift"])),
            "q_delta": In(unsigned(w["delta"])), "q_zero": In(unsigned(w["zero"]))}


def quantizer_input(masked, unmasked):
    """What the output stage's quantizer takes: the masked results (a hidden
    error is masked, then quantized; QAT's 16-bit errors). A module function
    so that a bench can plant the other order."""
    return masked


class ArrayCore(wiring.Component):
    # input register, products, column sums, accumulate, the other cores'
    # sums registered as they arrive, cross-core add, recombined sum,
    # rounding into the activation unit's input register, activation output,
    # then the QAT quantizer's stages (passed through when fq is off); an
    # approximate multiplier's own registers come after the input register

    @staticmethod
    def check(cfg: FixarConfig) -> None:
        """Reject what the core cannot build, with the field's name."""
        gf, pe = cfg.adam.grad, cfg.pe
        if gf.needs_random:
            raise ConfigError(f"adam.grad: weight gradients leave the array rounded {gf.rounding!r}, which needs "
                              "random words; the array draws them for pe.out only")
        if pe.out.needs_random and pe.rnd_bits > 32:
            raise ConfigError(f"pe.out: stochastic rounding in the array takes {pe.rnd_bits}-bit words from a "
                              "32-bit hash; at most 32 bits")
        if cfg.array.rows <= PSUM_WRITE_BEHIND:
            raise ConfigError(f"array.rows: {cfg.array.rows} rows; the core's partial-sum buffer writes a slot "
                              f"back {PSUM_WRITE_BEHIND} cycles after reading it, and a slot's items come every "
                              f"max(batch, rows) cycles, so rows must be at least {PSUM_WRITE_BEHIND + 1}")
        qw = quantizer_widths(cfg)
        for what, (a, b), most in (
                ("n / Delta's magic-number product", (qw["nb"], qw["magic"]), QUANTIZER_MAGIC_LEVELS),
                ("(q - z) Delta", (pe.act16.bits + 2, qw["delta"]), QUANTIZER_DELTA_LEVELS)):
            if product_levels(a, b) > most:
                raise ConfigError(f"pe.out / pe.act16: the QAT quantizer's {what} ({a} x {b} bits) needs "
                                  f"{product_levels(a, b)} adder levels after its DSPs; the core's pipeline has "
                                  f"{most} (fixar.config.timing)")
        bfp = cfg.bfp
        if bfp.in_array and (bfp.group != cfg.array.rows or cfg.array.rows < 4 or not bfp.group_local(code_bits(cfg))):
            raise ConfigError(f"bfp.in_array: the array's BFP front converts a PE column as a group, so it needs "
                              f"bfp.group = array.rows >= 4 (got {bfp.group} and {cfg.array.rows}) and "
                              f"2^bfp.exp_bits >= {code_bits(cfg)} (got e = {bfp.exp_bits})")
        if gf.bits != pe.out.bits or not 0 < pe.weight.frac + pe.act32.frac - gf.frac:
            raise ConfigError(f"adam.grad: weight gradients leave the array on its {pe.out.bits}-bit output "
                              f"lanes: the format needs {pe.out.bits} bits and fewer than "
                              f"{pe.weight.frac + pe.act32.frac} fraction bits, got {gf}")

    def __init__(self, cfg: FixarConfig):
        self.check(cfg)
        self.cfg = cfg
        self.LATENCY = core_stages(cfg.pe)
        pe, ar = cfg.pe, cfg.array
        R, C, ob = ar.rows, ar.cols, pe.out.bits
        slot_bits = max((ar.psum_slots - 1).bit_length(), 1)
        super().__init__({
            "w_ld": In(1), "w_row": In(range(R)), "w_data": In(unsigned(C * pe.weight.bits)), "w_swap": In(1),
            "valid": In(1), "a": In(unsigned(R * pe.act32.bits)), "slot": In(unsigned(slot_bits)),
            "first": In(1), "last": In(1), "bias": In(unsigned(C * ob)), "bias_en": In(1),
            "func": In(enum_bits(ActFunc)), "mode": In(enum_bits(PEMode)), "grad": In(1), "keep": In(2 * C),
            "sum_lo": Out(unsigned(C * pe.acc_bits)), "sum_hi": Out(unsigned(C * pe.acc_bits)),
            "xin_lo": In(unsigned(C * pe.acc_bits)), "xin_hi": In(unsigned(C * pe.acc_bits)), "xin_en": In(1),
            "out_valid": Out(1), "out_slot": Out(unsigned(slot_bits)),
            "out_lo": Out(unsigned(C * ob)), "out_hi": Out(unsigned(C * ob)), "out_pre": Out(unsigned(2 * C * ob)),
            # with fq: each column's 16-bit codes q - 2^15 (low lane, then high lane;
            # the high lane's in a packed QAT product): one packed activation word
            "out_code": Out(unsigned(C * 2 * pe.act16.bits)),
            **quantizer_ports(cfg),
            # a packed QAT product (held for the operation): its FXP16 items' lane
            # sums, shifted by pq_e, plus the correction item's FXP32 total (below)
            "pq": In(1), "pq_e": In(range(packed_shift_max(cfg) + 1)),
            # with each item of a packed operation: it is the correction (an FXP32
            # item whose total is held, not output); the other FXP32 items of one
            # (a packed gradient's bias slot) are plain FXP32 items
            "corr": In(1),
            # stochastic pe.out: the operation's seed, the batch index of this
            # core's slot 0 and, with each item, the feature of its column 0
            **({"rnd_seed": In(32), "rnd_b0": In(COORD_BITS), "rnd_i0": In(COORD_BITS)}
               if pe.out.needs_random else {}),
            # a BFP product (bfp.in_array; docs/bfp.md "BFP in the array"): the weights
            # convert between the shadow and the active registers. bfp, m_w and w_seed
            # hold for the operation; cv_start latches the column maxima of the tile just
            # loaded (and restarts them for the next); cv converts shadow rows 2 cv_i and
            # 2 cv_i + 1, whose columns c are groups cv_group0 + c cv_stride
            **({"bfp": In(1), "m_w": In(range(max(cfg.bfp.widths) + 1)), "w_seed": In(32), "cv": In(1),
                "cv_start": In(1), "cv_i": In(range(max(R // 2, 2))), "cv_group0": In(32), "cv_stride": In(32)}
               if cfg.bfp.in_array else {}),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        pe = cfg.pe
        m = Module()
        active = self._weights(m)

        # Stage 0: input register (the item meets the weights made active with it).
        meta = [("valid", 1), ("slot", len(self.slot)), ("first", 1), ("last", 1), ("bias_en", 1),
                ("func", enum_bits(ActFunc)), ("mode", enum_bits(PEMode)), ("grad", 1), ("keep", 2 * cfg.array.cols),
                ("corr", 1)]
        if pe.out.needs_random:
            meta.append(("rnd_i0", COORD_BITS))
        s0 = {n: Signal(w, name=f"{n}0") for n, w in meta}
        a0 = Signal(unsigned(cfg.array.rows * pe.act32.bits))
        bias0 = Signal(unsigned(cfg.array.cols * pe.out.bits))
        m.d.sync += [s0[n].eq(getattr(self, n)) for n, _ in meta]
        m.d.sync += [a0.eq(self.a), bias0.eq(self.bias)]
        built = Stages("array core", self.LATENCY)
        built.stage()

        def follow(prev, stage):
            built.stage()
            nxt = {n: Signal(w, name=f"{n}{stage}") for n, w in meta}
            m.d.sync += [nxt[n].eq(prev[n]) for n, _ in meta]
            return nxt

        # Stages 1 .. M: an approximate multiplier's own registers (M = 0 for
        # the exact one); the item waits beside them, and every stage below is M later.
        M = multiplier_stages(pe)
        sm, bias_m = s0, bias0
        for k in range(1, M + 1):
            sm = follow(sm, k)
            bias_m = reg(m, bias_m, f"bias{k}")
        rnd = self._random_words(m, sm) if pe.out.needs_random else None

        # Stage 1: products, both lanes (low lane unsigned in FXP32, signed in FXP16).
        s1 = follow(sm, M + 1)
        bias1 = Signal.like(bias0)
        m.d.sync += bias1.eq(bias_m)
        p_lo, p_hi = self._products(m, active, a0, s0)

        # Stage 2: column sums as carry-save pairs (wide; no rounding anywhere before the output).
        s2 = follow(s1, M + 2)
        bias2 = Signal.like(bias0)
        m.d.sync += bias2.eq(bias1)
        cs_lo, cs_hi = self._column_sums(m, p_lo, p_hi)
        fin_lo, fin_hi = self._finished_sums(m)

        # Stage 3: the pairs added to the partial sums, registered (written
        # back; the finished sums of last k-tiles).
        s3 = follow(s2, M + 3)
        new_lo, new_hi = self._accumulate(m, [sm, s2, s3], bias2, cs_lo, cs_hi, fin_lo, fin_hi)
        m.d.sync += [f.eq(n) for f, n in zip(fin_lo + fin_hi, new_lo + new_hi)]

        # Stage 4: the other cores' sums registered where they arrive, this
        # core's own beside them (the crossing: core n sits in SLR n).
        s4 = follow(s3, M + 4)
        own_lo, own_hi, xin_lo, xin_hi = self._cross_core_inputs(m, fin_lo, fin_hi)

        # Stage 5: add them (intra-layer mode; zero otherwise); a packed QAT
        # item's lanes shifted by pq_e instead.
        s5 = follow(s4, M + 5)
        tot_lo, tot_hi = self._cross_core_add(m, s4, own_lo, own_hi, xin_lo, xin_hi)

        # Stage 6: FXP32's recombined sum hi * 2^L + lo (an add as wide as
        # both lanes) beside the lane sums, as the PE's stage 4; a packed item's
        # two totals, each lane plus the correction.
        s6 = follow(s5, M + 6)
        total6, total6_hi = self._totals(m, s5, tot_lo, tot_hi)
        A = pe.acc_bits      # FXP16's lane roundings: the unshifted lanes, A bits as they were summed
        lo6 = [reg(m, x[:A].as_signed(), f"tot6_lo_{c}") for c, x in enumerate(tot_lo)]
        hi6 = [reg(m, x[:A].as_signed(), f"tot6_hi_{c}") for c, x in enumerate(tot_hi)]

        # Stage 7: each rounding's first half (the floor narrowed, the carry), registered.
        s7 = follow(s6, M + 7)
        parts = self._round_parts(m, total6, total6_hi, lo6, hi6, rnd)

        # Stages 8 .. 7 + A: the roundings finished, then the activation
        # units (A = their latency, input register to output register).
        out_lo, out_hi = self._finish_and_activate(m, s7, parts)
        act_done = M + 7 + ActivationUnit.LATENCY
        stages = [s7]
        for k in range(M + 8, act_done + 1):
            stages.append(follow(stages[-1], k))
        s_act = stages[-1]

        # The QAT quantizer on the low lane (see the docstring), its stages after the activation's.
        q_stages = range(act_done + 1, act_done + 1 + QUANTIZER_STAGES)
        for k in q_stages:
            stages.append(follow(stages[-1], k))
        # the ReLU mask, ahead of the quantizer: a hidden error is masked, then
        # quantized (QAT's 16-bit errors); the masked values also travel on
        # past the quantizer, as the results when fq is off and as what the
        # range trackers see (out_pre)
        masked_lo = [Mux(s_act["keep"][c], y, 0) for c, y in enumerate(out_lo)]
        masked_hi = [Mux(s_act["keep"][len(out_lo) + c], y, 0) for c, y in enumerate(out_hi)]
        y_lo, y_hi = masked_lo, masked_hi
        for k in q_stages:
            y_lo = [reg(m, y, f"y_lo{k}_{c}") for c, y in enumerate(y_lo)]
            y_hi = [reg(m, y, f"y_hi{k}_{c}") for c, y in enumerate(y_hi)]
        fq_lo, code_lo = self._quantizer(m, quantizer_input(masked_lo, out_lo))
        fq_hi, code_hi = self._quantizer_pow2(m, quantizer_input(masked_hi, out_hi))
        built.check()
        last = stages[-1]
        fq = self.fq              # like the quantizer's numbers: constant for the operation
        lo = [Mux(fq, x, y) for x, y in zip(fq_lo, y_lo)]
        hi = [Mux(fq & self.pq, x, y) for x, y in zip(fq_hi, y_hi)]
        m.d.comb += self.out_code.eq(Cat(*[Cat(a, b) for a, b in zip(code_lo, code_hi)]))
        # a packed product's correction item leaves no output (its total is held in stage 6)
        leaves = last["valid"] & last["last"] & ~(self.pq & last["corr"])
        m.d.comb += [self.out_valid.eq(leaves), self.out_slot.eq(last["slot"]),
                     self.out_lo.eq(Cat(*lo)), self.out_hi.eq(Cat(*hi)), self.out_pre.eq(Cat(*y_lo, *y_hi))]
        return m

    def _weights(self, m: Module) -> list:
        """The active weights, and the shadow rows loaded while they compute
        (in a BFP product, the converted tile between them)."""
        R, C, wb = self.cfg.array.rows, self.cfg.array.cols, self.cfg.pe.weight.bits
        shadow = [[Signal(signed(wb), name=f"w_shadow_{r}_{c}") for c in range(C)] for r in range(R)]
        active = [[Signal(signed(wb), name=f"w_{r}_{c}") for c in range(C)] for r in range(R)]
        for r in range(R):
            with m.If(self.w_ld & (self.w_row == r)):
                m.d.sync += [shadow[r][c].eq(self.w_data[c * wb:(c + 1) * wb].as_signed()) for c in range(C)]
        source = shadow
        if self.cfg.bfp.in_array:
            conv = self._weight_converter(m, shadow)
            source = [[Mux(self.bfp, conv[r][c], shadow[r][c]) for c in range(C)] for r in range(R)]
        with m.If(self.w_swap):
            m.d.sync += [active[r][c].eq(source[r][c]) for r in range(R) for c in range(C)]
        return active

    def _weight_converter(self, m: Module, shadow: list) -> list:
        """A BFP product's weight tiles into BFP, a group per PE column
        (docs/bfp.md, "BFP in the array"): each column's largest magnitude
        collects while the tile loads; then two shadow rows convert per
        cycle (cv), their codes written BFP_WEIGHT_STAGES cycles later into
        the converted tile that the swap makes active. Element (r, c) takes
        the word of key (group_c << log2 R) | r, group_c = cv_group0 + c cv_stride."""
        cfg = self.cfg
        R, C, wb, Rb = cfg.array.rows, cfg.array.cols, cfg.pe.weight.bits, cfg.bfp.rnd_bits
        conv = [[Signal(signed(wb), name=f"w_conv_{r}_{c}") for c in range(C)] for r in range(R)]
        # the column maxima (as ORs of magnitudes: the same bit length) of the loading tile
        or_acc = [Signal(wb, name=f"w_or_{c}") for c in range(C)]
        or_held = [Signal(wb, name=f"w_or_held_{c}") for c in range(C)]
        colgroup = [Signal(32, name=f"w_group_{c}") for c in range(C)]
        for c in range(C):
            mag = magnitude(self.w_data[c * wb:(c + 1) * wb].as_signed(), wb)
            m.d.sync += or_acc[c].eq(Mux(self.cv_start | ~self.bfp, 0, or_acc[c]) | Mux(self.w_ld & self.bfp, mag, 0))
            with m.If(self.cv_start):
                m.d.sync += [or_held[c].eq(or_acc[c]), colgroup[c].eq((self.cv_group0 + c * self.cv_stride)[:32])]
        s_col = [reg(m, bit_length(m, or_held[c], wb, f"w_bitlen_{c}") - self.m_w + 1, f"w_shift_{c}",
                     shift_shape(cfg, wb)) for c in range(C)]
        built = Stages("weight converter", BFP_WEIGHT_STAGES)
        # 1: the pair of rows read, and their row numbers
        pairs = max(R // 2, 1)
        rows1 = [[reg(m, MuxArray([shadow[2 * p + e][c] for p in range(pairs)])[self.cv_i], f"wc_q{e}_{c}_1")
                  for c in range(C)] for e in range(2)]
        i1, v1 = reg(m, self.cv_i, "wc_i1"), reg(m, self.cv & self.bfp, "wc_v1")
        built.stage()
        # 2, 3: each element's random word (the hash in two halves)
        log_r = (R - 1).bit_length()
        h2 = [[reg(m, hash_rounds(m, self.w_seed ^ Cat(Const(e, 1), i1, colgroup[c])[:32] if log_r else
                                  self.w_seed ^ colgroup[c], 0, 3, f"wc_h{e}_{c}"), f"wc_h{e}_{c}_2")
               for c in range(C)] for e in range(2)]
        rows2, i2, v2 = [[reg(m, q, f"wc_q{e}_{c}_2") for c, q in enumerate(row)] for e, row in enumerate(rows1)], \
            reg(m, i1, "wc_i2"), reg(m, v1, "wc_v2")
        built.stage()
        words3 = [[reg(m, hash_rounds(m, h, 3, 3, f"wc_w{e}_{c}")[32 - Rb:], f"wc_word{e}_{c}_3", unsigned(Rb))
                   for c, h in enumerate(row)] for e, row in enumerate(h2)]
        rows3, i3, v3 = [[reg(m, q, f"wc_q{e}_{c}_3") for c, q in enumerate(row)] for e, row in enumerate(rows2)], \
            reg(m, i2, "wc_i3"), reg(m, v2, "wc_v3")
        built.stage()
        # 4: the rounding addends, by each column's shift
        ctl = [shift_controls(m, cfg, s_col[c], wb, f"wc_round_{c}") for c in range(C)]
        sums4 = [[reg(m, rounding_sum(cfg, q, words3[e][c], ctl[c]), f"wc_sum{e}_{c}_4", sum_shape(wb))
                  for c, q in enumerate(row)] for e, row in enumerate(rows3)]
        kept4 = [reg(m, ctl[c]["kept"], f"wc_kept_{c}_4") for c in range(C)]
        s4 = [reg(m, x, f"wc_s_{c}_4") for c, x in enumerate(s_col)]
        rows4, i4, v4 = [[reg(m, q, f"wc_q{e}_{c}_4") for c, q in enumerate(row)] for e, row in enumerate(rows3)], \
            reg(m, i3, "wc_i4"), reg(m, v3, "wc_v4")
        built.stage()
        # 5: the mantissas, saturated to m_w bits
        lo, hi = width_limits(m, cfg, self.m_w, "wc_sat")
        mant5 = [[reg(m, mantissa(m, cfg, sums4[e][c], kept4[c], q, s4[c], lo, hi, f"wc_mant{e}_{c}"),
                      f"wc_mant{e}_{c}_5") for c, q in enumerate(row)] for e, row in enumerate(rows4)]
        s5 = [reg(m, x, f"wc_s_{c}_5") for c, x in enumerate(s4)]
        i5, v5 = reg(m, i4, "wc_i5"), reg(m, v4, "wc_v5")
        built.stage()
        # 6: their codes into the converted tile
        with m.If(v5):
            for p in range(pairs):
                with m.If(i5 == p):
                    m.d.sync += [conv[2 * p + e][c].eq(code(mant5[e][c], s5[c], wb))
                                 for e in range(min(2, R)) for c in range(C)]
        built.stage()
        built.check()
        return conv

    def _products(self, m: Module, active: list, a0: Signal, s0: dict) -> tuple[list, list]:
        """Stage 1 (M + 1 with an approximate multiplier's M registers): every PE's products of both lanes."""
        pe = self.cfg.pe
        R, C, L = self.cfg.array.rows, self.cfg.array.cols, pe.lane_bits
        p_lo = [[Signal(signed(pe.product_bits), name=f"p_lo_{r}_{c}") for c in range(C)] for r in range(R)]
        p_hi = [[Signal(signed(pe.product_bits), name=f"p_hi_{r}_{c}") for c in range(C)] for r in range(R)]
        for r in range(R):
            word = a0[r * 2 * L:(r + 1) * 2 * L]
            lo, hi = pe_lanes(m, word, s0["mode"], pe, f"a_{r}")
            for c in range(C):      # by the config's multiplier (fixar.gen.lib.multipliers)
                m.d.sync += [p_lo[r][c].eq(lane_product(m, active[r][c], lo, pe, f"mul_lo_{r}_{c}")),
                             p_hi[r][c].eq(lane_product(m, active[r][c], hi, pe, f"mul_hi_{r}_{c}"))]
        return p_lo, p_hi

    def _column_sums(self, m: Module, p_lo: list, p_hi: list) -> tuple[list, list]:
        """Stage 2: each column's R products per lane reduced to a carry-save
        pair (fixar.gen.lib.compress: LUT levels, no carry chain), registered;
        the pair is added in stage 3 with the partial sum (a 48-bit add after
        a 16-operand tree in one stage was the core's longest path)."""
        R, C, A = self.cfg.array.rows, self.cfg.array.cols, self.cfg.pe.acc_bits
        pairs = {"lo": [], "hi": []}
        for c in range(C):
            for lane, p in (("lo", p_lo), ("hi", p_hi)):
                s, k = carry_save(m, [p[r][c] for r in range(R)], A, f"colsum_{lane}_{c}")
                pairs[lane].append((reg(m, s, f"colsum_{lane}_{c}_s"), reg(m, k, f"colsum_{lane}_{c}_k")))
        return pairs["lo"], pairs["hi"]

    def _accumulate(self, m: Module, s: list, bias2: Signal, cs_lo: list, cs_hi: list,
                    fin_lo: list, fin_hi: list) -> tuple[list, list]:
        """Partial-sum buffer: read addressed in stage 0 and registered, the
        column sums' carry-save pairs added in stage 2 to the slot's partial sums (or to the
        bias, first k-tile), written back from the registered sums ``fin`` in
        stage 3. So the add runs from a flip-flop to a flip-flop: neither the
        block RAM's clock-to-out nor its write setup is on it. A read misses
        the writes of the PSUM_WRITE_BEHIND items ahead of it; none of them has
        its slot, because a slot's items are max(S, R) >= R cycles apart (the
        array's tile steps) and check() asks for R above that."""
        pe, ar = self.cfg.pe, self.cfg.array
        C, ob, A = ar.cols, pe.out.bits, pe.acc_bits
        s0, s2, s3 = s
        m.submodules.psum = psum = Memory(shape=unsigned(2 * C * A), depth=ar.psum_slots, init=[])
        wp = psum.write_port()
        rp = psum.read_port()
        m.d.comb += rp.addr.eq(s0["slot"])
        m.d.comb += [wp.addr.eq(s3["slot"]), wp.en.eq(s3["valid"]),
                     wp.data.eq(Cat(*[x for c in range(C) for x in (fin_lo[c], fin_hi[c])]))]
        stored = reg(m, rp.data, "psum_read")

        new_lo = [Signal(signed(A), name=f"acc_lo_{c}") for c in range(C)]
        new_hi = [Signal(signed(A), name=f"acc_hi_{c}") for c in range(C)]
        for c in range(C):
            b = Mux(s2["bias_en"], bias2[c * ob:(c + 1) * ob].as_signed(), 0)
            start_lo = Mux(s2["mode"], b << pe.shift16, b << pe.shift32)
            start_hi = Mux(s2["mode"], b << pe.shift16, 0)
            old_lo = stored[(2 * c) * A:(2 * c + 1) * A].as_signed()
            old_hi = stored[(2 * c + 1) * A:(2 * c + 2) * A].as_signed()
            for new, base, pair, lane in ((new_lo, Mux(s2["first"], start_lo, old_lo), cs_lo[c], "lo"),
                                          (new_hi, Mux(s2["first"], start_hi, old_hi), cs_hi[c], "hi")):
                # one 3:2 level, then the one carry chain
                s, k = carry_save(m, [base, *pair], A, f"acc_{lane}_{c}")
                m.d.comb += new[c].eq(s + k)
        return new_lo, new_hi

    def _finished_sums(self, m: Module) -> tuple[list, list]:
        """Stage 3: the sums registered (the accumulation writes them), and out
        as this core's part of a cross-core sum."""
        C, A = self.cfg.array.cols, self.cfg.pe.acc_bits
        fin_lo = [Signal(signed(A), name=f"fin_lo_{c}") for c in range(C)]
        fin_hi = [Signal(signed(A), name=f"fin_hi_{c}") for c in range(C)]
        m.d.comb += [self.sum_lo.eq(Cat(*fin_lo)), self.sum_hi.eq(Cat(*fin_hi))]
        return fin_lo, fin_hi

    def _cross_core_inputs(self, m: Module, fin_lo: list, fin_hi: list) -> tuple[list, list, list, list]:
        """Stage 4: the other cores' sums (``xin_*``) registered as they enter,
        and this core's own sums delayed to meet them. The sums come from
        registers in the other cores, which a U50 places in the other SLR: with
        a register on each side and no logic between, the crossing is a whole
        cycle's path, not the front of the add."""
        C, A = self.cfg.array.cols, self.cfg.pe.acc_bits
        own_lo = [reg(m, x, f"own_lo_{c}") for c, x in enumerate(fin_lo)]
        own_hi = [reg(m, x, f"own_hi_{c}") for c, x in enumerate(fin_hi)]
        xin_lo = [reg(m, self.xin_lo[c * A:(c + 1) * A].as_signed(), f"xin_lo_{c}") for c in range(C)]
        xin_hi = [reg(m, self.xin_hi[c * A:(c + 1) * A].as_signed(), f"xin_hi_{c}") for c in range(C)]
        return own_lo, own_hi, xin_lo, xin_hi

    def _cross_core_add(self, m: Module, s4: dict, own_lo: list, own_hi: list, xin_lo: list,
                        xin_hi: list) -> tuple[list, list]:
        """Stage 5: the other cores' sums added. Each lane wraps modulo
        2**acc_bits like every other sum, so the order of cores does not matter.
        A packed QAT item (FXP16 in a ``pq`` operation) has its lanes, with
        the other cores' sums added in a packed weight gradient, shifted left
        by ``pq_e`` to the FXP32 product's scale (then a 2:1 choice)."""
        C, A = self.cfg.array.cols, self.cfg.pe.acc_bits
        E = packed_shift_max(self.cfg)
        packed = self.pq & (s4["mode"] == PEMode.FXP16)
        tot_lo = [Signal(signed(A + E), name=f"tot_lo_{c}") for c in range(C)]
        tot_hi = [Signal(signed(A + E), name=f"tot_hi_{c}") for c in range(C)]
        for c in range(C):
            for tot, own, xin, lane in ((tot_lo, own_lo, xin_lo, "lo"), (tot_hi, own_hi, xin_hi, "hi")):
                # a carry-select add: the packed gradient's shift follows it in this stage
                # (one A-bit carry chain and the shift were 3.86 ns in the 2-core core 0)
                wrapped = carry_select_add(m, own[c], Mux(self.xin_en, xin[c], 0), A, f"sum5_{lane}_{c}")
                m.d.sync += tot[c].eq(Mux(packed, packed_lane(wrapped, self.pq_e), wrapped))
        return tot_lo, tot_hi

    def _totals(self, m: Module, s5: dict, tot_lo: list, tot_hi: list) -> tuple[list, list]:
        """Stage 6: each column's FXP32 total, registered. FXP32: the lanes
        recombined, hi * 2^L + lo. A packed QAT operation: its first item per
        output tile and k-tile is the zero point's correction, an FXP32 item
        whose input is (2^15 - z) 2^e and whose start is the bias: its total
        (on the last k-tile) is held, and each later item's lanes (their sums
        of W (q - 2^15), shifted by e in stage 5) become two totals, each lane
        plus the held one: the FXP32 products of the vectors (q - z) 2^e
        (docs/array.md, "Packed QAT products"). The correction's last item
        comes right before its tile's packed items, and the held total is
        loaded in the same edge as its stage-6 register, so the next item
        already sees it."""
        pe = self.cfg.pe
        L = pe.lane_bits
        packed = self.pq & (s5["mode"] == PEMode.FXP16)
        hold = self.pq & s5["corr"] & s5["valid"] & s5["last"]
        total6, total6_hi = [], []
        A = pe.acc_bits
        for c, (lo, hi) in enumerate(zip(tot_lo, tot_hi)):
            # an FXP32 total's lanes are A bits (their sums wrap there); a packed
            # lane A + E: the sum is as wide as the larger, plus a carry
            held = Signal(signed(A + L + 1), name=f"held_{c}")
            width = max(A + L + 1, len(lo)) + 1
            first = Signal(signed(A + L + 1), name=f"total_first_{c}")
            m.d.comb += first.eq(Mux(packed, held, hi[:A].as_signed() << L))
            total = carry_select_add(m, first, lo, width, f"total_{c}")     # one add either way
            with m.If(hold):
                m.d.sync += held.eq(total)
            total6.append(reg(m, total, f"total6_{c}"))
            total6_hi.append(reg(m, carry_select_add(m, held, hi, width, f"total_hi_{c}"), f"total6_hi_{c}"))
        return total6, total6_hi

    def _round_parts(self, m: Module, totals: list, totals_hi: list, tot_lo: list, tot_hi: list, rnd) -> list:
        """Stage 7: each column's roundings, first halves, registered: the PE's
        output stage (gen/lib/datapath), the weight gradient's rounding of
        the same recombined sum into its own format, and a packed QAT item's
        second total rounded as FXP32's (its high-lane vector)."""
        cfg = self.cfg
        pe = cfg.pe
        parts = []
        for c in range(cfg.array.cols):
            p = output_stage(m, totals[c], tot_lo[c], tot_hi[c], pe, f"col{c}", *(rnd[c] if rnd else (None, None)))
            p["fxp32_hi"] = requantize_parts(m, totals_hi[c], pe.shift32, pe.out, f"col{c}_fxp32_hi",
                                             rnd[c][1] if rnd else None)
            grad_shift = pe.weight.frac + pe.act32.frac - cfg.adam.grad.frac
            p["grad"] = requantize_parts(m, totals[c], grad_shift, cfg.adam.grad, f"grad_{c}")
            # a packed weight gradient's second feature (its high lane's total)
            p["grad_hi"] = requantize_parts(m, totals_hi[c], grad_shift, cfg.adam.grad, f"grad_hi_{c}")
            parts.append(registered_parts(m, p, f"col{c}_r6"))
        return parts

    def _finish_and_activate(self, m: Module, s7: dict, parts: list) -> tuple[list, list]:
        """Stage 8 on: each column's roundings finished, then its activation units."""
        cfg = self.cfg
        pe = cfg.pe
        formats = {"fxp32": pe.out, "fxp16_lo": pe.out, "fxp16_hi": pe.out, "fxp32_hi": pe.out, "grad": cfg.adam.grad,
                   "grad_hi": cfg.adam.grad}
        out_lo, out_hi = [], []
        fp16 = s7["mode"] == PEMode.FXP16
        lanes16 = fp16 & ~self.pq       # a packed QAT item's lanes were rounded as FXP32 totals
        for c in range(cfg.array.cols):
            out = output_finish(m, parts[c], formats, f"col{c}")
            y_lo, y_hi = select_mode(out, lanes16, Mux(s7["grad"], out["grad"], out["fxp32"]))
            y_hi = Mux(fp16 & self.pq, Mux(s7["grad"], out["grad_hi"], out["fxp32_hi"]), y_hi)
            for lane, x in (("lo", y_lo), ("hi", y_hi)):
                unit = ActivationUnit(cfg)
                m.submodules[f"act_{lane}_{c}"] = unit
                m.d.comb += [unit.x.eq(x), unit.func.eq(s7["func"])]
                (out_lo if lane == "lo" else out_hi).append(unit.y)
        return out_lo, out_hi

    def _quantizer(self, m: Module, out_lo: list) -> list:
        """The QAT quantizer of each low-lane result (see the module docstring), in
        the QUANTIZER_STAGES stages after the activation units' output, its
        stages as fixar.config.timing lists them: n's sign and magnitude; times
        the magic number (DSP-sized partial products and an adder tree,
        fixar.gen.lib.products); shifted and clamped; plus the zero point;
        clipped minus the zero point; times Delta (likewise); rounded into
        pe.act32."""
        sched = Schedule(m)
        fq_lo, codes = [], []
        for c, y in enumerate(out_lo):
            x, code = self._quantize(m, sched, self._dividend(m, y, f"q_n_{c}"), f"q{c}")
            fq_lo.append(x.value)
            codes.append(sched.at(code, QUANTIZER_STAGES))
        return fq_lo, codes

    def _quantizer_pow2(self, m: Module, out_hi: list) -> tuple[list, list]:
        """The high lane's quantizer, for a packed QAT product's second vector:
        the low lane's function where Delta is a power of two 2^d (the packed
        route needs array.quantizer_scale = "pow2"), so the division and the
        product by Delta are shifts by d (no DSP48E2): floor(n / 2^d), then
        clamped like the low lane's, then the same zero point, clip and rounding into
        pe.act32, padded to the same stages. d is read off q_delta's leading
        one once per operation (q_delta holds for it)."""
        qw = quantizer_widths(self.cfg)
        log2 = Signal(range(qw["delta"]), name="q_log2_delta")
        for i in range(qw["delta"]):        # the last assignment wins: the highest set bit
            with m.If(self.q_delta[i]):
                m.d.sync += log2.eq(i)
        sched = Schedule(m)
        fq_hi, codes = [], []
        for c, y in enumerate(out_hi):
            x, code = self._quantize_pow2(m, sched, self._dividend(m, y, f"qh{c}_n"), log2, f"qh{c}")
            fq_hi.append(sched.at(x, QUANTIZER_STAGES))
            codes.append(sched.at(code, QUANTIZER_STAGES))
        return fq_hi, codes

    def _dividend(self, m: Module, y, name: str) -> Timed:
        """A result's quantizer dividend n = y 2^16, plus floor(Delta / 2) when
        rounding to nearest ((y 2^16 + Delta // 2) // Delta), both lanes alike."""
        pe = self.cfg.pe
        half = QUANTIZER_ADDENDS[self.cfg.array.quantizer_rounding](self.q_delta)
        n = Signal(signed(pe.out.bits + pe.act16.bits + 1), name=name)
        m.d.comb += n.eq((y << pe.act16.bits) + half)
        return Timed(n, 0)

    def _quantize_pow2(self, m: Module, sched: Schedule, n: Timed, log2: Signal, name: str) -> tuple[Timed, Timed]:
        """One dividend through the power-of-two quantizer: the act32 value and the code."""
        pe, qw = self.cfg.pe, quantizer_widths(self.cfg)
        qb = pe.act16.bits
        neg = sched.reg(f"{name}_neg", 1, lambda v: v[-1], n)
        u = sched.reg(f"{name}_u", unsigned(qw["nb"]), lambda v: Mux(v[-1], ~v, v)[:qw["nb"]], n)
        # the shift, then the clamp at 2^(qb + 1) in the next stage (the two in one
        # stage were the core's longest path; this quantizer has stages to spare)
        sh = sched.reg(f"{name}_sh", unsigned(qw["nb"]), lambda v: v >> log2, u)
        top = 1 << (qb + 1)
        fs = sched.reg(f"{name}_fs", unsigned(qb + 2), lambda v: Mux(v > top, top, v), sh)
        d, code = self._clip_to_code(sched, name, neg, fs)
        v = sched.reg(f"{name}_dd", signed(qb + 2 + qw["delta"]), lambda v: v << log2, d)
        x = sched.reg(f"{name}_x", signed(pe.act32.bits), lambda v: requantize(m, v, qb, pe.act32, f"{name}_dq"), v)
        return x, code

    def _clip_to_code(self, sched: Schedule, name: str, neg: Timed, fs: Timed) -> tuple[Timed, Timed]:
        """q = clip(floor(n / Delta) + z) from floor(|n| / Delta) (clamped) and
        n's sign: (q - z, the code q - 2^15 a packed activation word holds)."""
        qb, zero = self.cfg.pe.act16.bits, self.q_zero
        qv = sched.reg(f"{name}_v", signed(qb + 4), lambda s, f: Mux(s, zero - f - 1, zero + f), neg, fs)

        def clipped(v):
            return Mux(v < 0, 0, Mux(v > (1 << qb) - 1, (1 << qb) - 1, v))
        d = sched.reg(f"{name}_d", signed(qb + 2), lambda v: clipped(v) - zero, qv)
        code = sched.reg(f"{name}_code", signed(qb), lambda v: clipped(v) - (1 << (qb - 1)), qv)
        return d, code

    def _quantize(self, m: Module, sched: Schedule, n: Timed, name: str) -> tuple[Timed, Timed]:
        """One dividend's way through the quantizer (q_* hold for the operation,
        so they enter each stage as they are): the act32 value and the code."""
        pe, qw = self.cfg.pe, quantizer_widths(self.cfg)
        qb, nb, mb = pe.act16.bits, qw["nb"], qw["magic"]
        magic_at = 2 + QUANTIZER_MAGIC_LEVELS          # the product n * magic, whole (padded to it)
        delta_at = magic_at + 4 + QUANTIZER_DELTA_LEVELS
        neg = sched.reg(f"{name}_neg", 1, lambda v: v[-1], n)
        # the dividend n if n >= 0, else ~n = -n - 1
        u = sched.reg(f"{name}_u", unsigned(nb), lambda v: Mux(v[-1], ~v, v)[:nb], n)
        p = products.product(sched, f"{name}_p", u, Timed(self.q_magic, u.at))

        def shifted_clamped(p):          # floor(u / Delta), clamped at 2^(qb + 1): beyond it q clips either way
            return shift_right_clamped(m, p[:nb + mb], self.q_shift, qb + 1, name)
        fs = sched.reg(f"{name}_fs", unsigned(qb + 2), shifted_clamped, Timed(sched.at(p, magic_at), magic_at))
        d, code = self._clip_to_code(sched, name, neg, fs)
        v = products.product(sched, f"{name}_dd", d, Timed(self.q_delta, d.at))
        x = sched.reg(f"{name}_x", signed(pe.act32.bits), lambda v: requantize(m, v, qb, pe.act32, f"{name}_dq"),
                      Timed(sched.at(v, delta_at), delta_at))
        return x, code

    def _random_words(self, m: Module, s0: dict) -> list:
        """Stochastic rounding's words for each column and lane, ready in
        stage 6 beside the sums they round: the noise hash of (seed, feature
        i0 + c, batch b0 + slot * vectors per slot + lane), two rounds per
        stage over stages 1-3, then waiting (gen/lib/noise.py)."""
        pe = self.cfg.pe
        C = self.cfg.array.cols
        per_slot = Mux(s0["mode"] == PEMode.FXP16, s0["slot"] << 1, s0["slot"])
        words = []
        for c in range(C):
            lanes = []
            for lane in (0, 1):
                b = (self.rnd_b0 + per_slot + lane)[:COORD_BITS]
                i = (s0["rnd_i0"] + c)[:COORD_BITS]
                h = self.rnd_seed ^ Cat(b, i)
                for k, stage in ((0, 1), (2, 2), (4, 3)):
                    h = reg(m, hash_rounds(m, h, k, 2, f"rnd_{c}_{lane}_s{stage}"), f"rnd_{c}_{lane}_{stage}")
                for stage in (4, 5, 6):
                    h = reg(m, h, f"rnd_{c}_{lane}_{stage}")
                lanes.append(h[32 - pe.rnd_bits:])
            words.append(tuple(lanes))
        return words
