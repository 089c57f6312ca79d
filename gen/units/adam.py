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
  rsqrt: x = v + E2; its leading one; the normalised mantissa; the seed table
  each Newton step: y^2; times the mantissa; 3 minus it; times y
  P = m y; P rounded; q = P L
  the shift keeping the guard bit, and the sticky bit; the clamp; the
  rounding increment; w minus it, saturated, into the output registers
This module knows nothing of the golden model (fixar.golden.adam); both
follow the config and docs/adam.md.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fixar.config import ConfigError, FixarConfig
from fixar.config.timing import timing
from fixar.gen.lib import products
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
        self._products(ride, step, "py", {"py": (ride["m"], ride["y"].as_signed())}, drop=("y", "mant"))
        step("p", p=(signed(ad.m.bits), requantize(m, ride["py"], rf, ad.m, "p")),
             shift=(signed(9), ad.m.frac + ad.lr_frac - wf.frac - ride["s"]), drop=("py", "s"))
        q_bits = ad.m.bits + ad.lr_frac + 2
        sh = ride["shift"]
        # sh < 1: an update beyond any weight; else the shift, at most q's width
        self._products(ride, step, "q", {"q": (ride["p"], self.lr)}, drop=("p", "shift"), beyond=(1, sh < 1),
                       shift=(range(q_bits + 1), Mux(sh < 1, 1, Mux(sh > q_bits, q_bits, sh))))
        self._update(m, ride, step, stages)
        stages.check()
        return m

    @staticmethod
    def _products(ride: dict, step, tag: str, prods: dict, drop: tuple[str, ...] = (), **new) -> None:
        """Step ``tag``: the products ``prods`` (name -> (a, b)) as DSP-sized
        partial products (fixar.gen.lib.products), registered beside the
        ``new`` values, then one adder-tree level per step until each sum is
        whole; ride[name] is then a * b (unsigned when both operands are)."""
        trees = {}
        for name, (a, b) in prods.items():
            terms = []
            for i, (x, y, k) in enumerate(products.partial_terms(a, b)):
                new[f"{name}_pp{i}"] = (signed(len(x) + len(y) + 1), x * y)
                terms.append((f"{name}_pp{i}", k))
            trees[name] = (terms, len(a) + len(b), a.shape().signed or b.shape().signed)
        step(tag, drop=drop, **new)
        level = 0
        while any(len(terms) > 1 for terms, _, _ in trees.values()):
            new, used = {}, []
            for name, (terms, width, sgn) in trees.items():
                nxt = []
                for k in range(0, len(terms) - 1, 2):
                    (x, xs), (y, ys) = terms[k], terms[k + 1]
                    s, key = min(xs, ys), f"{name}_s{level}_{k // 2}"
                    new[key] = (signed(width + 1 - s), (ride[x] << (xs - s)) + (ride[y] << (ys - s)))
                    used += [x, y]
                    nxt.append((key, s))
                if len(terms) % 2:
                    nxt.append(terms[-1])
                trees[name] = (nxt, width, sgn)
            level += 1
            step(f"{tag}_l{level}", drop=tuple(used), **new)
        for name, (((key, s),), width, sgn) in trees.items():
            whole = (ride.pop(key) << s)[:width]
            ride[name] = whole.as_signed() if sgn else whole

    def _moments(self, m: Module, ride: dict, step) -> None:
        """m <- rnd_m((B1 m + C1 g) / 2^cf), v <- rnd_v((B2 v + C2 g^2) / 2^cf):
        products, then sums, then each rounding in a stage of its own."""
        ad, cf = self.cfg.adam, self.cfg.adam.coef_frac
        g_m = ride["g"] << (ad.m.frac - ad.grad.frac)
        self._products(ride, step, "prod", {"mb": (self.b1, ride["m"]), "mc": (self.c1, g_m),
                                            "vb": (self.b2, ride["v"]), "g2": (ride["g"], ride["g"])},
                       drop=("m", "v", "g"))
        d = ad.v.frac - 2 * ad.grad.frac
        g2 = ride["g2"] = ride["g2"][:2 * ad.grad.bits]       # g^2 >= 0: unsigned
        if d >= 0:
            g2v = Mux(g2 > (ad.v.max_int >> d), ad.v.max_int, g2 << d)
        else:
            g2v = requantize(m, g2.as_signed(), -d, ad.v, "g2_sat")
        step("msum", m_sum=(signed(ad.m.bits + cf + 3), ride["mb"] + ride["mc"]),
             g2v=(unsigned(ad.v.bits), g2v), drop=("mb", "mc", "g2"))
        self._products(ride, step, "mnew", {"vc": (self.c2, ride["g2v"])}, drop=("m_sum", "g2v"),
                       m=(signed(ad.m.bits), requantize(m, ride["m_sum"], cf, ad.m, "m_new")))
        # v's sum is as wide as both products: its carry chain in two halves, a stage each
        vb, vc = ride["vb"], ride["vc"]
        half = len(vc) // 2
        step("vsum_lo", v_lo=(unsigned(half + 1), vb[:half] + vc[:half]),
             vb_hi=(unsigned(len(vb) - half), vb[half:]), vc_hi=(unsigned(len(vc) - half), vc[half:]),
             drop=("vb", "vc"))
        lo = ride["v_lo"]
        step("vsum", v_sum=(unsigned(ad.v.bits + cf + 2), Cat(lo[:half], ride["vb_hi"] + ride["vc_hi"] + lo[half])),
             drop=("v_lo", "vb_hi", "vc_hi"))
        step("vnew", v=(unsigned(ad.v.bits), requantize(m, ride["v_sum"].as_signed(), cf, ad.v, "v_new")),
             drop=("v_sum",))

    def _rsqrt_seed(self, m: Module, ride: dict, step) -> None:
        """x = v + E2 normalised to a mantissa in [1, 4) with rf fraction bits
        and an even exponent, and the seed of its segment: the add, the
        leading one, the shift, the table read, a stage each."""
        ad, rf = self.cfg.adam, self.cfg.adam.rsqrt_frac
        xb = ad.v.bits + 1
        step("x", x=(unsigned(xb), ride["v"] + self.e2))
        x = ride["x"]
        e = Signal(range(xb), name="rsqrt_lead")       # position of the leading one (x >= 1)
        for i in range(xb):
            with m.If(x[i]):
                m.d.comb += e.eq(i)
        # the leading one's position, then the shift by it: a stage each
        step("lead", e=(range(xb), e))
        x, e = ride["x"], ride["e"]
        k = Signal(signed(8), name="rsqrt_k")          # value = 2^k (1 + f)
        m.d.comb += k.eq(e - ad.v.frac)
        mn = Mux(e >= rf, x >> (e - rf).as_unsigned(), x << (rf - e).as_unsigned())
        step("norm", mn=(unsigned(rf + 1), mn), k=(signed(8), k), drop=("x", "e"))
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
        # y < 2^(rf+1) and mant < 2^(rf+2), so t1 < 2^(rf+2), t2 < 2^(rf+4) and |3 - t2| < 2^(rf+5)
        self._products(ride, step, f"n{i}_t1", {"yy": (y, y)})
        t1 = (ride.pop("yy") >> rf)[:rf + 2]
        self._products(ride, step, f"n{i}_t2", {"mt": (ride["mant"], t1)})
        t2 = (ride.pop("mt") >> rf)[:rf + 4]
        step(f"n{i}_corr", corr=(signed(rf + 6), Const(3 << rf, unsigned(rf + 2)) - t2))
        self._products(ride, step, f"n{i}_y", {"yc": (ride["y"].as_signed(), ride["corr"])}, drop=("corr", "y"))
        ride["y"] = (ride.pop("yc") >> (rf + 1))[:rf + 1]

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
        # the bits below the guard: q masked by ~(ones << s1), a shifter of
        # constants, where 2^s1 - 1 would put a subtraction on the path
        ones = Const((1 << len(q)) - 1, unsigned(len(q)))
        sticky = (q & ~(ones << s1)[:len(q)]).any()
        step("guard", t=(signed(len(q)), q >> s1), sticky=(1, sticky), drop=("q", "shift"))
        t = ride["t"]
        floor_d, top = t >> 1, 1 << (wf.bits + 1)
        clamped = Mux(floor_d >= top, top, Mux(floor_d < -top, -top, floor_d))
        big = Mux(t < 0, -wf.max_int, Mux(t > 0, wf.max_int, 0))
        # the clamp's compares, then the increment: a carry chain each, a stage each
        step("clamp", clamped=(signed(wf.bits + 3), Mux(ride["beyond"], big, clamped)),
             inc=(1, ~ride["beyond"] & t[0] & (ride["sticky"] | t[1])), drop=("t", "sticky", "beyond"))
        step("update", d=(signed(wf.bits + 3), ride["clamped"] + ride["inc"]), drop=("clamped", "inc"))
        w_new = ride["w"] - ride["d"]
        m.d.sync += [
            self.out_valid.eq(ride["valid"]),
            self.out_w.eq(_saturate(m, w_new, wf, "w_new")),
            self.out_m.eq(ride["m"]),
            self.out_v.eq(ride["v"]),
        ]
        stages.stage()

