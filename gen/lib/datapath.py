"""The dual-mode PE's arithmetic, written once: the lone PE (gen/units/pe.py)
and every PE position of the array core (gen/units/core.py) build their
operands and output stage from these functions, so the datapath the PE
bench verifies one input per cycle is the datapath inside the array.

FXP32 (PEMode.FXP32): the activation word is one 2L-bit value; the low lane
is taken as unsigned, the high lane as signed, their two products are summed
apart and recombined at the output as ``hi * 2**L + lo``: exactly one
weight x 2L-bit MAC. FXP16: the word holds two signed L-bit activations, one
per lane, each with its own sum (docs/numerics.md).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed

from fixar.config import PEConfig
from fixar.gen.lib.arith import requantize_finish, requantize_parts
from fixar.gen.lib.pipe import reg


def lane_operands(m: Module, word, fp16, L: int, name: str):
    """The two lane operands of an activation word: the low lane with one
    extra bit (unsigned in FXP32, signed in FXP16), the high lane signed."""
    lo = Signal(signed(L + 1), name=f"{name}_lo")
    m.d.comb += lo.eq(Mux(fp16, word[:L].as_signed(), word[:L]))
    return lo, word[L:2 * L].as_signed()


def magnitude_lanes(m: Module, word, fp16, L: int, name: str):
    """The lanes an approximate multiplier takes: magnitudes (L + 1 bits,
    unsigned) and signs. FXP32: |a| split in its low and high L bits, both
    with a's sign (the two's-complement split makes a small negative a two
    large products that cancel, each with the multiplier's error; the
    golden model's magnitude_lanes says the same); FXP16: each lane's own."""
    a = word[:2 * L].as_signed()
    mag = Signal(2 * L, name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(a < 0, -a, a))
    lanes = []
    for i, part in enumerate((mag[:L], mag[L:])):
        own = word[i * L:(i + 1) * L].as_signed()
        lane = Signal(L + 1, name=f"{name}_{'lo' if i == 0 else 'hi'}_mag")
        m.d.comb += lane.eq(Mux(fp16, Mux(own < 0, -own, own), part))
        lanes.append((lane, Mux(fp16, own[-1], a[-1])))
    return lanes


def recombined(m: Module, acc_lo, acc_hi, cfg: PEConfig, name: str):
    """FXP32's one sum from the two lane sums: ``hi * 2**L + lo``."""
    L = cfg.lane_bits
    total = Signal(signed(max(len(acc_lo), len(acc_hi)) + L + 1), name=f"{name}_total")
    m.d.comb += total.eq((acc_hi << L) + acc_lo)
    return total


def output_stage(m: Module, total, acc_lo, acc_hi, cfg: PEConfig, name: str, rnd_lo=None, rnd_hi=None) -> dict:
    """The conversions of the sums into ``cfg.out``, first halves: for
    ``fxp32`` (of the recombined ``total``), ``fxp16_lo`` and ``fxp16_hi``
    (each lane alone) the floor narrowed and the rounding's carry
    (:func:`fixar.gen.lib.arith.requantize_parts`), for the caller to
    register before :func:`output_finish`. Random words (stochastic
    rounding) travel with the sums."""
    return {"fxp32": requantize_parts(m, total, cfg.shift32, cfg.out, f"{name}_fxp32", rnd_lo),
            "fxp16_lo": requantize_parts(m, acc_lo, cfg.shift16, cfg.out, f"{name}_fxp16_lo", rnd_lo),
            "fxp16_hi": requantize_parts(m, acc_hi, cfg.shift16, cfg.out, f"{name}_fxp16_hi", rnd_hi)}


def registered_parts(m: Module, parts: dict, name: str) -> dict:
    """Each (kept, carry) of ``parts`` registered."""
    return {k: (reg(m, kept, f"{name}_{k}_kept", kept.shape()), reg(m, carry, f"{name}_{k}_carry", 1))
            for k, (kept, carry) in parts.items()}


def output_finish(m: Module, parts: dict, formats: dict, name: str) -> dict:
    """The conversions' second halves: each carry added, the sum fitted into its format."""
    return {k: requantize_finish(m, kept, carry, formats[k], f"{name}_{k}") for k, (kept, carry) in parts.items()}


def select_mode(out: dict, fp16, lo32=None):
    """The two output lanes for the PE mode: FXP16's two values, or FXP32's
    one value (``lo32`` in its place when given) on the low lane and 0."""
    return Mux(fp16, out["fxp16_lo"], out["fxp32"] if lo32 is None else lo32), Mux(fp16, out["fxp16_hi"], 0)
