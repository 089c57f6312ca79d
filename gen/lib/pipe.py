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
