"""What HAQ searches: one BFP mantissa width for each layer's weights and one
for its input activations, walked layer by layer, weights first.

The state of a step is HAQ's, less what a fully connected layer does not
have: layer index, input and output features, parameter count, the
weights-or-activations flag and the previous action. (HAQ's stride, kernel
size and depthwise flag are constant for an MLP; min-max normalised they
would be 0.) Every feature is min-max normalised over the workload's steps,
as HAQ does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("weight", "act")
STATE_FEATURES = ("layer", "fan_in", "fan_out", "params", "is_weight", "prev_action")


@dataclass(frozen=True)
class Layer:
    fan_in: int
    fan_out: int

    @property
    def params(self) -> int:
        return self.fan_in * self.fan_out + self.fan_out


@dataclass(frozen=True)
class Workload:
    """A multilayer perceptron by its layer sizes, input first, and the
    vectors its latency is priced for (None: fixar.haq.cost's default, a
    batch that fills the lanes at every width)."""

    name: str
    sizes: tuple[int, ...]
    batch: int | None = None

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(Layer(i, o) for i, o in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def steps(self) -> tuple[tuple[int, str], ...]:
        """(layer, kind) of every decision, in the order the agent takes them."""
        return tuple((i, k) for i in range(len(self.layers)) for k in KINDS)


# scikit-learn's digits (8 x 8 pixels, 10 classes), two hidden layers so
# that the layers differ in shape and cost
DIGITS = Workload("digits", (64, 128, 64, 10))

# The default latency budgets, as shares of uniform 8-bit's. Digits: half,
# HAQ's kind of budget, which leaves the search room above uniform 4-bit
# (0.26 on the lane array). The actor: 0.7, since each layer's run on the
# lane array has a fill the widths do not shorten, so no policy goes below
# 0.51 (44 of 86 cycles).
DEFAULT_LATENCY = {"digits": 0.5, "pendulum": 0.7}

# A policy: ((weight bits, activation bits), ...) per layer.
Policy = tuple[tuple[int, int], ...]


def uniform(workload: Workload, bits: int) -> Policy:
    return tuple((bits, bits) for _ in workload.layers)


def from_widths(workload: Workload, widths: list[int]) -> Policy:
    """The flat per-step widths (weight, act, weight, act, ...) as a policy."""
    if len(widths) != len(workload.steps):
        raise ValueError(f"{workload.name}: {len(workload.steps)} widths expected, got {len(widths)}")
    return tuple((int(widths[2 * i]), int(widths[2 * i + 1])) for i in range(len(workload.layers)))


def flat(policy: Policy) -> list[int]:
    return [b for pair in policy for b in pair]


def action_to_width(action: float, widths: tuple[int, ...]) -> int:
    """HAQ's linear map of an action in [0, 1] onto the menu of widths: equal shares of [0, 1]."""
    i = int(np.floor(float(np.clip(action, 0.0, 1.0)) * len(widths)))
    return widths[min(i, len(widths) - 1)]


def width_to_action(bits: int, widths: tuple[int, ...]) -> float:
    """The middle of ``bits``' share of [0, 1] (what a lowered width is stored as)."""
    return (widths.index(bits) + 0.5) / len(widths)


def raw_features(workload: Workload) -> np.ndarray:
    """(steps, features) before normalisation, the previous action left 0."""
    rows = []
    for i, kind in workload.steps:
        layer = workload.layers[i]
        rows.append([i, layer.fan_in, layer.fan_out, layer.params, float(kind == "weight"), 0.0])
    return np.array(rows, dtype=np.float64)


def normalised_features(workload: Workload) -> np.ndarray:
    raw = raw_features(workload)
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (raw - lo) / span
