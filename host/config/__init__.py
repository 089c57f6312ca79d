"""The single source of truth: one frozen dataclass tree.

The generator (fixar.gen), the golden model (fixar.golden), the testbenches
(fixar.tb), the cost model and the docs all read their widths from here; none
of them types a width of its own. Variants are made by copying with
``dataclasses.replace`` (or :meth:`FixarConfig.variant`), as Gemmini does.

Every object validates itself on construction, so an impossible config fails
where it is made, with a message that names the field.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path

# pure Python, imports nothing of fixar.config: no import cycle
from fixar.config.multipliers import MULTIPLIERS

# The registry of number formats by name: each rounding and overflow has an
# exact numpy half (fixar.golden.fixed) and an Amaranth half
# (fixar.gen.lib.arith), which never import each other; tests/test_formats.py
# checks that both cover exactly these names.
ROUNDINGS = ("floor", "rne", "stochastic", "zero")
# roundings that take a random word beside each value
RANDOM_ROUNDINGS = ("stochastic",)
# how the QAT quantizer at the array's output stage turns a / delta into a
# code: FIXAR's floor, or to nearest with ties upward (docs/training.md)
QUANTIZER_ROUNDINGS = ("half_up", "floor")
# how the QAT quantizer's step delta follows a layer's range: FIXAR's affine
# step (|a_min| + |a_max|) / 2^16, or that span rounded up to a power of two
# (and at least one act32 LSB), so that delta (q - z) is an exact act32 code:
# the array's product on it is then the packed FXP16 product of q - z shifted
# by log2(delta) (docs/training.md, "The power-of-two quantizer step")
QUANTIZER_SCALES = ("affine", "pow2")
# the backward errors in QAT's phase 2: FXP32 as FIXAR keeps them, or, opt-in,
# 16-bit codes from power-of-two quantizers of their own (frozen at the switch
# like the activations'), or signed 16-bit codes with a power-of-two step
# from each error's largest magnitude, this step's ("fxp16_step") or the
# step before's ("fxp16_delayed"), so the transposed products can run packed
# (issue 19 item 3; docs/training.md, "16-bit errors")
QAT_ERRORS = ("fxp32", "fxp16", "fxp16_step", "fxp16_delayed")
OVERFLOWS = ("saturate", "wrap")
# The PE's multipliers by name: each is one functional model on integers in
# fixar.config.multipliers (exact, Mitchell, MBM, DRUM, truncated array), from
# which the golden model derives its tables (fixar.golden.multipliers) and
# against which the generator's circuits are checked (fixar.gen.lib.multipliers;
# tests/test_multipliers.py, docs/multipliers.md). MULTIPLIERS is imported above.

# The golden model computes exact sums with int64 arithmetic (see
# docs/numerics.md); an accumulator lane wider than this cannot be modelled
# exactly there, so such a config is rejected rather than silently mis-modelled.
GOLDEN_MAX_ACC_BITS = 62

# (section, key, default) of fields that to_dict() omits at their default, so
# that adding them did not change any existing config's digest.
DIGEST_NEUTRAL_DEFAULTS = (("pe", "multiplier", "exact"), ("array", "quantizer_scale", "affine"),
                           ("array", "qat_errors", "fxp32"),
                           ("pe", "lut_product_bits", 8))


class ConfigError(ValueError):
    """An impossible or unsupported configuration. The message names the field."""


# imports ConfigError from here, so it comes after it
from fixar.config.bfp import BfpConfig  # noqa: E402


def enum_bits(codes: type[enum.IntEnum]) -> int:
    """Width of a port or field that carries ``codes`` (derived, never typed)."""
    return max(1, max(int(c) for c in codes).bit_length())


class PEMode(enum.IntEnum):
    """Run-time mode of a PE (the value driven on its ``mode`` port)."""

    FXP32 = 0  # one 32x32 MAC: the two 32x16 products are recombined
    FXP16 = 1  # two packed 16-bit activations, two separate partial sums


def _check_int(where: str, value, lo: int | None = None, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if lo is not None and value < lo:
        raise ConfigError(f"{where}: {value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: {value} is above the maximum {hi}")


@dataclass(frozen=True)
class FixedFormat:
    """A two's-complement (or unsigned) fixed-point format.

    ``rounding`` and ``overflow`` say what happens when a wider value is
    converted *into* this format: floor (truncate toward -inf), rne
    (round to nearest, ties to even), stochastic (add random bits from the
    PRNG below the kept LSB, then floor) or zero (truncate toward zero: a
    decaying value, such as an Adam moment whose gradient is 0, reaches 0,
    where round to nearest keeps 0.9 m = m for |m| <= 4 LSB; only the Adam
    unit's moments support it); saturate to [min, max] or wrap modulo 2**bits.
    """

    bits: int
    frac: int
    signed: bool = True
    rounding: str = "rne"
    overflow: str = "saturate"

    def __post_init__(self) -> None:
        _check_int("bits", self.bits, 1, 64)
        _check_int("frac", self.frac, 0)
        if self.frac > self.bits:
            raise ConfigError(
                f"frac: {self.frac} fraction bits do not fit in a {self.bits}-bit word"
            )
        if not isinstance(self.signed, bool):
            raise ConfigError(f"signed: expected true/false, got {self.signed!r}")
        if self.rounding not in ROUNDINGS:
            raise ConfigError(f"rounding: {self.rounding!r} is not one of {ROUNDINGS}")
        if self.overflow not in OVERFLOWS:
            raise ConfigError(f"overflow: {self.overflow!r} is not one of {OVERFLOWS}")

    @property
    def needs_random(self) -> bool:
        """Converting into this format takes a random word beside each value."""
        return self.rounding in RANDOM_ROUNDINGS

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def min_value(self) -> float:
        return self.min_int * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_int * self.lsb

    def __str__(self) -> str:
        integer = self.bits - self.frac
        kind = "Q" if self.signed else "UQ"
        return f"{kind}{integer}.{self.frac}/{self.rounding}/{self.overflow}"


@dataclass(frozen=True)
class PrngConfig:
    """The hardware pseudo-random generator (stochastic rounding, exploration noise).

    xorshift32 (Marsaglia 2003) is a linear-feedback generator over GF(2) with
    period 2**32 - 1 whose every step yields 32 fresh bits; a plain one-bit
    Galois LFSR would give correlated, shifted words from cycle to cycle.
    """

    kind: str = "xorshift32"
    seed: int = 0x2545F491

    def __post_init__(self) -> None:
        if self.kind != "xorshift32":
            raise ConfigError(f"prng.kind: {self.kind!r} is not supported (only 'xorshift32')")
        _check_int("prng.seed", self.seed, 1, (1 << 32) - 1)

    @property
    def width(self) -> int:
        return 32


@dataclass(frozen=True)
class PEConfig:
    """FIXAR's dual-mode PE: two (weight x lane) signed multipliers.

    FXP32 mode: the 32-bit activation is split into an unsigned low lane and a
    signed high lane; both products are accumulated separately and recombined
    as hi * 2**lane_bits + lo at the output, which is one 32x32 MAC.
    FXP16 mode: the same word holds two signed 16-bit activations, each with
    its own partial sum, for twice the throughput.
    """

    weight: FixedFormat = FixedFormat(32, 20)
    act32: FixedFormat = FixedFormat(32, 20)
    act16: FixedFormat = FixedFormat(16, 15)
    out: FixedFormat = FixedFormat(32, 20)
    lane_bits: int = 16
    acc_bits: int = 58  # per lane: 48-bit product + 10 guard bits (docs/numerics.md)
    # the weight x lane multipliers (docs/multipliers.md); "exact" is the
    # DSP48E2 product. Left out of to_dict() while "exact", so the digests of
    # configs made before the field (rtl/, checkpoints) do not change.
    multiplier: str = "exact"
    # The exact multiplier's split (fixar.config.timing.exact_split): a weight
    # at most this many bits wider than a DSP48E2's 27-bit port multiplies its
    # low bits in LUTs beside one DSP per lane (the default 32-bit weight: 5
    # bits, 2 DSPs a PE for ~300 more Yosys LUTs and ~160 FFs in the array);
    # 0 leaves the whole product to DSPs (4 a PE). Hardware only: the bits
    # are the same either way.
    lut_product_bits: int = 8

    def __post_init__(self) -> None:
        _check_int("pe.lane_bits", self.lane_bits, 1, 16)
        _check_int("pe.lut_product_bits", self.lut_product_bits, 0, 16)
        if self.multiplier not in MULTIPLIERS:
            raise ConfigError(f"pe.multiplier: {self.multiplier!r} is not one of {MULTIPLIERS}")
        for name in ("weight", "act32", "act16", "out"):
            fmt = getattr(self, name)
            if not isinstance(fmt, FixedFormat):
                raise ConfigError(f"pe.{name}: expected a FixedFormat, got {fmt!r}")
            if not fmt.signed:
                raise ConfigError(f"pe.{name}: the PE multiplies signed operands only")
        # The golden model splits weights into two 16-bit limbs for exact BLAS.
        _check_int("pe.weight.bits", self.weight.bits, 2, 32)
        if self.act32.bits != 2 * self.lane_bits:
            raise ConfigError(
                f"pe.act32.bits: a {self.act32.bits}-bit activation word must hold exactly "
                f"two {self.lane_bits}-bit lanes ({2 * self.lane_bits} bits)"
            )
        if self.act16.bits != self.lane_bits:
            raise ConfigError(
                f"pe.act16.bits: a packed activation is one lane ({self.lane_bits} bits), "
                f"not {self.act16.bits}"
            )
        _check_int("pe.acc_bits", self.acc_bits, 1, GOLDEN_MAX_ACC_BITS)
        if self.acc_bits < self.product_bits:
            raise ConfigError(
                f"pe.acc_bits: a {self.acc_bits}-bit accumulator is narrower than one "
                f"{self.weight.bits}x{self.lane_bits} lane product ({self.product_bits} bits)"
            )
        if self.out.bits > self.acc_bits:
            raise ConfigError(
                f"pe.out.bits: a {self.out.bits}-bit output is wider than the "
                f"{self.acc_bits}-bit accumulator"
            )
        for mode, shift in (("FXP32", self.shift32), ("FXP16", self.shift16)):
            if shift < 0:
                raise ConfigError(
                    f"pe.out.frac: in {mode} mode the product has fewer fraction bits than "
                    f"the output ({self.out.frac}); the PE only shifts right"
                )

    @property
    def product_bits(self) -> int:
        """Signed width that holds any weight x lane product (unsigned lane included).
        An approximate multiplier may overshoot the exact product (MBM's
        correction, DRUM's appended one) up to the full signed width of its
        ports, weight x (lane_bits + 1): one bit more (docs/multipliers.md)."""
        return self.weight.bits + self.lane_bits + (self.multiplier != "exact")

    @property
    def guard_bits(self) -> int:
        """Sums of up to 2**guard_bits products never wrap the accumulator."""
        return self.acc_bits - self.product_bits

    @property
    def shift32(self) -> int:
        """Right shift from the FXP32 product's binary point to the output's."""
        return self.weight.frac + self.act32.frac - self.out.frac

    @property
    def shift16(self) -> int:
        """Right shift from a packed-lane product's binary point to the output's."""
        return self.weight.frac + self.act16.frac - self.out.frac

    @property
    def rnd_bits(self) -> int:
        """Width of each random word the PE takes for stochastic rounding."""
        return max(self.shift32, self.shift16, 1)


@dataclass(frozen=True)
class ArrayConfig:
    """The adaptive array: ``cores`` cores of ``rows`` x ``cols`` PEs (the array issue fills this in)."""

    cores: int = 2
    rows: int = 16
    cols: int = 16
    # Partial-sum buffer entries per column: batch vectors in flight on one
    # weight tile (FXP16 packs two vectors per entry). FIXAR's largest batch is 512.
    psum_slots: int = 512
    # QAT quantizers at the output stage (one per layer input of the actor and
    # the critic; the target networks share them) and their range trackers.
    quantizers: int = 8
    # q = round(a / delta) + z: nearest (ties up) by default; "floor" is the
    # paper's formula, whose half-step bias on every 16-bit input made the
    # critic unstable after the switch (docs/training.md, "Rounding").
    quantizer_rounding: str = "half_up"
    # delta: FIXAR's affine span / 2^16, or "pow2" (see QUANTIZER_SCALES). The
    # host sets delta at the switch, so the RTL is the same for both.
    quantizer_scale: str = "affine"
    # QAT phase 2's backward errors (see QAT_ERRORS); "fxp16" needs pow2 steps
    qat_errors: str = "fxp32"

    def __post_init__(self) -> None:
        _check_int("array.quantizers", self.quantizers, 1, 256)
        if self.quantizer_rounding not in QUANTIZER_ROUNDINGS:
            raise ConfigError(f"array.quantizer_rounding: {self.quantizer_rounding!r} is not one of "
                              f"{QUANTIZER_ROUNDINGS}")
        if self.quantizer_scale not in QUANTIZER_SCALES:
            raise ConfigError(f"array.quantizer_scale: {self.quantizer_scale!r} is not one of {QUANTIZER_SCALES}")
        if self.qat_errors not in QAT_ERRORS:
            raise ConfigError(f"array.qat_errors: {self.qat_errors!r} is not one of {QAT_ERRORS}")
        if self.qat_errors == "fxp16" and self.quantizer_scale != "pow2":
            raise ConfigError('array.qat_errors = "fxp16" needs array.quantizer_scale = "pow2" (a 16-bit error is '
                              "then an exact act32 code, the form a packed product takes)")
        _check_int("array.cores", self.cores, 1, 64)
        _check_int("array.rows", self.rows, 1, 256)
        _check_int("array.cols", self.cols, 1, 256)
        _check_int("array.psum_slots", self.psum_slots, 1, 1 << 16)

    @property
    def pes(self) -> int:
        return self.cores * self.rows * self.cols


class ActFunc(enum.IntEnum):
    """Run-time function of an activation unit (the value on its ``func`` port)."""

    IDENTITY = 0
    RELU = 1
    TANH = 2


@dataclass(frozen=True)
class ActivationConfig:
    """The activation unit's tanh: linear interpolation between table points.

    tanh is odd, so only [0, 2**tanh_range_log2) is tabulated, with
    2**tanh_segments_log2 segments per unit; beyond the range the unit
    returns the last table point. The table is defined here (not in the
    golden model or the generator) because it is data both must share.
    """

    tanh_range_log2: int = 3      # table covers |x| < 8; tanh(8) = 1 - 2.3e-7
    tanh_segments_log2: int = 5   # 32 segments per unit: chord error <= h^2/8 * max|tanh''| ~ 9.4e-5

    def __post_init__(self) -> None:
        _check_int("activation.tanh_range_log2", self.tanh_range_log2, 0, 6)
        _check_int("activation.tanh_segments_log2", self.tanh_segments_log2, 0, 10)

    @property
    def tanh_points(self) -> int:
        """Number of table points (segments + 1)."""
        return (1 << (self.tanh_range_log2 + self.tanh_segments_log2)) + 1

    def tanh_table(self, frac: int) -> tuple[int, ...]:
        """round(tanh(k * h) * 2**frac) for k = 0 .. segments, ties to even."""
        h = 2.0 ** -self.tanh_segments_log2
        return tuple(round(math.tanh(k * h) * (1 << frac)) for k in range(self.tanh_points))


class VecOp(enum.IntEnum):
    """Element-wise operations of the vector unit (docs/vector.md): the
    opcode the program and the hardware use. a, b are rows of ``pe.act32``
    codes, flag one bit per element, c an unsigned coefficient with
    ``vector.coef_frac`` fraction bits, limit an unsigned ``pe.act32.bits``-bit
    bound (RELU_MASK only: the top of the quantizer that made b, or
    :func:`mask_no_limit`)."""

    ADD = 0         # a + b
    SUB = 1         # a - b                                  (Q - y)
    SCALE = 2       # a c                                    (2/B)
    TD = 3          # a + (flag ? 0 : b c)                   (r + gamma (1 - done) Q')
    SOFT = 4        # b + (a - b) c                          (target <- target + tau (w - target))
    RELU_MASK = 5   # 0 < b < limit ? a : 0                  (error through a ReLU and its quantizer's top)
    DTANH = 6       # a (1 - b^2), b clipped to [-1, 1]      (error through tanh)
    NOISE = 7       # clip(a + c n, -1, 1), n ~ Irwin-Hall   (exploration)


def mask_no_limit(cfg: FixarConfig) -> int:
    """RELU_MASK's limit where no quantizer clips the layer's input (FXP32,
    QAT phase 1): 2^(bits - 1), above every ``pe.act32`` code. A VEC
    instruction carries the limit as an unsigned field (docs/vector.md)."""
    return 1 << (cfg.pe.act32.bits - 1)


def weight_groups(cfg: FixarConfig) -> tuple[tuple[int, int], tuple[int, int]]:
    """The weight memory's two groups of rows, (first row, rows) each: rows
    [0, H) and [H, rows) with H half its rows. Each group is its own set of
    RAMs (gen/units/array.py), so the Adam pass of a network in one group
    can stream through every port of that group while the array reads the
    other network from the other group (docs/program.md, "Adam beside the
    array"). The compiler keeps a network and its target in one group."""
    rows = cfg.memory.weight_words // cfg.array.cols
    half = rows // 2
    return (0, half), (half, rows - half)


class Opcode(enum.IntEnum):
    """Instructions of the training controller (docs/program.md)."""

    HALT = 0
    ARRAY = 1   # one array operation: the fields are fixar.compiler.array_ops.Descriptor's
    VEC = 2     # rows of every core's activation memory through the vector unit
    ADAM = 3    # bias rows, then weight rows through the Adam lanes (their gradients and moments)
    SOFT = 4    # target rows <- SOFT(online rows, target rows), weights and biases
    SYNC = 5    # wait until an ADAM pass running beside the array has finished


class Scalar(enum.IntEnum):
    """The controller's scalar registers, written by the host."""

    GAMMA = 0
    TAU = 1
    LOSS_SCALE = 2
    NOISE = 3
    CRITIC_LR = 4
    ACTOR_LR = 5
    B1 = 6
    C1 = 7
    B2 = 8
    C2 = 9
    E2 = 10
    # a BFP program's seed-stream bases for this step (the actor's in the low 32
    # bits, the critic's in the high; fixar.compiler.execute.bfp_seed_key)
    BFP_BASES = 11


class GStore(enum.IntEnum):
    """Where a gradient product's outputs go (the ARRAY instruction's gstore)."""

    NONE = 0
    WEIGHT = 1         # dW, in the weight layout at g_base (where Adam reads it)
    BIAS = 2           # a bias gradient (one input of ones) at bias-gradient row g_base
    BOTH = 3           # dW, then the bias gradient from one more slot whose input is one, at row b_base


# Instruction word: an opcode and these fields, each in a 32-bit slot, in this
# order (the host's encoder and the generated decoder both follow this table).
ISA_FIELD_BITS = 32
ISA_FIELDS: dict[Opcode, tuple[str, ...]] = {
    Opcode.HALT: (),
    Opcode.ARRAY: ("transpose", "intra", "mode", "func", "bias", "store", "grad", "batch", "store_t", "t_base",
                   "gstore", "g_base", "n_ot", "n_kt", "n_kr", "slots", "w_base", "x_base", "y_base", "b_base",
                   "track", "fq", "qidx", "mask", "m_base", "limit", "pq", "pq_e", "pq_c", "pq_lane", "pq_t",
                   "pq_q", "bfp_w", "bfp_x", "bfp_stream", "bfp_conv"),
    Opcode.VEC: ("op", "coef", "a_row", "b_row", "y_row", "flag_row", "use_flag", "rows", "count", "cores",
                 "limit"),
    # g_row: the weight gradients' (and moments') first row; overlap: the weight pass runs beside
    # the following ARRAY instructions (the controller goes on after the bias pass) until a SYNC
    Opcode.ADAM: ("w_row", "w_rows", "b_row", "b_rows", "lr", "t_row", "soft", "g_row", "overlap"),
    Opcode.SOFT: ("w_src", "w_dst", "w_rows", "b_src", "b_dst", "b_rows"),
    Opcode.SYNC: (),
}
ISA_WORDS = 1 + max(len(f) for f in ISA_FIELDS.values())   # 32-bit slots per instruction


class KernelOp(enum.IntEnum):
    """Commands of the U50 kernel's command stream (docs/kernel.md)."""

    END = 0
    WRITE = 1          # rows into a write port (KERNEL_WRITE_PORTS), data beats follow
    READ = 2           # rows from a read path (KERNEL_READ_PATHS) into the output buffer
    RUN = 3            # start the engine at pc, wait for done; one output beat: the cycles
    PRNG_SET = 4       # seed the noise generator
    PRNG_GET = 5       # one output beat: the noise generator's state
    CLEAR_RANGES = 6   # zero the QAT range trackers


# The training engine's host ports as the kernel's command stream numbers
# them (fixar.driver.engine packs commands with this table, gen/kernel.py decodes
# them with it): write ports (prefix, data inputs), read paths (address
# port, data outputs, read enable or None). A row's data inputs or outputs
# are concatenated, the first at bit 0, and take whole beats.
KERNEL_WRITE_PORTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("prog", ("data",)), ("scal", ("data",)), ("wm", ("data",)), ("bm", ("data",)), ("am", ("data",)),
    ("tm", ("data",)), ("st", ("m_data", "v_data")), ("qt", ("delta", "zero", "magic", "shift")))
KERNEL_READ_PATHS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("wm_addr", ("wm_rdata",), "wm_re"), ("bm_addr", ("bm_rdata",), None), ("am_addr", ("am_rdata",), "am_re"),
    ("st_addr", ("st_m_rdata", "st_v_rdata"), None), ("st_addr", ("st_bm_rdata", "st_bv_rdata"), None),
    ("rg_addr", ("rg_lo", "rg_hi"), None))
KERNEL_BEAT_BITS = 512      # the AXI4 masters' data width (HBM pseudo-channel width on the U50)


def packed_shift_max(cfg: FixarConfig) -> int:
    """The largest exponent e of a packed QAT product's inputs (q - z) 2^e in
    ``pe.act32`` codes: the power-of-two step 2^(e + 16) is at most the
    format's whole span (docs/training.md, "The power-of-two quantizer step")."""
    return cfg.pe.act32.bits - cfg.pe.act16.bits


def packed_code_offset(cfg: FixarConfig) -> int:
    """2^15: a packed QAT input word holds the quantizer's code q less this
    (q's top bit inverted: a signed 16-bit lane)."""
    return 1 << (cfg.pe.act16.bits - 1)


def quantizer_widths(cfg: FixarConfig) -> dict[str, int]:
    """Bit widths of the QAT quantizer's numbers at the array's output stage
    (docs/array.md; fixar.driver.engine.quantizer_words computes them)."""
    ob, qb = cfg.pe.out.bits, cfg.pe.act16.bits
    # The dividend y 2^16 (+ floor(Delta / 2) when rounding to nearest), or
    # its one's complement if negative, is below 2^nb; Delta <= 2^ob makes the
    # rounding term need one more bit.
    nb = ob - 1 + qb + (cfg.array.quantizer_rounding == "half_up")
    return {"nb": nb, "magic": nb + 2, "shift": (nb + ob + 1).bit_length(), "delta": ob + 1, "zero": qb + 1}


@dataclass(frozen=True)
class VectorConfig:
    """The vector unit: element-wise steps of DDPG on rows of ``array.rows``
    words (docs/vector.md). Coefficients (gamma, tau, 2/B, noise scale) are
    unsigned with ``coef_frac`` fraction bits; noise is the centred sum of
    four ``prng.width / 2``-bit uniforms (two PRNG words per element)."""

    coef_frac: int = 30

    def __post_init__(self) -> None:
        _check_int("vector.coef_frac", self.coef_frac, 8, 30)


@dataclass(frozen=True)
class MemoryConfig:
    """On-chip memory sizes in words of their formats (FIXAR: 1.05 MB of
    weights in 16 banks, 1.05 MB of gradients).

    Weights live in ``array.cols`` banks, activations in rows of
    ``array.rows`` words per core, biases in rows of ``array.cols`` words
    (docs/array.md), so each size must be a whole number of rows. FIXAR keeps
    about 2.9 KB of activations per core; here a core holds every tensor a
    whole training step keeps alive for its half of a 512 batch (the program
    compiler's liveness allocation peaks at 35 328 rows of 16 words for the
    400-300 networks), hence 2.25 MB per core (URAM on the U50). ``xt_words_per_core``
    holds the layer inputs a weight gradient needs, feature-major (X^T rows
    of ``array.rows`` batch entries), as the array's transposing store writes
    them: every input of one network for half a 512 batch. FIXAR's 1.05 MB
    of weights is one copy of the 400-300 actor and critic; here the weight
    memory also holds the target networks (which the TD target's forward
    passes read through the array) and zero padding to whole tiles: 2.5 MB
    (4 x 4 452 tile rows of 16 words at HalfCheetah's sizes), and the gradient
    memory mirrors the online networks' rows (1.25 MB).
    """

    weight_words: int = 655_360   # online and target actor and critic, 400-300, padded to 16 x 16 tiles
    grad_words: int = 327_680     # gradients (and Adam moments) of the online networks
    act_words_per_core: int = 589_824
    bias_words: int = 4_096
    xt_words_per_core: int = 262_144
    program_instrs: int = 256     # the controller's instruction memory (a DDPG step takes ~50)
    # Memories with at least this many rows are UltraRAM, the rest block RAM.
    # The U50's block RAM (1 344 x 36 Kb = 47 Mb) cannot hold the default's
    # ~116 Mb; UltraRAM (640 x 4K x 72 b) is deep but fixed at 72 bits wide,
    # so it suits the deep memories. 20 480 puts weights, gradients, Adam
    # moments and activations in UltraRAM and the 16K-row feature-major banks
    # (16 x 32 b each, half a URAM's width) in block RAM: both fit
    # (make bench synth-kernel measures them).
    uram_min_rows: int = 20_480

    def ultra(self, rows: int) -> bool:
        """Whether a memory of ``rows`` rows is UltraRAM (gen/ram.py)."""
        return rows >= self.uram_min_rows

    def __post_init__(self) -> None:
        for name in ("weight_words", "grad_words", "act_words_per_core", "bias_words", "xt_words_per_core",
                     "program_instrs", "uram_min_rows"):
            _check_int(f"memory.{name}", getattr(self, name), 1)


@dataclass(frozen=True)
class AdamConfig:
    """The fixed-point Adam unit (docs/adam.md): number formats and the
    reciprocal-square-root method. Hyper-parameters (lr, betas, eps) are run
    time; `fixar.golden.adam` checks that they are representable here."""

    grad: FixedFormat = FixedFormat(32, 26)                  # Q6.26 weight gradients
    # The moments round toward zero: rounded to nearest, a moment whose
    # gradient stays 0 sticks a few LSB above 0 and its weight keeps drifting
    # (docs/adam.md, docs/training.md). P rounds as m does.
    m: FixedFormat = FixedFormat(32, 26, rounding="zero")    # first moment, the gradient's scale
    v: FixedFormat = FixedFormat(60, 58, signed=False, rounding="zero")  # second moment UQ2.58: g^2 down to 3.5e-18
    coef_frac: int = 30       # beta1, 1 - beta1, beta2, 1 - beta2
    lr_frac: int = 31         # the per-step size lr_t, UQ0.31
    rsqrt_frac: int = 30      # rsqrt mantissa y, (0.5, 1]
    rsqrt_table_bits: int = 8  # seed table: 2^(bits-1) segments of [1, 2) and of [2, 4)
    rsqrt_newton: int = 2
    # The actor's gradient starts as -1/B at the critic's output and shrinks
    # through the critic's small last-layer weights to tens of LSBs of
    # pe.act32; computing it 2^k times larger keeps its precision, and Adam's
    # update m / sqrt(v) does not change (eps aside). Larger k clips more of
    # a trained actor's gradients at grad_limit: at k = 8 about half of them
    # were clipped, at 4 about 3 %, with 0.5 % error at initialisation
    # (docs/training.md, "Why the actor's gradient is scaled").
    actor_grad_scale_log2: int = 4
    # The critic's gradient, computed 2^k times larger (k < 0: smaller; the
    # vector unit's loss scale 2/B times 2^k), so that fewer of Hopper's
    # large critic gradients reach grad_limit; Adam's update does not change
    # (eps aside). At k = -4 it did not recover Hopper's return, so the
    # default leaves the step as it was (docs/training.md, "Hopper: the
    # critic's clip, and a gradient scale that did not fix it").
    critic_grad_scale_log2: int = 0

    def __post_init__(self) -> None:
        _check_int("adam.actor_grad_scale_log2", self.actor_grad_scale_log2, 0, 16)
        _check_int("adam.critic_grad_scale_log2", self.critic_grad_scale_log2, -16, 16)
        for name in ("grad", "m"):
            fmt = getattr(self, name)
            if not fmt.signed or fmt.bits > 32:
                raise ConfigError(f"adam.{name}: a signed format of at most 32 bits is needed, got {fmt}")
        if self.v.signed or self.v.bits > 60:
            raise ConfigError(f"adam.v: an unsigned format of at most 60 bits is needed (int64 limbs), got {self.v}")
        if self.m.frac < self.grad.frac or self.m.frac - self.grad.frac + self.grad.bits > 32:
            raise ConfigError("adam.m.frac: the first moment needs at least the gradient's fraction bits "
                              "and must hold a shifted gradient in 32 bits")
        _check_int("adam.coef_frac", self.coef_frac, 8, 30)
        _check_int("adam.lr_frac", self.lr_frac, 8, 31)
        _check_int("adam.rsqrt_frac", self.rsqrt_frac, 8, 30)
        _check_int("adam.rsqrt_table_bits", self.rsqrt_table_bits, 2, 12)
        _check_int("adam.rsqrt_newton", self.rsqrt_newton, 0, 4)

    @property
    def grad_limit(self) -> int:
        """The largest gradient code |g| whose square the second moment holds
        unsaturated. The Adam unit clips g to +-grad_limit before both
        moments: were only g^2 to saturate, v would stop growing while m went
        on, and m / sqrt(v) would exceed Adam's bound, up to sqrt of the
        formats' range ratio (it reached 9 where float Adam stays below about
        3, and the actors' weights grew: docs/training.md)."""
        d = self.v.frac - 2 * self.grad.frac
        top = self.v.max_int >> d if d >= 0 else self.v.max_int << -d
        return min(math.isqrt(top), self.grad.max_int)

    def rsqrt_table(self) -> list[int]:
        """Seeds 1/sqrt(midpoint) of each mantissa segment, RNE with rsqrt_frac bits;
        the first half covers [1, 2), the second [2, 4). One definition for the
        golden model and the generator."""
        half = 1 << (self.rsqrt_table_bits - 1)
        seeds = []
        for lo, width in ((1.0, 1.0), (2.0, 2.0)):
            for i in range(half):
                mid = lo + width * (i + 0.5) / half
                seeds.append(round(2.0 ** self.rsqrt_frac / math.sqrt(mid)))
        return seeds


@dataclass(frozen=True)
class TargetConfig:
    """The clock the kernel is built for (v++ --kernel_frequency, FREQ_HZ) and
    that cycle counts are turned into time with: FIXAR's 164 MHz on the U50.
    A target, not a measurement: the timing figures say what the logic meets."""

    clock_mhz: int = 164

    def __post_init__(self) -> None:
        _check_int("target.clock_mhz", self.clock_mhz, 1, 1000)


@dataclass(frozen=True)
class FixarConfig:
    name: str = "default"
    pe: PEConfig = PEConfig()
    array: ArrayConfig = ArrayConfig()
    memory: MemoryConfig = MemoryConfig()
    prng: PrngConfig = PrngConfig()
    activation: ActivationConfig = ActivationConfig()
    adam: AdamConfig = AdamConfig()
    vector: VectorConfig = VectorConfig()
    target: TargetConfig = TargetConfig()
    bfp: BfpConfig = BfpConfig()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ConfigError(f"name: {self.name!r} must be an identifier (it names generated files)")
        if self.activation.tanh_segments_log2 > self.pe.out.frac:
            raise ConfigError(
                f"activation.tanh_segments_log2: {self.activation.tanh_segments_log2} segment-index bits "
                f"exceed the {self.pe.out.frac} fraction bits of pe.out, which the unit's input is in")
        ar, mem = self.array, self.memory
        if ar.rows != ar.cols:
            # The skewed weight layout serves a square tile along either axis
            # (forward and transposed products from one copy of W).
            raise ConfigError(f"array.rows ({ar.rows}) must equal array.cols ({ar.cols}): the weight memory "
                              "layout that avoids transposes needs square tiles")
        for name, words, unit in (("weight_words", mem.weight_words, "array.cols"),
                                  ("grad_words", mem.grad_words, "array.cols"),
                                  ("bias_words", mem.bias_words, "array.cols"),
                                  ("act_words_per_core", mem.act_words_per_core, "array.rows"),
                                  ("xt_words_per_core", mem.xt_words_per_core, "array.rows")):
            per_row = ar.cols if unit == "array.cols" else ar.rows
            if words % per_row:
                raise ConfigError(f"memory.{name}: {words} words is not a whole number of rows of "
                                  f"{unit} = {per_row} words")

    def variant(self, **changes) -> FixarConfig:
        """A copy with some top-level fields replaced, validated again."""
        return dataclasses.replace(self, **changes)

    def with_multiplier(self, multiplier: str) -> FixarConfig:
        """This config with the PE's multiplier replaced (itself when it is the
        same); the name says so, e.g. ``default_mbm``: a different design, with
        its own digest, generated RTL and checkpoints."""
        if multiplier == self.pe.multiplier:
            return self
        return self.variant(name=f"{self.name}_{multiplier}", pe=dataclasses.replace(self.pe, multiplier=multiplier))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        # Fields added after configs were hashed stay out of the dict (and so of
        # to_json and the digest) at their default: every older digest holds.
        for section, key, default in DIGEST_NEUTRAL_DEFAULTS:
            if d[section][key] == default:
                del d[section][key]
        for section, default in DIGEST_NEUTRAL_SECTIONS:
            if d[section] == dataclasses.asdict(default):
                del d[section]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def digest(self) -> str:
        """Short stable hash: names build folders of generated variants."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict) -> FixarConfig:
        return _build(cls, data, "")

    @classmethod
    def from_json(cls, text: str) -> FixarConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_toml(cls, path: str | Path) -> FixarConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


def _build(cls, data, where: str):
    """Build dataclass ``cls`` from nested dicts; unknown keys are errors, not ignored."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {unknown}; known: {sorted(known)}"
        )
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        msg = str(exc)
        # Messages of leaf formats name only their own field; prefix the path.
        raise ConfigError(msg if not where or msg.startswith(where) else f"{where}.{msg}") from None


# Sections that to_dict() omits when they equal their default, likewise.
DIGEST_NEUTRAL_SECTIONS = (("bfp", BfpConfig()),)

DEFAULT = FixarConfig()

CONFIG_DIR = Path(__file__).parent / "presets"


def load(name_or_path: str | Path | None) -> FixarConfig:
    """``None`` or 'default' -> DEFAULT; a name of a shipped config; or a TOML path."""
    if name_or_path is None or name_or_path == "default":
        return DEFAULT
    shipped = CONFIG_DIR / f"{name_or_path}.toml"
    if shipped.exists():
        return FixarConfig.from_toml(shipped)
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return FixarConfig.from_toml(path)
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
    raise ConfigError(f"{name_or_path!r} is neither a shipped config {['default', *names]} nor a TOML file")
