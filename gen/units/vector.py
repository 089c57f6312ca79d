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

Pipeline: 0 input registers; 1 the products (x c, b^2), the lanes' noise and
the ReLU masks (0 < b < limit); 2 rounding, saturation and the final add into
the output register.
This module knows nothing of the golden model (fixar.golden.vector).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fixar.config import ConfigError, FixarConfig, VecOp, enum_bits
from fixar.config.timing import VECTOR_STAGES
from fixar.gen.lib import xorshift
from fixar.gen.lib.arith import rne, saturate
from fixar.gen.lib.pipe import Stages


class VectorUnit(wiring.Component):
    LATENCY = VECTOR_STAGES

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
        bits, F = fmt.bits, fmt.frac
        one = 1 << F
        H = cfg.prng.width // 2
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

        # ---- stage 1 per lane
        valid1 = reg(1, "valid1", valid0)
        op1 = reg(enum_bits(VecOp), "op1", op0)
        a1 = reg(unsigned(L * bits), "a1", a0)
        b1 = reg(unsigned(L * bits), "b1", b0)
        flag1 = reg(L, "flag1", flag0)
        prods, dtanhs, noises, passes = [], [], [], []
        shift = cf + H - F
        for j in range(L):
            a = a0.word_select(j, bits).as_signed()
            b = b0.word_select(j, bits).as_signed()
            # signed b against the unsigned limit: Amaranth compares both in signed(bits + 1)
            passes.append(reg(1, f"lane{j}_relu_pass", (b > 0) & (b < limit0)))
            x = Signal(signed(bits + 1), name=f"lane{j}_x")
            m.d.comb += x.eq(Mux(op0 == VecOp.SCALE, a, Mux(op0 == VecOp.TD, b, a - b)))
            prods.append(reg(signed(bits + cf + 3), f"lane{j}_prod", x * c0))
            # DTANH: b at or beyond +-limit is a saturated tanh seen through a
            # quantizer (its grid rarely holds +-one): tanh' = 0 there, as at +-one
            bc = Signal(signed(F + 2), name=f"lane{j}_bclip")
            m.d.comb += bc.eq(Mux((b >= limit0) | (b <= -limit0), one, Mux(b > one, one, Mux(b < -one, -one, b))))
            sq = Signal(signed(2 * F + 4), name=f"lane{j}_bsq")
            m.d.comb += sq.eq(bc * bc)
            dtanhs.append(reg(signed(F + 3), f"lane{j}_dtanh", one - rne(m, sq, F, f"lane{j}_bsq")))
            w1, w2 = chain[2 * j + 1], chain[2 * j + 2]
            u = Signal(signed(H + 4), name=f"lane{j}_u")
            m.d.comb += u.eq(w1[:H] + w1[H:] + w2[:H] + w2[H:] - (2 << H))
            nsum = Signal(signed(H + 4 + cf + 2), name=f"lane{j}_noise_full")
            m.d.comb += nsum.eq(u * c0 + (1 << (shift - 1)))
            noises.append(reg(signed(len(nsum) - shift + 1), f"lane{j}_noise", nsum >> shift))

        # ---- stage 2 per lane
        ys = []
        for j in range(L):
            a = a1.word_select(j, bits).as_signed()
            b = b1.word_select(j, bits).as_signed()
            scaled = saturate(m, rne(m, prods[j], cf, f"lane{j}_scaled"), fmt, f"lane{j}_scaled")
            dprod = Signal(signed(bits + F + 3), name=f"lane{j}_dprod")
            m.d.comb += dprod.eq(a * dtanhs[j])
            y = Signal(signed(bits), name=f"lane{j}_y")
            noisy = Signal(signed(bits + len(noises[j]) + 1), name=f"lane{j}_noisy")
            m.d.comb += noisy.eq(a + noises[j])
            # every candidate built outside the switch: their helper signals stay unconditional
            add = saturate(m, a + b, fmt, f"lane{j}_add")
            sub = saturate(m, a - b, fmt, f"lane{j}_sub")
            td = saturate(m, a + Mux(flag1[j], 0, scaled), fmt, f"lane{j}_td")
            soft = saturate(m, b + scaled, fmt, f"lane{j}_soft")
            dtanh = saturate(m, rne(m, dprod, F, f"lane{j}_dtanh"), fmt, f"lane{j}_dtanh")
            with m.Switch(op1):
                for code, value in ((VecOp.ADD, add), (VecOp.SUB, sub), (VecOp.SCALE, scaled), (VecOp.TD, td),
                                    (VecOp.SOFT, soft), (VecOp.RELU_MASK, Mux(passes[j], a, 0)),
                                    (VecOp.DTANH, dtanh),
                                    (VecOp.NOISE, Mux(noisy > one, one, Mux(noisy < -one, -one, noisy)))):
                    with m.Case(code):
                        m.d.comb += y.eq(value)
            ys.append(y)
        m.d.sync += [self.out_valid.eq(valid1), self.y.eq(Cat(*ys))]
        stages = Stages("vector unit", self.LATENCY)
        stages.stage(3)  # valid0, valid1, out_valid
        stages.check()
        return m
