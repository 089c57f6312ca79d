"""A supervised check of the number formats, of the kind FAST reports: a
64-32-10 MLP on scikit-learn's bundled digits (8x8 images, 1797 samples),
trained with plain minibatch SGD in three precisions from the same
initial weights and the same batch order:

* ``fp32``: numpy float32 throughout;
* ``fxp32``: the golden fixed-point model. Weights ``pe.weight``, biases,
  activations and errors ``pe.act32`` = ``pe.out`` codes (Q12.20 by default);
  forward products :func:`fixar.golden.layer.linear` (bias, one rounding into
  ``pe.out``, ReLU), the backward data product
  :func:`fixar.golden.layer.transposed`, weight and bias gradients
  :func:`fixar.golden.ddpg.weight_grad` / ``bias_grad`` (``adam.grad``), the
  update W -= 2**lr_log2 dW one rounding shift into ``pe.weight``;
* ``bfp``: ``fxp32`` with every operand of every product converted to BFP
  first (fixar.golden.bfp.bfp_quantize), with groups along that product's
  reduction: forward X along features and W along its input axis; backward
  data W along its output axis and the error along features; weight gradient
  the error and X along the batch. So a tensor used by two products is
  converted twice, once per grouping (the fMAC of docs/bfp.md needs both
  operands grouped along its reduction). Each product's output is rounded
  once into ``pe.out`` as in ``fxp32``; master weights, biases, the bias
  gradient (a plain sum), the update and the ReLU mask stay FXP32.

In all three the softmax and cross-entropy gradient (p - onehot) / B are the
host's, in float64 from the dequantized logits then quantized into
``pe.act32`` (float32 for ``fp32``): the classifier head is not an
accelerator operation. The test set is scored with the same forward pass
(``bfp``: stochastic conversions from fixed evaluation seeds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixar.config import DEFAULT, ActFunc, FixarConfig
from fixar.config.bfp import BfpFormat
from fixar.golden.bfp import bfp_quantize
from fixar.golden.ddpg import bias_grad, weight_grad
from fixar.golden.fixed import I64, dequantize, quantize, requantize, saturate
from fixar.golden.layer import linear, transposed
from fixar.golden.noise import jenkins32

PRECISIONS = ("fp32", "fxp32", "bfp")
# one rounding seed per conversion: (step, layer, role); roles index ROLES
ROLES = ("x_fwd", "w_fwd", "d_bwd", "w_bwd", "d_wgrad", "x_wgrad")
EVAL_STEP = 1 << 20       # seeds of the test-set pass, apart from any training step's


@dataclass(frozen=True)
class Digits:
    """Pixels scaled to [0, 1] (0..16 / 16: exact in Q12.20), (n, 64), and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class Setup:
    hidden: int = 32
    epochs: int = 20
    batch: int = 32
    lr_log2: int = -2         # SGD step 2**lr_log2: a shift in fixed point
    seed: int = 0             # initial weights, split and batch order


def load_digits_split(seed: int = 0, test_fraction: float = 0.25) -> Digits:
    """scikit-learn's bundled digits (no download), split by a seeded permutation."""
    from sklearn.datasets import load_digits  # imported here: only this check needs scikit-learn
    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    n_test = round(len(order) * test_fraction)
    x = data.data[order] / 16.0
    y = data.target[order].astype(np.int64)
    return Digits(x[n_test:], y[n_test:], x[:n_test], y[:n_test])


def init_params(sizes: tuple[int, ...], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W (out, in), b) per layer, W uniform within +-1/sqrt(fan_in), b = 0."""
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, (o, i)) / np.sqrt(i), np.zeros(o)) for i, o in zip(sizes[:-1], sizes[1:])]


def softmax_error(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(p - onehot) / B for (classes, B) logits: the mean cross-entropy's gradient."""
    z = logits - logits.max(axis=0, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=0, keepdims=True)
    p[y, np.arange(len(y))] -= 1
    return p / len(y)


def batches(n: int, setup: Setup):
    """Index arrays of every step, epoch by epoch (the same for every precision)."""
    rng = np.random.default_rng(setup.seed + 1)
    for _ in range(setup.epochs):
        order = rng.permutation(n)
        for i in range(0, n - setup.batch + 1, setup.batch):
            yield order[i:i + setup.batch]


class Fp32Mlp:
    def __init__(self, params, lr_log2: int):
        self.W = [W.astype(np.float32) for W, _ in params]
        self.b = [b.astype(np.float32)[:, None] for _, b in params]
        self.lr = np.float32(2.0 ** lr_log2)

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        acts = [x.T.astype(np.float32)]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = W @ acts[-1] + b
            acts.append(np.maximum(z, 0) if i < len(self.W) - 1 else z)
        return acts

    def step(self, x: np.ndarray, y: np.ndarray) -> None:
        acts = self.forward(x)
        D = softmax_error(acts[-1], y).astype(np.float32)
        for i in reversed(range(len(self.W))):
            dW, db = D @ acts[i].T, D.sum(axis=1, keepdims=True)
            if i:
                D = np.where(acts[i] > 0, self.W[i].T @ D, np.float32(0))
            self.W[i] -= self.lr * dW
            self.b[i] -= self.lr * db


@dataclass(frozen=True)
class LayerBfp:
    """One layer's BFP formats in a mixed-precision policy (HAQ, fixar.haq):
    its weights' and its input activations' (None: that operand stays FXP32).
    The backward errors stay FXP32; the weight gradient takes the layer's
    input in the activation format, as the forward product does."""

    weight: BfpFormat | None
    act: BfpFormat | None


class FixedMlp:
    """The golden fixed-point MLP; with ``bfp`` a format, the BFP variant, and
    with a list of :class:`LayerBfp` (one per layer), mixed precision."""

    def __init__(self, cfg: FixarConfig, params, lr_log2: int, bfp: BfpFormat | list[LayerBfp] | None = None):
        pe = cfg.pe
        if pe.act32 != pe.out:
            raise ValueError("the MLP feeds each layer's output to the next: pe.act32 must equal pe.out")
        self.cfg, self.bfp, self.step_no = cfg, bfp, 0
        self.W = [quantize(W, pe.weight) for W, _ in params]
        self.b = [quantize(b, pe.out) for _, b in params]
        # dW (adam.grad codes) * 2**lr_log2 into pe.weight: one right shift
        self.shift = cfg.adam.grad.frac - pe.weight.frac - lr_log2
        if self.shift < 1:
            raise ValueError(f"the SGD step 2**{lr_log2} does not fit a right shift from adam.grad to pe.weight")

    def _bfp(self, q: np.ndarray, frac: int, axis: int, layer: int, role: str, step: int | None = None) -> np.ndarray:
        """q converted to BFP along ``axis`` (identity for fxp32), its own seed."""
        fmt = self._format(layer, role)
        if fmt is None:
            return q
        s = self.step_no if step is None else step
        # a counter hashed into the seed: counters XORed straight into the small
        # element keys would share words between conversions (docs/bfp.md, "Seeds")
        counter = (s * 64 + layer * len(ROLES) + ROLES.index(role)) & 0xFFFFFFFF
        return bfp_quantize(q, frac, fmt, int(jenkins32(counter)), axis)

    def _format(self, layer: int, role: str) -> BfpFormat | None:
        if self.bfp is None or isinstance(self.bfp, BfpFormat):
            return self.bfp
        policy = self.bfp[layer]
        return policy.weight if role.startswith("w_") else policy.act if role.startswith("x_") else None

    def forward(self, x_codes: np.ndarray, step: int | None = None) -> list[np.ndarray]:
        """Activations (features, B) of every layer, input first, logits last."""
        pe, acts = self.cfg.pe, [x_codes]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            func = ActFunc.RELU if i < len(self.W) - 1 else ActFunc.IDENTITY
            X = self._bfp(acts[-1], pe.act32.frac, 0, i, "x_fwd", step)
            acts.append(linear(self.cfg, self._bfp(W, pe.weight.frac, 1, i, "w_fwd", step), X, b, func))
        return acts

    def step(self, x: np.ndarray, y: np.ndarray) -> None:
        cfg, pe = self.cfg, self.cfg.pe
        acts = self.forward(quantize(x.T, pe.act32))
        D = quantize(softmax_error(dequantize(acts[-1], pe.out), y), pe.act32)
        for i in reversed(range(len(self.W))):
            af, wf = pe.act32.frac, pe.weight.frac
            dW = weight_grad(cfg, self._bfp(D, af, 1, i, "d_wgrad"), self._bfp(acts[i], af, 1, i, "x_wgrad"))
            db = bias_grad(cfg, D)
            if i:
                back = transposed(cfg, self._bfp(self.W[i], wf, 0, i, "w_bwd"), self._bfp(D, af, 0, i, "d_bwd"))
                D = np.where(acts[i] > 0, back, I64(0))     # ReLU's derivative: a selection, exact
            self.W[i] = self._update(self.W[i], dW, pe.weight)
            self.b[i] = self._update(self.b[i], db, pe.out)
        self.step_no += 1

    def _update(self, p: np.ndarray, g: np.ndarray, fmt) -> np.ndarray:
        return saturate(p - requantize(0, g, 0, self.shift + self.cfg.pe.weight.frac - fmt.frac, fmt), fmt)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.forward(quantize(x.T, self.cfg.pe.act32), EVAL_STEP)[-1]


def make_model(precision: str, params, setup: Setup, cfg: FixarConfig = DEFAULT, bfp: BfpFormat | None = None):
    if precision == "fp32":
        return Fp32Mlp(params, setup.lr_log2)
    if precision == "fxp32":
        return FixedMlp(cfg, params, setup.lr_log2)
    if precision == "bfp":
        return FixedMlp(cfg, params, setup.lr_log2, bfp or BfpFormat(8))
    raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    z = model.logits(x) if isinstance(model, FixedMlp) else model.forward(x)[-1]
    return float(np.mean(np.argmax(z, axis=0) == y))


def train(precision: str, data: Digits, setup: Setup = Setup(), cfg: FixarConfig = DEFAULT,
          bfp: BfpFormat | None = None) -> float:
    """Train one MLP and return its test accuracy."""
    sizes = (data.x_train.shape[1], setup.hidden, 10)
    model = make_model(precision, init_params(sizes, setup.seed), setup, cfg, bfp)
    for idx in batches(len(data.y_train), setup):
        model.step(data.x_train[idx], data.y_train[idx])
    return accuracy(model, data.x_test, data.y_test)
