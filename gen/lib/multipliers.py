"""The generator's half of the multiplier registry: one combinational
Amaranth circuit per kind of functional model in
``fixar.config.multipliers`` (where each multiplier is defined, once, in
plain Python; ``tests/test_multipliers.py`` simulates every circuit against
its model, exhaustively on narrow operands and randomly on the PE's lanes).

Each approximate kind is cut by registers (``cut(...)`` below; how many
is fixar.config.timing's MULTIPLIER_STAGES) so that the PE's or core's
product register ends a last part that is only the sign's negation: in one
stage these products were LUT logic of 7-9 ns. A cut passes
every value the later logic reads, and the product's sign rides along, so
no value can arrive a cycle early; built without registers
(``pipelined=False``: the multiplier as a design of its own, and the
exhaustive tests) the same code is combinational.

Only ``exact`` uses ``*`` (mapped to DSP48E2s), for as much of the product
as one DSP's ports take: a wide operand's few low bits multiply in LUTs
(``rows_product``; fixar.config.timing's exact_split), registered beside
the DSP's M register and added after it. The approximate ones are
leading-one detectors, barrel shifters, adders and, for DRUM and the
truncated array, explicit AND-and-add partial-product arrays, so synthesis
builds them from LUTs and carry chains. Signs are sign-magnitude around
each model (negate the operands, multiply magnitudes, negate the product),
as the models define them.

Never imports the golden model: the models in fixar.config are the meeting
point.
"""
from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned

from fixar.config import PEConfig
from fixar.config import multipliers as models
from fixar.config.multipliers import Multiplier, get
from fixar.config.timing import MULTIPLIER_STAGES, exact_split
from fixar.gen.lib.compress import carry_save
from fixar.gen.lib.datapath import lane_operands, magnitude_lanes
from fixar.gen.lib.pipe import reg

# kind -> build(m, a, b, name, cut, **params): the magnitude product of unsigned a, b
GENERATORS: dict[str, Callable] = {}


class Cuts:
    """The registers inside one multiplier: ``cut(*values)`` returns the
    values registered (pipelined) or as they are (combinational), and
    counts the cuts, which must equal fixar.config.timing's number."""

    def __init__(self, m: Module, name: str, pipelined: bool):
        self.m, self.name, self.pipelined, self.count = m, name, pipelined, 0

    def __call__(self, *values) -> list:
        self.count += 1
        if not self.pipelined:
            return list(values)
        return [reg(self.m, v, f"{self.name}_c{self.count}_{i}") for i, v in enumerate(values)]


def _kind(name: str):
    def register(fn):
        GENERATORS[name] = fn
        return fn
    return register


def magnitude(m: Module, v, name: str) -> Signal:
    """|v| of a signed value, unsigned, as wide as v (|min| = 2^(w-1) fits)."""
    mag = Signal(len(v), name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(v < 0, -v, v))
    return mag


def leading_one(m: Module, v, name: str) -> Signal:
    """Position of v's highest set bit (0 for v = 0): a priority encoder, the
    later (higher) If winning."""
    t = Signal(range(max(len(v), 2)), name=f"{name}_t")
    for i in range(1, len(v)):
        with m.If(v[i]):
            m.d.comb += t.eq(i)
    return t


def fraction(v, t, bits: int):
    """The ``bits`` bits of v below its leading one at t, zero-padded when v
    has fewer: one right shift of v with ``bits`` zeros appended below it."""
    return (Cat(Const(0, bits), v) >> t)[:bits]


def array_multiply(x, y):
    """x * y of unsigned values as rows of AND gates summed (no ``*``, so no DSP)."""
    return sum(Mux(y[j], x << j, 0) for j in range(len(y)))


@_kind("exact")
def _exact(m: Module, a, b, name: str):
    return a * b


def rows_product(m: Module, a, b, name: str) -> Signal:
    """a * b of an unsigned a and a signed b from rows of b (one per bit of
    a) reduced by a carry-save tree and one add: no ``*``, so synthesis
    builds LUTs and a carry chain."""
    width = len(a) + len(b)
    rows = []
    for i in range(len(a)):
        row = Signal(unsigned(width), name=f"{name}_row{i}")
        m.d.comb += row.eq(b << i)                      # sign-extended, modulo 2^width
        rows.append(Mux(a[i], row, 0))
    s, k = carry_save(m, rows, width, f"{name}_rows")
    out = Signal(signed(width), name=f"{name}_rp")
    m.d.comb += out.eq(s + k)                           # modulo 2^width, where the product fits
    return out


def exact_product(m: Module, a, b, name: str, cuts: Cuts, lut_bits: int) -> Signal:
    """Signed a * b through the exact multiplier's one cut (the DSP's M
    register). When exact_split says so, the wider operand's top bits (signed)
    times the other go to a DSP48E2 and its few low bits (unsigned) times the
    other to LUTs; each part is registered and their sum, the DSP's part
    shifted up, is the product (for the caller's product register, the DSP's P)."""
    if len(b) > len(a):
        a, b = b, a
    low = exact_split(len(a), len(b), lut_bits)
    out = Signal(signed(len(a) + len(b)), name=f"{name}_x")
    if low is None:
        p, = cuts(a * b)
        m.d.comb += out.eq(p)
    else:
        dsp, lut = cuts(a[low:].as_signed() * b, rows_product(m, a[:low], b, f"{name}_low"))
        m.d.comb += out.eq((dsp << low) + lut)
    if cuts.count != MULTIPLIER_STAGES["exact"]:
        raise AssertionError(f"exact multiplier: built {cuts.count} cuts but fixar.config.timing says "
                             f"{MULTIPLIER_STAGES['exact']}")
    return out


@_kind("mitchell")
def _mitchell(m: Module, a, b, name: str, cut, m_bits: int):
    width = len(a) + len(b)
    a, b, ta, tb = cut(a, b, leading_one(m, a, f"{name}_a"), leading_one(m, b, f"{name}_b"))
    s = Signal(m_bits + 1, name=f"{name}_fsum")
    m.d.comb += s.eq(fraction(a, ta, m_bits) + fraction(b, tb, m_bits))
    s, ta, tb, nonzero = cut(s, ta, tb, a.any() & b.any())
    s, shift, nonzero = cut(s, ta + tb + s[m_bits], nonzero)   # the carry goes to the shift
    mant = Cat(s[:m_bits], Const(1, 1))                 # 1 + frac(fa + fb)
    out = Signal(width, name=f"{name}_mitchell")
    m.d.comb += out.eq(Mux(nonzero, (mant << shift)[m_bits:], 0))
    return out


@_kind("mbm")
def _mbm(m: Module, a, b, name: str, cut, m_bits: int, corr: int = models.MBM_CORRECTION):
    F = models.mbm_frac_bits(m_bits)
    width = len(a) + len(b)

    def frac(v, t):
        # the top m bits, then a 1 where bits were dropped, then zeros to F bits
        parts = [Const(0, F - m_bits - 1)] if F > m_bits + 1 else []
        return Cat(*parts, t > m_bits, fraction(v, t, m_bits))

    a, b, ta, tb = cut(a, b, leading_one(m, a, f"{name}_a"), leading_one(m, b, f"{name}_b"))
    s = Signal(F + 1, name=f"{name}_fsum")
    m.d.comb += s.eq(frac(a, ta) + frac(b, tb))
    s, ta, tb, nonzero = cut(s, ta, tb, a.any() & b.any())
    carry = s[F]
    mant = Signal(F + 2, name=f"{name}_mant")           # 1 + frac + C (halved with a carry); may reach 2
    m.d.comb += mant.eq(Cat(s[:F], Const(1, 1)) + Mux(carry, corr << (F - 7), corr << (F - 6)))
    mant, shift, nonzero = cut(mant, ta + tb + carry, nonzero)
    out = Signal(width, name=f"{name}_mbm")
    m.d.comb += out.eq(Mux(nonzero, (mant << shift)[F:], 0))
    return out


@_kind("drum")
def _drum(m: Module, a, b, name: str, cut, k: int):
    width = len(a) + len(b)
    a, b, ta, tb = cut(a, b, leading_one(m, a, f"{name}_a"), leading_one(m, b, f"{name}_b"))

    def operand(v, t, which):
        big = t >= k
        s = Signal(range(max(len(v), 2)), name=f"{name}_{which}_drop")
        field = Signal(k, name=f"{name}_{which}_field")
        m.d.comb += [s.eq(Mux(big, t - (k - 1), 0)),
                     field.eq(Mux(big, (v >> s)[:k] | 1, v[:k]))]
        return field, s

    (fa, sa), (fb, sb) = operand(a, ta, "a"), operand(b, tb, "b")
    fa, fb, sa, sb = cut(fa, fb, sa, sb)
    prod = Signal(2 * k, name=f"{name}_kxk")
    m.d.comb += prod.eq(array_multiply(fa, fb))
    prod, shift = cut(prod, sa + sb)
    out = Signal(width, name=f"{name}_drum")
    m.d.comb += out.eq(prod << shift)
    return out


@_kind("truncated")
def _truncated(m: Module, a, b, name: str, cut, p: int):
    width = len(a) + len(b)
    a, b = cut(a, b)
    rows = []
    for j in range(len(b)):
        low = max(p - j, 0)                             # columns i + j < p of this row are not built
        if low < len(a):
            rows.append(Mux(b[j], Cat(Const(0, low), a[low:]) << j, 0))
    # the rows to a carry-save pair (no carry chain), the pair added after the
    # cut; modulo 2^width, which the sum of the rows never reaches
    s, k = cut(*carry_save(m, rows, width, f"{name}_rows"))
    out = Signal(width, name=f"{name}_trunc")
    m.d.comb += out.eq((s + k)[:width])
    return out


def _params(spec: Multiplier) -> dict:
    # the model's ``m`` is a Python keyword-safe name here too, but ``m`` is the Module
    return {("m_bits" if k == "m" else k): v for k, v in spec.params}


def multiply(m: Module, a, b, multiplier: str | Multiplier, name: str, pipelined: bool = False,
             b_sign=None, lut_bits: int = PEConfig.lut_product_bits) -> Signal:
    """The product of signed a and b by the named multiplier, signed, len(a) + len(b) bits
    (a signal; the exact multiplier's DSP48E2 part is a plain ``*``: exact_product).
    ``pipelined``: with the multiplier's registers (fixar.config.timing's
    MULTIPLIER_STAGES; the product is then that many cycles behind a and b),
    else combinational. ``b_sign``: b is then a magnitude (unsigned) and
    this bit its sign (an approximate multiplier only). ``lut_bits``: the
    exact multiplier's split (``pe.lut_product_bits``)."""
    spec = get(multiplier)
    if spec.kind not in GENERATORS:
        raise ValueError(f"{spec.name}: no generator for a {spec.kind} multiplier (known: {sorted(GENERATORS)})")
    cuts = Cuts(m, name, pipelined)
    if spec.kind == "exact":
        return exact_product(m, a, b, name, cuts, lut_bits)
    negative = [a[-1] ^ (b[-1] if b_sign is None else b_sign)]

    def cut(*values) -> list:           # the product's sign rides along every cut
        *values, negative[0] = cuts(*values, negative[0])
        return values

    out = Signal(signed(len(a) + len(b)), name=f"{name}_p")
    b_mag = magnitude(m, b, f"{name}_b") if b_sign is None else b
    mag = GENERATORS[spec.kind](m, magnitude(m, a, f"{name}_a"), b_mag, name, cut, **_params(spec))
    mag, = cut(mag)                     # the sign's negation alone in front of the product register
    if cuts.count != MULTIPLIER_STAGES[spec.kind]:
        raise AssertionError(f"{spec.kind} multiplier: built {cuts.count} cuts but fixar.config.timing says "
                             f"{MULTIPLIER_STAGES[spec.kind]}; change one to match the other")
    m.d.comb += out.eq(Mux(negative[0], -mag, mag))
    return out


def pe_lanes(m: Module, word, fp16, pe, name: str) -> list:
    """The two lane operands of an activation word as the PE's multiplier
    takes them, each (operand, sign): for the exact multiplier the
    two's-complement lanes (low lane unsigned in FXP32) and no sign (None),
    for an approximate one sign-magnitude lanes (gen.lib.datapath.magnitude_lanes)."""
    if get(pe.multiplier).kind == "exact":
        return [(lane, None) for lane in lane_operands(m, word, fp16, pe.lane_bits, name)]
    return magnitude_lanes(m, word, fp16, pe.lane_bits, name)


def lane_product(m: Module, w, lane: tuple, pe, name: str):
    """Weight ``w`` times one of :func:`pe_lanes`' operands, by the PE's
    multiplier (pipelined: the caller's product register comes after its
    registers)."""
    operand, sign = lane
    return multiply(m, w, operand, pe.multiplier, name, pipelined=True, b_sign=sign, lut_bits=pe.lut_product_bits)


class ApproxMultiplier(Elaboratable):
    """One multiplier as a design of its own: signed ``a`` (wa bits) and ``b``
    (wb bits) in, signed product ``p`` (wa + wb bits) out, combinational, or
    with ``pipelined`` its product ``LATENCY`` cycles behind a and b."""

    def __init__(self, multiplier: str | Multiplier, wa: int, wb: int, pipelined: bool = False,
                 lut_bits: int = PEConfig.lut_product_bits):
        self.spec, self.pipelined, self.lut_bits = get(multiplier), pipelined, lut_bits
        self.LATENCY = MULTIPLIER_STAGES[self.spec.kind] if pipelined else 0
        self.a = Signal(signed(wa))
        self.b = Signal(signed(wb))
        self.p = Signal(signed(wa + wb))

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.p.eq(multiply(m, self.a, self.b, self.spec, "mul", self.pipelined, lut_bits=self.lut_bits))
        return m
