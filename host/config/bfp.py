"""Block floating point (BFP) after FAST (HPCA 2022): the format's parameters.

A tensor is cut into groups of ``group`` values along the reduction
dimension; each group shares one exponent, stored in ``exp_bits`` bits as a
signed offset from a per-tensor base, and each value keeps a signed
two's-complement mantissa of ``mantissa_bits`` bits. Converting into the
format rounds by ``rounding`` (stochastic with ``rnd_bits``-bit random
words, or to nearest). The exact rules are in docs/bfp.md; the golden half
is fixar.golden.bfp.

Not wired into FixarConfig yet: ``BfpConfig`` is the ``[bfp]`` section it
is meant to become (docs/bfp.md, "Config").
"""
from __future__ import annotations

from dataclasses import dataclass

from fixar.config import ConfigError

# FAST grows mantissas in 2-bit steps because its multiplier works in 2-bit chunks
MANTISSA_WIDTHS = (2, 4, 6, 8)
BFP_ROUNDINGS = ("stochastic", "nearest")
MAX_GROUP = 4096      # a group lies within one reduction, and no product here reduces over more
MAX_EXP_BITS = 16


def _int(where: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {value} is outside {lo}..{hi}")


@dataclass(frozen=True)
class BfpFormat:
    """One BFP format: what fixar.golden.bfp converts into."""

    mantissa_bits: int = 8
    group: int = 16
    exp_bits: int = 4
    rounding: str = "stochastic"
    rnd_bits: int = 16

    def __post_init__(self) -> None:
        if self.mantissa_bits not in MANTISSA_WIDTHS or isinstance(self.mantissa_bits, bool):
            raise ConfigError(f"bfp.mantissa_bits: {self.mantissa_bits!r} is not one of {MANTISSA_WIDTHS}")
        _int("bfp.group", self.group, 1, MAX_GROUP)
        _int("bfp.exp_bits", self.exp_bits, 1, MAX_EXP_BITS)
        if self.rounding not in BFP_ROUNDINGS:
            raise ConfigError(f"bfp.rounding: {self.rounding!r} is not one of {BFP_ROUNDINGS}")
        # the noise comes from a 32-bit hash (fixar.golden.noise.jenkins32)
        _int("bfp.rnd_bits", self.rnd_bits, 1, 32)

    @property
    def min_offset(self) -> int:
        return -(1 << (self.exp_bits - 1))

    @property
    def max_offset(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def min_mantissa(self) -> int:
        return -(1 << (self.mantissa_bits - 1))

    @property
    def max_mantissa(self) -> int:
        return (1 << (self.mantissa_bits - 1)) - 1

    def with_mantissa(self, bits: int) -> BfpFormat:
        """The same format at another mantissa width (FAST's precision steps)."""
        return BfpFormat(bits, self.group, self.exp_bits, self.rounding, self.rnd_bits)

    def __str__(self) -> str:
        return f"BFP(g={self.group}, e={self.exp_bits}, m={self.mantissa_bits}, {self.rounding})"


@dataclass(frozen=True)
class BfpConfig:
    """The ``[bfp]`` section: the format's fixed parameters, the width a layer
    starts at, and the widths a precision schedule may step through."""

    group: int = 16
    exp_bits: int = 4
    mantissa_bits: int = 2          # FAST starts every layer at its narrowest mantissa
    rounding: str = "stochastic"
    rnd_bits: int = 16
    widths: tuple[int, ...] = MANTISSA_WIDTHS

    def __post_init__(self) -> None:
        self.format()           # validates the shared fields, with the messages of BfpFormat
        widths = self.widths
        if isinstance(widths, list):        # TOML and JSON give lists; keep the frozen value hashable
            widths = tuple(widths)
            object.__setattr__(self, "widths", widths)
        if not isinstance(widths, tuple) or not widths:
            raise ConfigError(f"bfp.widths: expected a non-empty list of mantissa widths, got {widths!r}")
        if any(isinstance(w, bool) or w not in MANTISSA_WIDTHS for w in widths):
            raise ConfigError(f"bfp.widths: {list(widths)} has a width outside {MANTISSA_WIDTHS}")
        if list(widths) != sorted(set(widths)):
            raise ConfigError(f"bfp.widths: {list(widths)} must be strictly increasing")
        if self.mantissa_bits not in widths:
            raise ConfigError(f"bfp.mantissa_bits: {self.mantissa_bits} is not one of bfp.widths {list(widths)}")

    def format(self, mantissa_bits: int | None = None) -> BfpFormat:
        """The format at ``mantissa_bits`` (default: the starting width)."""
        m = self.mantissa_bits if mantissa_bits is None else mantissa_bits
        return BfpFormat(m, self.group, self.exp_bits, self.rounding, self.rnd_bits)
