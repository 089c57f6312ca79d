"""Block floating point (BFP) after FAST (HPCA 2022): the format's parameters.

A tensor is cut into groups of ``group`` values along the reduction
dimension; each group shares one exponent, stored in ``exp_bits`` bits as a
signed offset from a per-tensor base, and each value keeps a signed
two's-complement mantissa of ``mantissa_bits`` bits. Converting into the
format rounds by ``rounding`` (stochastic with ``rnd_bits``-bit random
words, or to nearest). The exact rules are in docs/bfp.md; the golden half
is fixar.golden.bfp.

``BfpConfig`` is FixarConfig's ``[bfp]`` section; :func:`fmac_shape`
derives the widths of the fMAC column (gen/units/bfp_column.py, docs/bfp.md
"The fMAC") from it and the PE's formats.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fixar.config import ConfigError

if TYPE_CHECKING:
    from fixar.config import FixarConfig

# FAST grows mantissas in 2-bit steps because its multiplier works in 2-bit chunks
MANTISSA_WIDTHS = (2, 4, 6, 8)
BFP_ROUNDINGS = ("stochastic", "nearest")
MAX_GROUP = 4096      # a group lies within one reduction, and no product here reduces over more
MAX_EXP_BITS = 16
# FAST's fMAC multiplies mantissas in 2-bit chunks: a wider mantissa costs
# more passes over the same multipliers, not wider ones
CHUNK_BITS = 2
# A BFP product's rounding seeds (compiler LayerOp.bfp_stream / bfp_conv): one
# stream per network (the actor's and the critic's, each shared with its
# target); an instruction names its two conversions' place in the stream's
# step in BFP_CONV_BITS bits
BFP_STREAMS = 2
BFP_CONV_BITS = 16


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
    exp_bits: int = 5
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
    exp_bits: int = 5
    mantissa_bits: int = 2          # FAST starts every layer at its narrowest mantissa
    rounding: str = "stochastic"
    rnd_bits: int = 16
    widths: tuple[int, ...] = MANTISSA_WIDTHS
    # FAST's precision schedule in DDPG training (fixar.golden.bfp_train): every
    # ``schedule_every`` steps (0: the width stays fixed) a layer widens to the next
    # of ``widths`` when r(X) of its input exceeds
    # threshold * 2^-(step / threshold_halving_steps) * 2^-(layer * threshold_depth_halvings)
    # build the array's BFP front (converters at the cores' inputs, docs/bfp.md
    # "BFP in the array"): off by default, so the default kernel stays as measured;
    # config "bfp" turns it on
    in_array: bool = False
    schedule_every: int = 250
    threshold: float = 0.5
    threshold_halving_steps: int = 5000
    threshold_depth_halvings: float = 1.0

    def __post_init__(self) -> None:
        self.format()           # validates the shared fields, with the messages of BfpFormat
        _int("bfp.schedule_every", self.schedule_every, 0, 1 << 30)
        if not isinstance(self.in_array, bool):
            raise ConfigError(f"bfp.in_array: expected true or false, got {self.in_array!r}")
        _int("bfp.threshold_halving_steps", self.threshold_halving_steps, 1, 1 << 40)
        for name in ("threshold", "threshold_depth_halvings"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise ConfigError(f"bfp.{name}: expected a finite number >= 0, got {v!r}")
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

    def group_local(self, code_bits: int) -> bool:
        """Whether converting codes of ``code_bits`` bits depends on each group
        alone: the offsets span every exponent such codes have (2^e - 1 >=
        code_bits - 1), so the per-tensor base never clips one. The engine
        converts a group as it streams past and needs this; the default e = 5
        holds it for 32-bit codes."""
        return (1 << self.exp_bits) >= code_bits

    def schedule_threshold(self, step: int, layer: int) -> float:
        """The r(X) above which layer ``layer`` widens at training step ``step``:
        it falls with the iteration and with depth, as in FAST."""
        return self.threshold * 2.0 ** (-step / self.threshold_halving_steps - layer * self.threshold_depth_halvings)

    def format(self, mantissa_bits: int | None = None) -> BfpFormat:
        """The format at ``mantissa_bits`` (default: the starting width)."""
        m = self.mantissa_bits if mantissa_bits is None else mantissa_bits
        return BfpFormat(m, self.group, self.exp_bits, self.rounding, self.rnd_bits)


def code_bits(cfg: FixarConfig) -> int:
    """The widest codes a product converts into BFP: weights, activations and errors."""
    return max(cfg.pe.weight.bits, cfg.pe.act32.bits)


@dataclass(frozen=True)
class FmacShape:
    """The fMAC column's widths, all derived from the config (docs/bfp.md, "The fMAC").

    One column sums the products of one group (``rows`` = ``bfp.group``
    values) per pass; a pass multiplies chunk p of every weight mantissa by
    chunk q of every activation mantissa. Mantissas arrive sign-extended to
    ``mant_bits`` (the widest of ``bfp.widths``). The group's integer sum G
    (``group_bits``, signed) collects the passes at 4^(p + q); at the last
    pass G << scale enters the wide sum (``acc_bits``, wrapping like the
    PE's). The wide sum's LSB is 2^-frac_extra of one code x code product,
    so that scale = s_w + s_a + frac_extra is never negative (s >= -(m - 2)
    for a non-zero group, docs/bfp.md step 4) and at most ``scale_max``.
    """

    rows: int
    mant_bits: int
    chunks: int
    group_bits: int
    frac_extra: int
    scale_max: int
    scale_bits: int
    acc_bits: int


def fmac_shape(cfg: FixarConfig) -> FmacShape:
    """The fMAC column of ``cfg``: groups of ``bfp.group`` products of
    ``pe.weight`` by ``pe.act32`` codes in BFP, accumulated with ``pe``'s guard bits."""
    bfp, pe = cfg.bfp, cfg.pe
    mant = max(bfp.widths)
    chunks = mant // CHUNK_BITS
    # a mantissa's largest |partial sum over its chunks|: unsigned chunks up
    # to 3, the signed top one down to -2 (any prefix of the passes stays below the product of two)
    top = 1 << (CHUNK_BITS * (chunks - 1))
    largest = (top - 1) + 2 * top
    group_bits = (bfp.group * largest * largest).bit_length() + 1
    frac_extra = 2 * (mant - 2)
    # s = E_g + frac - (m - 2) <= (bits - 2) - (m - 2): the top group's largest code is below 2^(bits - 1)
    narrowest = min(bfp.widths)
    scale_max = (pe.weight.bits - narrowest) + (pe.act32.bits - narrowest) + frac_extra
    # |code x code| < 2^(bits_w - 1 + bits_a - 1), 2^frac_extra finer, 2^guard of them, a sign
    acc_bits = (pe.weight.bits - 1) + (pe.act32.bits - 1) + frac_extra + pe.guard_bits + 1
    return FmacShape(rows=bfp.group, mant_bits=mant, chunks=chunks, group_bits=group_bits,
                     frac_extra=frac_extra, scale_max=scale_max, scale_bits=scale_max.bit_length(),
                     acc_bits=acc_bits)


@dataclass(frozen=True)
class LaneShape:
    """The lane column's widths (docs/bfp.md, "Lanes: several products per PE").

    An activation word (``word_bits`` = ``pe.act32.bits``, what a PE row
    receives per cycle) carries ``lanes(m_a)`` mantissas of m_a bits from as
    many batch vectors, lane l at bits l m_a up. Each row has ``multipliers``
    chunk multipliers, one per 2-bit chunk of the word, each taking chunk p
    of the row's weight mantissa, so one pass serves every lane and an
    m_w-bit weight takes m_w / 2 passes whatever m_a is. Each lane keeps its
    own group sum (``fmac.group_bits``), scale and wide sum (``fmac.acc_bits``).
    """

    fmac: FmacShape
    word_bits: int
    multipliers: int
    max_lanes: int
    sum_bits: int           # one multiplier's column sum over the rows

    def lanes(self, m_a: int) -> int:
        """Batch vectors a pass serves at activation width m_a."""
        return self.multipliers // (m_a // CHUNK_BITS)

    @staticmethod
    def passes(m_w: int) -> int:
        """Passes per group at weight width m_w: one per weight chunk."""
        return m_w // CHUNK_BITS

    def products_per_cycle(self, m_w: int, m_a: int) -> float:
        """Products of one row per cycle, against the FXP32 PE's 1."""
        return self.lanes(m_a) / self.passes(m_w)


def lane_shape(cfg: FixarConfig) -> LaneShape:
    """The lane column of ``cfg``: the fMAC's groups, the activation word of ``pe.act32``."""
    sh = fmac_shape(cfg)
    word = cfg.pe.act32.bits        # the config holds it to two 16-bit lanes: whole chunks
    multipliers = word // CHUNK_BITS
    # a chunk product of a 3-bit signed weight chunk (-2..3) and a 2-bit chunk,
    # signed (-2..1) or not (0..3): -6..9; a column of `rows` of them
    largest = 3 * 3
    sum_bits = (sh.rows * largest).bit_length() + 1
    return LaneShape(fmac=sh, word_bits=word, multipliers=multipliers,
                     max_lanes=multipliers // (min(cfg.bfp.widths) // CHUNK_BITS), sum_bits=sum_bits)


@dataclass(frozen=True)
class LaneArrayShape:
    """The array of lane columns (gen/units/bfp_lane_array.py, docs/bfp.md
    "The lane array"): one lane column per column of the FXP32 array
    (``array.cores`` x ``array.cols``), each output feature of a tile on its
    own column, a tile's batch vectors in its lanes.

    Its weight memory holds, per word, one group of every column's weight
    mantissas and the group's exponent; its activation memory, per word, the
    ``rows`` activation words of one group for up to ``max_lanes`` vectors
    and each lane's exponent. Both hold as many values as the engine's
    weight and activation memories (``memory.weight_words``, ``cores`` x
    ``memory.act_words_per_core`` words), so the array takes the layers the
    engine takes. An exponent field is a signed ``exp_bits``-bit number: the
    group's s_w, and s_a + ``fmac.frac_extra`` for a lane, whose sum is the
    lane column's scale."""

    lanes: LaneShape
    columns: int
    exp_bits: int
    w_depth: int
    a_depth: int

    @property
    def w_column_bits(self) -> int:
        return self.lanes.fmac.rows * self.lanes.fmac.mant_bits + self.exp_bits

    @property
    def w_word_bits(self) -> int:
        return self.columns * self.w_column_bits

    @property
    def a_word_bits(self) -> int:
        return self.lanes.fmac.rows * self.lanes.word_bits + self.lanes.max_lanes * self.exp_bits


def lane_array_shape(cfg: FixarConfig) -> LaneArrayShape:
    sh = lane_shape(cfg)
    columns = cfg.array.cores * cfg.array.cols
    rows = sh.fmac.rows
    return LaneArrayShape(lanes=sh, columns=columns, exp_bits=sh.fmac.scale_bits + 1,
                          w_depth=cfg.memory.weight_words // (columns * rows),
                          a_depth=cfg.array.cores * cfg.memory.act_words_per_core // rows)
