"""The PE's multipliers as plug-ins, each defined once by a functional model.

As ApproxTrain asks of its users, a multiplier is a plain Python function on
integers: ``model(a, b, **params)`` takes two non-negative magnitudes and
returns the approximate product, an integer. Everything else is derived or
checked against it: the golden model's lookup tables and vectorized matrix
products (``fixar.golden.multipliers``), the Amaranth circuits
(``fixar.gen.lib.multipliers``, checked in simulation) and the error figures.

Signs are sign-magnitude for every approximate multiplier: the product of
two signed operands is ``sign(a) sign(b) model(|a|, |b|)``, as a hardware
multiplier that negates its operands, multiplies magnitudes and negates the
result computes it (ApproxTrain's floats do the same: sign xor). ``exact``
is the two's-complement product the PE's DSP48E2s compute today.

The models live here, in the config (pure Python, no numpy), because the
golden model and the generator must both reach them and may not import each
other (tests/test_layers.py); ``fixar.config`` is the one base they share.
docs/multipliers.md has the definitions, sources and error figures.

Adding a multiplier: write its model, register its :class:`Kind` (with
``table_bits`` if the table route applies) and add a :class:`Multiplier` to
``REGISTRY``; the golden path then works with no other change (the table is
built from the model). A kind may also declare a structure its model has
(separable, or a log-sum form), for a faster golden route derived from the
same definitions. The Amaranth half needs a generator for the model's kind.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple


def leading_one(a: int) -> int:
    """Position of the leading one of a > 0 (the exponent of its log2)."""
    return a.bit_length() - 1


def fraction(a: int, t: int, bits: int) -> int:
    """The bits of a below its leading one (at t) as a ``bits``-bit fraction:
    truncated when a has more, zero-padded when it has fewer."""
    f = a - (1 << t)
    return f << (bits - t) if t <= bits else f >> (t - bits)


def exact(a: int, b: int) -> int:
    return a * b


class LogSum(NamedTuple):
    """A logarithmic multiplier's form: each operand a > 0 with leading one
    at t gives an F-bit fraction code ``fraction(a, t)``; the product is
    ``(mant << (ta + tb + carry)) >> F`` with ``(mant, carry) =
    log_mantissa(fa + fb, F, corr)``. Mitchell and MBM are defined through
    it (:func:`log_product`), so a route that uses the form computes the
    model itself."""

    bits: int                                # F
    corr: int                                # the mantissa's added constant, in 64ths (0: none)
    fraction: Callable[[int, int], int]


def log_mantissa(s: int, F: int, corr: int) -> tuple[int, int]:
    """The antilog of an F-bit fraction sum s: its mantissa 1 + frac(s) + C,
    in F fraction bits, with C = corr/64 halved when the sum carries, and
    the carry, which goes to the exponent. Plain integer arithmetic (the
    golden model compiles this very function for its fast route, and runs
    it on numpy arrays in the other)."""
    carry = s >> F
    mant = (1 << F) | (s & ((1 << F) - 1))
    if corr:
        mant += corr << (F - 6 - carry)
    return mant, carry


def log_product(a: int, b: int, form: LogSum) -> int:
    """2^(ta+tb) (1 + fa + fb + C) without a carry out of the fraction sum,
    2^(ta+tb+1) (fa + fb + C/2) with one, floored once."""
    if not a or not b:
        return 0
    ta, tb = leading_one(a), leading_one(b)
    mant, carry = log_mantissa(form.fraction(a, ta) + form.fraction(b, tb), form.bits, form.corr)
    return (mant << (ta + tb + carry)) >> form.bits


@functools.cache
def mitchell_form(m: int) -> LogSum:
    return LogSum(m, 0, lambda a, t: fraction(a, t, m))


def mitchell(a: int, b: int, m: int) -> int:
    """Mitchell (1962): log2(x) ~ t + f with f the fraction below the leading
    one, truncated to m bits; the logs are added and the antilog taken the
    same way. 2^(ta+tb) (1 + fa + fb) without a carry out of the fraction
    sum, 2^(ta+tb+1) (fa + fb) with one; never above the exact product. The
    result is an integer (each fraction has at most t bits), so ``>> m``
    drops only zeros."""
    return log_product(a, b, mitchell_form(m))


# MBM's correction C = 2^-4 + 2^-6 = 5/64, in 64ths: the cheap constant near
# Mitchell's mean error 1/12 that Saadat et al. and ApproxTrain's MBM add
MBM_CORRECTION = 5


def mbm_frac_bits(m: int) -> int:
    """F: fraction bits of MBM's mantissa sum (the appended bit needs m + 1,
    the halved correction 5/128 needs 7)."""
    return max(m + 1, 7)


def mbm_fraction(a: int, t: int, m: int) -> int:
    """An operand's fraction for MBM, as an (m+1)-bit fraction: the top m bits
    below the leading one and, when bits below them were dropped, a 1 in
    their place (the middle of the dropped interval: truncation unbiased)."""
    return (fraction(a, t, m) << 1) | (t > m)


@functools.cache
def mbm_form(m: int, corr: int = MBM_CORRECTION) -> LogSum:
    F = mbm_frac_bits(m)
    return LogSum(F, corr, lambda a, t: mbm_fraction(a, t, m) << (F - m - 1))


def mbm(a: int, b: int, m: int, corr: int = MBM_CORRECTION) -> int:
    """Minimally-biased multiplier (Saadat, Bokhari, Parameswaran, IEEE TCAD
    2018; ApproxTrain's FPmultMBM): Mitchell plus C 2^(ta+tb), C = corr/64,
    which cancels most of Mitchell's bias. With a carry the mantissa is
    halved, so C/2 is added to it; the sum is floored once (C 2^(ta+tb) has
    fraction bits only when ta + tb < 6). Unlike ApproxTrain's float code,
    a corrected mantissa that reaches 2 is kept, not replaced by Mitchell's."""
    return log_product(a, b, mbm_form(m, corr))


def drum_operand(a: int, k: int) -> int:
    """DRUM's operand: a when it has at most k bits, else its top k bits
    (from the leading one) with the last of them set to 1, shifted back."""
    t = a.bit_length() - 1
    if t < k:
        return a
    s = t - k + 1
    return ((a >> s) | 1) << s


def drum(a: int, b: int, k: int) -> int:
    """DRUM-k (Hashemi, Bahar, Reda, ICCAD 2015): a k x k exact multiplier of
    each operand's top k bits, the lowest set to 1 so that the truncation is
    unbiased, and the product shifted back."""
    return drum_operand(a, k) * drum_operand(b, k)


def truncated(a: int, b: int, p: int) -> int:
    """Truncated array multiplier: the partial products a_i b_j 2^(i+j) of the
    columns i + j < p are not built, and no constant stands in for them
    (so the magnitude is never above the exact one: rounding toward zero)."""
    total = 0
    for j in range(b.bit_length()):
        if b >> j & 1:
            keep = max(p - j, 0)
            total += ((a >> keep) << keep) << j
    return total


@dataclass(frozen=True)
class Kind:
    """A multiplier kind: its model and what the golden model may derive from
    it (docs/multipliers.md, "Fast routes"). Each is a function of the
    kind's parameters.

    ``table_bits``: the table route applies with T = table_bits: an operand
    whose leading one is above T gives the model's result of its top T + 1
    bits, shifted back by the bits dropped. ``operand``: the model is
    separable, model(a, b) = operand(a) * operand(b) (a matrix product is
    then an exact one of the mapped operands). ``log``: the model is
    ``log_product`` of this form. tests/test_multipliers.py checks every
    declared structure against the model."""

    model: Callable[..., int]
    table_bits: Callable[..., int] | None = None
    operand: Callable[..., Callable[[int], int]] | None = None
    log: Callable[..., LogSum] | None = None


KINDS: dict[str, Kind] = {
    "exact": Kind(exact),
    "mitchell": Kind(mitchell, table_bits=lambda m: m, log=mitchell_form),
    "mbm": Kind(mbm, table_bits=lambda m, corr=MBM_CORRECTION: max(m + 1, 6), log=mbm_form),
    "drum": Kind(drum, table_bits=lambda k: k, operand=lambda k: functools.partial(drum_operand, k=k)),
    "truncated": Kind(truncated),
}


def _limits(kind: str, params: dict) -> None:
    if kind in ("mitchell", "mbm") and not 1 <= params["m"] <= 16:
        raise ValueError(f"{kind}: m = {params['m']} is outside 1..16")
    if kind == "drum" and not 3 <= params["k"] <= 16:
        # k >= 3 keeps every product below twice the exact one (the product's width)
        raise ValueError(f"drum: k = {params['k']} is outside 3..16")
    if kind == "truncated" and params["p"] < 0:
        raise ValueError(f"truncated: p = {params['p']} is negative")


@dataclass(frozen=True)
class Multiplier:
    """One registry entry: a name, the model's kind and its parameters."""

    name: str
    kind: str
    params: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown multiplier kind {self.kind!r}; known: {sorted(KINDS)}")
        _limits(self.kind, self.kwargs)

    @property
    def kwargs(self) -> dict[str, int]:
        return dict(self.params)

    @property
    def model(self) -> Callable[..., int]:
        return KINDS[self.kind].model

    def _derived(self, field: str):
        fn = getattr(KINDS[self.kind], field)
        return None if fn is None else fn(**self.kwargs)

    @property
    def table_bits(self) -> int | None:
        """T of the golden model's table route, or None when it does not apply."""
        return self._derived("table_bits")

    @property
    def operand(self) -> Callable[[int], int] | None:
        """The operand map of a separable model (model(a, b) = operand(a) operand(b)), or None."""
        return self._derived("operand")

    @property
    def log(self) -> LogSum | None:
        """The log-sum form of a logarithmic model, or None."""
        return self._derived("log")

    def magnitude(self, a: int, b: int) -> int:
        """The model on two magnitudes a, b >= 0."""
        return self.model(a, b, **self.kwargs)

    def product(self, a: int, b: int, wa: int | None = None, wb: int | None = None) -> int:
        """The product of two signed operands (of ``wa`` and ``wb`` bits when
        given, checked): sign-magnitude around the model, or a * b for exact."""
        for v, w, which in ((a, wa, "a"), (b, wb, "b")):
            if w is not None and not -(1 << (w - 1)) <= v < (1 << (w - 1)):
                raise ValueError(f"{self.name}: operand {which} = {v} is not a {w}-bit signed value")
        if self.kind == "exact":
            return a * b
        p = self.magnitude(abs(a), abs(b))
        return -p if (a < 0) != (b < 0) else p


REGISTRY: dict[str, Multiplier] = {m.name: m for m in (
    Multiplier("exact", "exact"),
    Multiplier("mitchell", "mitchell", (("m", 7),)),     # 7 fraction bits: bfloat16's, as ApproxTrain's
    Multiplier("mbm", "mbm", (("m", 7),)),
    Multiplier("drum6", "drum", (("k", 6),)),            # DRUM's paper's main configuration
    Multiplier("trunc16", "truncated", (("p", 16),)),    # columns below the lane width dropped
)}
MULTIPLIERS = tuple(REGISTRY)


def get(multiplier: str | Multiplier) -> Multiplier:
    """A registry entry by name (an entry passes through: tests plant variants)."""
    if isinstance(multiplier, Multiplier):
        return multiplier
    try:
        return REGISTRY[multiplier]
    except KeyError:
        raise ValueError(f"unknown multiplier {multiplier!r}; known: {MULTIPLIERS}") from None
