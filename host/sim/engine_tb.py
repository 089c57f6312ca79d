"""The training engine's host ports as a cocotb bench drives them: a `TB`
that applies :class:`fixar.driver.engine.Write` / :class:`fixar.driver.engine.Read` lists
(the host's packing code, shared with the co-simulation backend and the
board) and runs programs."""
from __future__ import annotations

import os

from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge
from cocotb.utils import get_sim_time

from fixar.config import FixarConfig
from fixar.driver.engine import Read, Write

HOST_PORTS = ("wm_we", "wm_re", "am_we", "am_re", "bm_we", "tm_we", "st_we", "prog_we", "scal_we", "start",
              "start_pc", "prng_we", "gm_raddr", "gbm_raddr", "st_addr", "qt_we", "rg_clear", "rg_addr")

PERIOD_NS = 10


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"])
        self.edge = FallingEdge(dut.clk)

    async def reset(self):
        Clock(self.dut.clk, PERIOD_NS, unit="ns").start()
        for p in HOST_PORTS:
            getattr(self.dut, p).value = 0
        self.dut.rst.value = 1
        for _ in range(2):
            await self.edge
        self.dut.rst.value = 0
        await self.edge

    async def write(self, w: Write):
        dut = self.dut
        we_h, addr_h = getattr(dut, f"{w.port}_we"), getattr(dut, f"{w.port}_addr")
        data_h = [getattr(dut, f"{w.port}_{d}") for d in w.data]
        for i, word in enumerate(w.words):
            words = word if isinstance(word, tuple) else (word,)
            we_h.value, addr_h.value = w.we, w.base + i
            for h, v in zip(data_h, words):
                h.value = v
            await self.edge
        we_h.value = 0

    async def apply(self, writes: list[Write]):
        for w in writes:
            await self.write(w)

    async def read(self, r: Read) -> list[tuple[int, ...]]:
        """Rows through a registered read port: data the cycle after the address."""
        dut = self.dut
        if r.re:
            getattr(dut, r.re).value = r.re_value
        addr = getattr(dut, r.addr)
        out = []
        addr.value = r.base
        for i in range(r.n):
            await self.edge
            out.append(tuple(getattr(dut, p).value.to_unsigned() for p in r.data))
            if i + 1 < r.n:           # (never past the last row: a small port may end there)
                addr.value = r.base + i + 1
        if r.re:
            getattr(dut, r.re).value = 0
        return out

    async def set_prng(self, seed: int):
        self.dut.prng_seed.value, self.dut.prng_we.value = seed, 1
        await self.edge
        self.dut.prng_we.value = 0

    def prng_state(self) -> int:
        return int(self.dut.prng_state.value)

    async def run(self, pc: int) -> int:
        """Start the program at ``pc``; cycles from start to done (the simulator
        runs freely in between: no Python per cycle)."""
        dut = self.dut
        dut.start_pc.value, dut.start.value = pc, 1
        t0 = get_sim_time("ns")
        await self.edge
        dut.start.value = 0
        if not dut.done.value:
            await RisingEdge(dut.done)
            await self.edge
        return round((get_sim_time("ns") - t0) / PERIOD_NS)
