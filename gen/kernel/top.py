"""The Alveo U50 RTL kernel (``fixar_kernel``, docs/kernel.md): the training
engine behind the interfaces Vitis expects of an RTL kernel.

* ``ap_clk``, ``ap_rst_n`` (active low, synchronous), ``interrupt``;
* ``s_axi_control_*``: AXI4-Lite slave with the ap_ctrl_hs register map
  (0x00 control: bit 0 ap_start, 1 ap_done (clear on read), 2 ap_idle,
  3 ap_ready (clear on read), 7 auto_restart; 0x04 global interrupt enable;
  0x08 IP interrupt enable (bit 0 done, 1 ready); 0x0C interrupt status
  (toggle on write)), the arguments of ``Kernel.ARGS`` and the read-only
  status register ``Kernel.STATUS`` (the last run's AXI response errors);
* ``m_axi_gmem_*``: one AXI4 master, 64-bit addresses, 512-bit data, INCR
  bursts that never cross a 4 KB boundary; W beats never wait for the AW
  handshake (AXI lets a slave wait for W before it takes AW).

A run executes a command buffer (fixar.driver.kernel_io packs it): the kernel reads
``n_cmd`` beats from ``cmd`` in bursts of up to 64 beats, applies each
command to the engine's host ports (row writes, row reads, program runs,
the noise generator, the range trackers) and writes what the commands
produce to ``out`` in bursts of up to 16 beats. ap_done rises when the last
output beat's write response has arrived. A SLVERR or DECERR response is
latched into the status register; after a read error the kernel executes no
further command (the beat's data is not valid) and finishes, so the host
sees ap_done and then the error instead of a hang.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Module, Mux, ResetSignal, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from fixar.config import KERNEL_BEAT_BITS, KERNEL_READ_PATHS, KERNEL_WRITE_PORTS, FixarConfig, KernelOp
from fixar.gen.units.trainer import Trainer

CTRL = "s_axi_control_"
GMEM = "m_axi_gmem_"


class Kernel(wiring.Component):
    CTRL_ADDR_BITS = 12
    # (name, register offset, bytes, kind): the arguments after the ap_ctrl_hs block
    ARGS = (("cmd", 0x10, 8, "buffer"), ("out", 0x18, 8, "buffer"), ("n_cmd", 0x20, 4, "scalar"))
    # Read-only status of the last run (cleared when a run starts): not a kernel.xml argument, so it sits
    # apart from the arguments (checked in __init__). fixar.driver.kernel_io decodes it with the same bits.
    STATUS = 0x40
    STATUS_ERROR = 1 << 0        # any response error (the bit the host raises on)
    STATUS_WRITE_ERROR = 1 << 1  # a write burst's BRESP was SLVERR or DECERR
    STATUS_READ_ERROR = 1 << 2   # a command beat's RRESP was SLVERR or DECERR
    STATUS_BRESP_AT, STATUS_RRESP_AT = 8, 10     # the first error's response code, two bits each
    READ_BURST = 64       # beats: 4 KB, one page
    WRITE_BURST = 16

    def __init__(self, cfg: FixarConfig):
        self._check_register_map()
        self.cfg = cfg
        self.engine = Trainer(cfg)
        B, A = KERNEL_BEAT_BITS, self.CTRL_ADDR_BITS
        sig = {"ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1)}
        for name, flow, width in (("AWVALID", In, 1), ("AWREADY", Out, 1), ("AWADDR", In, A),
                                  ("WVALID", In, 1), ("WREADY", Out, 1), ("WDATA", In, 32), ("WSTRB", In, 4),
                                  ("BVALID", Out, 1), ("BREADY", In, 1), ("BRESP", Out, 2),
                                  ("ARVALID", In, 1), ("ARREADY", Out, 1), ("ARADDR", In, A),
                                  ("RVALID", Out, 1), ("RREADY", In, 1), ("RDATA", Out, 32), ("RRESP", Out, 2)):
            sig[CTRL + name] = flow(width)
        # (the ID signals are optional for Vitis; one bit, always 0: in-order, one thread)
        for name, flow, width in (("AWID", Out, 1), ("ARID", Out, 1), ("BID", In, 1), ("RID", In, 1),
                                  ("AWVALID", Out, 1), ("AWREADY", In, 1), ("AWADDR", Out, 64), ("AWLEN", Out, 8),
                                  ("AWSIZE", Out, 3), ("AWBURST", Out, 2),
                                  ("WVALID", Out, 1), ("WREADY", In, 1), ("WDATA", Out, B), ("WSTRB", Out, B // 8),
                                  ("WLAST", Out, 1), ("BVALID", In, 1), ("BREADY", Out, 1), ("BRESP", In, 2),
                                  ("ARVALID", Out, 1), ("ARREADY", In, 1), ("ARADDR", Out, 64), ("ARLEN", Out, 8),
                                  ("ARSIZE", Out, 3), ("ARBURST", Out, 2),
                                  ("RVALID", In, 1), ("RREADY", Out, 1), ("RDATA", In, B), ("RLAST", In, 1),
                                  ("RRESP", In, 2)):
            sig[GMEM + name] = flow(width)
        super().__init__(sig)

    @classmethod
    def _check_register_map(cls) -> None:
        """Arguments after the ap_ctrl_hs block (0x00-0x0F), word-aligned, not
        overlapping each other or the status register, inside the 4 KB space."""
        taken = {}
        for name, off, size, _ in cls.ARGS:
            if off < 0x10 or off % 4 or size % 4:
                raise ValueError(f"kernel argument {name} at {off:#x} ({size} bytes): arguments are whole words "
                                 "from 0x10 on")
            for a in range(off, off + size, 4):
                if a in taken or a == cls.STATUS:
                    raise ValueError(f"kernel argument {name} at {off:#x} overlaps "
                                     f"{taken.get(a, 'the status register')} at {a:#x}")
                taken[a] = name
        if max(taken) >= 1 << cls.CTRL_ADDR_BITS or cls.STATUS >= 1 << cls.CTRL_ADDR_BITS:
            raise ValueError("a kernel register lies outside the control port's address space")

    def p(self, name: str):
        return getattr(self, name)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")      # driven by the Vitis ports, not made ports of its own
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ResetSignal("sync").eq(~self.ap_rst_n)]
        m.submodules.engine = self.engine
        x = SimpleNamespace()      # the signals the blocks below share
        self._control_slave(m, x)
        self._command_fetch(m, x)
        self._output_writes(m, x)
        self._executor_registers(m, x)
        with m.FSM(name="kernel"):
            self._header_states(m, x)
            self._write_states(m, x)
            self._read_states(m, x)
            self._engine_states(m, x)
            self._drain_state(m, x)
        self._engine_host_ports(m, x)
        return m

    # ---------------------------------------------------------- control slave

    def _control_slave(self, m: Module, x: SimpleNamespace) -> None:
        """The AXI4-Lite control slave: the ap_ctrl_hs registers and the
        arguments, and the run's events on them (x.begin, x.finish)."""
        ap_start, ap_done, ap_idle, ap_ready = Signal(), Signal(), Signal(init=1), Signal()
        auto_restart, gie = Signal(), Signal()
        ier, isr = Signal(2), Signal(2)
        args = {name: Signal(8 * size, name=f"arg_{name}") for name, _, size, _ in self.ARGS}
        finish = Signal()        # the run's last cycle (set ap_done)
        begin = Signal()         # the run's first cycle (ap_start taken)
        # the AXI master's response errors in this run (set by the fetch and the output, cleared at begin)
        err = SimpleNamespace(write=Signal(name="err_write"), read=Signal(name="err_read"),
                              bresp=Signal(2, name="err_bresp"), rresp=Signal(2, name="err_rresp"))
        status = Signal(32)
        bit = {mask: mask.bit_length() - 1 for mask in (self.STATUS_ERROR, self.STATUS_WRITE_ERROR,
                                                         self.STATUS_READ_ERROR)}
        m.d.comb += [status[bit[self.STATUS_ERROR]].eq(err.write | err.read),
                     status[bit[self.STATUS_WRITE_ERROR]].eq(err.write),
                     status[bit[self.STATUS_READ_ERROR]].eq(err.read),
                     status[self.STATUS_BRESP_AT:self.STATUS_BRESP_AT + 2].eq(err.bresp),
                     status[self.STATUS_RRESP_AT:self.STATUS_RRESP_AT + 2].eq(err.rresp)]
        regs = SimpleNamespace(ap_start=ap_start, ap_done=ap_done, ap_idle=ap_idle, ap_ready=ap_ready,
                               auto_restart=auto_restart, gie=gie, ier=ier, isr=isr, status=status)
        self._control_writes(m, regs, args)
        self._control_reads(m, regs, args)
        # run events after the register accesses: a done set in the cycle of a read stays set
        with m.If(begin):
            m.d.sync += [ap_idle.eq(0), ap_ready.eq(1), ap_start.eq(auto_restart),
                         err.write.eq(0), err.read.eq(0), err.bresp.eq(0), err.rresp.eq(0)]
            with m.If(ier[1]):
                m.d.sync += isr[1].eq(1)
        with m.If(finish):
            m.d.sync += [ap_done.eq(1), ap_idle.eq(1)]
            with m.If(ier[0]):
                m.d.sync += isr[0].eq(1)
        m.d.comb += self.interrupt.eq(gie & isr.any())
        x.ap_start, x.args, x.finish, x.begin, x.err = ap_start, args, finish, begin, err

    def _control_writes(self, m: Module, regs: SimpleNamespace, args: dict) -> None:
        """The control slave's write channel: address and data taken, then the register written."""
        aw_ok, w_ok, bvalid = Signal(), Signal(), Signal()
        awaddr, wdata = Signal(self.CTRL_ADDR_BITS), Signal(32)
        c = self.p
        m.d.comb += [c(CTRL + "AWREADY").eq(~aw_ok & ~bvalid), c(CTRL + "WREADY").eq(~w_ok & ~bvalid),
                     c(CTRL + "BVALID").eq(bvalid), c(CTRL + "BRESP").eq(0)]
        with m.If(c(CTRL + "AWVALID") & c(CTRL + "AWREADY")):
            m.d.sync += [aw_ok.eq(1), awaddr.eq(c(CTRL + "AWADDR"))]
        with m.If(c(CTRL + "WVALID") & c(CTRL + "WREADY")):
            m.d.sync += [w_ok.eq(1), wdata.eq(c(CTRL + "WDATA"))]
        with m.If(bvalid & c(CTRL + "BREADY")):
            m.d.sync += bvalid.eq(0)
        with m.If(aw_ok & w_ok):
            m.d.sync += [aw_ok.eq(0), w_ok.eq(0), bvalid.eq(1)]
            with m.Switch(awaddr):
                with m.Case(0x00):
                    with m.If(wdata[0]):
                        m.d.sync += regs.ap_start.eq(1)
                    m.d.sync += regs.auto_restart.eq(wdata[7])
                with m.Case(0x04):
                    m.d.sync += regs.gie.eq(wdata[0])
                with m.Case(0x08):
                    m.d.sync += regs.ier.eq(wdata[:2])
                with m.Case(0x0C):
                    m.d.sync += regs.isr.eq(regs.isr ^ wdata[:2])
                for name, off, size, _ in self.ARGS:
                    for k in range(size // 4):
                        with m.Case(off + 4 * k):
                            m.d.sync += args[name][32 * k:32 * (k + 1)].eq(wdata)

    def _control_reads(self, m: Module, regs: SimpleNamespace, args: dict) -> None:
        """The control slave's read channel (ap_done and ap_ready clear on read)."""
        c = self.p
        rvalid, rdata = Signal(), Signal(32)
        m.d.comb += [c(CTRL + "ARREADY").eq(~rvalid), c(CTRL + "RVALID").eq(rvalid), c(CTRL + "RDATA").eq(rdata),
                     c(CTRL + "RRESP").eq(0)]
        with m.If(rvalid & c(CTRL + "RREADY")):
            m.d.sync += rvalid.eq(0)
        with m.If(c(CTRL + "ARVALID") & ~rvalid):
            m.d.sync += rvalid.eq(1)
            with m.Switch(c(CTRL + "ARADDR")):
                with m.Case(0x00):
                    m.d.sync += [rdata.eq(Cat(regs.ap_start, regs.ap_done, regs.ap_idle, regs.ap_ready, Const(0, 3),
                                              regs.auto_restart)),
                                 regs.ap_done.eq(0), regs.ap_ready.eq(0)]          # clear on read
                with m.Case(0x04):
                    m.d.sync += rdata.eq(regs.gie)
                with m.Case(0x08):
                    m.d.sync += rdata.eq(regs.ier)
                with m.Case(0x0C):
                    m.d.sync += rdata.eq(regs.isr)
                with m.Case(self.STATUS):
                    m.d.sync += rdata.eq(regs.status)
                for name, off, size, _ in self.ARGS:
                    for k in range(size // 4):
                        with m.Case(off + 4 * k):
                            m.d.sync += rdata.eq(args[name][32 * k:32 * (k + 1)])
                with m.Default():
                    m.d.sync += rdata.eq(0)

    # ---------------------------------------------------------- AXI master

    def _command_fetch(self, m: Module, x: SimpleNamespace) -> None:
        """Command fetch (AXI reads): bursts that stop at 4 KB pages, into the
        command FIFO. A beat with an error response (SLVERR, DECERR) carries no
        valid data: it and every later beat are dropped (the rest of the
        burst still taken, as AXI requires) and no further burst is fetched."""
        g, err = self.p, x.err
        m.submodules.cmd_fifo = cf = SyncFIFOBuffered(width=KERNEL_BEAT_BITS, depth=2 * self.READ_BURST)
        rd_addr, rd_left = Signal(64), Signal(32)
        ar_valid, ar_len, r_active = Signal(), Signal(8), Signal()
        to_page = Signal(8)
        r_take, r_bad = Signal(), Signal()
        m.d.comb += to_page.eq(self.READ_BURST - rd_addr[6:12])       # beats left in this 4 KB page
        m.d.comb += [g(GMEM + "ARID").eq(0), g(GMEM + "AWID").eq(0)]
        m.d.comb += [g(GMEM + "ARVALID").eq(ar_valid), g(GMEM + "ARADDR").eq(rd_addr),
                     g(GMEM + "ARLEN").eq(ar_len - 1), g(GMEM + "ARSIZE").eq(6), g(GMEM + "ARBURST").eq(1),
                     g(GMEM + "RREADY").eq(r_active & (cf.w_rdy | err.read)),
                     r_take.eq(r_active & g(GMEM + "RVALID") & g(GMEM + "RREADY")),
                     r_bad.eq(g(GMEM + "RRESP")[1]),            # SLVERR (0b10) or DECERR (0b11); EXOKAY is fine
                     cf.w_data.eq(g(GMEM + "RDATA")), cf.w_en.eq(r_take & ~r_bad & ~err.read)]
        with m.If(r_take & r_bad & ~err.read):
            m.d.sync += [err.read.eq(1), err.rresp.eq(g(GMEM + "RRESP"))]
        with m.If(ar_valid & g(GMEM + "ARREADY")):
            m.d.sync += [ar_valid.eq(0), r_active.eq(1), rd_addr.eq(rd_addr + (ar_len << 6)),
                         rd_left.eq(rd_left - ar_len)]
        with m.Elif(~ar_valid & ~r_active & (rd_left != 0) & ~err.read):
            m.d.sync += [ar_valid.eq(1), ar_len.eq(Mux(rd_left < to_page, rd_left, to_page))]
        with m.If(r_take & g(GMEM + "RLAST")):
            m.d.sync += r_active.eq(0)
        x.cf, x.rd_addr, x.rd_left, x.ar_valid, x.r_active = cf, rd_addr, rd_left, ar_valid, r_active

    def _output_writes(self, m: Module, x: SimpleNamespace) -> None:
        """Output (AXI writes): bursts from the output FIFO when a burst's beats
        are there (or on flush), and the count of write responses pending.
        A burst's AW and its W beats go out independently: W never waits for
        the AW handshake (a slave may take W first and AW after it, and a
        master that waits for AWREADY deadlocks with it). The next burst
        starts when both the address and the last beat are through."""
        B = KERNEL_BEAT_BITS
        g, err = self.p, x.err
        m.submodules.out_fifo = of = SyncFIFOBuffered(width=B, depth=4 * self.WRITE_BURST)
        wr_addr = Signal(64)
        aw_valid, w_left, b_pending, flush = Signal(), Signal(8), Signal(8), Signal()
        w_len = Signal(8)
        wpage = Signal(8)
        w_take = Signal()
        m.d.comb += wpage.eq(self.READ_BURST - wr_addr[6:12])
        m.d.comb += [g(GMEM + "AWVALID").eq(aw_valid), g(GMEM + "AWADDR").eq(wr_addr),
                     g(GMEM + "AWLEN").eq(w_len - 1), g(GMEM + "AWSIZE").eq(6), g(GMEM + "AWBURST").eq(1),
                     g(GMEM + "WVALID").eq((w_left != 0) & of.r_rdy), g(GMEM + "WDATA").eq(of.r_data),
                     g(GMEM + "WSTRB").eq((1 << (B // 8)) - 1), g(GMEM + "WLAST").eq(w_left == 1),
                     w_take.eq(g(GMEM + "WVALID") & g(GMEM + "WREADY")), of.r_en.eq(w_take),
                     g(GMEM + "BREADY").eq(1)]
        b_done = g(GMEM + "BVALID")
        with m.If(b_done & g(GMEM + "BRESP")[1] & ~err.write):       # SLVERR or DECERR: the first one is kept
            m.d.sync += [err.write.eq(1), err.bresp.eq(g(GMEM + "BRESP"))]
        with m.If(aw_valid & g(GMEM + "AWREADY")):
            m.d.sync += [aw_valid.eq(0), wr_addr.eq(wr_addr + (w_len << 6))]
        with m.If(w_take):
            m.d.sync += w_left.eq(w_left - 1)
        # (b_pending below its limit: one more burst cannot overflow the count of responses owed)
        with m.If(~aw_valid & (w_left == 0) & (b_pending != (1 << len(b_pending)) - 1)
                  & ((of.level >= self.WRITE_BURST) | (flush & (of.level != 0)))):
            n = Mux(of.level < self.WRITE_BURST, of.level, self.WRITE_BURST)
            m.d.sync += [aw_valid.eq(1), w_len.eq(Mux(n < wpage, n, wpage)), w_left.eq(Mux(n < wpage, n, wpage))]
        m.d.sync += b_pending.eq(b_pending + (w_take & (w_left == 1)) - b_done)
        drained = Signal()
        m.d.comb += drained.eq((of.level == 0) & (w_left == 0) & ~aw_valid & (b_pending == 0))
        x.of, x.wr_addr, x.flush, x.drained = of, wr_addr, flush, drained

    # ---------------------------------------------------------- command executor

    def _width(self, name: str) -> int:
        return Shape.cast(self.engine.signature.members[name].shape).width

    def _beats(self, names) -> int:
        """Beats of a row of the engine ports ``names``."""
        return max(1, -(-sum(self._width(n) for n in names) // KERNEL_BEAT_BITS))

    def _executor_registers(self, m: Module, x: SimpleNamespace) -> None:
        """The command executor's registers: the row of a port or path, the
        command header, the counters, and the engine strobes its FSM drives."""
        B = KERNEL_BEAT_BITS
        beats = self._beats
        wports = [(prefix, [f"{prefix}_{d}" for d in data]) for prefix, data in KERNEL_WRITE_PORTS]
        rpaths = list(KERNEL_READ_PATHS)
        max_beats = max([beats(d) for _, d in wports] + [beats(list(d)) for _, d, _ in rpaths])
        row = Signal(max_beats * B)
        hdr = {k: Signal(w, name=f"hdr_{k}") for k, w in (("op", 8), ("port", 8), ("base", 32), ("count", 32),
                                                           ("arg", 32))}
        n_row, k = Signal(32), Signal(range(max_beats + 1))
        left_cmd = Signal(32)
        cycles = Signal(64)
        nbeats = Signal(range(max_beats + 1))          # beats per row of the current port / path
        beat = x.cf.r_data

        with m.If(x.cf.r_en):
            m.d.sync += left_cmd.eq(left_cmd - 1)

        # engine inputs: idle unless a state below drives them
        strobe = Signal()            # WPULSE: the write's single cycle
        raddr = Signal()             # RADDR: the read address cycle
        x.wports, x.rpaths, x.max_beats, x.row, x.hdr, x.n_row, x.k = wports, rpaths, max_beats, row, hdr, n_row, k
        x.left_cmd, x.cycles, x.nbeats, x.beat, x.strobe, x.raddr = left_cmd, cycles, nbeats, beat, strobe, raddr

    def _header_states(self, m: Module, x: SimpleNamespace) -> None:
        """IDLE (a run starts) and HDR: the next command's header beat, to its states."""
        eng, hdr, beat, cf = self.engine, x.hdr, x.beat, x.cf
        with m.State("IDLE"):
            with m.If(x.ap_start):
                m.d.comb += x.begin.eq(1)
                m.d.sync += [x.rd_addr.eq(x.args["cmd"]), x.rd_left.eq(x.args["n_cmd"]),
                             x.left_cmd.eq(x.args["n_cmd"]), x.wr_addr.eq(x.args["out"]), x.flush.eq(0)]
                m.next = "HDR"
        with m.State("HDR"):
            # (after a read error no command runs: the beats before it may end mid-command)
            with m.If((x.left_cmd == 0) | x.err.read):
                m.next = "DRAIN"
            with m.Elif(cf.r_rdy):
                m.d.comb += cf.r_en.eq(1)
                m.d.sync += [hdr["op"].eq(beat[0:8]), hdr["port"].eq(beat[8:16]), hdr["base"].eq(beat[32:64]),
                             hdr["count"].eq(beat[64:96]), hdr["arg"].eq(beat[96:128]), x.n_row.eq(0), x.k.eq(0)]
                with m.Switch(beat[0:8]):
                    with m.Case(KernelOp.END):
                        m.d.sync += x.rd_left.eq(0)        # nothing after END is fetched
                        m.next = "DRAIN"
                    with m.Case(KernelOp.WRITE):
                        with m.Switch(beat[8:16]):
                            for i, (_, names) in enumerate(x.wports):
                                with m.Case(i):
                                    m.d.sync += x.nbeats.eq(self._beats(names))
                        m.next = "WDATA"
                    with m.Case(KernelOp.READ):
                        with m.Switch(beat[8:16]):
                            for i, (_, names, _) in enumerate(x.rpaths):
                                with m.Case(i):
                                    m.d.sync += x.nbeats.eq(self._beats(list(names)))
                        m.next = "RADDR"
                    with m.Case(KernelOp.RUN):
                        m.next = "RUN"
                    with m.Case(KernelOp.PRNG_SET):
                        m.next = "PRNG_SET"
                    with m.Case(KernelOp.PRNG_GET):
                        m.next = "PRNG_GET"
                    with m.Case(KernelOp.CLEAR_RANGES):
                        m.d.comb += eng.rg_clear.eq(1)
                    with m.Default():
                        m.next = "DRAIN"          # unknown command: stop (the host's packer never emits one)

    def _write_states(self, m: Module, x: SimpleNamespace) -> None:
        """WRITE: each row's beats into the row register, then one write cycle (WPULSE)."""
        B, k, n_row = KERNEL_BEAT_BITS, x.k, x.n_row
        with m.State("WDATA"):
            with m.If(n_row == x.hdr["count"]):
                m.next = "HDR"
            with m.Elif(x.err.read):
                m.next = "DRAIN"          # the rest of the rows will never come
            with m.Elif(x.cf.r_rdy):
                m.d.comb += x.cf.r_en.eq(1)
                for j in range(x.max_beats):
                    with m.If(k == j):
                        m.d.sync += x.row[j * B:(j + 1) * B].eq(x.beat)
                with m.If(k == x.nbeats - 1):
                    m.d.sync += k.eq(0)
                    m.next = "WPULSE"
                with m.Else():
                    m.d.sync += k.eq(k + 1)
        with m.State("WPULSE"):
            m.d.comb += x.strobe.eq(1)
            m.d.sync += n_row.eq(n_row + 1)
            m.next = "WDATA"

    def _read_states(self, m: Module, x: SimpleNamespace) -> None:
        """READ: per row, the address cycle, the row captured, its beats pushed to the output."""
        eng, k, n_row, of = self.engine, x.k, x.n_row, x.of
        with m.State("RADDR"):
            with m.If(n_row == x.hdr["count"]):
                m.next = "HDR"
            with m.Else():
                m.d.comb += x.raddr.eq(1)
                m.next = "RCAP"
        with m.State("RCAP"):
            with m.Switch(x.hdr["port"]):
                for i, (_, names, _) in enumerate(x.rpaths):
                    with m.Case(i):
                        m.d.sync += x.row.eq(Cat(*[getattr(eng, n) for n in names]))
            m.d.sync += k.eq(0)
            m.next = "RPUSH"
        with m.State("RPUSH"):
            with m.If(of.w_rdy):
                m.d.comb += [of.w_en.eq(1), of.w_data.eq(x.row.word_select(k, KERNEL_BEAT_BITS))]
                with m.If(k == x.nbeats - 1):
                    m.d.sync += n_row.eq(n_row + 1)
                    m.next = "RADDR"
                with m.Else():
                    m.d.sync += k.eq(k + 1)

    def _engine_states(self, m: Module, x: SimpleNamespace) -> None:
        """RUN (a program, its cycle count to the output) and the noise generator's PRNG_SET, PRNG_GET."""
        eng, hdr, of, cycles = self.engine, x.hdr, x.of, x.cycles
        with m.State("RUN"):
            m.d.comb += [eng.start.eq(1), eng.start_pc.eq(hdr["arg"])]
            m.d.sync += cycles.eq(0)      # counted as the program's cycle model counts: edge taking start -> done
            m.next = "RWAIT"
        with m.State("RWAIT"):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(eng.done):
                m.next = "RDONE"
        with m.State("RDONE"):
            with m.If(of.w_rdy):
                m.d.comb += [of.w_en.eq(1), of.w_data.eq(cycles)]
                m.next = "HDR"
        with m.State("PRNG_SET"):
            m.d.comb += [eng.prng_we.eq(1), eng.prng_seed.eq(hdr["arg"])]
            m.next = "HDR"
        with m.State("PRNG_GET"):
            with m.If(of.w_rdy):
                m.d.comb += [of.w_en.eq(1), of.w_data.eq(eng.prng_state)]
                m.next = "HDR"

    def _drain_state(self, m: Module, x: SimpleNamespace) -> None:
        """DRAIN: every output beat written and acknowledged, no command beat in flight."""
        cf = x.cf
        with m.State("DRAIN"):
            m.d.sync += x.flush.eq(1)
            m.d.comb += cf.r_en.eq(cf.r_rdy)          # (beats after END are dropped)
            with m.If(x.flush & x.drained & ~x.r_active & ~x.ar_valid & ~cf.r_rdy):
                m.d.comb += x.finish.eq(1)
                m.next = "IDLE"

    def _engine_host_ports(self, m: Module, x: SimpleNamespace) -> None:
        """The engine's host ports, from the header and the row register."""
        eng, hdr, row = self.engine, x.hdr, x.row
        addr = hdr["base"] + x.n_row
        for i, (prefix, names) in enumerate(x.wports):
            sel = x.strobe & (hdr["op"] == KernelOp.WRITE) & (hdr["port"] == i)
            we = getattr(eng, f"{prefix}_we")
            m.d.comb += we.eq(Mux(sel, hdr["arg"], 0))
            shift = 0
            for n in names:
                w = self._width(n)
                with m.If(sel):
                    m.d.comb += getattr(eng, n).eq(row[shift:shift + w])
                shift += w
        for i, (_, _, re) in enumerate(x.rpaths):
            if re is not None:
                with m.If(x.raddr & (hdr["port"] == i) & (hdr["op"] == KernelOp.READ)):
                    m.d.comb += getattr(eng, re).eq(hdr["arg"])
        # address ports (shared by a port's writes and reads): the current row
        # sorted: a set's order follows Python's hash seed, and the Verilog must not
        for name in sorted({f"{p}_addr" for p, _ in x.wports} | {a for a, _, _ in x.rpaths}):
            m.d.comb += getattr(eng, name).eq(addr)
