"""FIXAR's quantization-aware training, bit-exact (docs/training.md).

Phase 1 (FXP32): the running minimum and maximum of every layer's input are
tracked over training forward passes (the critic's forward in the critic
update, the actor's in the actor update), always including zero, as affine
quantizers usually do, so that zero stays exact. At the switch each layer
gets the affine 16-bit quantizer of the paper,

    delta = (|a_min| + |a_max|) / 2^16,   z = floor(-a_min / delta),   q = floor(a / delta) + z,

with q clipped to [0, 2^16 - 1]. By default q rounds a / delta to nearest
(ties up) instead of down (``array.quantizer_rounding``): the paper's floor
biases every 16-bit input by half a step downward, the same for the online
and the target critic, and QAT's critic became unstable after the switch
with it (docs/training.md, "Rounding"). Phase 2: every layer input is its 16-bit
value, i.e. it is replaced by delta (q - z) (rounded to nearest even into
pe.act32) wherever it is used: the layer's product, the ReLU masks and tanh'
of the backward pass, and the weight gradients. Weights, errors and
gradients stay FXP32. The backward pass stops the error of an input at its
quantizer's top (the clipped straight-through estimator: RELU_MASK's limit
is :meth:`LayerQuantizers.top`): a unit the quantizer clips does not change
the output, so its weights must not be pushed further (without this, Hopper's
hidden units grew far past their frozen ranges: docs/training.md).

In the engine the quantizer sits at the array's output stage: a layer's
output is stored already quantized for the layer it feeds (and the host
quantizes the networks' inputs), so the products themselves run in the FXP32
datapath on the 16-bit values. (The packed FXP16 datapath with a zero-point
correction would halve their cycles; it is not used for QAT yet.)

All quantities are integer codes: a_min, a_max and outputs in pe.act32; the
scale is the integer Delta = |a_min| + |a_max| (delta = Delta 2^-(frac + 16)).
"""
from __future__ import annotations

import numpy as np

from fixar.config import ActFunc, FixarConfig, PEMode, packed_shift_max
from fixar.golden.fixed import I64, numba_kernels, requantize
from fixar.golden.layer import linear

# The quantizer's roundings (fixar.config.QUANTIZER_ROUNDINGS), the golden
# half: what is added to the dividend a 2^16 before the floor division by
# Delta (the generator's half is fixar.gen.lib.arith.QUANTIZER_ADDENDS).
QUANTIZER_ADDENDS = {"floor": lambda delta: 0, "half_up": lambda delta: delta >> 1}


class LayerQuantizers:
    """Ranges (phase 1) and affine quantizers (phase 2) of one network's layer inputs."""

    def __init__(self, cfg: FixarConfig, n_layers: int):
        self.cfg = cfg
        self.lo = [0] * n_layers
        self.hi = [0] * n_layers
        self.seen = [False] * n_layers
        self.delta: list[int] | None = None   # Delta per layer once frozen
        self.zero: list[int] | None = None

    @property
    def frozen(self) -> bool:
        return self.delta is not None

    def track(self, i: int, X: np.ndarray) -> None:
        lo, hi = min(int(X.min()), 0), max(int(X.max()), 0)     # the range always holds zero
        if self.seen[i]:
            lo, hi = min(lo, self.lo[i]), max(hi, self.hi[i])
        self.lo[i], self.hi[i], self.seen[i] = lo, hi, True

    def freeze(self) -> None:
        """The switch: fix delta and z of every layer from the ranges seen."""
        self.delta, self.zero = [], []
        for lo, hi in zip(self.lo, self.hi):
            d, z = quantizer(self.cfg, lo, hi)
            self.delta.append(d)
            self.zero.append(z)

    def quantize(self, i: int, X) -> np.ndarray:
        return quantize16(self.cfg, self.delta[i], self.zero[i], X)

    def dequantize(self, i: int, q) -> np.ndarray:
        return dequantize16(self.cfg, self.delta[i], self.zero[i], q)

    def fake_quantize(self, i: int, X) -> np.ndarray:
        """The 16-bit value of layer ``i``'s input, as pe.act32 codes (one
        numba pass where it can run, with the same bits)."""
        X, k, fmt = np.asarray(X, dtype=I64), numba_kernels(), self.cfg.pe.act32
        if k is not None and not fmt.needs_random:
            out = np.empty(X.shape, dtype=I64)
            half = QUANTIZER_ADDENDS[self.cfg.array.quantizer_rounding](self.delta[i])
            if not k.fake_quantize(np.ascontiguousarray(X).reshape(-1), self.cfg.pe.act16.bits, half, self.delta[i],
                                   self.zero[i], *k.fmt_params(fmt), out.reshape(-1)):
                return out
        return self.dequantize(i, self.quantize(i, X))

    def top(self, i: int) -> int | None:
        """The largest value layer ``i``'s quantizer passes (q = 2^16 - 1), as a
        pe.act32 code; None before the switch (nothing clips in phase 1)."""
        if not self.frozen:
            return None
        return int(self.dequantize(i, (1 << self.cfg.pe.act16.bits) - 1))

    def layer(self, i: int, W, b, X, func: ActFunc, ops=None) -> tuple[np.ndarray, np.ndarray]:
        """Phase-2 layer: (output codes, the 16-bit input it used, in pe.act32).
        ``ops``: the gradient computation's operands (fixar.golden.layer.linear)."""
        xq = self.fake_quantize(i, X)
        return linear(self.cfg, W, xq, b, func, ops=ops), xq

    def state(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "seen": self.seen, "delta": self.delta, "zero": self.zero}

    def load(self, st: dict) -> None:
        self.lo, self.hi, self.seen = list(st["lo"]), list(st["hi"]), list(st["seen"])
        self.delta = None if st["delta"] is None else list(st["delta"])
        self.zero = None if st["zero"] is None else list(st["zero"])


class StepScaledErrors:
    """16-bit backward errors scaled step by step, one object per backward
    pass: after the switch each hidden layer's masked error E becomes signed
    16-bit codes q = floor(E 2^-s + 1/2) (``array.quantizer_rounding``'s
    half up; floor(E 2^-s) with "floor"), clipped to [-2^15, 2^15 - 1],
    times 2^s, where s = max(0, bit_length(A) - 15) is the smallest power of
    two (at least one act32 LSB) at which a magnitude A fits, at most 16
    (``shift``).

    ``array.qat_errors = "fxp16_step"``: A = max |E| of this error itself,
    so nothing clips; the scale needs the whole error before any of it is
    quantized (an extra pass over it in the engine).
    ``"fxp16_delayed"``: A = max |E| of the same error one step earlier
    (delayed scaling, as FP8 training does it): the output stage can then
    quantize as it writes, and its range tracker takes this step's A on the
    way for the next; an error that grew since clips. Phase 1 only takes
    each step's A (qat_pow2's bits are unchanged)."""

    def __init__(self, cfg: FixarConfig, n_layers: int):
        self.cfg = cfg
        self.delayed = cfg.array.qat_errors == "fxp16_delayed"
        self.frozen = False
        self.amax = [0] * n_layers         # the last step's max |E| per layer (delayed scaling)

    @staticmethod
    def _amax(X) -> int:
        return int(np.abs(np.asarray(X, dtype=I64)).max(initial=0))

    def track(self, i: int, X) -> None:
        self.amax[i] = self._amax(X)

    def freeze(self) -> None:
        self.frozen = True

    def shift(self, amax: int) -> int:
        """s for a largest magnitude ``amax``: the exponent of the step. At most
        the packed product's largest input shift (16: Delta = 2^(s + 16) must
        fit the quantizer's table), which only an error saturated at -2^31
        reaches: s = 16 holds it exactly, and +(2^31 - 1) clips by 2^16 - 1."""
        return min(max(0, amax.bit_length() - (self.cfg.pe.act16.bits - 1)), packed_shift_max(self.cfg))

    def quantizer(self, amax: int) -> tuple[int, int]:
        """(Delta, z) for a largest magnitude ``amax``: the activations'
        quantizer with Delta = 2^(s + 16) and z = 2^15 (q - 2^15 is the signed
        code), so the hardware's quantizer computes these bits and its
        rounding rule is theirs (the engine's host writes this entry)."""
        bits = self.cfg.pe.act16.bits
        return 1 << (self.shift(amax) + bits), 1 << (bits - 1)

    def fake_quantize(self, i: int, X) -> np.ndarray:
        X = np.asarray(X, dtype=I64)
        now = self._amax(X)
        delta, zero = self.quantizer(self.amax[i] if self.delayed else now)
        self.amax[i] = now
        return dequantize16(self.cfg, delta, zero, quantize16(self.cfg, delta, zero, X))

    def state(self) -> dict:
        return {"kind": "step16", "frozen": self.frozen, "amax": list(self.amax)}

    def load(self, st: dict) -> None:
        self.frozen, self.amax = bool(st["frozen"]), [int(a) for a in st["amax"]]


def tanh_limit(q: LayerQuantizers | Fixed16 | None, i: int) -> int | None:
    """DTANH's limit for a tanh output that is layer ``i``'s input: the smaller
    |value| that +-1 (tanh saturated) takes on that input's 16-bit grid (and
    at most 1). The grid rarely holds +-1 itself: seen through it, a
    saturated output would keep a small tanh' that pushes its weights
    further with no effect on the output, and they grew without bound
    (docs/training.md). None while the input is the exact tanh output
    (FXP32, QAT phase 1)."""
    if q is None or not q.frozen or q.top(i) is None:     # no 16-bit grid (BFP keeps FXP32 inputs)
        return None
    one = 1 << q.cfg.pe.act32.frac
    seen = q.fake_quantize(i, np.array([one, -one], dtype=I64))
    return int(min(np.abs(seen).min(), one))


def quantize16(cfg: FixarConfig, delta: int, zero: int, X) -> np.ndarray:
    """q = round(a / delta) + z, clipped to 16 bits, rounded as
    ``array.quantizer_rounding`` says: floor, a 2^16 // Delta + z, or half_up,
    (a 2^16 + Delta // 2) // Delta + z (equal to floor(a / delta + 1/2) for
    odd Delta too: the numerator 2 a 2^16 + Delta is then odd, so never a
    multiple of 2 Delta)."""
    bits = cfg.pe.act16.bits
    half = QUANTIZER_ADDENDS[cfg.array.quantizer_rounding](delta)
    q = ((np.asarray(X, dtype=I64) << I64(bits)) + I64(half)) // I64(delta) + I64(zero)
    return np.clip(q, 0, (1 << bits) - 1)


def dequantize16(cfg: FixarConfig, delta: int, zero: int, q) -> np.ndarray:
    """delta (q - z) as pe.act32 codes, rounded as pe.act32 rounds, saturating."""
    bits, fmt = cfg.pe.act16.bits, cfg.pe.act32
    v = (np.asarray(q, dtype=I64) - I64(zero)) * I64(delta)
    return requantize(0, v, 0, bits, fmt)


def quantizer(cfg: FixarConfig, lo: int, hi: int) -> tuple[int, int]:
    """(Delta, z) of a layer input that ranged over [lo, hi] (codes, lo <= 0 <= hi).
    With ``array.quantizer_scale = "pow2"`` Delta is the span rounded up to a
    power of two and at least 2^16 (a step of one act32 LSB or more): then
    delta (q - z) = (q - z) 2^(log2 Delta - 16) exactly, with no rounding."""
    bits = cfg.pe.act16.bits
    d = max(abs(lo) + abs(hi), 1)   # a layer that only ever saw zeros gets the finest step
    if cfg.array.quantizer_scale == "pow2":
        d = max(1 << (d - 1).bit_length(), 1 << bits)
    return d, (-lo << bits) // d


class Fixed16:
    """FXP16 from scratch (the paper's failing baseline): every layer input
    goes to the array's FXP16 mode in the fixed format ``pe.act16`` (RNE,
    saturating) from the first step, with no ranges and no scale. Weights,
    errors and gradients stay FXP32; gradients use the 16-bit inputs the
    layers saw. Presents the frozen-quantizer interface ``Net.forward`` uses."""

    frozen = True

    def __init__(self, cfg: FixarConfig):
        self.cfg = cfg

    def layer(self, i: int, W, b, X, func: ActFunc, ops=None) -> tuple[np.ndarray, np.ndarray]:
        xs = self.fake_quantize(i, X)
        sh = self.cfg.pe.act32.frac - self.cfg.pe.act16.frac
        return linear(self.cfg, W, xs >> I64(sh), b, func, PEMode.FXP16, ops=ops), xs

    def fake_quantize(self, i: int, X) -> np.ndarray:
        """The 16-bit value of a layer input, as pe.act32 codes."""
        pe = self.cfg.pe
        sh = pe.act32.frac - pe.act16.frac
        return requantize(0, np.asarray(X, dtype=I64), 0, sh, pe.act16) << I64(sh)

    def top(self, i: int) -> int:
        """The largest 16-bit input, as a pe.act32 code (errors stop there, as for QAT)."""
        pe = self.cfg.pe
        return pe.act16.max_int << (pe.act32.frac - pe.act16.frac)

    def track(self, i: int, X) -> None:
        pass

    def state(self) -> dict:
        return {"kind": "fxp16"}
