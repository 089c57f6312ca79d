"""On-chip RAMs, as instances of the hand-written rtl/fixar_ram.v.

``TwoPortRAM`` gives an Amaranth-side handle on one instance: port A reads,
port B writes (or reads when not writing). Reads are registered (one cycle).
The module is block RAM (fixar_ram) or UltraRAM (fixar_uram) by the
memory's row count and the config's ``memory.uram_min_rows``.
"""
from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Instance, Signal

from fixar.config import MemoryConfig

VERILOG = Path(__file__).parent / "verilog" / "fixar_ram.v"
MODULES = {False: "fixar_ram", True: "fixar_uram"}  # by MemoryConfig.ultra


class TwoPortRAM:
    def __init__(self, mem: MemoryConfig, width: int, depth: int, name: str):
        abits = max((depth - 1).bit_length(), 1)
        self.width, self.depth, self.abits = width, depth, abits
        self.ultra = mem.ultra(depth)
        self.a_addr = Signal(abits, name=f"{name}_a_addr")
        self.a_data = Signal(width, name=f"{name}_a_data")
        self.b_addr = Signal(abits, name=f"{name}_b_addr")
        self.b_we = Signal(name=f"{name}_b_we")
        self.b_wdata = Signal(width, name=f"{name}_b_wdata")
        self.b_data = Signal(width, name=f"{name}_b_data")
        self.instance = Instance(
            MODULES[self.ultra], p_WIDTH=width, p_DEPTH=depth, p_ABITS=abits, i_clk=ClockSignal(),
            i_a_addr=self.a_addr, o_a_data=self.a_data,
            i_b_addr=self.b_addr, i_b_we=self.b_we, i_b_wdata=self.b_wdata, o_b_data=self.b_data)
