"""The training engine: the array, the vector unit, C Adam lanes, the Adam
state memories and the controller that runs a program (docs/program.md).

The host writes the program (``prog_*``, one instruction per word: an opcode
and 32-bit field slots, ``fixar.config.ISA_FIELDS``), the scalar registers
(``scal_*``: gamma, tau, 2/B, step sizes, Adam codes; ``fixar.config.Scalar``)
and the memories (the array's host ports, passed through, and ``st_*`` for
the Adam moments), then pulses ``start``; ``done`` pulses when a HALT is
reached; ``busy`` is high from the cycle after ``start`` until ``done``, which
is the first cycle the host may use the memory ports again (as the array's).
While the controller runs, it owns every memory port.

Instructions:
* ARRAY: the fields drive the array's descriptor; the controller waits for
  its ``done`` and one more cycle (the last results reach memory).
* VEC: for every core, ``rows`` rows from ``a_row``/``b_row``/``flag_row`` of
  its activation memory through the vector unit into ``y_row``: read a, read
  b, read the flags (non-zero words), compute, write: one row at a time.
* ADAM: bias rows then weight rows, streamed one row per cycle: W (port A),
  its gradient and moments read at one row, the C lanes update them, W and
  the moments written back (port B) the lanes' latency later. The pass has
  its own state machine; with ``overlap`` the controller goes on after the
  bias rows, and only ARRAY instructions run beside the weight rows (the
  compiler gives them the other group of the weight memory's RAMs), but for
  a packed weight gradient, which writes the gradient memory's read port.
* SYNC: wait for that pass's last cycle (any instruction but ARRAY waits
  in decode the same way).
* SOFT: target rows <- SOFT(online rows, target rows) through the vector
  unit, weights then biases: weight rows one per cycle (the weight memory's
  even and odd rows are separate RAMs, and targets sit an odd number of rows
  from their networks, so the target read takes the half the online read
  does not), bias rows one per two cycles (port B alternates between
  reading targets and writing them).
VEC streams like SOFT (a through port A, b through port B, per core);
with flags (TD's done) each row's flag row follows through port A on the
odd cycle, so it streams too, two cycles behind (it took eight a row as
three reads, compute and write in turn: 8,194 of a B = 512 step's cycles).
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fixar.config import (
    ISA_FIELD_BITS,
    ISA_FIELDS,
    ISA_WORDS,
    ConfigError,
    FixarConfig,
    Opcode,
    Scalar,
    VecOp,
    enum_bits,
)
from fixar.config.timing import timing
from fixar.gen.lib.pipe import delay
from fixar.gen.lib.ram import TwoPortRAM
from fixar.gen.units.adam import AdamUnit
from fixar.gen.units.array import Array
from fixar.gen.units.vector import VectorUnit

SCALARS = 16


class Trainer(wiring.Component):
    @staticmethod
    def check(cfg: FixarConfig) -> None:
        pe = cfg.pe
        if not pe.weight == pe.out == pe.act32:
            raise ConfigError("training needs pe.weight == pe.out == pe.act32: layer outputs feed layers, "
                              "and the vector unit updates weights (soft targets) in the activation format")

    def __init__(self, cfg: FixarConfig):
        self.check(cfg)
        self.cfg = cfg
        self.array = Array(cfg)
        AdamUnit.check(cfg)
        VectorUnit.check(cfg)
        ar, mem, ad = cfg.array, cfg.memory, cfg.adam
        C = ar.cols
        self.g_rows, self.b_rows = mem.grad_words // C, mem.bias_words // C
        a = self.array.signature.members
        super().__init__({
            "start": In(1), "start_pc": In(range(mem.program_instrs)), "busy": Out(1), "done": Out(1),
            # the vector unit's noise generator: seeded by the host, its state readable (checkpoints)
            "prng_we": In(1), "prng_seed": In(32), "prng_state": Out(32),
            "prog_we": In(1), "prog_addr": In(range(mem.program_instrs)),
            "prog_data": In(unsigned(ISA_WORDS * ISA_FIELD_BITS)),
            "scal_we": In(1), "scal_addr": In(range(SCALARS)), "scal_data": In(64),
            # host access while idle: the array's memory ports ...
            **{name: a[name] for name in ("wm_we", "wm_re", "wm_addr", "wm_data", "wm_rdata",
                                           "am_we", "am_re", "am_addr", "am_data", "am_rdata",
                                           "bm_we", "bm_addr", "bm_data", "bm_rdata",
                                           "tm_we", "tm_addr", "tm_data",
                                           "gm_raddr", "gm_rdata", "gbm_raddr", "gbm_rdata",
                                           # QAT: quantizer table and range trackers (host, idle only)
                                           "qt_we", "qt_addr", "qt_delta", "qt_zero", "qt_magic", "qt_shift",
                                           "rg_clear", "rg_addr", "rg_lo", "rg_hi")},
            # ... and the Adam moments (st_we bit 0: weight rows, bit 1: bias rows)
            "st_we": In(2), "st_addr": In(range(max(self.g_rows, self.b_rows))),
            "st_m_data": In(unsigned(C * ad.m.bits)), "st_v_data": In(unsigned(C * ad.v.bits)),
            "st_m_rdata": Out(unsigned(C * ad.m.bits)), "st_v_rdata": Out(unsigned(C * ad.v.bits)),
            "st_bm_rdata": Out(unsigned(C * ad.m.bits)), "st_bv_rdata": Out(unsigned(C * ad.v.bits)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.submodules.array = arr = self.array
        m.submodules.vector = vec = VectorUnit(cfg)
        lanes = [AdamUnit(cfg) for _ in range(cfg.array.cols)]
        for i, u in enumerate(lanes):
            m.submodules[f"adam_{i}"] = u

        pr, scal = self._program_and_scalars(m)
        st_mems = self._adam_state_memories(m)

        # ---- instruction register and its fields
        instr = Signal(ISA_WORDS * ISA_FIELD_BITS)
        opcode = instr[:ISA_FIELD_BITS]

        # ---- controller
        c = self._controller_registers(m)
        self._host_port_muxes(m, arr, st_mems, c)

        # array descriptor from the ARRAY fields
        for name in ISA_FIELDS[Opcode.ARRAY]:
            port = getattr(arr, f"op_{name}")
            m.d.comb += port.eq(_field(instr, Opcode.ARRAY, name)[:len(port)])

        if self.cfg.bfp.in_array:     # the seed streams of BFP products, for this step
            m.d.comb += arr.bfp_bases.eq(array_bfp_bases(_scalar(scal, Scalar.BFP_BASES)))
        self._vector_inputs(m, arr, vec, instr, scal, c)
        # second read path (port A) and the weight memory's third (targets), the controller's only
        c.ctl_a = ctl_a = {k: Signal.like(getattr(arr, k), name=f"ctl_{k}")
                           for k in ("wm_rea", "wm_aaddr", "wm_tre", "wm_taddr", "wm_twe", "wm_twaddr", "wm_twdata",
                                     "bm_rea", "bm_aaddr", "am_rea", "am_aaddr")}
        for k, sig in ctl_a.items():
            m.d.comb += getattr(arr, k).eq(Mux(c.busy, sig, 0))
        # the Adam pass keeps its own copy of its instruction: with ``overlap`` the controller
        # fetches the next instructions while the weight pass runs
        c.a_instr = a_instr = Signal.like(instr, name="adam_instr")
        adam_out = self._adam_lanes(m, arr, lanes, st_mems, a_instr, scal, c)

        N = cfg.array.cores
        core_mask = Signal(N)
        m.d.comb += core_mask.eq(Const(1, N) << c.core)
        c.core_mask = core_mask

        F = {op: {n: _field(instr, op, n) for n in ISA_FIELDS[op]} for op in (Opcode.VEC, Opcode.SOFT)}
        fv, fs = F[Opcode.VEC], F[Opcode.SOFT]
        fa = {n: _field(a_instr, Opcode.ADAM, n) for n in ISA_FIELDS[Opcode.ADAM]}

        with m.FSM(name="ctl"):
            self._dispatch_states(m, arr, pr, instr, opcode, c)
            self._vec_stream_state(m, fv, c)
            self._soft_state(m, fs, c)
        with m.FSM(name="adam"):
            self._adam_states(m, fa, instr, lanes, adam_out, c)
        return m

    def _program_and_scalars(self, m: Module) -> tuple:
        """The program memory (host-written, read combinationally at FETCH) and the scalar registers."""
        mem = self.cfg.memory
        m.submodules.program = prog = Memory(shape=unsigned(ISA_WORDS * ISA_FIELD_BITS),
                                             depth=mem.program_instrs, init=[])
        pw = prog.write_port()
        pr = prog.read_port(domain="comb")
        m.d.comb += [pw.addr.eq(self.prog_addr), pw.data.eq(self.prog_data), pw.en.eq(self.prog_we)]
        scal = [Signal(64, name=f"scalar_{Scalar(i).name.lower() if i in Scalar._value2member_map_ else i}")
                for i in range(SCALARS)]
        with m.If(self.scal_we):
            for i in range(SCALARS):
                with m.If(self.scal_addr == i):
                    m.d.sync += scal[i].eq(self.scal_data)
        return pr, scal

    def _adam_state_memories(self, m: Module) -> tuple:
        """The Adam moment memories (rows mirror the gradient memories), read by the host on port A."""
        mem, ad, C = self.cfg.memory, self.cfg.adam, self.cfg.array.cols
        mb, vb = ad.m.bits, ad.v.bits
        mmem, vmem = TwoPortRAM(mem, C * mb, self.g_rows, "adam_m"), TwoPortRAM(mem, C * vb, self.g_rows, "adam_v")
        bmm, bvm = TwoPortRAM(mem, C * mb, self.b_rows, "adam_bm"), TwoPortRAM(mem, C * vb, self.b_rows, "adam_bv")
        for name, ram in (("adam_m", mmem), ("adam_v", vmem), ("adam_bm", bmm), ("adam_bv", bvm)):
            m.submodules[name] = ram.instance
        m.d.comb += [self.st_m_rdata.eq(mmem.a_data), self.st_v_rdata.eq(vmem.a_data),
                     self.st_bm_rdata.eq(bmm.a_data), self.st_bv_rdata.eq(bvm.a_data)]
        return mmem, vmem, bmm, bvm

    def _controller_registers(self, m: Module) -> SimpleNamespace:
        """The controller's registers; the namespace the other blocks add their
        shared signals to (port overrides, vector unit controls)."""
        R, N, wb = self.cfg.array.rows, self.cfg.array.cores, self.cfg.pe.weight.bits
        pc = Signal(range(self.cfg.memory.program_instrs))
        row = Signal(32)                # rows done (written)
        rd = Signal(32)                 # rows read (streaming passes)
        tick = Signal()                 # SOFT: even cycles read, odd cycles write
        # the Adam pass's own registers (it may run beside the array: ADAM's overlap)
        a_row, a_rd = Signal(32, name="adam_row"), Signal(32, name="adam_rd")   # rows written, read
        trd = Signal(32)                # ADAM with a fused soft update: target rows read ...
        trow = Signal(32)               # ... and written
        adam_issue = Signal()           # a row read last cycle: its data reaches the lanes now
        a_bias = Signal(name="adam_bias_pass")   # 1: the bias rows (first), 0: the weight rows
        a_busy = Signal(name="adam_busy")        # an ADAM pass is running
        a_start = Signal(name="adam_start")      # DECODE starts one (comb)
        a_last = Signal(name="adam_last")        # its last cycle (comb): a SYNC may go on
        a_bias_last = Signal(name="adam_bias_last")   # the bias pass's last cycle (comb)
        soft_issue = Signal()
        core = Signal(range(max(N, 2)))
        bias_pass = Signal()            # ADAM / SOFT: 0 weight rows, 1 bias rows
        reg_a = Signal(R * wb)
        reg_b = Signal(R * wb)
        reg_f = Signal(R)
        running = Signal()              # a program is being run (until the HALT)
        busy = Signal()                 # ... and it is not the HALT's cycle: the host may use ports then
        m.d.comb += [busy.eq(running & ~self.done), self.busy.eq(busy)]
        return SimpleNamespace(pc=pc, row=row, rd=rd, tick=tick, trd=trd, trow=trow, adam_issue=adam_issue,
                               a_row=a_row, a_rd=a_rd, a_bias=a_bias, a_busy=a_busy, a_start=a_start,
                               a_last=a_last, a_bias_last=a_bias_last, soft_issue=soft_issue,
                               core=core, bias_pass=bias_pass, reg_a=reg_a, reg_b=reg_b, reg_f=reg_f,
                               running=running, busy=busy)

    def _host_port_muxes(self, m: Module, arr, st_mems: tuple, c: SimpleNamespace) -> None:
        """The memory ports: the host drives them by default; the controller
        overrides while busy (its drivers: c.ctl, c.st_*)."""
        mmem, vmem, bmm, bvm = st_mems
        busy = c.busy
        ctl = {k: Signal.like(getattr(self, k), name=f"ctl_{k}") for k in
               ("wm_we", "wm_re", "wm_addr", "wm_data", "am_we", "am_re", "am_addr", "am_data",
                "bm_we", "bm_addr", "bm_data", "gm_raddr", "gbm_raddr")}
        st_addr = Signal.like(self.st_addr, name="ctl_st_addr")
        for k, sig in ctl.items():
            m.d.comb += getattr(arr, k).eq(Mux(busy, sig, getattr(self, k)))
        for k in ("wm_rdata", "am_rdata", "bm_rdata", "gm_rdata", "gbm_rdata"):
            m.d.comb += getattr(self, k).eq(getattr(arr, k))
        m.d.comb += [arr.tm_we.eq(Mux(busy, 0, self.tm_we)), arr.tm_addr.eq(self.tm_addr),
                     arr.tm_data.eq(self.tm_data)]
        m.d.comb += [arr.qt_we.eq(Mux(busy, 0, self.qt_we)), arr.rg_clear.eq(Mux(busy, 0, self.rg_clear))]
        m.d.comb += [getattr(arr, k).eq(getattr(self, k)) for k in ("qt_addr", "qt_delta", "qt_zero", "qt_magic",
                                                                     "qt_shift", "rg_addr")]
        m.d.comb += [self.rg_lo.eq(arr.rg_lo), self.rg_hi.eq(arr.rg_hi)]
        addr = Mux(busy, st_addr, self.st_addr)
        m.d.comb += [mmem.a_addr.eq(addr), vmem.a_addr.eq(addr), bmm.a_addr.eq(addr), bvm.a_addr.eq(addr)]
        st_we = Signal(2, name="ctl_st_we")
        st_waddr = Signal.like(self.st_addr, name="ctl_st_waddr")
        st_m = Signal.like(self.st_m_data, name="ctl_st_m")
        st_v = Signal.like(self.st_v_data, name="ctl_st_v")
        for ram, bit, data in ((mmem, 0, "m"), (vmem, 0, "v"), (bmm, 1, "m"), (bvm, 1, "v")):
            m.d.comb += [ram.b_addr.eq(Mux(busy, st_waddr, self.st_addr)),
                         ram.b_we.eq(Mux(busy, st_we[bit], self.st_we[bit])),
                         ram.b_wdata.eq(Mux(busy, st_m if data == "m" else st_v,
                                            self.st_m_data if data == "m" else self.st_v_data))]
        c.ctl, c.st_addr, c.st_we, c.st_waddr, c.st_m, c.st_v = ctl, st_addr, st_we, st_waddr, st_m, st_v

    def _vector_inputs(self, m: Module, arr, vec, instr, scal: list, c: SimpleNamespace) -> None:
        """The vector unit's inputs: straight from memory (SOFT and flag-less
        VEC streaming), or for a VEC with flags from registers that hold a
        row's a and b until its flags arrive (see _vec_stream_state)."""
        R, wb = self.cfg.array.rows, self.cfg.pe.weight.bits
        core, bias_pass, busy = c.core, c.bias_pass, c.busy
        vec_valid = Signal()            # a VEC with flags: its row's a, b and flags are in reg_*
        fv_op = instr.word_select(1 + ISA_FIELDS[Opcode.VEC].index("op"), ISA_FIELD_BITS)[:enum_bits(VecOp)]
        fv_coef = instr.word_select(1 + ISA_FIELDS[Opcode.VEC].index("coef"), ISA_FIELD_BITS)[:4]
        fv_count = instr.word_select(1 + ISA_FIELDS[Opcode.VEC].index("count"), ISA_FIELD_BITS)[:len(vec.count)]
        fv_limit = _field(instr, Opcode.VEC, "limit")[:len(vec.limit)]   # held by instr while the VEC runs
        streaming = Signal()            # SOFT and VEC stream; flag-less, straight from memory
        flagged = Signal()              # a streamed VEC with flags
        soft = Signal()                 # ... from the weight/bias memories (else a core's activations)
        core_a = Signal(R * wb)
        core_b = Signal(R * wb)
        m.d.comb += [core_a.eq(arr.am_adata.word_select(core, R * wb)),
                     core_b.eq(arr.am_rdata.word_select(core, R * wb))]
        tau, coef = _scalar(scal, Scalar.TAU), _scalar(scal, fv_coef)
        # ADAM with a fused soft update feeds the vector unit from the Adam lanes and the target rows
        fused, fused_valid = Signal(), Signal()
        fused_a, fused_b = Signal(R * wb), Signal(R * wb)
        with_soft = Signal()            # SOFT's coefficient and operation (a SOFT pass, or ADAM's fused one)
        m.d.comb += with_soft.eq(soft | fused)
        plain = streaming & ~flagged
        m.d.comb += [vec.valid.eq(Mux(fused, fused_valid, Mux(plain, c.soft_issue, vec_valid))),
                     vec.op.eq(Mux(with_soft, VecOp.SOFT, fv_op)),
                     vec.c.eq(Mux(with_soft, tau, coef)[:len(vec.c)]),
                     vec.count.eq(Mux(plain, fv_count, R)), vec.limit.eq(fv_limit),
                     vec.a.eq(Mux(fused, fused_a, Mux(soft, Mux(bias_pass, arr.bm_adata, arr.wm_adata),
                                                      Mux(plain, core_a, c.reg_a)))),
                     vec.b.eq(Mux(fused, fused_b, Mux(soft, Mux(bias_pass, arr.bm_rdata, arr.wm_tdata),
                                                      Mux(plain, core_b, c.reg_b)))),
                     vec.flag.eq(Mux(plain, 0, c.reg_f)),
                     vec.seed_we.eq(self.prng_we & ~busy), vec.seed.eq(self.prng_seed),
                     self.prng_state.eq(vec.prng_state)]
        soft_out_valid = Signal()
        soft_out = Signal(R * wb)
        m.d.sync += [soft_out_valid.eq(vec.out_valid & (streaming | fused)), soft_out.eq(vec.y)]
        c.vec_valid, c.streaming, c.flagged, c.soft, c.core_a, c.core_b = vec_valid, streaming, flagged, soft, \
            core_a, core_b
        c.fused, c.fused_valid, c.fused_a, c.fused_b = fused, fused_valid, fused_a, fused_b
        c.soft_out_valid, c.soft_out = soft_out_valid, soft_out

    def _adam_lanes(self, m: Module, arr, lanes: list, st_mems: tuple, instr, scal: list,
                    c: SimpleNamespace) -> tuple:
        """The Adam lanes: W from the weight or bias memory, G from the gradient
        memories, the moments from the state memories. Returns their W, m, v rows."""
        ad, wb = self.cfg.adam, self.cfg.pe.weight.bits
        gb, mb, vb = ad.grad.bits, ad.m.bits, ad.v.bits
        mmem, vmem, bmm, bvm = st_mems
        bias_pass = c.a_bias
        adam_valid = Signal()
        m.d.comb += adam_valid.eq(c.adam_issue)
        w_row_data = Mux(bias_pass, arr.bm_adata, arr.wm_adata)
        g_row_data = Mux(bias_pass, arr.gbm_rdata, arr.gm_rdata)
        m_row_data = Mux(bias_pass, bmm.a_data, mmem.a_data)
        v_row_data = Mux(bias_pass, bvm.a_data, vmem.a_data)
        lr_sel = _field(instr, Opcode.ADAM, "lr")
        for i, u in enumerate(lanes):
            m.d.comb += [u.valid.eq(adam_valid), u.w.eq(w_row_data.word_select(i, wb)),
                         u.g.eq(g_row_data.word_select(i, gb)), u.m.eq(m_row_data.word_select(i, mb)),
                         u.v.eq(v_row_data.word_select(i, vb)),
                         u.b1.eq(_scalar(scal, Scalar.B1)), u.c1.eq(_scalar(scal, Scalar.C1)),
                         u.b2.eq(_scalar(scal, Scalar.B2)), u.c2.eq(_scalar(scal, Scalar.C2)),
                         u.e2.eq(_scalar(scal, Scalar.E2)), u.lr.eq(_scalar(scal, lr_sel[:4]))]
        adam_w = Cat(*[u.out_w for u in lanes])
        adam_m = Cat(*[u.out_m for u in lanes])
        adam_v = Cat(*[u.out_v for u in lanes])
        return adam_w, adam_m, adam_v

    def _dispatch_states(self, m: Module, arr, pr, instr, opcode, c: SimpleNamespace) -> None:
        """IDLE, FETCH, DECODE (to each instruction's states) and ARRAY's: start it, wait for done and a cycle."""
        pc, row, rd, tick, core, bias_pass, running = c.pc, c.row, c.rd, c.tick, c.core, c.bias_pass, c.running
        with m.State("IDLE"):
            with m.If(self.start):
                m.d.sync += [pc.eq(self.start_pc), running.eq(1)]
                m.next = "FETCH"
        with m.State("FETCH"):
            m.d.comb += pr.addr.eq(pc)
            m.d.sync += [instr.eq(pr.data), row.eq(0), core.eq(0), bias_pass.eq(0)]
            m.next = "DECODE"
        with m.State("DECODE"):
            # everything but ARRAY waits for an ADAM pass running beside the array: until the
            # pass's last cycle, which uses no port (a SYNC does nothing else), or for a new ADAM
            # until the cycle after, when the pass's state machine is idle again
            waits = Mux(opcode == Opcode.ADAM, c.a_busy, c.a_busy & ~c.a_last)
            # ... and so does a packed weight gradient: it writes the gradient memory
            # through port A, which the pass reads
            packed_grad = _field(instr, Opcode.ARRAY, "grad")[0] & _field(instr, Opcode.ARRAY, "pq")[0]
            beside = (opcode == Opcode.ARRAY) & ~packed_grad
            with m.If(~waits | beside):
                with m.Switch(opcode):
                    with m.Case(Opcode.ARRAY):
                        m.d.comb += arr.start.eq(1)
                        m.next = "ARRAY_WAIT"
                    with m.Case(Opcode.VEC):
                        m.d.sync += [rd.eq(0), tick.eq(0), c.soft_issue.eq(0)]
                        m.next = "VEC_RUN"
                    with m.Case(Opcode.ADAM):
                        m.d.comb += c.a_start.eq(1)
                        m.next = "ADAM_WAIT"
                    with m.Case(Opcode.SOFT):
                        m.d.sync += [rd.eq(0), tick.eq(0), c.soft_issue.eq(0)]
                        m.next = "SOFT_RUN"
                    with m.Case(Opcode.SYNC):
                        _next_instr(m, pc)
                    with m.Default():   # HALT
                        m.d.comb += self.done.eq(1)
                        m.d.sync += running.eq(0)
                        m.next = "IDLE"
        with m.State("ADAM_WAIT"):      # until the pass ends, or with overlap until its bias rows are done
            with m.If(c.a_last | (c.a_bias_last & _field(c.a_instr, Opcode.ADAM, "overlap")[0])):
                _next_instr(m, pc)
        with m.State("ARRAY_WAIT"):
            with m.If(arr.done):
                m.next = "ARRAY_SETTLE"
        with m.State("ARRAY_SETTLE"):   # the last stored results reach memory
            _next_instr(m, pc)

    def _vec_stream_state(self, m: Module, fv: dict, c: SimpleNamespace) -> None:
        """VEC, streamed like SOFT: per core, a (port A) and b (port B) read on
        even cycles, y written through port B on odd ones. With flags (TD's
        done) the row's flag row is read through port A on the odd cycle
        after, and a and b wait for it in registers: the row enters the
        vector unit two cycles later than a flag-less one, on a cycle of the
        same parity, so its y is written on an odd cycle too."""
        ctl, ctl_a, row, rd, tick, core, core_mask = c.ctl, c.ctl_a, c.row, c.rd, c.tick, c.core, c.core_mask
        R, wb = self.cfg.array.rows, self.cfg.pe.weight.bits
        flagged = fv["use_flag"][0]
        flag_data = Signal(name="vec_flag_data")     # this cycle, port A's data is a flag row
        with m.State("VEC_RUN"):
            m.d.comb += [c.streaming.eq(1), c.flagged.eq(flagged)]
            m.d.sync += [flag_data.eq(0), c.vec_valid.eq(flag_data),
                         c.reg_f.eq(Cat(*[c.core_a.word_select(j, wb).any() for j in range(R)]))]
            m.d.sync += tick.eq(~tick)
            with m.If((rd == fv["rows"]) & (row == fv["rows"])):
                m.d.sync += tick.eq(0)
                with m.If(core + 1 < fv["cores"]):
                    m.d.sync += [core.eq(core + 1), rd.eq(0), row.eq(0)]
                with m.Else():
                    _next_instr(m, c.pc)
            with m.Else():
                issue = (rd < fv["rows"]) & ~tick
                m.d.comb += [ctl["am_re"].eq(Mux(issue, core_mask, 0)), ctl["am_addr"].eq(fv["b_row"] + rd)]
                with m.If(issue):
                    m.d.comb += [ctl_a["am_rea"].eq(core_mask), ctl_a["am_aaddr"].eq(fv["a_row"] + rd)]
                with m.Elif(flagged & c.soft_issue):      # the row's a and b arrived: read its flags
                    m.d.comb += [ctl_a["am_rea"].eq(core_mask), ctl_a["am_aaddr"].eq(fv["flag_row"] + rd - 1)]
                    m.d.sync += [c.reg_a.eq(c.core_a), c.reg_b.eq(c.core_b), flag_data.eq(1)]
                m.d.sync += [c.soft_issue.eq(issue), rd.eq(Mux(issue, rd + 1, rd))]
                with m.If(c.soft_out_valid):
                    m.d.comb += [ctl["am_we"].eq(core_mask), ctl["am_addr"].eq(fv["y_row"] + row),
                                 ctl["am_data"].eq(c.soft_out)]
                    m.d.sync += row.eq(row + 1)

    def _adam_states(self, m: Module, fa: dict, instr, lanes: list, adam_out: tuple, c: SimpleNamespace) -> None:
        """ADAM, in its own state machine: bias rows, then weight rows, streamed:
        one row read per cycle through port A (W) and the gradient/moment read
        ports, the C lanes' results written back through port B LATENCY cycles
        later. The controller waits for the bias rows; with ``overlap`` it then
        goes on (ARRAY instructions on the other weight group, until a SYNC)
        while the weight rows stream. With ``soft`` the weight pass also
        soft-updates the target's weights: each target row is read through the
        weight memory's third path so that it reaches the vector unit with its
        updated row from the lanes, and SOFT's result is written through the
        second write path. The rows that share a cycle are of opposite parity
        (the compiler puts the targets an odd number of rows away): the target
        read comes an even number of rows after the online read it shares a
        cycle with (its lead over the lanes' output has the lanes' latency's
        other parity, a hold register making up the difference), and the
        target write an even number of rows after the updated row written in
        its cycle (the vector unit's latency plus its output register is even)."""
        ctl, ctl_a, row, rd, bias_pass = c.ctl, c.ctl_a, c.a_row, c.a_rd, c.a_bias
        adam_w, adam_m, adam_v = adam_out
        n_rows = Mux(bias_pass, fa["b_rows"], fa["w_rows"])
        base = Mux(bias_pass, fa["b_row"], fa["w_row"])
        g_base = Mux(bias_pass, fa["b_row"], fa["g_row"])     # gradients and moments
        lanes_latency, soft_latency = timing(self.cfg).adam, timing(self.cfg).vector + 1
        assert soft_latency % 2 == 0, "the fused soft update's target write needs an even SOFT latency"
        hold = 1 if lanes_latency % 2 else 0        # the target read's lead d = hold + 1 has the other parity
        fused = Signal()
        t_issue = delay(m, c.adam_issue & fused, lanes_latency - 1 - hold, "t_issue")
        t_data = delay(m, self.array.wm_tdata, hold, "t_data")
        with m.State("IDLE"):
            with m.If(c.a_start):
                m.d.sync += [c.a_instr.eq(instr), c.a_busy.eq(1), bias_pass.eq(1), rd.eq(0), row.eq(0),
                             c.trd.eq(0), c.trow.eq(0), c.adam_issue.eq(0)]
                m.next = "RUN"
        with m.State("RUN"):
            m.d.comb += [fused.eq(fa["soft"][0] & ~bias_pass), c.fused.eq(fused),
                         c.fused_valid.eq(lanes[0].out_valid & fused), c.fused_a.eq(adam_w), c.fused_b.eq(t_data),
                         ctl_a["wm_tre"].eq(t_issue), ctl_a["wm_taddr"].eq(fa["t_row"] + c.trd)]
            m.d.sync += c.trd.eq(Mux(t_issue, c.trd + 1, c.trd))
            with m.If(c.soft_out_valid & fused):
                m.d.comb += [ctl_a["wm_twe"].eq(1), ctl_a["wm_twaddr"].eq(fa["t_row"] + c.trow),
                             ctl_a["wm_twdata"].eq(c.soft_out)]
                m.d.sync += c.trow.eq(c.trow + 1)
            with m.If((rd == n_rows) & (row == n_rows) & (~fused | (c.trow == n_rows))):
                with m.If(bias_pass):
                    m.d.comb += c.a_bias_last.eq(1)
                    m.d.sync += [bias_pass.eq(0), rd.eq(0), row.eq(0)]
                with m.Else():
                    m.d.comb += c.a_last.eq(1)
                    m.d.sync += c.a_busy.eq(0)
                    m.next = "IDLE"
            with m.Else():
                issue = rd < n_rows
                m.d.comb += [ctl_a["wm_rea"].eq(issue & ~bias_pass), ctl_a["bm_rea"].eq(issue & bias_pass),
                             ctl_a["wm_aaddr"].eq(base + rd), ctl_a["bm_aaddr"].eq(base + rd),
                             ctl["gm_raddr"].eq(g_base + rd), ctl["gbm_raddr"].eq(g_base + rd),
                             c.st_addr.eq(g_base + rd)]
                m.d.sync += [c.adam_issue.eq(issue), rd.eq(Mux(issue, rd + 1, rd))]
                with m.If(lanes[0].out_valid):
                    r_w = base + row
                    m.d.comb += [ctl["wm_we"].eq(~bias_pass), ctl["wm_addr"].eq(r_w), ctl["wm_data"].eq(adam_w),
                                 ctl["bm_we"].eq(bias_pass), ctl["bm_addr"].eq(r_w), ctl["bm_data"].eq(adam_w),
                                 c.st_we.eq(Mux(bias_pass, 2, 1)), c.st_waddr.eq(g_base + row), c.st_m.eq(adam_m),
                                 c.st_v.eq(adam_v)]
                    m.d.sync += row.eq(row + 1)

    def _soft_state(self, m: Module, fs: dict, c: SimpleNamespace) -> None:
        """SOFT: target <- SOFT(online, target), weight rows then bias rows.
        Weight rows stream at one row per cycle: online rows through port A,
        target rows through the weight memory's third read path (the other
        half of its interleaved rows: the compiler puts the targets an odd
        number of rows away), results written through port B. Bias rows (one
        RAM) at one row per two cycles: online rows through port A, target
        rows through port B on even cycles, results written through port B
        on odd ones (the vector unit's output is held one extra cycle)."""
        ctl, ctl_a, row, rd, tick, bias_pass = c.ctl, c.ctl_a, c.row, c.rd, c.tick, c.bias_pass
        s_rows = Mux(bias_pass, fs["b_rows"], fs["w_rows"])
        src0 = Mux(bias_pass, fs["b_src"], fs["w_src"])
        dst0 = Mux(bias_pass, fs["b_dst"], fs["w_dst"])
        with m.State("SOFT_RUN"):
            m.d.comb += [c.streaming.eq(1), c.soft.eq(1)]
            m.d.sync += tick.eq(~tick)
            with m.If((rd == s_rows) & (row == s_rows)):
                m.d.sync += tick.eq(0)
                with m.If(bias_pass):
                    _next_instr(m, c.pc)
                with m.Else():
                    m.d.sync += [bias_pass.eq(1), rd.eq(0), row.eq(0)]
            with m.Else():
                issue = (rd < s_rows) & (~tick | ~bias_pass)
                m.d.comb += [ctl_a["wm_rea"].eq(issue & ~bias_pass), ctl_a["bm_rea"].eq(issue & bias_pass),
                             ctl_a["wm_aaddr"].eq(src0 + rd), ctl_a["bm_aaddr"].eq(src0 + rd),
                             ctl_a["wm_tre"].eq(issue & ~bias_pass), ctl_a["wm_taddr"].eq(dst0 + rd),
                             ctl["bm_addr"].eq(dst0 + rd)]
                m.d.sync += [c.soft_issue.eq(issue), rd.eq(Mux(issue, rd + 1, rd))]
                with m.If(c.soft_out_valid):
                    m.d.comb += [ctl["wm_we"].eq(~bias_pass), ctl["wm_addr"].eq(dst0 + row),
                                 ctl["wm_data"].eq(c.soft_out), ctl["bm_we"].eq(bias_pass),
                                 ctl["bm_addr"].eq(dst0 + row), ctl["bm_data"].eq(c.soft_out)]
                    m.d.sync += row.eq(row + 1)


def _field(instr, op: Opcode, name: str):
    """Field ``name`` of an ``op`` instruction in the instruction register."""
    i = ISA_FIELDS[op].index(name)
    return instr.word_select(i + 1, ISA_FIELD_BITS)


def array_bfp_bases(word):
    """The array's BFP seed-stream bases from scalar BFP_BASES (a module
    function so that a bench can plant the two streams swapped)."""
    return word


def _scalar(scal: list, index):
    """Scalar register ``index`` (a constant, or a field selecting one)."""
    return Cat(*scal).word_select(index, 64)


def _next_instr(m: Module, pc) -> None:
    """The instruction is done: fetch the next one."""
    m.d.sync += pc.eq(pc + 1)
    m.next = "FETCH"
