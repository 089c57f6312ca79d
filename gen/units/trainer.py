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
* ADAM: weight rows then bias rows, streamed one row per cycle: W (port A),
  its gradient and moments read at one row, the C lanes update them, W and
  the moments written back (port B) the lanes' latency later.
* SOFT: target rows <- SOFT(online rows, target rows) through the vector
  unit, weights then biases, one row per two cycles (port B alternates
  between reading targets and writing them).
VEC streams like SOFT (a through port A, b through port B, per core);
with flags (TD's done) it reads three operands a row, about eight cycles
per row, on tensors one feature tile wide.
"""
from __future__ import annotations

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
        ar, mem, ad, pe = cfg.array, cfg.memory, cfg.adam, cfg.pe
        R, C, N = ar.rows, ar.cols, ar.cores
        wb, gb, mb, vb = pe.weight.bits, ad.grad.bits, ad.m.bits, ad.v.bits
        m = Module()
        m.submodules.array = arr = self.array
        m.submodules.vector = vec = VectorUnit(cfg)
        lanes = [AdamUnit(cfg) for _ in range(C)]
        for i, u in enumerate(lanes):
            m.submodules[f"adam_{i}"] = u

        # ---- program and scalar registers
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

        def scalar(index):
            return Cat(*scal).word_select(index, 64)

        # ---- Adam state memories (rows mirror the gradient memories)
        mmem, vmem = TwoPortRAM(mem, C * mb, self.g_rows, "adam_m"), TwoPortRAM(mem, C * vb, self.g_rows, "adam_v")
        bmm, bvm = TwoPortRAM(mem, C * mb, self.b_rows, "adam_bm"), TwoPortRAM(mem, C * vb, self.b_rows, "adam_bv")
        for name, ram in (("adam_m", mmem), ("adam_v", vmem), ("adam_bm", bmm), ("adam_bv", bvm)):
            m.submodules[name] = ram.instance
        m.d.comb += [self.st_m_rdata.eq(mmem.a_data), self.st_v_rdata.eq(vmem.a_data),
                     self.st_bm_rdata.eq(bmm.a_data), self.st_bv_rdata.eq(bvm.a_data)]

        # ---- instruction register and its fields
        instr = Signal(ISA_WORDS * ISA_FIELD_BITS)
        opcode = instr[:ISA_FIELD_BITS]

        def field(op: Opcode, name: str):
            i = ISA_FIELDS[op].index(name)
            return instr.word_select(i + 1, ISA_FIELD_BITS)

        # ---- controller
        pc = Signal(range(mem.program_instrs))
        row = Signal(32)                # rows done (written)
        rd = Signal(32)                 # rows read (streaming passes)
        tick = Signal()                 # SOFT: even cycles read, odd cycles write
        adam_issue = Signal()           # a row read last cycle: its data reaches the lanes now
        soft_issue = Signal()
        core = Signal(range(max(N, 2)))
        bias_pass = Signal()            # ADAM / SOFT: 0 weight rows, 1 bias rows
        reg_a = Signal(R * wb)
        reg_b = Signal(R * wb)
        reg_f = Signal(R)
        running = Signal()              # a program is being run (until the HALT)
        busy = Signal()                 # ... and it is not the HALT's cycle: the host may use ports then
        m.d.comb += [busy.eq(running & ~self.done), self.busy.eq(busy)]

        # defaults: host drives the memories; the controller overrides while busy
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

        # array descriptor from the ARRAY fields
        for name in ISA_FIELDS[Opcode.ARRAY]:
            port = getattr(arr, f"op_{name}")
            m.d.comb += port.eq(field(Opcode.ARRAY, name)[:len(port)])

        # vector unit inputs (held in registers by the FSM)
        vec_valid = Signal()
        vec_op = Signal(enum_bits(VecOp))
        vec_c = Signal(64)
        fv_op = instr.word_select(1 + ISA_FIELDS[Opcode.VEC].index("op"), ISA_FIELD_BITS)[:enum_bits(VecOp)]
        fv_coef = instr.word_select(1 + ISA_FIELDS[Opcode.VEC].index("coef"), ISA_FIELD_BITS)[:4]
        fv_count = instr.word_select(1 + ISA_FIELDS[Opcode.VEC].index("count"), ISA_FIELD_BITS)[:len(vec.count)]
        fv_limit = field(Opcode.VEC, "limit")[:len(vec.limit)]   # held by instr while the VEC runs
        streaming = Signal()            # SOFT and flag-less VEC feed the vector unit straight from memory
        soft = Signal()                 # ... from the weight/bias memories (else a core's activations)
        core_a = Signal(R * wb)
        core_b = Signal(R * wb)
        m.d.comb += [core_a.eq(arr.am_adata.word_select(core, R * wb)),
                     core_b.eq(arr.am_rdata.word_select(core, R * wb))]
        m.d.comb += [vec.valid.eq(Mux(streaming, soft_issue, vec_valid)),
                     vec.op.eq(Mux(soft, VecOp.SOFT, Mux(streaming, fv_op, vec_op))),
                     vec.c.eq(Mux(soft, scalar(Scalar.TAU), Mux(streaming, scalar(fv_coef), vec_c))[:len(vec.c)]),
                     vec.count.eq(Mux(streaming, fv_count, R)), vec.limit.eq(fv_limit),
                     vec.a.eq(Mux(soft, Mux(bias_pass, arr.bm_adata, arr.wm_adata), Mux(streaming, core_a, reg_a))),
                     vec.b.eq(Mux(soft, Mux(bias_pass, arr.bm_rdata, arr.wm_rdata), Mux(streaming, core_b, reg_b))),
                     vec.flag.eq(Mux(streaming, 0, reg_f)),
                     vec.seed_we.eq(self.prng_we & ~busy), vec.seed.eq(self.prng_seed),
                     self.prng_state.eq(vec.prng_state)]
        soft_out_valid = Signal()
        soft_out = Signal(R * wb)
        m.d.sync += [soft_out_valid.eq(vec.out_valid & streaming), soft_out.eq(vec.y)]
        # second read path (port A), the controller's only
        ctl_a = {k: Signal.like(getattr(arr, k), name=f"ctl_{k}")
                 for k in ("wm_rea", "wm_aaddr", "bm_rea", "bm_aaddr", "am_rea", "am_aaddr")}
        for k, sig in ctl_a.items():
            m.d.comb += getattr(arr, k).eq(Mux(busy, sig, 0))
        # Adam lanes: W from the weight or bias memory, G from the gradient memories
        adam_valid = Signal()
        m.d.comb += adam_valid.eq(adam_issue)
        w_row_data = Mux(bias_pass, arr.bm_adata, arr.wm_adata)
        g_row_data = Mux(bias_pass, arr.gbm_rdata, arr.gm_rdata)
        m_row_data = Mux(bias_pass, bmm.a_data, mmem.a_data)
        v_row_data = Mux(bias_pass, bvm.a_data, vmem.a_data)
        lr_sel = field(Opcode.ADAM, "lr")
        for i, u in enumerate(lanes):
            m.d.comb += [u.valid.eq(adam_valid), u.w.eq(w_row_data.word_select(i, wb)),
                         u.g.eq(g_row_data.word_select(i, gb)), u.m.eq(m_row_data.word_select(i, mb)),
                         u.v.eq(v_row_data.word_select(i, vb)),
                         u.b1.eq(scalar(Scalar.B1)), u.c1.eq(scalar(Scalar.C1)), u.b2.eq(scalar(Scalar.B2)),
                         u.c2.eq(scalar(Scalar.C2)), u.e2.eq(scalar(Scalar.E2)), u.lr.eq(scalar(lr_sel[:4]))]
        adam_w = Cat(*[u.out_w for u in lanes])
        adam_m = Cat(*[u.out_m for u in lanes])
        adam_v = Cat(*[u.out_v for u in lanes])

        core_mask = Signal(N)
        m.d.comb += core_mask.eq(Const(1, N) << core)
        core_row = Signal(R * wb)
        m.d.comb += core_row.eq(arr.am_rdata.word_select(core, R * wb))

        F = {op: {n: field(op, n) for n in ISA_FIELDS[op]} for op in (Opcode.VEC, Opcode.ADAM, Opcode.SOFT)}
        fv, fa, fs = F[Opcode.VEC], F[Opcode.ADAM], F[Opcode.SOFT]

        def next_instr():
            m.d.sync += pc.eq(pc + 1)
            m.next = "FETCH"

        with m.FSM(name="ctl"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(self.start_pc), running.eq(1)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += pr.addr.eq(pc)
                m.d.sync += [instr.eq(pr.data), row.eq(0), core.eq(0), bias_pass.eq(0)]
                m.next = "DECODE"
            with m.State("DECODE"):
                with m.Switch(opcode):
                    with m.Case(Opcode.ARRAY):
                        m.d.comb += arr.start.eq(1)
                        m.next = "ARRAY_WAIT"
                    with m.Case(Opcode.VEC):
                        m.d.sync += [rd.eq(0), tick.eq(0), soft_issue.eq(0)]
                        with m.If(field(Opcode.VEC, "use_flag")[0]):
                            m.next = "VEC_RA"
                        with m.Else():
                            m.next = "VEC_RUN"
                    with m.Case(Opcode.ADAM):
                        m.d.sync += [rd.eq(0), adam_issue.eq(0)]
                        m.next = "ADAM_RUN"
                    with m.Case(Opcode.SOFT):
                        m.d.sync += [rd.eq(0), tick.eq(0), soft_issue.eq(0)]
                        m.next = "SOFT_RUN"
                    with m.Default():   # HALT
                        m.d.comb += self.done.eq(1)
                        m.d.sync += running.eq(0)
                        m.next = "IDLE"
            with m.State("ARRAY_WAIT"):
                with m.If(arr.done):
                    m.next = "ARRAY_SETTLE"
            with m.State("ARRAY_SETTLE"):   # the last stored results reach memory
                next_instr()

            # ---- VEC: per core, per row: read a, b, flags; compute; write y
            for state, src in (("VEC_RA", "a_row"), ("VEC_RB", "b_row"), ("VEC_RF", "flag_row")):
                with m.State(state):
                    m.d.comb += [ctl["am_re"].eq(core_mask), ctl["am_addr"].eq(fv[src] + row)]
                    if state == "VEC_RB":
                        m.d.sync += reg_a.eq(core_row)
                    if state == "VEC_RF":
                        m.d.sync += reg_b.eq(core_row)
                    m.next = {"VEC_RA": "VEC_RB", "VEC_RB": "VEC_RF", "VEC_RF": "VEC_GO"}[state]
            with m.State("VEC_GO"):
                flags = [core_row.word_select(j, wb).any() & fv["use_flag"][0] for j in range(R)]
                m.d.sync += [reg_f.eq(Cat(*flags)), vec_valid.eq(1), vec_op.eq(fv["op"][:enum_bits(VecOp)]),
                             vec_c.eq(scalar(fv["coef"][:4]))]
                m.next = "VEC_WAIT"
            with m.State("VEC_WAIT"):
                m.d.sync += vec_valid.eq(0)
                with m.If(vec.out_valid):
                    m.d.comb += [ctl["am_we"].eq(core_mask), ctl["am_addr"].eq(fv["y_row"] + row),
                                 ctl["am_data"].eq(vec.y)]
                    with m.If(row + 1 < fv["rows"]):
                        m.d.sync += row.eq(row + 1)
                        m.next = "VEC_RA"
                    with m.Elif(core + 1 < fv["cores"]):
                        m.d.sync += [row.eq(0), core.eq(core + 1)]
                        m.next = "VEC_RA"
                    with m.Else():
                        next_instr()

            # ---- VEC without flags, streamed like SOFT: per core, a (port A) and b
            # (port B) read on even cycles, y written through port B on odd ones
            with m.State("VEC_RUN"):
                m.d.comb += streaming.eq(1)
                m.d.sync += tick.eq(~tick)
                with m.If((rd == fv["rows"]) & (row == fv["rows"])):
                    m.d.sync += tick.eq(0)
                    with m.If(core + 1 < fv["cores"]):
                        m.d.sync += [core.eq(core + 1), rd.eq(0), row.eq(0)]
                    with m.Else():
                        next_instr()
                with m.Else():
                    issue = (rd < fv["rows"]) & ~tick
                    m.d.comb += [ctl_a["am_rea"].eq(Mux(issue, core_mask, 0)), ctl_a["am_aaddr"].eq(fv["a_row"] + rd),
                                 ctl["am_re"].eq(Mux(issue, core_mask, 0)), ctl["am_addr"].eq(fv["b_row"] + rd)]
                    m.d.sync += [soft_issue.eq(issue), rd.eq(Mux(issue, rd + 1, rd))]
                    with m.If(soft_out_valid):
                        m.d.comb += [ctl["am_we"].eq(core_mask), ctl["am_addr"].eq(fv["y_row"] + row),
                                     ctl["am_data"].eq(soft_out)]
                        m.d.sync += row.eq(row + 1)

            # ---- ADAM: weight rows, then bias rows, streamed: one row read per
            # cycle through port A (W) and the gradient/moment read ports, the
            # C lanes' results written back through port B LATENCY cycles later
            n_rows = Mux(bias_pass, fa["b_rows"], fa["w_rows"])
            base = Mux(bias_pass, fa["b_row"], fa["w_row"])
            with m.State("ADAM_RUN"):
                with m.If((rd == n_rows) & (row == n_rows)):
                    with m.If(bias_pass):
                        next_instr()
                    with m.Else():
                        m.d.sync += [bias_pass.eq(1), rd.eq(0), row.eq(0)]
                with m.Else():
                    issue = rd < n_rows
                    m.d.comb += [ctl_a["wm_rea"].eq(issue & ~bias_pass), ctl_a["bm_rea"].eq(issue & bias_pass),
                                 ctl_a["wm_aaddr"].eq(base + rd), ctl_a["bm_aaddr"].eq(base + rd),
                                 ctl["gm_raddr"].eq(base + rd), ctl["gbm_raddr"].eq(base + rd),
                                 st_addr.eq(base + rd)]
                    m.d.sync += [adam_issue.eq(issue), rd.eq(Mux(issue, rd + 1, rd))]
                    with m.If(lanes[0].out_valid):
                        r_w = base + row
                        m.d.comb += [ctl["wm_we"].eq(~bias_pass), ctl["wm_addr"].eq(r_w), ctl["wm_data"].eq(adam_w),
                                     ctl["bm_we"].eq(bias_pass), ctl["bm_addr"].eq(r_w), ctl["bm_data"].eq(adam_w),
                                     st_we.eq(Mux(bias_pass, 2, 1)), st_waddr.eq(r_w), st_m.eq(adam_m),
                                     st_v.eq(adam_v)]
                        m.d.sync += row.eq(row + 1)

            # ---- SOFT: target <- SOFT(online, target), weight rows then bias rows,
            # streamed at one row per two cycles: online rows through port A, target
            # rows through port B on even cycles, results written through port B
            # on odd ones (the vector unit's output is held one extra cycle)
            s_rows = Mux(bias_pass, fs["b_rows"], fs["w_rows"])
            src0 = Mux(bias_pass, fs["b_src"], fs["w_src"])
            dst0 = Mux(bias_pass, fs["b_dst"], fs["w_dst"])
            with m.State("SOFT_RUN"):
                m.d.comb += [streaming.eq(1), soft.eq(1)]
                m.d.sync += tick.eq(~tick)
                with m.If((rd == s_rows) & (row == s_rows)):
                    m.d.sync += tick.eq(0)
                    with m.If(bias_pass):
                        next_instr()
                    with m.Else():
                        m.d.sync += [bias_pass.eq(1), rd.eq(0), row.eq(0)]
                with m.Else():
                    issue = (rd < s_rows) & ~tick
                    m.d.comb += [ctl_a["wm_rea"].eq(issue & ~bias_pass), ctl_a["bm_rea"].eq(issue & bias_pass),
                                 ctl_a["wm_aaddr"].eq(src0 + rd), ctl_a["bm_aaddr"].eq(src0 + rd),
                                 ctl["wm_re"].eq(issue & ~bias_pass), ctl["wm_addr"].eq(dst0 + rd),
                                 ctl["bm_addr"].eq(dst0 + rd)]
                    m.d.sync += [soft_issue.eq(issue), rd.eq(Mux(issue, rd + 1, rd))]
                    with m.If(soft_out_valid):
                        m.d.comb += [ctl["wm_we"].eq(~bias_pass), ctl["wm_addr"].eq(dst0 + row),
                                     ctl["wm_data"].eq(soft_out), ctl["bm_we"].eq(bias_pass),
                                     ctl["bm_addr"].eq(dst0 + row), ctl["bm_data"].eq(soft_out)]
                        m.d.sync += row.eq(row + 1)
        return m
