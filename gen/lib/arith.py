"""The generator's half of the number-format registry: how a wider value is
rounded and fitted into a :class:`fixar.config.FixedFormat`, in hardware.

Each rounding named in ``fixar.config.ROUNDINGS`` has one entry here (the
addend put below the kept LSB before an arithmetic shift right) and one in
the golden model's half (``fixar.golden.fixed``); each overflow in
``fixar.config.OVERFLOWS`` likewise. The halves never import each other:
they meet in the config's names and docs/numerics.md, and
``tests/test_formats.py`` checks that both cover exactly the config's names.
Adding a rounding is its entry here, its golden entry, its config name and
its tests; every unit that rounds (PE, array core, Adam, vector unit) then
builds it.
"""
from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Const, Module, Mux, Signal, signed

from fixar.config import ConfigError, FixedFormat

# The QAT quantizer's roundings (fixar.config.QUANTIZER_ROUNDINGS): what is
# added to the dividend a 2^16 before the floor division by Delta.
QUANTIZER_ADDENDS: dict[str, Callable] = {"floor": lambda delta: 0, "half_up": lambda delta: delta >> 1}
# name -> addend(value, shift, rnd): what is added before ``>> shift``, in [0, 2^shift)
ROUNDERS: dict[str, Callable] = {}
# name -> fit(m, q, fmt, name): a signed value into ``fmt``'s codes
OVERFLOWS: dict[str, Callable] = {}
# name -> narrow(q, fmt): q in bits + 2 bits such that fitting narrow(q) + c
# equals fitting q + c for c = 0 and 1 (and -1, 2): what requantize
# fits, so that its rounding increment is a short carry chain, not one as
# wide as the sum it rounds
NARROWERS: dict[str, Callable] = {}


def _rounding(name: str):
    def register(fn):
        ROUNDERS[name] = fn
        return fn
    return register


def _overflow(name: str):
    def register(fn):
        OVERFLOWS[name] = fn
        return fn
    return register


def _narrower(name: str):
    def register(fn):
        NARROWERS[name] = fn
        return fn
    return register


@_rounding("floor")
def _floor(value, shift: int, rnd):
    return Const(0, 1)


@_rounding("rne")
def _rne(value, shift: int, rnd):
    # 0.5 LSB minus a hair, plus the kept LSB: ties go to even
    return Const((1 << (shift - 1)) - 1, shift) + value[shift]


@_rounding("zero")
def _zero(value, shift: int, rnd):
    # a negative value adds 2^shift - 1 first: truncation toward zero
    return Mux(value.as_signed() < 0, Const((1 << shift) - 1, shift), Const(0, shift))


@_rounding("stochastic")
def _stochastic(value, shift: int, rnd):
    # the top ``shift`` bits of a random word presented with the value
    if rnd is None:
        raise ConfigError("stochastic rounding needs a random word beside the value; this unit has none")
    if len(rnd) < shift:
        raise ConfigError(f"stochastic rounding of {shift} bits needs random words of at least {shift} bits, "
                          f"got {len(rnd)}")
    return rnd[len(rnd) - shift:]


def _check_rounding(rounding: str, name: str) -> None:
    if rounding not in ROUNDERS:
        raise ConfigError(f"{name}: rounding {rounding!r} has no generator entry (known: {sorted(ROUNDERS)})")


def _floor_and_carry(m: Module, value, shift: int, rounding: str, name: str, rnd):
    """(value + addend) >> shift as floor(value / 2^shift) + carry, the carry
    (0 or 1: every addend is below 2^shift) being bit ``shift`` of the low
    ``shift`` bits plus the addend: the addend's carry chain is ``shift``
    bits long, not as long as ``value``."""
    low = Signal(shift + 1, name=f"{name}_low")
    m.d.comb += low.eq(value[:shift] + ROUNDERS[rounding](value, shift, rnd))
    return value.as_signed() >> shift, low[shift]


def floor_and_carry(m: Module, value, shift: int, rounding: str, name: str, rnd=None):
    """``value`` rounded right by ``shift`` >= 1 as floor + carry, apart, for
    a caller that folds the carry into an add of its own (a - rounded(v) is
    a + ~floor + !carry: one carry chain)."""
    _check_rounding(rounding, name)
    return _floor_and_carry(m, value, shift, rounding, name, rnd)


def round_shift(m: Module, value, shift: int, rounding: str, name: str, rnd=None):
    """``value`` (taken as signed) shifted right by ``shift`` bits with
    ``rounding``; a shift of 0 or less leaves it as it is."""
    _check_rounding(rounding, name)
    if shift <= 0:
        return value
    floor, carry = _floor_and_carry(m, value, shift, rounding, name, rnd)
    rounded = Signal(signed(len(value) - shift + 2), name=f"{name}_rounded")
    m.d.comb += rounded.eq(floor + carry)
    return rounded


@_overflow("wrap")
def _wrap(m: Module, q, fmt: FixedFormat, name: str):
    return q[:fmt.bits].as_signed() if fmt.signed else q[:fmt.bits]


@_overflow("saturate")
def _saturate(m: Module, q, fmt: FixedFormat, name: str):
    if fmt.signed:
        if len(q) <= fmt.bits:
            return q
        # In range iff every bit from the output's sign bit up equals the
        # sign: a few LUTs of AND/OR instead of two magnitude comparators.
        top = q[fmt.bits - 1:]
        fits = top.all() | ~top.any()
        limit = Mux(q[-1], Const(fmt.min_int, signed(fmt.bits)), Const(fmt.max_int, signed(fmt.bits)))
        return Mux(fits, q[:fmt.bits].as_signed(), limit)
    out = Signal(fmt.bits, name=f"{name}_sat")
    m.d.comb += out.eq(Mux(q > fmt.max_int, fmt.max_int, Mux(q < 0, 0, q)))
    return out


@_narrower("wrap")
def _wrap_narrow(q, fmt: FixedFormat):
    return q[:fmt.bits + 2].as_signed()          # the low bits are all wrapping keeps


@_narrower("saturate")
def _saturate_narrow(q, fmt: FixedFormat):
    # beyond +-2^(bits + 1) a value saturates, whatever small c is added
    n = fmt.bits + 2
    if len(q) <= n:
        return q
    top = q[n - 1:]
    fits = top.all() | ~top.any()
    return Mux(fits, q[:n].as_signed(), Mux(q[-1], Const(-(1 << (n - 1)), signed(n)),
                                            Const((1 << (n - 1)) - 1, signed(n))))


def fit(m: Module, value, fmt: FixedFormat, name: str, overflow: str | None = None):
    """``value`` into ``fmt``'s codes as ``overflow`` (default ``fmt.overflow``) says (any width)."""
    overflow = overflow or fmt.overflow
    if overflow not in OVERFLOWS:
        raise ConfigError(f"{name}: overflow {overflow!r} has no generator entry (known: {sorted(OVERFLOWS)})")
    q = Signal(signed(max(len(value), fmt.bits) + 1), name=f"{name}_q")
    m.d.comb += q.eq(value)
    return OVERFLOWS[overflow](m, q, fmt, name)


def requantize(m: Module, value, shift: int, fmt: FixedFormat, name: str, rnd=None):
    """The conversion every output stage makes: round ``value`` right by
    ``shift`` as ``fmt.rounding`` says, then fit it as ``fmt.overflow`` says.
    The rounded value is never built at full width: the floor is narrowed
    for the overflow first (NARROWERS), then the rounding's carry added."""
    _check_rounding(fmt.rounding, name)
    if shift <= 0:
        return fit(m, value, fmt, name)
    kept, carry = requantize_parts(m, value, shift, fmt, name, rnd)
    return requantize_finish(m, kept, carry, fmt, name)


def requantize_parts(m: Module, value, shift: int, fmt: FixedFormat, name: str, rnd=None):
    """:func:`requantize`'s first half, for a pipeline to register between
    the halves: the floor narrowed for the overflow (fmt.bits + 2 bits) and
    the rounding's carry (0 or 1; 0 for a shift of 0 or less, which leaves
    the value as it is)."""
    _check_rounding(fmt.rounding, name)
    if fmt.overflow not in NARROWERS:
        raise ConfigError(f"{name}: overflow {fmt.overflow!r} has no generator entry (known: {sorted(NARROWERS)})")
    if shift <= 0:
        q = Signal(signed(max(len(value), fmt.bits) + 1), name=f"{name}_q")
        m.d.comb += q.eq(value)
        return NARROWERS[fmt.overflow](q, fmt), Const(0, 1)
    floor, carry = _floor_and_carry(m, value, shift, fmt.rounding, name, rnd)
    return NARROWERS[fmt.overflow](floor, fmt), carry


def requantize_finish(m: Module, kept, carry, fmt: FixedFormat, name: str):
    """:func:`requantize`'s second half: the carry added, the sum fitted."""
    if fmt.overflow == "saturate" and fmt.signed and len(kept) <= fmt.bits + 2:
        return _saturating_increment(m, kept, carry, fmt, name)
    narrow = Signal(signed(fmt.bits + 3), name=f"{name}_narrow")
    m.d.comb += narrow.eq(Mux(carry, kept + 1, kept))    # the increment beside the carry, not after it
    return fit(m, narrow, fmt, name)


def _saturating_increment(m: Module, kept, carry, fmt: FixedFormat, name: str):
    """saturate(kept + carry) for a signed ``kept`` of at most fmt.bits + 2
    bits, with whether it fits read off kept and carry, beside the
    increment's carry chain rather than after it: kept + carry fits when kept
    does and is not the maximum with a carry (min - 1 with a carry gives the
    minimum, which is also the limit kept's sign picks). Only the kept bits
    are incremented."""
    n = fmt.bits
    k = Signal(signed(n + 2), name=f"{name}_k")
    m.d.comb += k.eq(kept)
    top = k[n - 1:]                        # the output's sign bit and the two above it
    low_ones = k[:n - 1].all()
    in_range = top.all() | ~top.any()
    at_max = ~top.any() & low_ones
    fits = Signal(name=f"{name}_fits")
    m.d.comb += fits.eq(in_range & ~(carry & at_max))
    value = Signal(n, name=f"{name}_inc")
    m.d.comb += value.eq(Mux(carry, k[:n] + 1, k[:n]))
    limit = Mux(k[-1], Const(fmt.min_int, signed(n)), Const(fmt.max_int, signed(n)))
    out = Signal(signed(n), name=f"{name}_sat")
    m.d.comb += out.eq(Mux(fits, value.as_signed(), limit))
    return out


def rne(m: Module, value, shift: int, name: str):
    """Round-half-even by ``shift`` bits, not fitted into a format."""
    return round_shift(m, value, shift, "rne", name)


def saturate(m: Module, value, fmt: FixedFormat, name: str):
    """``value`` clamped into ``fmt``'s codes, whatever ``fmt.overflow`` says
    (the Adam and vector units always saturate)."""
    return fit(m, value, fmt, name, "saturate")
