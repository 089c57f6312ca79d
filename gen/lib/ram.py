"""On-chip RAMs, as instances of the hand-written rtl/fixar_ram.v.

``TwoPortRAM`` gives an Amaranth-side handle on one instance: port A reads,
port B writes (or reads when not writing). Reads are registered (one cycle).
The module is block RAM (fixar_ram) or UltraRAM (fixar_uram) by the
memory's row count and the config's ``memory.uram_min_rows``; with
``a_writable`` port A writes too (fixar_ram_tdp / fixar_uram_tdp: the same
RAMs, so the floorplan counts them alike).
"""
from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Instance, Signal

from fixar.config import MemoryConfig

VERILOG = Path(__file__).parent / "verilog" / "fixar_ram.v"
MODULES = {False: "fixar_ram", True: "fixar_uram"}  # by MemoryConfig.ultra


def _two_ports(ram, name: str, abits: int, width: int) -> None:
    """Port A's read signals and port B's write-or-read signals of a RAM handle."""
    ram.a_addr = Signal(abits, name=f"{name}_a_addr")
    ram.a_data = Signal(width, name=f"{name}_a_data")
    ram.b_addr = Signal(abits, name=f"{name}_b_addr")
    ram.b_we = Signal(name=f"{name}_b_we")
    ram.b_wdata = Signal(width, name=f"{name}_b_wdata")
    ram.b_data = Signal(width, name=f"{name}_b_data")


class TwoPortRAM:
    """One RAM instance. ``a_writable``: port A writes too (``a_we``,
    ``a_wdata``; the *_tdp modules), for a store of two words a cycle."""

    def __init__(self, mem: MemoryConfig, width: int, depth: int, name: str, ultra: bool | None = None,
                 a_writable: bool = False):
        abits = max((depth - 1).bit_length(), 1)
        self.width, self.depth, self.abits = width, depth, abits
        self.ultra = mem.ultra(depth) if ultra is None else ultra
        _two_ports(self, name, abits, width)
        self.instance_name = name
        ports = {}
        if a_writable:
            self.a_we = Signal(name=f"{name}_a_we")
            self.a_wdata = Signal(width, name=f"{name}_a_wdata")
            ports = {"i_a_we": self.a_we, "i_a_wdata": self.a_wdata}
        self.instance = Instance(
            MODULES[self.ultra] + ("_tdp" if a_writable else ""), p_WIDTH=width, p_DEPTH=depth, p_ABITS=abits,
            i_clk=ClockSignal(), i_a_addr=self.a_addr, o_a_data=self.a_data, **ports,
            i_b_addr=self.b_addr, i_b_we=self.b_we, i_b_wdata=self.b_wdata, o_b_data=self.b_data)


class InterleavedRAM:
    """One memory of ``depth`` rows as two :class:`TwoPortRAM` halves, even
    rows in one and odd rows in the other, with the ports of one TwoPortRAM
    (``a_*`` reads, ``b_*`` writes or reads; full row addresses), a third
    read port ``s_*`` (``s_re``, ``s_addr``, ``s_data``), which borrows port A
    of the half its address is in, and a second write port ``t_*`` (``t_we``,
    ``t_addr``, ``t_wdata``), which borrows port B of its half. Why: up to
    four accesses a cycle where one RAM has two ports; the soft target update
    reads an online row and a target row and writes a target row every cycle,
    and inside the Adam pass it also writes the updated online row; that
    works when the rows that share a cycle are of opposite parity (the
    compiler places the targets an odd number of rows from their networks,
    the controller times the accesses). When ``s`` (``t``) and port A (B)
    address the same half in a cycle, ``s`` (``t``) gets it. The parity is a
    wire, not an adder: row r is row r >> 1 of half r & 1.
    ``connect(m)`` adds the halves and their muxes to module ``m``."""

    def __init__(self, mem: MemoryConfig, width: int, depth: int, name: str, ultra: bool | None = None):
        abits = max((depth - 1).bit_length(), 1)
        self.width, self.depth, self.abits, self.name = width, depth, abits, name
        # UltraRAM or block RAM as the whole memory would be (memory.uram_min_rows counts its rows;
        # ``ultra`` when this is a part of a larger memory)
        ultra = mem.ultra(depth) if ultra is None else ultra
        self.halves = [TwoPortRAM(mem, width, (depth + 1 - h) // 2, f"{name}_{'eo'[h]}", ultra) for h in (0, 1)]
        self.ultra = self.halves[0].ultra
        _two_ports(self, name, abits, width)
        self.s_re = Signal(name=f"{name}_s_re")
        self.s_addr = Signal(abits, name=f"{name}_s_addr")
        self.s_data = Signal(width, name=f"{name}_s_data")
        self.t_we = Signal(name=f"{name}_t_we")
        self.t_addr = Signal(abits, name=f"{name}_t_addr")
        self.t_wdata = Signal(width, name=f"{name}_t_wdata")

    def connect(self, m) -> None:
        from amaranth.hdl import Mux

        lo, hi = self.halves
        for h, ram in enumerate(self.halves):
            m.submodules[ram.instance_name] = ram.instance
            take_s = self.s_re & (self.s_addr[0] == h)
            take_t = self.t_we & (self.t_addr[0] == h)
            m.d.comb += [ram.a_addr.eq(Mux(take_s, self.s_addr[1:], self.a_addr[1:])),
                         ram.b_addr.eq(Mux(take_t, self.t_addr[1:], self.b_addr[1:])),
                         ram.b_we.eq(take_t | (self.b_we & (self.b_addr[0] == h))),
                         ram.b_wdata.eq(Mux(take_t, self.t_wdata, self.b_wdata))]
        # reads are registered: the half that answers is the one addressed a cycle ago
        par = {p: Signal(name=f"{self.name}_{p}_odd") for p in "abs"}
        m.d.sync += [par["a"].eq(self.a_addr[0]), par["b"].eq(self.b_addr[0]), par["s"].eq(self.s_addr[0])]
        m.d.comb += [self.a_data.eq(Mux(par["a"], hi.a_data, lo.a_data)),
                     self.b_data.eq(Mux(par["b"], hi.b_data, lo.b_data)),
                     self.s_data.eq(Mux(par["s"], hi.a_data, lo.a_data))]
