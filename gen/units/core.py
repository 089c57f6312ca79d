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
             (a weight-gradient product; FXP32, identity function)
  keep       C bits: column c's result leaves as 0 where bit c is 0 (the ReLU
             mask of a transposed product, all ones otherwise); applied where the
             results enter the quantizer's bypass registers, after rounding and
             saturation, so it costs no stage and equals zeroing the stored value
Cross-core accumulation (intra-layer mode): ``sum_lo``/``sum_hi`` are this
core's finished wide column sums (both lanes, ``acc_bits`` each), valid one
stage before rounding; ``xin_lo``/``xin_hi`` are added to them before the
rounding (the other cores' sums, or zero).
Weights: ``w_ld`` writes row ``w_row`` of the shadow weights from ``w_data``
(C words); ``w_swap`` makes the shadow weights active for the item presented
in the same cycle and all later ones (a load in the same cycle still goes to
the shadow). Outputs appear ``LATENCY`` cycles after the item with ``last``:
``out_valid``, ``out_slot``, ``out_lo`` (C results: FXP32, or the low lane's
vector) and ``out_hi`` (the high lane's vector in FXP16, zero in FXP32).

QAT quantizer (``fq``, FXP32 outputs): each result y leaves as its 16-bit
value for the layer it feeds, q = clip(floor(n / Delta) + z, 0, 2^16 - 1)
with n = y 2^16 (+ floor(Delta / 2) when ``array.quantizer_rounding`` is
half_up: rounding to nearest), and out = delta (q - z) = round((q - z) Delta
2^-16) in ``pe.act32``. The floor division multiplies by the host's
``q_magic`` and shifts right by ``q_shift`` (exact for every numerator below
2^NB: Granlund and Montgomery's round-up method; fixar.driver.engine computes both),
on n or, if n < 0, its one's complement (floor(n / D) = -floor(~n / D) - 1).
``q_delta``, ``q_zero``, ``q_magic``, ``q_shift`` hold for the whole operation.

The partial-sum buffer is read one stage before it is written and its read
port is transparent to the write, so one slot may be updated on consecutive
cycles (batch 1) without stalls.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fixar.config import ActFunc, ConfigError, FixarConfig, PEMode, enum_bits, quantizer_widths
from fixar.config.timing import CORE_STAGES, QUANTIZER_STAGES
from fixar.gen.lib.arith import QUANTIZER_ADDENDS, requantize
from fixar.gen.lib.datapath import lane_operands, output_stage, recombined, select_mode
from fixar.gen.lib.multipliers import multiply
from fixar.gen.lib.noise import hash_rounds
from fixar.gen.lib.pipe import Stages, reg
from fixar.gen.units.activation import ActivationUnit

COORD_BITS = 16   # output feature and batch index enter the noise hash modulo 2^16 (gen/lib/noise.py)


def quantizer_ports(cfg: FixarConfig) -> dict:
    w = quantizer_widths(cfg)
    return {"fq": In(1), "q_magic": In(unsigned(w["magic"])), "q_shift": In(unsigned(w["shift"])),
            "q_delta": In(unsigned(w["delta"])), "q_zero": In(unsigned(w["zero"]))}


class ArrayCore(wiring.Component):
    # input register, products, column sums, accumulate, cross-core add,
    # rounding into the activation unit's input register, activation output,
    # then the QAT quantizer's stages (passed through when fq is off)
    LATENCY = CORE_STAGES

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
        if gf.bits != pe.out.bits or not 0 < pe.weight.frac + pe.act32.frac - gf.frac:
            raise ConfigError(f"adam.grad: weight gradients leave the array on its {pe.out.bits}-bit output "
                              f"lanes: the format needs {pe.out.bits} bits and fewer than "
                              f"{pe.weight.frac + pe.act32.frac} fraction bits, got {gf}")

    def __init__(self, cfg: FixarConfig):
        self.check(cfg)
        self.cfg = cfg
        pe, ar = cfg.pe, cfg.array
        R, C, ob = ar.rows, ar.cols, pe.out.bits
        slot_bits = max((ar.psum_slots - 1).bit_length(), 1)
        super().__init__({
            "w_ld": In(1), "w_row": In(range(R)), "w_data": In(unsigned(C * pe.weight.bits)), "w_swap": In(1),
            "valid": In(1), "a": In(unsigned(R * pe.act32.bits)), "slot": In(unsigned(slot_bits)),
            "first": In(1), "last": In(1), "bias": In(unsigned(C * ob)), "bias_en": In(1),
            "func": In(enum_bits(ActFunc)), "mode": In(enum_bits(PEMode)), "grad": In(1), "keep": In(C),
            "sum_lo": Out(unsigned(C * pe.acc_bits)), "sum_hi": Out(unsigned(C * pe.acc_bits)),
            "xin_lo": In(unsigned(C * pe.acc_bits)), "xin_hi": In(unsigned(C * pe.acc_bits)),
            "out_valid": Out(1), "out_slot": Out(unsigned(slot_bits)),
            "out_lo": Out(unsigned(C * ob)), "out_hi": Out(unsigned(C * ob)),
            **quantizer_ports(cfg),
            # stochastic pe.out: the operation's seed, the batch index of this
            # core's slot 0 and, with each item, the feature of its column 0
            **({"rnd_seed": In(32), "rnd_b0": In(COORD_BITS), "rnd_i0": In(COORD_BITS)}
               if pe.out.needs_random else {}),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        pe = cfg.pe
        m = Module()
        active = self._weights(m)

        # Stage 0: input register (the item meets the weights made active with it).
        meta = [("valid", 1), ("slot", len(self.slot)), ("first", 1), ("last", 1), ("bias_en", 1),
                ("func", enum_bits(ActFunc)), ("mode", enum_bits(PEMode)), ("grad", 1), ("keep", cfg.array.cols)]
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

        rnd = self._random_words(m, s0) if pe.out.needs_random else None

        # Stage 1: products, both lanes (low lane unsigned in FXP32, signed in FXP16).
        s1 = follow(s0, 1)
        bias1 = Signal.like(bias0)
        m.d.sync += bias1.eq(bias0)
        p_lo, p_hi = self._products(m, active, a0, s0)

        # Stage 2: column sums (wide; no rounding anywhere before the output).
        s2 = follow(s1, 2)
        bias2 = Signal.like(bias0)
        m.d.sync += bias2.eq(bias1)
        cs_lo, cs_hi = self._column_sums(m, p_lo, p_hi)
        new_lo, new_hi = self._accumulate(m, s1, s2, bias2, cs_lo, cs_hi)

        # Stage 3: the finished sums of last k-tiles.
        s3 = follow(s2, 3)
        fin_lo, fin_hi = self._finished_sums(m, new_lo, new_hi)

        # Stage 4: add the other cores' sums (intra-layer mode; zero otherwise).
        s4 = follow(s3, 4)
        tot_lo, tot_hi = self._cross_core_add(m, fin_lo, fin_hi)

        # Stages 5 .. 4 + A: round once into pe.out, then the activation
        # units (A = their latency, input register to output register).
        out_lo, out_hi = self._round_and_activate(m, s4, tot_lo, tot_hi, rnd)
        act_done = 4 + ActivationUnit.LATENCY
        stages = [s4]
        for k in range(5, act_done + 1):
            stages.append(follow(stages[-1], k))
        s_act = stages[-1]

        # The QAT quantizer on the low lane (see the docstring), its stages after the activation's.
        q_stages = range(act_done + 1, act_done + 1 + QUANTIZER_STAGES)
        for k in q_stages:
            stages.append(follow(stages[-1], k))
        # the ReLU mask: a masked transposed product never uses fq (describe()
        # rejects it), so zeroing the bypass lane is enough
        y_lo = [Mux(s_act["keep"][c], y, 0) for c, y in enumerate(out_lo)]
        y_hi = out_hi
        for k in q_stages:              # the results as they are, when fq is off
            y_lo = [reg(m, y, f"y_lo{k}_{c}") for c, y in enumerate(y_lo)]
            y_hi = [reg(m, y, f"y_hi{k}_{c}") for c, y in enumerate(y_hi)]
        fq_lo = self._quantizer(m, out_lo)
        built.check()
        last = stages[-1]
        fq = self.fq              # like the quantizer's numbers: constant for the operation
        lo = [Mux(fq, x, y) for x, y in zip(fq_lo, y_lo)]
        m.d.comb += [self.out_valid.eq(last["valid"] & last["last"]), self.out_slot.eq(last["slot"]),
                     self.out_lo.eq(Cat(*lo)), self.out_hi.eq(Cat(*y_hi))]
        return m

    def _weights(self, m: Module) -> list:
        """The active weights, and the shadow rows loaded while they compute."""
        R, C, wb = self.cfg.array.rows, self.cfg.array.cols, self.cfg.pe.weight.bits
        shadow = [[Signal(signed(wb), name=f"w_shadow_{r}_{c}") for c in range(C)] for r in range(R)]
        active = [[Signal(signed(wb), name=f"w_{r}_{c}") for c in range(C)] for r in range(R)]
        for r in range(R):
            with m.If(self.w_ld & (self.w_row == r)):
                m.d.sync += [shadow[r][c].eq(self.w_data[c * wb:(c + 1) * wb].as_signed()) for c in range(C)]
        with m.If(self.w_swap):
            m.d.sync += [active[r][c].eq(shadow[r][c]) for r in range(R) for c in range(C)]
        return active

    def _products(self, m: Module, active: list, a0: Signal, s0: dict) -> tuple[list, list]:
        """Stage 1: every PE's products of both lanes."""
        pe = self.cfg.pe
        R, C, L = self.cfg.array.rows, self.cfg.array.cols, pe.lane_bits
        p_lo = [[Signal(signed(pe.product_bits), name=f"p_lo_{r}_{c}") for c in range(C)] for r in range(R)]
        p_hi = [[Signal(signed(pe.product_bits), name=f"p_hi_{r}_{c}") for c in range(C)] for r in range(R)]
        for r in range(R):
            word = a0[r * 2 * L:(r + 1) * 2 * L]
            lo, hi = lane_operands(m, word, s0["mode"], L, f"a_{r}")
            for c in range(C):      # by the config's multiplier (fixar.gen.lib.multipliers)
                m.d.sync += [p_lo[r][c].eq(multiply(m, active[r][c], lo, pe.multiplier, f"mul_lo_{r}_{c}")),
                             p_hi[r][c].eq(multiply(m, active[r][c], hi, pe.multiplier, f"mul_hi_{r}_{c}"))]
        return p_lo, p_hi

    def _column_sums(self, m: Module, p_lo: list, p_hi: list) -> tuple[list, list]:
        """Stage 2: each column's wide sums of its R products."""
        R, C, A = self.cfg.array.rows, self.cfg.array.cols, self.cfg.pe.acc_bits
        cs_lo = [Signal(signed(A), name=f"colsum_lo_{c}") for c in range(C)]
        cs_hi = [Signal(signed(A), name=f"colsum_hi_{c}") for c in range(C)]
        for c in range(C):
            m.d.sync += [cs_lo[c].eq(sum(p_lo[r][c] for r in range(R))),
                         cs_hi[c].eq(sum(p_hi[r][c] for r in range(R)))]
        return cs_lo, cs_hi

    def _accumulate(self, m: Module, s1: dict, s2: dict, bias2: Signal, cs_lo: list, cs_hi: list) -> tuple[list, list]:
        """Partial-sum buffer: read addressed in stage 1, written from stage 2 with
        the column sums added to the slot's partial sums (or the bias, first k-tile)."""
        pe, ar = self.cfg.pe, self.cfg.array
        C, ob, A = ar.cols, pe.out.bits, pe.acc_bits
        m.submodules.psum = psum = Memory(shape=unsigned(2 * C * A), depth=ar.psum_slots, init=[])
        wp = psum.write_port()
        rp = psum.read_port(transparent_for=(wp,))
        m.d.comb += rp.addr.eq(s1["slot"])

        new_lo = [Signal(signed(A), name=f"acc_lo_{c}") for c in range(C)]
        new_hi = [Signal(signed(A), name=f"acc_hi_{c}") for c in range(C)]
        for c in range(C):
            b = Mux(s2["bias_en"], bias2[c * ob:(c + 1) * ob].as_signed(), 0)
            start_lo = Mux(s2["mode"], b << pe.shift16, b << pe.shift32)
            start_hi = Mux(s2["mode"], b << pe.shift16, 0)
            old_lo = rp.data[(2 * c) * A:(2 * c + 1) * A].as_signed()
            old_hi = rp.data[(2 * c + 1) * A:(2 * c + 2) * A].as_signed()
            m.d.comb += [new_lo[c].eq(Mux(s2["first"], start_lo, old_lo) + cs_lo[c]),
                         new_hi[c].eq(Mux(s2["first"], start_hi, old_hi) + cs_hi[c])]
        m.d.comb += [wp.addr.eq(s2["slot"]), wp.en.eq(s2["valid"]),
                     wp.data.eq(Cat(*[x for c in range(C) for x in (new_lo[c], new_hi[c])]))]
        return new_lo, new_hi

    def _finished_sums(self, m: Module, new_lo: list, new_hi: list) -> tuple[list, list]:
        """Stage 3: the sums registered, and out as this core's part of a cross-core sum."""
        C, A = self.cfg.array.cols, self.cfg.pe.acc_bits
        fin_lo = [Signal(signed(A), name=f"fin_lo_{c}") for c in range(C)]
        fin_hi = [Signal(signed(A), name=f"fin_hi_{c}") for c in range(C)]
        m.d.sync += [fin_lo[c].eq(new_lo[c]) for c in range(C)] + [fin_hi[c].eq(new_hi[c]) for c in range(C)]

        m.d.comb += [self.sum_lo.eq(Cat(*fin_lo)), self.sum_hi.eq(Cat(*fin_hi))]
        return fin_lo, fin_hi

    def _cross_core_add(self, m: Module, fin_lo: list, fin_hi: list) -> tuple[list, list]:
        """Stage 4: the other cores' sums added. Each lane wraps modulo
        2**acc_bits like every other sum, so the order of cores does not matter."""
        C, A = self.cfg.array.cols, self.cfg.pe.acc_bits
        tot_lo = [Signal(signed(A), name=f"tot_lo_{c}") for c in range(C)]
        tot_hi = [Signal(signed(A), name=f"tot_hi_{c}") for c in range(C)]
        for c in range(C):
            m.d.sync += [tot_lo[c].eq(fin_lo[c] + self.xin_lo[c * A:(c + 1) * A].as_signed()),
                         tot_hi[c].eq(fin_hi[c] + self.xin_hi[c * A:(c + 1) * A].as_signed())]
        return tot_lo, tot_hi

    def _round_and_activate(self, m: Module, s4: dict, tot_lo: list, tot_hi: list, rnd) -> tuple[list, list]:
        """Stage 5 on: each column's sums rounded once, then its activation units."""
        cfg = self.cfg
        pe = cfg.pe
        out_lo, out_hi = [], []
        for c in range(cfg.array.cols):
            # the PE's output stage (gen/lib/datapath), and weight gradients
            # rounded from the same recombined sum into their own format
            total = recombined(m, tot_lo[c], tot_hi[c], pe, f"col{c}")
            out = output_stage(m, total, tot_lo[c], tot_hi[c], pe, f"col{c}", *(rnd[c] if rnd else (None, None)))
            yg = requantize(m, out["total"], pe.weight.frac + pe.act32.frac - cfg.adam.grad.frac, cfg.adam.grad,
                            f"grad_{c}")
            y_lo, y_hi = select_mode(out, s4["mode"], Mux(s4["grad"], yg, out["fxp32"]))
            for lane, x in (("lo", y_lo), ("hi", y_hi)):
                unit = ActivationUnit(cfg)
                m.submodules[f"act_{lane}_{c}"] = unit
                m.d.comb += [unit.x.eq(x), unit.func.eq(s4["func"])]
                (out_lo if lane == "lo" else out_hi).append(unit.y)
        return out_lo, out_hi

    def _quantizer(self, m: Module, out_lo: list) -> list:
        """The QAT quantizer of each low-lane result (see the module docstring), in
        the QUANTIZER_STAGES stages after the activation units' output, its
        registers numbered from 1: n's sign and magnitude; times the magic
        number; shifted and clamped; plus the zero point; clipped minus the
        zero point; times Delta; rounded into pe.act32."""
        cfg = self.cfg
        pe = cfg.pe
        ob = pe.out.bits
        qw = quantizer_widths(cfg)
        qb, nb = pe.act16.bits, qw["nb"]
        # Rounding to nearest adds floor(Delta / 2) to the dividend (y 2^16 + Delta // 2) // Delta.
        half = QUANTIZER_ADDENDS[cfg.array.quantizer_rounding](self.q_delta)
        fq_lo = []
        for c, y in enumerate(out_lo):
            n = Signal(signed(ob + qb + 1), name=f"q_n_{c}")
            m.d.comb += n.eq((y << qb) + half)
            neg = reg(m, n[-1], f"q_neg1_{c}")
            u = reg(m, Mux(n[-1], ~n, n)[:nb], f"q_u1_{c}")      # the dividend n if n >= 0, else ~n = -n - 1
            p = Signal(unsigned(nb + qw["magic"]), name=f"q_p2_{c}")
            m.d.sync += p.eq(u * self.q_magic)
            neg = reg(m, neg, f"q_neg2_{c}")
            f = Signal(unsigned(nb + qw["magic"]), name=f"q_f_{c}")
            m.d.comb += f.eq(p >> self.q_shift)                   # floor(u / Delta)
            top = 1 << (qb + 1)                                    # beyond it q clips either way
            fs = Signal(unsigned(qb + 2), name=f"q_fs3_{c}")
            m.d.sync += fs.eq(Mux(f > top, top, f))
            neg = reg(m, neg, f"q_neg3_{c}")
            zero = self.q_zero
            qv = Signal(signed(qb + 4), name=f"q_v4_{c}")
            m.d.sync += qv.eq(Mux(neg, zero - fs - 1, zero + fs))     # floor(n / Delta) + z
            q = Signal(unsigned(qb), name=f"q_{c}")
            m.d.comb += q.eq(Mux(qv < 0, 0, Mux(qv > (1 << qb) - 1, (1 << qb) - 1, qv)))
            d = Signal(signed(qb + 2), name=f"q_d5_{c}")
            m.d.sync += d.eq(q - zero)
            v = Signal(signed(qb + 2 + qw["delta"]), name=f"q_v6_{c}")
            m.d.sync += v.eq(d * self.q_delta)
            x = Signal(signed(pe.act32.bits), name=f"q_x7_{c}")
            m.d.sync += x.eq(requantize(m, v, qb, pe.act32, f"q_dq_{c}"))
            fq_lo.append(x)
        return fq_lo

    def _random_words(self, m: Module, s0: dict) -> list:
        """Stochastic rounding's words for each column and lane, ready in
        stage 4 beside the sums they round: the noise hash of (seed, feature
        i0 + c, batch b0 + slot * vectors per slot + lane), two rounds per
        stage over stages 1-3 (gen/lib/noise.py)."""
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
                h = reg(m, h, f"rnd_{c}_{lane}_4")
                lanes.append(h[32 - pe.rnd_bits:])
            words.append(tuple(lanes))
        return words
