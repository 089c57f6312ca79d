"""DDPG in block floating point with FAST's precision schedule, bit-exact
(docs/bfp.md, "Training DDPG in BFP").

One :class:`BfpLayers` per network (its target network shares it, as QAT's
quantizers are shared) presents the interface ``Net.forward`` and
``FixedDDPG._backward`` use. Every product of a layer takes its operands in
BFP at the layer's current mantissa width, grouped along that product's
reduction: the forward product W X groups W's rows and X's columns along the
inputs; the transposed product W^T D groups along the outputs; the weight
gradient D X^T along the batch. A BFP value of a code is a code of the same
format (fixar.golden.bfp.bfp_quantize), so each product is then the exact
FXP32 product of the converted codes with the layer's one rounding at the
output stage, as the fMAC computes it (docs/bfp.md, "The fMAC"). The ReLU
masks read the stored FXP32 inputs; bias gradients, Adam, the master weights
and the vector unit's work stay FXP32, as FIXAR keeps them.

Stochastic rounding draws from fixar.golden.noise: conversion n of the run
(counted in program order, so reproducible from the run's seed) uses
jenkins32(seed + n); acting converts with the seeds the next training
conversions will use, without using them up. The schedule (``cfg.bfp``): on
every ``schedule_every``-th step, after the step, FAST's
r(X) = sum |BFP_{m+2}(X) - BFP_m(X)| / |sum BFP_m(X)| is measured on each
layer's input in its network's training forward pass (the pass whose
gradients the step applies), and the layer widens to the next width from the
following step on when r exceeds ``BfpConfig.schedule_threshold(step, layer)``;
widths never narrow. The check draws its rounding seeds from a stream of its
own, so training's conversions do not depend on which steps were checks.
Measuring after the step is what the engine can do: the inputs exist only
on chip during the step, and the host reads them back afterwards.

The critic's input [s; a] is grouped as the program stores it (s padded
with zeros to whole tiles, docs/program.md): s is padded to whole groups
before every conversion of an operand with the input features, so no group
mixes s and a, and the random words' keys are those of the padded layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixar.config import ActFunc, FixarConfig
from fixar.golden.bfp import BfpTensor, bfp_quantize, fast_r, to_bfp
from fixar.golden.fixed import I64
from fixar.golden.layer import linear
from fixar.golden.noise import jenkins32

# the schedule check's own seed stream (any odd constant apart from the training streams' seed)
CHECK_STREAM = 0x9E3779B9


@dataclass(frozen=True)
class LaneProduct:
    """One product of a step as its two BFP operands, oriented as the lane
    array takes them (fixar.compiler.lane_array.lay_out): ``w``'s rows are the
    product's outputs, ``a``'s rows its vectors, both grouped along the
    reduction, so that entry (i, j) is the dot product of row i of w and row
    j of a. Forward W X: W (outputs) and X^T (the batch); transposed W^T D:
    W^T (the layer's inputs) and D^T (the batch); weight gradient D X^T: D
    (outputs) and X (the layer's input features, as lanes)."""

    kind: str           # forward, transposed or gradient
    layer: int
    w: BfpTensor
    a: BfpTensor


class BfpLayers:
    """The BFP widths, schedule and rounding seeds of one network's layers."""

    frozen = True          # every layer takes its BFP route from the first step

    def __init__(self, cfg: FixarConfig, n_layers: int, seed: int, fixed: int | None = None,
                 split: int | None = None):
        self.cfg = cfg
        start = cfg.bfp.mantissa_bits if fixed is None else fixed
        cfg.bfp.format(start)                   # a width outside bfp.widths' formats is a ConfigError
        self.widths = [start] * n_layers
        self.fixed = fixed is not None or cfg.bfp.schedule_every == 0
        self.split = split                      # the critic's obs_dim: s | a in layer 0's input features
        self.seed, self.conversions, self.step, self.checks = seed & 0xFFFFFFFF, 0, 0, 0
        self.checking = False                   # this step is a check step
        self.watched: dict[int, np.ndarray] = {}    # its training forward's layer inputs
        self.history: list[tuple] = []      # (step, layer, r or None at the widest, width after)
        # None, or a list that collects each product as a LaneProduct (the lane array's bench and figures)
        self.products: list | None = None
        self._operands: list[BfpTensor] = []

    # ---------------------------------------------------------------- schedule
    def begin_step(self) -> None:
        """Called once per training step, before it."""
        every = self.cfg.bfp.schedule_every
        self.checking = bool(not self.fixed and every and self.step % every == 0)
        self.watched = {}
        self.step += 1

    def watch(self, i: int, X: np.ndarray) -> None:
        """Layer ``i``'s stored input in the network's training forward pass."""
        if self.checking:
            self.watched[i] = X

    def end_step(self) -> None:
        """Called once per training step, after it: a check step measures every
        layer's r(X) on the inputs watched and widens for the next step."""
        if self.checking:
            for i in sorted(self.watched):
                self._check(i, self.watched[i])
        self.checking, self.watched = False, {}

    def _check(self, i: int, X: np.ndarray) -> None:
        widths, m = self.cfg.bfp.widths, self.widths[i]
        if m == widths[-1]:
            self.history.append((self.step - 1, i, None, m))      # nothing wider: no r to measure
            return
        wider = widths[widths.index(m) + 1]
        seed = int(jenkins32(np.uint32(((self.seed ^ CHECK_STREAM) + self.checks) & 0xFFFFFFFF)))
        self.checks += 1
        X, _ = self._split_padded(X, i, 0)
        r = fast_r(X, self.cfg.pe.act32.frac, self._format(m), self._format(wider), seed, axis=0)
        if r > self.cfg.bfp.schedule_threshold(self.step - 1, i):
            self.widths[i] = wider
        self.history.append((self.step - 1, i, r, self.widths[i]))

    # ---------------------------------------------------------------- operands
    def _format(self, m: int):
        return self.cfg.bfp.format(m)

    def rewind(self, conversions: int) -> None:
        """Back to an earlier count of conversions: acting converts with the
        next training conversions' seeds but does not use them up, so that
        evaluations and a resumed run leave training's roundings unchanged."""
        self.conversions = conversions

    def _next_seed(self) -> int:
        s = int(jenkins32(np.uint32((self.seed + self.conversions) & 0xFFFFFFFF)))
        self.conversions += 1
        return s

    def _split_padded(self, q, i: int, features: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Layer ``i``'s operand with the critic's s padded by zeros to whole
        groups along axis ``features``, and the indices that undo it (None:
        nothing to pad)."""
        q = np.asarray(q, dtype=I64)
        pad = 0 if i or self.split is None else -self.split % self.cfg.bfp.group
        if not pad:
            return q, None
        n = q.shape[features]
        keep = np.r_[0:self.split, self.split + pad:n + pad]
        return np.insert(q, [self.split] * pad, 0, axis=features), keep

    def _bfp(self, q, frac: int, i: int, axis: int, features: int | None = None) -> np.ndarray:
        """``q`` in BFP at layer ``i``'s width, grouped along ``axis``; ``features``:
        the axis of layer i's input features, if ``q`` has one."""
        q, keep = (np.asarray(q, dtype=I64), None) if features is None else self._split_padded(q, i, features)
        fmt, seed = self._format(self.widths[i]), self._next_seed()
        out = bfp_quantize(q, frac, fmt, seed, axis)
        if self.products is not None:       # the same conversion, kept as mantissas and exponents
            self._operands.append(to_bfp(q, frac, fmt, seed, axis))
        return out if keep is None else np.take(out, keep, axis=features)

    def _product(self, kind: str, i: int) -> None:
        """The last two conversions were product ``kind``'s operands (kept when recording)."""
        if self.products is not None:
            w, a = self._operands
            self._operands = []
            self.products.append(LaneProduct(kind, i, w, a))

    def layer(self, i: int, W, b, X, func: ActFunc, ops=None) -> tuple[np.ndarray, np.ndarray]:
        """Forward product of layer ``i`` with W and X in BFP along the inputs:
        (output codes, the layer's stored FXP32 input). ``ops`` is not used:
        the converted operands are new arrays."""
        pe, X = self.cfg.pe, np.asarray(X, dtype=I64)
        Wb = self._bfp(W, pe.weight.frac, i, 1, features=1)
        Xb = self._bfp(X, pe.act32.frac, i, 0, features=0)
        self._product("forward", i)
        return linear(self.cfg, Wb, Xb, b, func), X

    def transposed_operands(self, i: int, W, D) -> tuple[np.ndarray, np.ndarray]:
        """W and D of W^T D in BFP along the outputs (W's columns, D's columns)."""
        pe = self.cfg.pe
        operands = self._bfp(W, pe.weight.frac, i, 0, features=1), self._bfp(D, pe.act32.frac, i, 0)
        self._product("transposed", i)
        return operands

    def gradient_operands(self, i: int, D, X) -> tuple[np.ndarray, np.ndarray]:
        """D and X of D X^T in BFP along the batch."""
        af = self.cfg.pe.act32.frac
        operands = self._bfp(D, af, i, 1), self._bfp(X, af, i, 1, features=0)
        self._product("gradient", i)
        return operands

    # ------------------------------------------- the quantizer interface's rest
    def top(self, i: int) -> None:
        return None            # nothing clips: the error passes wherever ReLU passes it

    def track(self, i: int, X) -> None:
        pass

    def fake_quantize(self, i: int, X) -> np.ndarray:
        return np.asarray(X, dtype=I64)

    def state(self) -> dict:
        return {"kind": "bfp", "exp_bits": self.cfg.bfp.exp_bits, "widths": list(self.widths),
                "fixed": self.fixed, "seed": self.seed, "conversions": self.conversions, "step": self.step,
                "checks": self.checks, "history": [list(h) for h in self.history]}

    def load(self, st: dict) -> None:
        if "checks" not in st:
            raise ValueError("the checkpoint's BFP state is from before the schedule checked after each step "
                             "(it would not resume exactly); start a new run")
        if int(st["exp_bits"]) != self.cfg.bfp.exp_bits:
            raise ValueError(f"the checkpoint's BFP groups have {st['exp_bits']} exponent bits, this config "
                             f"{self.cfg.bfp.exp_bits} (bfp.exp_bits)")
        self.widths, self.fixed = [int(w) for w in st["widths"]], bool(st["fixed"])
        self.seed, self.conversions, self.step = int(st["seed"]), int(st["conversions"]), int(st["step"])
        self.checks = int(st["checks"])
        self.history = [(int(t), int(i), None if r is None else float(r), int(w)) for t, i, r, w in st["history"]]
        self.checking, self.watched = False, {}
