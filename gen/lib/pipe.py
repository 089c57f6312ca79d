"""Register helpers shared by every unit, and the stage count that ties each
pipeline to its latency in fixar.config.timing."""
from __future__ import annotations

from amaranth.hdl import Module, Signal


def reg(m: Module, value, name: str, shape=None) -> Signal:
    """``value`` registered once, in a signal called ``name`` (of ``shape``,
    truncating or extending, when given; else of the value's own)."""
    if shape is not None:
        r = Signal(shape, name=name)
    else:
        r = Signal.like(value, name=name) if isinstance(value, Signal) else Signal(value.shape(), name=name)
    m.d.sync += r.eq(value)
    return r


def delay(m: Module, value, n: int, name: str | None = None):
    """``value`` delayed by ``n`` clock cycles (a shift register of signals
    ``<name>_d1`` .. ``<name>_dn``; ``name`` defaults to the signal's own)."""
    name = name or value.name
    prev = value
    for i in range(n):
        nxt = Signal(value.shape(), name=f"{name}_d{i + 1}")
        m.d.sync += nxt.eq(prev)
        prev = nxt
    return prev


class Stages:
    """Counts the register stages a unit builds on its main path, so that
    elaboration fails when the hardware and the latency the cycle model and
    the benches use (fixar.config.timing) drift apart."""

    def __init__(self, unit: str, expected: int):
        self.unit, self.expected, self.built = unit, expected, 0

    def stage(self, n: int = 1) -> None:
        self.built += n

    def check(self) -> None:
        if self.built != self.expected:
            raise AssertionError(f"{self.unit}: built {self.built} register stages but fixar.config.timing "
                                 f"says {self.expected}; change one to match the other")


class Timed:
    """A value and the register stage it is ready after (0: a unit input,
    before any register), for pipelines whose paths have different depths:
    :class:`Schedule` delays the earlier operands of every stage to the
    latest one, so no path can be a cycle early or late by hand-counting."""

    __slots__ = ("value", "at")

    def __init__(self, value, at: int):
        self.value, self.at = value, at


class Schedule:
    """Builds a pipeline out of :class:`Timed` values in module ``m``."""

    def __init__(self, m: Module):
        self.m = m
        self._delayed: dict[tuple[int, int], tuple[object, Signal]] = {}

    def at(self, t: Timed, stage: int):
        """``t``'s value as seen in ``stage`` (delayed by ``stage - t.at`` cycles, once per signal)."""
        n = stage - t.at
        if n < 0:
            raise AssertionError(f"{t.value!r} is ready after stage {t.at}, wanted in stage {stage}")
        if n == 0:
            return t.value
        key = (id(t.value), stage)     # the value is kept beside its delay: its id stays its own
        if key not in self._delayed:
            name = t.value.name if isinstance(t.value, Signal) else "value"
            self._delayed[key] = (t.value, delay(self.m, t.value, n, f"{name}_s{stage}"))
        return self._delayed[key][1]

    def reg(self, name: str, shape, fn, *inputs: Timed) -> Timed:
        """``fn`` of the ``inputs`` (aligned to the latest of them), registered
        into a signal ``name`` of ``shape``: ready one stage after them."""
        stage = max(t.at for t in inputs)
        return Timed(reg(self.m, fn(*(self.at(t, stage) for t in inputs)), name, shape), stage + 1)
