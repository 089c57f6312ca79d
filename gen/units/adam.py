"""The Adam unit: one weight update per cycle, fully pipelined (docs/adam.md).

Per weight it reads (w, g, m, v) and returns the updated (w, m, v):

    g  <- clip(g, -G, G)                            G = adam.grad_limit: g^2 fits adam.v
    m  <- rnd_m((B1 m + C1 g) / 2^cf)               saturated to adam.m
    v  <- rnd_v((B2 v + C2 g^2) / 2^cf)             saturated to adam.v (unsigned)
    (y, s) = rsqrt(v + E2)                          leading one, seed table, Newton steps
    P  = rnd_m(m y / 2^rf)                          saturated to adam.m
    w  <- saturate(w - rne(P L 2^s / 2^(m.frac + lr_frac - weight.frac)))

rnd_m and rnd_v round as adam.m.rounding and adam.v.rounding say: rne, or
zero (toward zero, so that a moment whose gradient stays 0 decays to 0;
rounded to nearest it sticks at a few LSB and keeps moving the weight:
docs/training.md).

The run-time codes B1, C1, B2, C2, E2 (hyper-parameters) and L (this step's
bias-corrected step size) are inputs held steady by the controller for a
whole update pass. Every product is exact (no intermediate truncation
except where the rule says floor or rne), so widths follow from the config.

Pipeline stages, one register each (``latency(cfg)`` = 5 + Newton steps):
  0  input registers (g clipped on its way in)
  1  new moments m, v
  2  x = v + E2; leading-one, normalised mantissa, seed lookup
  3.. one Newton step each
  +1 P = rne(m y), q = P L
  +1 the shifted, rounded update subtracted from w, saturated
This module knows nothing of the golden model (fixar.golden.adam); both
follow the config and docs/adam.md.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fixar.config import ConfigError, FixarConfig
from fixar.config.timing import timing
from fixar.gen.lib.arith import requantize
from fixar.gen.lib.arith import saturate as _saturate
from fixar.gen.lib.pipe import Stages


class AdamUnit(wiring.Component):
    """Ports: ``valid``/``w``/``g``/``m``/``v`` in; ``out_valid``/``out_w``/``out_m``/``out_v``
    ``latency(cfg)`` cycles later; the run-time codes ``b1 c1 b2 c2 e2 lr``."""

    @staticmethod
    def check(cfg: FixarConfig) -> None:
        ad = cfg.adam
        # m and v take any rounding of the registry that needs no random word;
        # the weight update's shift is a run-time one, built for rne alone
        for name, fmt in (("adam.m", ad.m), ("adam.v", ad.v), ("pe.weight", cfg.pe.weight)):
            if fmt.needs_random or fmt.overflow != "saturate" or (name == "pe.weight" and fmt.rounding != "rne"):
                raise ConfigError(f"{name}: the Adam unit saturates it and rounds it without random words "
                                  f"(the weight to nearest even); got rounding {fmt.rounding!r}, "
                                  f"overflow {fmt.overflow!r}")

    @staticmethod
    def latency(cfg: FixarConfig) -> int:
        return timing(cfg).adam

    def __init__(self, cfg: FixarConfig):
        self.check(cfg)
        self.cfg = cfg
        ad, wf = cfg.adam, cfg.pe.weight
        coef = unsigned(ad.coef_frac + 1)
        super().__init__({
            "valid": In(1),
            "w": In(signed(wf.bits)), "g": In(signed(ad.grad.bits)),
            "m": In(signed(ad.m.bits)), "v": In(unsigned(ad.v.bits)),
            "b1": In(coef), "c1": In(coef), "b2": In(coef), "c2": In(coef),
            "e2": In(unsigned(ad.v.bits)), "lr": In(unsigned(ad.lr_frac + 1)),
            "out_valid": Out(1),
            "out_w": Out(signed(wf.bits)), "out_m": Out(signed(ad.m.bits)), "out_v": Out(unsigned(ad.v.bits)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        ad, wf = cfg.adam, cfg.pe.weight
        cf, rf = ad.coef_frac, ad.rsqrt_frac
        m = Module()

        def reg(shape, name, value):
            r = Signal(shape, name=name)
            m.d.sync += r.eq(value)
            return r

        # ---- stage 0: inputs
        valid = [reg(1, "valid0", self.valid)]
        w0 = reg(signed(wf.bits), "w0", self.w)
        # g clipped where its square would saturate v (else m / sqrt(v) outgrows Adam's bound)
        G = ad.grad_limit
        g0 = reg(signed(ad.grad.bits), "g0", Mux(self.g > G, G, Mux(self.g < -G, -G, self.g)))
        m0 = reg(signed(ad.m.bits), "m0", self.m)
        v0 = reg(unsigned(ad.v.bits), "v0", self.v)

        # ---- stage 1: moments
        g_m = g0 << (ad.m.frac - ad.grad.frac)
        m_sum = Signal(signed(ad.m.bits + cf + 3), name="m_sum")
        m.d.comb += m_sum.eq(self.b1 * m0 + self.c1 * g_m)
        m1 = reg(signed(ad.m.bits), "m1", requantize(m, m_sum, cf, ad.m, "m_new"))

        g2 = Signal(unsigned(2 * ad.grad.bits), name="g2")
        m.d.comb += g2.eq(g0 * g0)
        d = ad.v.frac - 2 * ad.grad.frac
        g2v = Signal(unsigned(ad.v.bits), name="g2_in_v")
        if d >= 0:
            m.d.comb += g2v.eq(Mux(g2 > (ad.v.max_int >> d), ad.v.max_int, g2 << d))
        else:
            m.d.comb += g2v.eq(requantize(m, g2.as_signed(), -d, ad.v, "g2_sat"))
        v_sum = Signal(unsigned(ad.v.bits + cf + 2), name="v_sum")
        m.d.comb += v_sum.eq(self.b2 * v0 + self.c2 * g2v)
        v1 = reg(unsigned(ad.v.bits), "v1", requantize(m, v_sum.as_signed(), cf, ad.v, "v_new"))
        valid.append(reg(1, "valid1", valid[-1]))
        w1 = reg(signed(wf.bits), "w1", w0)

        # ---- stage 2: x = v + E2 normalised to a mantissa in [1, 4) with rf
        # fraction bits and an even exponent; the seed for its segment
        xb = ad.v.bits + 1
        x = Signal(unsigned(xb), name="rsqrt_x")
        m.d.comb += x.eq(v1 + self.e2)
        e = Signal(range(xb), name="rsqrt_lead")       # position of the leading one (x >= 1)
        for i in range(xb):
            with m.If(x[i]):
                m.d.comb += e.eq(i)
        k = Signal(signed(8), name="rsqrt_k")          # value = 2^k (1 + f)
        m.d.comb += k.eq(e - ad.v.frac)
        odd = k[0]
        mn = Signal(unsigned(rf + 1), name="rsqrt_norm")  # [2^rf, 2^(rf+1))
        m.d.comb += mn.eq(Mux(e >= rf, x >> (e - rf).as_unsigned(), x << (rf - e).as_unsigned()))
        half = ad.rsqrt_table_bits - 1
        table = ad.rsqrt_table()
        m.submodules.rsqrt_seeds = rom = Memory(shape=unsigned(rf + 1), depth=len(table), init=table)
        rd = rom.read_port(domain="comb")
        m.d.comb += rd.addr.eq(mn[rf - half:rf] | (odd << half))
        mant = reg(unsigned(rf + 2), "rsqrt_mant2", Mux(odd, mn << 1, mn))
        y = reg(unsigned(rf + 1), "rsqrt_seed", rd.data)
        kk = k - odd                                    # even
        s = reg(signed(8), "rsqrt_s2", -(kk >> 1))
        valid.append(reg(1, "valid2", valid[-1]))
        m2 = reg(signed(ad.m.bits), "m2", m1)
        v2 = reg(unsigned(ad.v.bits), "v2", v1)
        w2 = reg(signed(wf.bits), "w2", w1)

        # ---- Newton steps y <- floor(y (3 - floor(floor(m floor(y^2)) ) ) / 2), fixed point
        mm, vv, ww = m2, v2, w2
        for i in range(ad.rsqrt_newton):
            t1 = Signal(unsigned(2 * (rf + 1)), name=f"newton{i}_t1")
            m.d.comb += t1.eq((y * y) >> rf)
            t2 = Signal(unsigned(rf + 2 + 2 * (rf + 1)), name=f"newton{i}_t2")
            m.d.comb += t2.eq((mant * t1) >> rf)
            corr = Signal(signed(len(t2) + 2), name=f"newton{i}_corr")
            m.d.comb += corr.eq(Const(3 << rf, unsigned(rf + 2)) - t2)
            prod = Signal(signed(len(corr) + rf + 2), name=f"newton{i}_prod")
            m.d.comb += prod.eq(y.as_signed() * corr)
            y_next = Signal(signed(rf + 3), name=f"newton{i}_y")
            m.d.comb += y_next.eq(prod >> (rf + 1))
            y = reg(unsigned(rf + 1), f"rsqrt_y{i + 1}", y_next[:rf + 1])
            mant = reg(unsigned(rf + 2), f"rsqrt_mant{i + 3}", mant)
            s = reg(signed(8), f"rsqrt_s{i + 3}", s)
            valid.append(reg(1, f"valid_newton{i + 1}", valid[-1]))
            mm = reg(signed(ad.m.bits), f"m_newton{i + 1}", mm)
            vv = reg(unsigned(ad.v.bits), f"v_newton{i + 1}", vv)
            ww = reg(signed(wf.bits), f"w_newton{i + 1}", ww)

        # ---- P = rne(m y / 2^rf) in m's format; q = P L
        py = Signal(signed(ad.m.bits + rf + 2), name="p_full")
        m.d.comb += py.eq(mm * y.as_signed())
        p = requantize(m, py, rf, ad.m, "p")
        q = reg(signed(ad.m.bits + ad.lr_frac + 2), "q", p * self.lr)  # lr is unsigned
        sh = reg(signed(9), "shift", ad.m.frac + ad.lr_frac - wf.frac - s)
        valid.append(reg(1, "valid_q", valid[-1]))
        mq = reg(signed(ad.m.bits), "m_q", mm)
        vq = reg(unsigned(ad.v.bits), "v_q", vv)
        wq = reg(signed(wf.bits), "w_q", ww)

        # ---- d = rne(q / 2^sh) (an update beyond any weight when sh < 1); w - d
        shp = Signal(range(len(q) + 2), name="shift_pos")
        m.d.comb += shp.eq(Mux(sh < 1, 1, Mux(sh > len(q), len(q), sh)))
        bit = (q >> shp)[0]
        shm1 = Signal(range(len(q) + 1), name="shift_pos_m1")
        m.d.comb += shm1.eq(shp - 1)
        add = Signal(signed(len(q) + 1), name="update_add")
        m.d.comb += add.eq(((Const(1, unsigned(len(q) + 1)) << shm1) - 1 + bit).as_signed())
        d_rne = Signal(signed(len(q) + 2), name="update")
        m.d.comb += d_rne.eq((q + add) >> shp)
        big = Mux(q < 0, -wf.max_int, Mux(q > 0, wf.max_int, 0))
        dd = Signal(signed(len(q) + 2), name="update_sat")
        m.d.comb += dd.eq(Mux(sh < 1, big, d_rne))
        w_new = Signal(signed(len(dd) + 1), name="w_minus_update")
        m.d.comb += w_new.eq(wq - dd)
        m.d.sync += [
            self.out_valid.eq(valid[-1]),
            self.out_w.eq(_saturate(m, w_new, wf, "w_new")),
            self.out_m.eq(mq),
            self.out_v.eq(vq),
        ]
        stages = Stages("Adam unit", self.latency(self.cfg))
        stages.stage(len(valid) + 1)  # every stage carries valid; out_valid is the last
        stages.check()
        return m
