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

Pipeline: one register stage per product, sum, rounding or normalisation
(``latency(cfg)`` = fixar.config.timing's ADAM_FIXED_STAGES +
ADAM_NEWTON_STAGES per Newton step), so that no stage chains two wide carry
chains or a product into an adder:
  inputs (g clipped on its way in)
  moments: the four products; B1 m + C1 g and g^2 into v's format; m rounded
  and C2 g^2; B2 v + C2 g^2; v rounded
  rsqrt: x = v + E2; leading one and normalised mantissa; the seed table
  each Newton step: y^2; times the mantissa; 3 minus it; times y
  P = m y; P rounded; q = P L
  the shift keeping the guard bit, and the sticky bit; the rounded update;
  w minus it, saturated, into the output registers
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
from fixar.gen.lib.pipe import Stages, reg


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
        rf = ad.rsqrt_frac
        m = Module()
        stages = Stages("Adam unit", self.latency(cfg))
        ride: dict[str, Signal] = {}   # the values of the stage being built

        def step(tag: str, drop: tuple[str, ...] = (), **new) -> None:
            """One register stage: the ``new`` values, given as (shape, value),
            and every value riding on except the ``drop``ped ones."""
            nxt = {k: reg(m, v, f"{k}_{tag}", v.shape()) for k, v in ride.items() if k not in drop}
            nxt.update({k: reg(m, v, f"{k}_{tag}", shape) for k, (shape, v) in new.items()})
            ride.clear()
            ride.update(nxt)
            stages.stage()

        # ---- inputs (g clipped where its square would saturate v, else m / sqrt(v) outgrows Adam's bound)
        G = ad.grad_limit
        step("in", valid=(1, self.valid), w=(signed(wf.bits), self.w),
             g=(signed(ad.grad.bits), Mux(self.g > G, G, Mux(self.g < -G, -G, self.g))),
             m=(signed(ad.m.bits), self.m), v=(unsigned(ad.v.bits), self.v))
        self._moments(m, ride, step)
        self._rsqrt_seed(m, ride, step)
        for i in range(ad.rsqrt_newton):
            self._newton(ride, step, i)

        # ---- P = rne(m y / 2^rf) in m's format; q = P L (lr is unsigned)
        step("py", py=(signed(ad.m.bits + rf + 2), ride["m"] * ride["y"].as_signed()), drop=("y", "mant"))
        step("p", p=(signed(ad.m.bits), requantize(m, ride["py"], rf, ad.m, "p")),
             shift=(signed(9), ad.m.frac + ad.lr_frac - wf.frac - ride["s"]), drop=("py", "s"))
        q_bits = ad.m.bits + ad.lr_frac + 2
        sh = ride["shift"]
        # sh < 1: an update beyond any weight; else the shift, at most q's width
        step("q", q=(signed(q_bits), ride["p"] * self.lr), beyond=(1, sh < 1),
             shift=(range(q_bits + 1), Mux(sh < 1, 1, Mux(sh > q_bits, q_bits, sh))), drop=("p", "shift"))
        self._update(m, ride, step, stages)
        stages.check()
        return m

    def _moments(self, m: Module, ride: dict, step) -> None:
        """m <- rnd_m((B1 m + C1 g) / 2^cf), v <- rnd_v((B2 v + C2 g^2) / 2^cf):
        products, then sums, then each rounding in a stage of its own."""
        ad, cf = self.cfg.adam, self.cfg.adam.coef_frac
        g_m = ride["g"] << (ad.m.frac - ad.grad.frac)
        step("prod", mb=(signed(ad.m.bits + cf + 2), self.b1 * ride["m"]),
             mc=(signed(ad.m.bits + cf + 2), self.c1 * g_m),
             vb=(unsigned(ad.v.bits + cf + 1), self.b2 * ride["v"]),
             g2=(unsigned(2 * ad.grad.bits), ride["g"] * ride["g"]), drop=("m", "v", "g"))
        d = ad.v.frac - 2 * ad.grad.frac
        g2 = ride["g2"]
        if d >= 0:
            g2v = Mux(g2 > (ad.v.max_int >> d), ad.v.max_int, g2 << d)
        else:
            g2v = requantize(m, g2.as_signed(), -d, ad.v, "g2_sat")
        step("msum", m_sum=(signed(ad.m.bits + cf + 3), ride["mb"] + ride["mc"]),
             g2v=(unsigned(ad.v.bits), g2v), drop=("mb", "mc", "g2"))
        step("mnew", m=(signed(ad.m.bits), requantize(m, ride["m_sum"], cf, ad.m, "m_new")),
             vc=(unsigned(ad.v.bits + cf + 1), self.c2 * ride["g2v"]), drop=("m_sum", "g2v"))
        step("vsum", v_sum=(unsigned(ad.v.bits + cf + 2), ride["vb"] + ride["vc"]), drop=("vb", "vc"))
        step("vnew", v=(unsigned(ad.v.bits), requantize(m, ride["v_sum"].as_signed(), cf, ad.v, "v_new")),
             drop=("v_sum",))

    def _rsqrt_seed(self, m: Module, ride: dict, step) -> None:
        """x = v + E2 normalised to a mantissa in [1, 4) with rf fraction bits
        and an even exponent, and the seed of its segment: the add, the
        leading one and shift, the table read, a stage each."""
        ad, rf = self.cfg.adam, self.cfg.adam.rsqrt_frac
        xb = ad.v.bits + 1
        step("x", x=(unsigned(xb), ride["v"] + self.e2))
        x = ride["x"]
        e = Signal(range(xb), name="rsqrt_lead")       # position of the leading one (x >= 1)
        for i in range(xb):
            with m.If(x[i]):
                m.d.comb += e.eq(i)
        k = Signal(signed(8), name="rsqrt_k")          # value = 2^k (1 + f)
        m.d.comb += k.eq(e - ad.v.frac)
        mn = Mux(e >= rf, x >> (e - rf).as_unsigned(), x << (rf - e).as_unsigned())
        step("norm", mn=(unsigned(rf + 1), mn), k=(signed(8), k), drop=("x",))
        half = ad.rsqrt_table_bits - 1
        table = ad.rsqrt_table()
        m.submodules.rsqrt_seeds = rom = Memory(shape=unsigned(rf + 1), depth=len(table), init=table)
        rd = rom.read_port(domain="comb")
        mn, k = ride["mn"], ride["k"]
        odd = k[0]
        m.d.comb += rd.addr.eq(mn[rf - half:rf] | (odd << half))
        step("seed", mant=(unsigned(rf + 2), Mux(odd, mn << 1, mn)), y=(unsigned(rf + 1), rd.data),
             s=(signed(8), -((k - odd) >> 1)), drop=("mn", "k"))

    def _newton(self, ride: dict, step, i: int) -> None:
        """y <- floor(y (3 - floor(mant floor(y^2 / 2^rf) / 2^rf)) / 2^(rf+1)):
        each product and the subtraction in a stage of its own."""
        rf = self.cfg.adam.rsqrt_frac
        y = ride["y"]
        step(f"n{i}_t1", t1=(unsigned(2 * (rf + 1)), (y * y) >> rf))
        t2 = (ride["mant"] * ride["t1"]) >> rf
        step(f"n{i}_t2", t2=(unsigned(rf + 2 + 2 * (rf + 1)), t2), drop=("t1",))
        corr = Const(3 << rf, unsigned(rf + 2)) - ride["t2"]
        step(f"n{i}_corr", corr=(signed(rf + 2 + 2 * (rf + 1) + 2), corr), drop=("t2",))
        prod = ride["y"].as_signed() * ride["corr"]
        step(f"n{i}_y", y=(unsigned(rf + 1), (prod >> (rf + 1))[:rf + 1]), drop=("corr",))

    def _update(self, m: Module, ride: dict, step, stages: Stages) -> None:
        """d = rne(q / 2^s) and w - d saturated: the shift (keeping the guard
        bit) and the sticky bit; the rounding increment; the subtraction.

        rne: d = floor(q / 2^s) + (guard and (sticky or lsb)). d is clamped to
        +-2^(weight bits + 1) before the increment: beyond that w - d
        saturates whatever d is, so the clamp changes no result and keeps the
        increment and the subtraction narrow."""
        wf = self.cfg.pe.weight
        q = ride["q"]
        s1 = Signal(range(len(q)), name="shift_minus_1")      # the guard bit's position
        m.d.comb += s1.eq(ride["shift"] - 1)
        sticky = (q & ((Const(1, unsigned(len(q))) << s1) - 1)).any()
        step("guard", t=(signed(len(q)), q >> s1), sticky=(1, sticky), drop=("q", "shift"))
        t = ride["t"]
        floor_d, top = t >> 1, 1 << (wf.bits + 1)
        clamped = Mux(floor_d >= top, top, Mux(floor_d < -top, -top, floor_d))
        d = clamped + (t[0] & (ride["sticky"] | t[1]))
        big = Mux(t < 0, -wf.max_int, Mux(t > 0, wf.max_int, 0))
        step("update", d=(signed(wf.bits + 3), Mux(ride["beyond"], big, d)), drop=("t", "sticky", "beyond"))
        w_new = ride["w"] - ride["d"]
        m.d.sync += [
            self.out_valid.eq(ride["valid"]),
            self.out_w.eq(_saturate(m, w_new, wf, "w_new")),
            self.out_m.eq(ride["m"]),
            self.out_v.eq(ride["v"]),
        ]
        stages.stage()

