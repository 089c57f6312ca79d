"""FIXAR's quantization-aware training, bit-exact (docs/training.md).

Phase 1 (FXP32): the running minimum and maximum of every layer's input are
tracked over training forward passes. At the switch each layer gets the
affine 16-bit quantizer of the paper,

    delta = (|a_min| + |a_max|) / 2^16,   z = floor(-a_min / delta),   q = floor(a / delta) + z,

with q clipped to [0, 2^16 - 1]. Phase 2 (FXP16): the layer's input is q,
fed to the array's FXP16 mode as the signed lane value q - 2^15 (so two
inputs share one PE); the array's sum S = W (q - 2^15) 2^-15 is then scaled
and corrected for the zero point by the vector unit:

    y = act(rne(S * delta * 2^15) - rne(delta * (z - 2^15) * rowsum(W)) + b)

which is W * delta (q - z) + b. Weights, errors and gradients stay FXP32;
weight gradients use the dequantized input delta (q - z).

All quantities are integer codes: a_min, a_max and outputs in pe.act32; the
scale is the integer Delta = |a_min| + |a_max| (delta = Delta 2^-(frac + 16)).
"""
from __future__ import annotations

import numpy as np

from fixar.config import ActFunc, FixarConfig, PEMode
from fixar.golden.activation import activate
from fixar.golden.fixed import I64, requantize, saturate
from fixar.golden.layer import linear


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
        lo, hi = int(X.min()), int(X.max())
        if self.seen[i]:
            lo, hi = min(lo, self.lo[i]), max(hi, self.hi[i])
        self.lo[i], self.hi[i], self.seen[i] = lo, hi, True

    def freeze(self) -> None:
        """The switch: fix delta and z of every layer from the ranges seen."""
        bits = self.cfg.pe.act16.bits
        self.delta, self.zero = [], []
        for lo, hi in zip(self.lo, self.hi):
            d = max(abs(lo) + abs(hi), 1)   # a layer that only ever saw zeros gets the finest step
            self.delta.append(d)
            self.zero.append((-lo << bits) // d)

    def quantize(self, i: int, X) -> np.ndarray:
        bits = self.cfg.pe.act16.bits
        q = (np.asarray(X, dtype=I64) << I64(bits)) // I64(self.delta[i]) + I64(self.zero[i])
        return np.clip(q, 0, (1 << bits) - 1)

    def dequantize(self, i: int, q) -> np.ndarray:
        """delta (q - z) as pe.act32 codes, round to nearest even."""
        bits, fmt = self.cfg.pe.act16.bits, self.cfg.pe.act32
        v = (np.asarray(q, dtype=I64) - I64(self.zero[i])) * I64(self.delta[i])
        return requantize(np.zeros_like(v), v, 0, bits, fmt)

    def layer(self, i: int, W, b, X, func: ActFunc) -> tuple[np.ndarray, np.ndarray]:
        """Phase-2 layer: (output codes, the dequantized input used for gradients)."""
        cfg = self.cfg
        pe = cfg.pe
        bits, f16, af, of = pe.act16.bits, pe.act16.frac, pe.act32.frac, pe.out.frac
        q = self.quantize(i, X)
        S = linear(cfg, W, q - I64(1 << (bits - 1)), None, ActFunc.IDENTITY, PEMode.FXP16)
        D = self.delta[i]
        # rne(S * Delta * 2^(f16 - af - bits)): Delta split in 16-bit limbs so products fit int64
        term = requantize(S * I64(D >> 16), S * I64(D & 0xFFFF), 16, af + bits - f16, pe.out)
        # the zero-point correction, per output: Python ints (one value per row of W)
        zs = self.zero[i] - (1 << (bits - 1))
        shift = af + bits + pe.weight.frac - of
        rows = np.asarray(W, dtype=I64).sum(axis=1)
        corr = np.array([_rne_int(int(r) * zs * D, shift) for r in rows], dtype=I64)
        y = saturate(term - corr[:, None] + np.asarray(b, dtype=I64)[:, None], pe.out)
        return activate(cfg, func, y), self.dequantize(i, q)

    def state(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "seen": self.seen, "delta": self.delta, "zero": self.zero}

    def load(self, st: dict) -> None:
        self.lo, self.hi, self.seen = list(st["lo"]), list(st["hi"]), list(st["seen"])
        self.delta = None if st["delta"] is None else list(st["delta"])
        self.zero = None if st["zero"] is None else list(st["zero"])


def _rne_int(v: int, shift: int) -> int:
    q, r = divmod(v, 1 << shift)
    half = 1 << (shift - 1)
    return q + (1 if r > half or (r == half and q & 1) else 0)


class Fixed16:
    """FXP16 from scratch (the paper's failing baseline): every layer input
    goes to the array's FXP16 mode in the fixed format ``pe.act16`` (RNE,
    saturating) from the first step, with no ranges and no scale. Weights,
    errors and gradients stay FXP32; gradients use the 16-bit inputs the
    layers saw. Presents the frozen-quantizer interface ``Net.forward`` uses."""

    frozen = True

    def __init__(self, cfg: FixarConfig):
        self.cfg = cfg

    def layer(self, i: int, W, b, X, func: ActFunc) -> tuple[np.ndarray, np.ndarray]:
        pe = self.cfg.pe
        sh = pe.act32.frac - pe.act16.frac
        X = np.asarray(X, dtype=I64)
        x16 = requantize(np.zeros_like(X), X, 0, sh, pe.act16)
        y = linear(self.cfg, W, x16, b, func, PEMode.FXP16)
        return y, x16 << I64(sh)

    def track(self, i: int, X) -> None:
        pass

    def state(self) -> dict:
        return {"kind": "fxp16"}
