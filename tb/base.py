"""What every bench's TB shares: one clock, one reset sequence, and what the
runner (:mod:`fixar.sim.runner`) hands the bench in the environment.

As LUNA's shared gateware test case does, a TB only declares how its design
is clocked and reset (the class attributes below); the sequence itself is
written once, here, so every bench resets its design the same way.

Environment: FIXAR_CONFIG_JSON (the config the RTL was generated from),
FIXAR_LATENCY (the design's latency, from the generator's manifest). The
seed is cocotb's (COCOTB_RANDOM_SEED, set by the runner from FIXAR_SEED;
cocotb derives each test's own seed from it and the test's name).
"""
from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from fixar.config import FixarConfig


class BenchTB:
    CLK = "clk"
    RST = "rst"
    RST_ACTIVE = 1        # the level that holds the design in reset
    RESET_EDGES = 2       # clock edges with reset asserted
    SETTLE_EDGES = 0      # edges after its release before the bench drives
    # Benches drive and sample on falling edges: race-free on every simulator.
    EDGE = FallingEdge
    # Inputs zeroed with reset: a four-state simulator would otherwise see X
    # on them (e.g. on a memory's read-enable mux) until the bench drives them.
    IDLE: tuple[str, ...] = ()
    PERIOD_NS = 10

    def __init__(self, dut):
        self.dut = dut
        self.log = dut._log
        self.cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"])
        self.latency = int(os.environ["FIXAR_LATENCY"])
        self.rng = np.random.default_rng(cocotb.RANDOM_SEED)
        self.clk = getattr(dut, self.CLK)
        self.edge = self.EDGE(self.clk)
        # Started here rather than in reset(): a test may reset more than once.
        Clock(self.clk, self.PERIOD_NS, unit="ns").start()

    async def reset(self) -> None:
        for name in self.IDLE:
            getattr(self.dut, name).value = 0
        rst = getattr(self.dut, self.RST)
        rst.value = self.RST_ACTIVE
        for _ in range(self.RESET_EDGES):
            await self.edge
        rst.value = 1 - self.RST_ACTIVE
        for _ in range(self.SETTLE_EDGES):
            await self.edge
