"""The vector unit: one row of ``array.rows`` ``pe.act32`` words per cycle
through one element-wise DDPG operation (``fixar.config.VecOp``,
docs/vector.md): the TD target, the loss gradient, ReLU and tanh
derivatives, soft target updates and exploration noise.

Ports: ``valid``, ``op``, ``count`` (lanes in use, a prefix; only NOISE
looks at it: it draws two PRNG words per used lane, lane 0 first), rows
``a`` and ``b``, one ``flag`` bit per lane, the coefficient ``c``, the
``limit`` of RELU_MASK and DTANH (unsigned: 2^(bits - 1) lets every positive
b through RELU_MASK and changes nothing in DTANH); the result
row ``y`` with ``out_valid`` ``LATENCY`` cycles later. ``seed_we``/``seed``
load the xorshift32 state (reset: ``prng.seed``); ``prng_state`` shows it.

Pipeline (``latency(cfg)`` = fixar.config.timing's vector_stages): the input
registers; then each operation's path as deep as its own arithmetic needs,
one carry chain or one DSP product per stage (wide products as registered
partial products and an adder tree: fixar.gen.lib.products), the shorter
paths delayed to the longest (DTANH: the clip, b^2, 1 - b^2 rounded,
a (1 - b^2), its rounding in two halves); then the choice by operation into
the output register. :class:`fixar.gen.lib.pipe.Schedule` does the delaying.
This module knows nothing of the golden model (fixar.golden.vector).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fixar.config import ConfigError, FixarConfig, VecOp, enum_bits
from fixar.config.timing import timing
from fixar.gen.lib import products, xorshift
from fixar.gen.lib.arith import floor_and_carry, requantize_finish, requantize_parts, saturate
from fixar.gen.lib.pipe import Schedule, Timed


class VectorUnit(wiring.Component):
    @staticmethod
    def latency(cfg: FixarConfig) -> int:
        return timing(cfg).vector

    @staticmethod
    def check(cfg: FixarConfig) -> None:
        fmt = cfg.pe.act32
        if fmt.rounding != "rne" or fmt.overflow != "saturate":
            raise ConfigError(f"pe.act32: the vector unit rounds to nearest even and saturates; got rounding "
                              f"{fmt.rounding!r}, overflow {fmt.overflow!r}")
        if cfg.prng.width != 32:
            raise ConfigError("prng: the vector unit's noise is written for the 32-bit xorshift32")

    def __init__(self, cfg: FixarConfig):
        self.check(cfg)
        self.cfg = cfg
        L, bits = cfg.array.rows, cfg.pe.act32.bits
        super().__init__({
            "valid": In(1), "op": In(enum_bits(VecOp)), "count": In(range(L + 1)),
            "a": In(unsigned(L * bits)), "b": In(unsigned(L * bits)), "flag": In(L),
            "c": In(unsigned(cfg.vector.coef_frac + 1)), "limit": In(unsigned(bits)),
            "seed_we": In(1), "seed": In(32),
            "out_valid": Out(1), "y": Out(unsigned(L * bits)), "prng_state": Out(32),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        L, fmt, cf = cfg.array.rows, cfg.pe.act32, cfg.vector.coef_frac
        bits = fmt.bits
        m = Module()

        def reg(shape, name, value):
            r = Signal(shape, name=name)
            m.d.sync += r.eq(value)
            return r

        # ---- stage 0
        valid0 = reg(1, "valid0", self.valid)
        op0 = reg(enum_bits(VecOp), "op0", self.op)
        count0 = reg(range(L + 1), "count0", self.count)
        a0 = reg(unsigned(L * bits), "a0", self.a)
        b0 = reg(unsigned(L * bits), "b0", self.b)
        flag0 = reg(L, "flag0", self.flag)
        c0 = reg(unsigned(cf + 1), "c0", self.c)
        limit0 = reg(unsigned(bits), "limit0", self.limit)
        # -limit registered beside it: DTANH's clip then compares b with both in parallel
        neg_limit0 = reg(signed(bits + 1), "neg_limit0", -self.limit)

        # ---- PRNG: lane j draws words 2j+1 and 2j+2 after the current state
        state = Signal(32, init=cfg.prng.seed, name="prng")
        m.d.comb += self.prng_state.eq(state)
        chain = [state]                       # chain[k]: k steps on, one flat XOR per bit
        for k in range(1, 2 * L + 1):
            nxt = Signal(32, name=f"prng_next{k}")
            m.d.comb += nxt.eq(xorshift.advanced(state, k))
            chain.append(nxt)
        with m.If(self.seed_we):
            m.d.sync += state.eq(self.seed)
        with m.Elif(valid0 & (op0 == VecOp.NOISE)):
            advanced = chain[0]               # count 0 draws nothing
            for n in range(1, L + 1):
                advanced = Mux(count0 == n, chain[2 * n], advanced)
            m.d.sync += state.eq(advanced)

        sched = Schedule(m)
        ins = {"op": Timed(op0, 1), "c": Timed(c0, 1), "limit": Timed(limit0, 1), "neg_limit": Timed(neg_limit0, 1)}
        ys = [self._lane(m, sched, j, ins, Timed(a0.word_select(j, bits).as_signed(), 1),
                         Timed(b0.word_select(j, bits).as_signed(), 1), Timed(flag0[j], 1),
                         (Timed(chain[2 * j + 1], 1), Timed(chain[2 * j + 2], 1))) for j in range(L)]
        choice = self.latency(cfg) - 1     # the stage whose register is the output
        ready = max(y.at for y in ys)
        if ready > choice or ready < choice - 1:    # one stage of padding makes the latency odd
            raise AssertionError(f"vector unit: the lanes are ready in stage {ready} but fixar.config.timing "
                                 f"says {choice}; change one to match the other")
        m.d.sync += [self.out_valid.eq(sched.at(Timed(valid0, 1), choice)),
                     self.y.eq(Cat(*(sched.at(y, choice) for y in ys)))]
        return m

    def _lane(self, m: Module, sched: Schedule, j: int, ins: dict, a: Timed, b: Timed, flag: Timed,
              words: tuple[Timed, Timed]) -> Timed:
        """Lane ``j``'s result of the operation in flight, combinational in
        the stage its longest path is ready in."""
        cfg = self.cfg
        fmt, cf = cfg.pe.act32, cfg.vector.coef_frac
        bits, F = fmt.bits, fmt.frac
        one = 1 << F
        op, c, limit = ins["op"], ins["c"], ins["limit"]
        name = f"lane{j}"
        # signed b against the unsigned limit: Amaranth compares both in signed(bits + 1)
        relu_pass = sched.reg(f"{name}_relu_pass", 1, lambda b, lim: (b > 0) & (b < lim), b, limit)
        # x c / 2^cf rounded and saturated: SCALE, and the scaled term of TD and SOFT
        x = sched.reg(f"{name}_x", signed(bits + 1),
                      lambda o, a, b: Mux(o == VecOp.SCALE, a, Mux(o == VecOp.TD, b, a - b)), op, a, b)
        scaled = self._requantize(m, sched, f"{name}_scaled", products.product(sched, f"{name}_xc", x, c), cf)
        # DTANH: b at or beyond +-limit is a saturated tanh seen through a
        # quantizer (its grid rarely holds +-one): tanh' = 0 there, as at +-one
        bc = sched.reg(f"{name}_bclip", signed(F + 2), lambda b, lim, neg: Mux(
            (b >= lim) | (b <= neg), one, Mux(b > one, one, Mux(b < -one, -one, b))), b, limit, ins["neg_limit"])
        bsq = products.product(sched, f"{name}_bsq", bc, bc)
        # one - rne(b^2): one + ~floor + !carry, a single carry chain
        dt = sched.reg(f"{name}_dtanh_coef", signed(F + 3), lambda v: self._one_minus_rne(m, v, f"{name}_bsq"), bsq)
        dtanh = self._requantize(m, sched, f"{name}_dtanh", products.product(sched, f"{name}_dprod", a, dt), F)
        noise = self._noise(sched, name, a, c, words)
        # the sums of ADD, SUB, TD and SOFT, saturated in the choice's stage
        sums = {
            VecOp.ADD: sched.reg(f"{name}_add", signed(bits + 1), lambda a, b: a + b, a, b),
            VecOp.SUB: sched.reg(f"{name}_sub", signed(bits + 1), lambda a, b: a - b, a, b),
            VecOp.TD: sched.reg(f"{name}_td", signed(bits + 1), lambda a, f, s: a + Mux(f, 0, s), a, flag, scaled),
            VecOp.SOFT: sched.reg(f"{name}_soft", signed(bits + 1), lambda b, s: b + s, b, scaled),
        }
        stage = max(t.at for t in (*sums.values(), scaled, dtanh, noise, relu_pass))
        at = lambda t: sched.at(t, stage)
        choices = {code: saturate(m, at(t), fmt, f"{name}_{code.name.lower()}") for code, t in sums.items()}
        choices.update({VecOp.SCALE: at(scaled), VecOp.RELU_MASK: Mux(at(relu_pass), at(a), 0),
                        VecOp.DTANH: at(dtanh), VecOp.NOISE: at(noise)})
        y = Signal(signed(bits), name=f"{name}_y")
        with m.Switch(at(op)):
            for code, value in choices.items():
                with m.Case(code):
                    m.d.comb += y.eq(value)
        return Timed(y, stage)

    def _noise(self, sched: Schedule, name: str, a: Timed, c: Timed, words: tuple[Timed, Timed]) -> Timed:
        """a + c u rounded, clamped to +-one: u the centred sum of the lane's
        four 16-bit PRNG halves."""
        cfg = self.cfg
        F, cf, H = cfg.pe.act32.frac, cfg.vector.coef_frac, cfg.prng.width // 2
        one, bits = 1 << F, cfg.pe.act32.bits
        halves = [sched.reg(f"{name}_w{i}_halves", unsigned(H + 1), lambda w: w[:H] + w[H:], word)
                  for i, word in enumerate(words)]
        u = sched.reg(f"{name}_u", signed(H + 4), lambda p, q: p + q - (2 << H), *halves)
        shift = cf + H - F
        cu = sched.at(c, u.at)
        terms = [(sched.reg(f"{name}_uc{i}", signed(len(u.value) + len(part) + 1), lambda v, w: v * w, u,
                            Timed(part, u.at)), k)
                 for i, (part, k) in enumerate(products.dsp_chunks(cu, products.DSP_B))]
        nsum = products.tree_sum(sched, f"{name}_noise_full", terms, len(u.value) + len(c.value) + 1,
                                 1 << (shift - 1))
        noisy = sched.reg(f"{name}_noisy", signed(bits + 2), lambda a, n: a + (n >> shift), a, nsum)
        return sched.reg(f"{name}_noise", signed(F + 2), lambda v: Mux(v > one, one, Mux(v < -one, -one, v)), noisy)

    def _one_minus_rne(self, m: Module, value, name: str):
        F = self.cfg.pe.act32.frac
        floor, carry = floor_and_carry(m, value, F, "rne", name)
        return (1 << F) + ~floor + ~carry

    def _requantize(self, m: Module, sched: Schedule, name: str, value: Timed, shift: int) -> Timed:
        """``value`` rounded right by ``shift`` and saturated into pe.act32:
        the floor and the rounding's carry in one stage, the increment and
        the saturation in the next."""
        fmt = self.cfg.pe.act32
        kept, carry = requantize_parts(m, value.value, shift, fmt, name)
        kept = sched.reg(f"{name}_kept", kept.shape(), lambda v: v, Timed(kept, value.at))
        carry = sched.reg(f"{name}_carry", 1, lambda v: v, Timed(carry, value.at))
        return sched.reg(name, signed(fmt.bits), lambda k, cy: requantize_finish(m, k, cy, fmt, name), kept, carry)
