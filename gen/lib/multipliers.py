"""The generator's half of the multiplier registry: one combinational
Amaranth circuit per kind of functional model in
``fixar.config.multipliers`` (where each multiplier is defined, once, in
plain Python; ``tests/test_multipliers.py`` simulates every circuit against
its model, exhaustively on narrow operands and randomly on the PE's lanes).

Combinational, latency 0: the PE's product stage registers the output, as
it registers the DSP product today; how many stages a 32 x 17 approximate
product needs at 164 MHz is the PE integration's question (issue 24, item 3).

Only ``exact`` uses ``*`` (mapped to DSP48E2s). The approximate ones are
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

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed

from fixar.config import multipliers as models
from fixar.config.multipliers import Multiplier, get

# kind -> build(m, a, b, name, **params): the magnitude product of unsigned a, b
GENERATORS: dict[str, Callable] = {}


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


@_kind("mitchell")
def _mitchell(m: Module, a, b, name: str, m_bits: int):
    ta, tb = leading_one(m, a, f"{name}_a"), leading_one(m, b, f"{name}_b")
    s = Signal(m_bits + 1, name=f"{name}_fsum")
    m.d.comb += s.eq(fraction(a, ta, m_bits) + fraction(b, tb, m_bits))
    mant = Cat(s[:m_bits], Const(1, 1))                 # 1 + frac(fa + fb); the carry goes to the shift
    out = Signal(len(a) + len(b), name=f"{name}_mitchell")
    m.d.comb += out.eq(Mux(a.any() & b.any(), (mant << (ta + tb + s[m_bits]))[m_bits:], 0))
    return out


@_kind("mbm")
def _mbm(m: Module, a, b, name: str, m_bits: int, corr: int = models.MBM_CORRECTION):
    F = models.mbm_frac_bits(m_bits)

    def frac(v, which):
        t = leading_one(m, v, f"{name}_{which}")
        # the top m bits, then a 1 where bits were dropped, then zeros to F bits
        parts = [Const(0, F - m_bits - 1)] if F > m_bits + 1 else []
        return t, Cat(*parts, t > m_bits, fraction(v, t, m_bits))

    (ta, fa), (tb, fb) = frac(a, "a"), frac(b, "b")
    s = Signal(F + 1, name=f"{name}_fsum")
    m.d.comb += s.eq(fa + fb)
    carry = s[F]
    mant = Signal(F + 2, name=f"{name}_mant")           # 1 + frac + C (halved with a carry); may reach 2
    m.d.comb += mant.eq(Cat(s[:F], Const(1, 1)) + Mux(carry, corr << (F - 7), corr << (F - 6)))
    out = Signal(len(a) + len(b), name=f"{name}_mbm")
    m.d.comb += out.eq(Mux(a.any() & b.any(), (mant << (ta + tb + carry))[F:], 0))
    return out


@_kind("drum")
def _drum(m: Module, a, b, name: str, k: int):
    def operand(v, which):
        t = leading_one(m, v, f"{name}_{which}")
        big = t >= k
        s = Signal(range(max(len(v), 2)), name=f"{name}_{which}_drop")
        field = Signal(k, name=f"{name}_{which}_field")
        m.d.comb += [s.eq(Mux(big, t - (k - 1), 0)),
                     field.eq(Mux(big, (v >> s)[:k] | 1, v[:k]))]
        return field, s

    (fa, sa), (fb, sb) = operand(a, "a"), operand(b, "b")
    prod = Signal(2 * k, name=f"{name}_kxk")
    m.d.comb += prod.eq(array_multiply(fa, fb))
    out = Signal(len(a) + len(b), name=f"{name}_drum")
    m.d.comb += out.eq(prod << (sa + sb))
    return out


@_kind("truncated")
def _truncated(m: Module, a, b, name: str, p: int):
    rows = []
    for j in range(len(b)):
        cut = max(p - j, 0)                             # columns i + j < p of this row are not built
        if cut < len(a):
            rows.append(Mux(b[j], Cat(Const(0, cut), a[cut:]) << j, 0))
    out = Signal(len(a) + len(b), name=f"{name}_trunc")
    m.d.comb += out.eq(sum(rows) if rows else 0)
    return out


def _params(spec: Multiplier) -> dict:
    # the model's ``m`` is a Python keyword-safe name here too, but ``m`` is the Module
    return {("m_bits" if k == "m" else k): v for k, v in spec.params}


def multiply(m: Module, a, b, multiplier: str | Multiplier, name: str) -> Signal:
    """The product of signed a and b by the named multiplier, signed, len(a) + len(b) bits
    (a signal; for the exact multiplier the plain ``a * b``, which synthesis maps to DSP48E2s)."""
    spec = get(multiplier)
    if spec.kind not in GENERATORS:
        raise ValueError(f"{spec.name}: no generator for a {spec.kind} multiplier (known: {sorted(GENERATORS)})")
    if spec.kind == "exact":
        return a * b        # an expression, not a signal: the exact PE's Verilog stays what it was
    out = Signal(signed(len(a) + len(b)), name=f"{name}_p")
    mag = GENERATORS[spec.kind](m, magnitude(m, a, f"{name}_a"), magnitude(m, b, f"{name}_b"), name,
                                **_params(spec))
    m.d.comb += out.eq(Mux(a[-1] ^ b[-1], -mag, mag))
    return out


class ApproxMultiplier(Elaboratable):
    """One multiplier as a design of its own: signed ``a`` (wa bits) and ``b``
    (wb bits) in, signed product ``p`` (wa + wb bits) out, combinational."""

    def __init__(self, multiplier: str | Multiplier, wa: int, wb: int):
        self.spec = get(multiplier)
        self.a = Signal(signed(wa))
        self.b = Signal(signed(wb))
        self.p = Signal(signed(wa + wb))

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.p.eq(multiply(m, self.a, self.b, self.spec, "mul"))
        return m
