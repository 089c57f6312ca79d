"""The adaptive array: N cores, the shared banked weight memory, per-core
activation memories, the bias memory and the controller that runs one layer
operation (docs/array.md).

Host side (idle only): ``wm_*`` writes one weight memory row (one word per
bank), ``am_*`` one activation row of the cores selected by ``am_we``,
``bm_*`` one bias row. An operation is described on the ``op_*`` ports
(latched by ``start``; see ``fixar.compiler.array_ops.Descriptor`` for their meaning)
and runs until ``done``, a one-cycle pulse in the cycle the last output is
visible; ``start`` is taken only when ``busy`` is low.

Schedule (the same as ``fixar.compiler.array_ops.cycles`` counts): a prologue of R
cycles loads the first tile's weights, one PE row per cycle; then each tile
step takes P = max(S, R) cycles: a swap to the loaded weights, S batch items,
and meanwhile the next step's R rows. Every request goes to the memories in
one cycle, their registered data is rotated/masked and registered in the
next, and reaches the cores in the cycle after: PIPE = 2 cycles. A BFP
product (``bfp.in_array`` configs) loads its tiles two steps ahead and
converts its operands on the way in: gen/units/array_bfp.py.

ReLU masks (docs/array.md): each core's mask memory keeps one bit per
activation word, 0 < y < limit, written (one cycle after the row) by every
store; a transposed product with ``mask`` reads the bits of its output item
with the item's request and the core zeroes the masked words, so the
backward's ReLU (and QAT's clipped inputs) costs no vector pass and no cycle.

Layouts: weight word (i, j) of a C x C tile is in bank (i + j) mod C at row
T*C + i. PE row r of the forward product needs the tile's column r (bank b
at row T*C + (b - r) mod C); the transposed product needs the tile's row r
(every bank at row T*C + r). Either way PE column c takes bank (c + r) mod C.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array as MuxArray
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fixar.config import (
    ISA_FIELDS,
    ActFunc,
    ConfigError,
    FixarConfig,
    GStore,
    Opcode,
    PEMode,
    enum_bits,
    packed_shift_max,
    quantizer_widths,
    weight_groups,
)
from fixar.config.bfp import BFP_STREAMS
from fixar.config.timing import ARRAY_PIPE_STAGES, array_stages
from fixar.gen.lib.pipe import delay as _delay
from fixar.gen.lib.pipe import reg
from fixar.gen.lib.ram import InterleavedRAM, TwoPortRAM
from fixar.gen.units import array_bfp
from fixar.gen.units.core import COORD_BITS, ArrayCore

_IDLE, _PRO, _RUN = 0, 1, 2     # the sequencer's phases: idle, prologue (first weights), tile steps


def _k_tile(d: dict, jj, n: int, N: int):
    """Core n's k-tile in round jj (intra-layer mode interleaves cores;
    a gradient product reduces over each core's own batch rows)."""
    return Mux(d["intra"], jj * N + n, jj)


def lane_values(out, lane):
    """What a packed product's lane store (pq_lane 1 or 2) writes: one lane's
    FXP32 values (the other lane's come from a second product); the low lane's
    is also every other product's result."""
    return Mux(lane[1], out.hi, out.lo)


def tracker_restarts(track, transpose):
    """Whether an operation's range tracker restarts with its first beat
    instead of widening: a tracking transposed product's (a hidden error's,
    QAT's 16-bit errors: each step's range, not the run's)."""
    return track & transpose


def high_lane_mask(row, next_row):
    """A packed transposed product's high-lane mask bits: its item's second
    vector's row, the next one (a module function so that a bench can plant
    the first row instead)."""
    return next_row


def mask_bit(word, limit):
    """A stored word's ReLU mask bit: the error passes where the layer input is
    positive and below its quantizer's top (VEC RELU_MASK's rule; a module
    function so that a bench can plant a wrong rule)."""
    return (word > 0) & (word < limit)


def _tree(m: Module, values: list, pick, name: str):
    """min or max of signed values by a comparator tree (combinational)."""
    level = 0
    while len(values) > 1:
        nxt = []
        for i in range(0, len(values) - 1, 2):
            a, b = values[i], values[i + 1]
            w = Signal(signed(max(len(a), len(b))), name=f"{name}_{level}_{i // 2}")
            m.d.comb += w.eq(Mux(a < b, a, b) if pick is min else Mux(a > b, a, b))
            nxt.append(w)
        if len(values) % 2:
            nxt.append(values[-1])
        values, level = nxt, level + 1
    return values[0]


class Array(wiring.Component):
    PIPE = ARRAY_PIPE_STAGES

    def __init__(self, cfg: FixarConfig):
        ArrayCore.check(cfg)
        self.cfg = cfg
        self.LATENCY = array_stages(cfg.pe)
        ar, mem, pe = cfg.array, cfg.memory, cfg.pe
        R, C, N = ar.rows, ar.cols, ar.cores
        self.w_rows, self.a_rows, self.b_rows = mem.weight_words // C, mem.act_words_per_core // R, \
            mem.bias_words // C
        self.t_rows = mem.xt_words_per_core // R
        self.g_rows = mem.grad_words // C
        if R < 2 or R & (R - 1):
            raise ConfigError(f"array.rows = {R}: the feature-major memory's bank rotation needs a power of two >= 2")
        tiles = range(self.w_rows // C + 1)
        ob = pe.out.bits
        slot_bits = max((ar.psum_slots - 1).bit_length(), 1)
        qw = quantizer_widths(cfg)
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1),
            "op_transpose": In(1), "op_intra": In(1),
            "op_mode": In(enum_bits(PEMode)), "op_func": In(enum_bits(ActFunc)),
            "op_bias": In(1), "op_store": In(1), "op_grad": In(1), "op_batch": In(range(ar.psum_slots + 1)),
            "op_store_t": In(1), "op_t_base": In(range(self.t_rows)),
            "op_gstore": In(2), "op_g_base": In(range(max(self.g_rows, self.b_rows))),
            "op_n_ot": In(tiles), "op_n_kt": In(tiles), "op_n_kr": In(tiles),
            "op_slots": In(range(ar.psum_slots + 1)),
            "op_w_base": In(range(self.w_rows)), "op_x_base": In(range(self.a_rows)),
            "op_y_base": In(range(self.a_rows)), "op_b_base": In(range(self.b_rows)),
            "op_track": In(1), "op_fq": In(1), "op_qidx": In(range(ar.quantizers)),
            # ReLU masks: every store keeps 0 < y < limit per word; a masked transposed
            # product zeroes the outputs whose bit at mask row m_base + (its row) is 0
            "op_mask": In(1), "op_m_base": In(range(self.a_rows)), "op_limit": In(unsigned(pe.act32.bits)),
            # a packed QAT product: slot 0 of each k-tile is its correction, an FXP32
            # item whose every input is the word pq_c; the others' lanes shift by pq_e
            "op_pq": In(1), "op_pq_e": In(range(packed_shift_max(cfg) + 1)),
            "op_pq_c": In(unsigned(pe.act32.bits)),
            # its store: 0 the codes (one packed word per item), 1 / 2 the low / high
            # lane's FXP32 values at their FXP32 rows (y_base + 2 (tile S' + slot) + lane - 1);
            # 3 (an FXP32 product with fq) two slots' codes in one word (a pair store)
            "op_pq_lane": In(range(4)),
            # the lanes' shift from quantizer table entry pq_q - 1 (log2 Delta - 16) instead
            # of pq_e (QAT's 16-bit errors: signed codes whose step changes every step)
            "op_pq_q": In(range(ar.quantizers + 1)),
            # its store_t: 0 both vectors' FXP32 values, 1 the codes in feature pairs
            # (the packed weight gradient's X^T, read by a gradient product with pq)
            "op_pq_t": In(1),
            # QAT: the quantizer table (host-written at the switch) and the range
            # trackers (phase 1: lo <= 0 <= hi; registered read; clear sets zeros)
            "qt_we": In(1), "qt_addr": In(range(ar.quantizers)),
            "qt_delta": In(unsigned(qw["delta"])), "qt_zero": In(unsigned(qw["zero"])),
            "qt_magic": In(unsigned(qw["magic"])), "qt_shift": In(unsigned(qw["shift"])),
            "rg_clear": In(1), "rg_addr": In(range(ar.quantizers)),
            "rg_lo": Out(signed(ob)), "rg_hi": Out(signed(ob)),
            "wm_we": In(1), "wm_addr": In(range(self.w_rows)), "wm_data": In(unsigned(C * pe.weight.bits)),
            "am_we": In(N), "am_addr": In(range(self.a_rows)), "am_data": In(unsigned(R * pe.act32.bits)),
            "tm_we": In(N), "tm_addr": In(range(self.t_rows)), "tm_data": In(unsigned(R * pe.act32.bits)),
            "gm_raddr": In(range(self.g_rows)), "gm_rdata": Out(unsigned(C * cfg.adam.grad.bits)),
            "gbm_raddr": In(range(self.b_rows)), "gbm_rdata": Out(unsigned(C * cfg.adam.grad.bits)),
            "bm_we": In(1), "bm_addr": In(range(self.b_rows)), "bm_data": In(unsigned(C * ob)),
            # reads through the same ports while idle (registered: data the cycle after the address)
            "wm_re": In(1), "wm_rdata": Out(unsigned(C * pe.weight.bits)),
            "am_re": In(N), "am_rdata": Out(unsigned(N * R * pe.act32.bits)),
            "bm_rdata": Out(unsigned(C * ob)),
            # a second read path through port A (the training controller's streaming passes)
            "wm_rea": In(1), "wm_aaddr": In(range(self.w_rows)), "wm_adata": Out(unsigned(C * pe.weight.bits)),
            # a third, read-only path (the soft update's target rows): the weight memory's rows
            # alternate between two RAMs, and this one reads the half port A is not reading
            "wm_tre": In(1), "wm_taddr": In(range(self.w_rows)), "wm_tdata": Out(unsigned(C * pe.weight.bits)),
            # ... and a second write path (the targets, written while port B writes the online rows)
            "wm_twe": In(1), "wm_twaddr": In(range(self.w_rows)), "wm_twdata": In(unsigned(C * pe.weight.bits)),
            "bm_rea": In(1), "bm_aaddr": In(range(self.b_rows)), "bm_adata": Out(unsigned(C * ob)),
            "am_rea": In(N), "am_aaddr": In(range(self.a_rows)), "am_adata": Out(unsigned(N * R * pe.act32.bits)),
            "out_valid": Out(N), "out_tile": Out(tiles), "out_slot": Out(unsigned(slot_bits)),
            "out_lo": Out(unsigned(N * C * ob)), "out_hi": Out(unsigned(N * C * ob)),
            # stochastic pe.out: the seed of an operation's rounding words, taken at start
            **({"rnd_seed": In(32)} if pe.out.needs_random else {}),
            # a BFP product (gen/units/array_bfp.py): its widths and seeds' place, and
            # with bfp.in_array the seed streams' bases for this step, taken at start
            **array_bfp.op_ports(cfg), **array_bfp.host_ports(cfg),
        })
        ports = {name[3:] for name in self.signature.members if name.startswith("op_")}
        fields = set(ISA_FIELDS[Opcode.ARRAY])
        assert ports == fields, f"op_* ports differ from the ARRAY instruction's fields: {sorted(ports ^ fields)}"

    def elaborate(self, platform):
        cfg = self.cfg
        R = cfg.array.rows
        m = Module()

        # ---- descriptor, latched at start
        names = ISA_FIELDS[Opcode.ARRAY]     # the descriptor, as the ARRAY instruction carries it
        d = {n: Signal.like(getattr(self, f"op_{n}"), name=f"d_{n}") for n in names}

        rnd_seed = Signal(32, name="d_rnd_seed")
        bases = Signal(32 * BFP_STREAMS, name="d_bfp_bases")
        phase, t, it, j, last_round, last_step, final_out, finished = self._sequencer(m, d, rnd_seed, bases)
        item, load, swap, l_it, l_j, row, conv = self._requests(m, d, phase, t, it, j, last_round, last_step)
        g_addr, g_zero = self._grad_load(m, d, load, l_it, l_j, row)
        q_sel = self._quantizer_table(m, d)

        amem = [TwoPortRAM(cfg.memory, R * cfg.pe.act32.bits, self.a_rows, f"amem_{n}") for n in range(cfg.array.cores)]
        tmem = self._feature_major_memories(m)
        words, w_zero = self._weight_memory(m, d, l_it, l_j, row)
        w_data = self._weight_words(m, d, words, w_zero, row, amem, g_zero, q_sel["step"])

        # ---- activation memories (one per core) and the bias memory
        bmem, bias = self._bias_memory(m, d, it)
        grad_fold = self._grad_stride(m, d)     # a folded bias gradient: (fold, X^T row stride)
        a_data = self._activation_items(m, d, amem, tmem, t, j, grad_fold)
        mmem, keep, mask_read = self._mask_memories(m, d, it, t)

        ctl_d = self._core_control(m, d, item, t, j, it, last_round, load, row, swap, conv)
        out_y_addr, out_m_addr, out_tile = self._output_bookkeeping(m, d, item, t, it, last_step, final_out, finished)
        seed_w = None
        if cfg.bfp.in_array:     # a BFP operation's converted items, and the rest as late as they are
            seed_w, seed_x = array_bfp.seeds(m, d, bases)
            groups = array_bfp.item_groups(m, cfg, d, t, j, _k_tile, self.PIPE)
            a_data = array_bfp.item_converters(m, cfg, d, a_data, _delay(m, item, self.PIPE, "bfp_item_valid"),
                                               groups, seed_x)
            w_data = [array_bfp.late(m, d, w, f"w_data_{n}") for n, w in enumerate(w_data)]
            keep = [array_bfp.late(m, d, k, f"keep_{n}") for n, k in enumerate(keep)]
            bias = array_bfp.late(m, d, bias, "bias")
        cores = self._cores(m, d, ctl_d, w_data, a_data, keep, bias, q_sel, rnd_seed, seed_w)
        reduce_all = self._cross_core_sums(m, d, cores)
        outs, from0 = self._core_outputs(m, cores)
        self._range_trackers(m, d, outs)
        self._outputs_and_store(m, d, outs, from0, amem, (mmem, mask_read), reduce_all, g_addr, out_y_addr)
        self._packed_mask_store(m, d, outs, mmem, out_m_addr)
        self._transposing_store(m, d, outs, tmem, out_tile)
        self._gradient_memories(m, d, outs, out_tile, grad_fold)

        # ---- host-side reads (port B; the array must be idle)
        m.d.comb += [self.am_rdata.eq(Cat(*[a.b_data for a in amem])), self.bm_rdata.eq(bmem.b_data),
                     self.bm_adata.eq(bmem.a_data),
                     self.am_adata.eq(Cat(*[a.a_data for a in amem]))]
        return m

    def _sequencer(self, m: Module, d: dict, rnd_seed: Signal, bases: Signal) -> tuple:
        """The sequencer: latches the descriptor at start, then steps through the
        prologue and the tile steps (tile it, round j, cycle t of the period)."""
        ar, pe = self.cfg.array, self.cfg.pe
        R = ar.rows
        names = ISA_FIELDS[Opcode.ARRAY]
        phase = Signal(2)
        # a BFP product's steps and prologue are longer (gen/units/array_bfp.py)
        in_array = self.cfg.bfp.in_array
        floor = array_bfp.period_floor(self.cfg) if in_array else R
        bfp = d["bfp_w"] != 0
        t = Signal(range(max(ar.psum_slots, R + floor) + 1))
        it = Signal.like(d["n_ot"], name="it")
        j = Signal.like(d["n_kr"], name="j")
        P = Signal.like(t, name="period")
        step_floor = Mux(bfp, floor, R) if in_array else R
        m.d.comb += P.eq(Mux(d["slots"] > step_floor, d["slots"], step_floor))
        prologue_end = Mux(bfp, R + floor - 1, R - 1) if in_array else R - 1
        last_round = Signal()
        last_step = Signal()
        m.d.comb += [last_round.eq(j == d["n_kr"] - 1), last_step.eq(last_round & (it == d["n_ot"] - 1))]

        final_out = Signal()  # the op's last output is visible (from the delay line below)
        finished = Signal()   # ... and, with store_t, its last transposed block is written
        pending = Signal(range(2))  # an op whose outputs have not all left the pipeline
        m.d.comb += [self.busy.eq((phase != _IDLE) | (pending & ~finished)), self.done.eq(finished)]
        with m.If(finished):
            m.d.sync += pending.eq(0)

        with m.Switch(phase):
            with m.Case(_IDLE):
                with m.If(self.start & ~self.busy):
                    m.d.sync += [d[n].eq(getattr(self, f"op_{n}")) for n in names]
                    if pe.out.needs_random:
                        m.d.sync += rnd_seed.eq(self.rnd_seed)
                    if self.cfg.bfp.in_array:
                        m.d.sync += bases.eq(self.bfp_bases)
                    m.d.sync += [phase.eq(_PRO), t.eq(0), it.eq(0), j.eq(0), pending.eq(1)]
            with m.Case(_PRO):
                m.d.sync += t.eq(t + 1)
                with m.If(t == prologue_end):
                    m.d.sync += [phase.eq(_RUN), t.eq(0)]
            with m.Default():  # RUN
                m.d.sync += t.eq(t + 1)
                with m.If(last_step & (t == d["slots"] - 1)):
                    m.d.sync += phase.eq(_IDLE)  # no loads follow the last step's items
                with m.Elif(t == P - 1):
                    m.d.sync += t.eq(0)
                    with m.If(last_round):
                        m.d.sync += [j.eq(0), it.eq(it + 1)]
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
        return phase, t, it, j, last_round, last_step, final_out, finished

    def _requests(self, m: Module, d: dict, phase, t, it, j, last_round, last_step) -> tuple:
        """This cycle's requests: a batch item, a weight row load, a weight swap,
        and which step's weights (l_it, l_j) and PE row are loading."""
        R = self.cfg.array.rows
        item = Signal()
        load = Signal()
        swap = Signal()
        m.d.comb += [item.eq((phase == _RUN) & (t < d["slots"])),
                     load.eq((phase == _PRO) | ((phase == _RUN) & (t < R) & ~last_step)),
                     swap.eq((phase == _RUN) & (t == 0))]
        # the step whose weights load now: (0, 0) in the prologue, else the next one
        l_it = Signal.like(it, name="load_it")
        l_j = Signal.like(j, name="load_j")
        with m.If(phase == _PRO):
            m.d.comb += [l_it.eq(0), l_j.eq(0)]
        with m.Elif(last_round):
            m.d.comb += [l_it.eq(it + 1), l_j.eq(0)]
        with m.Else():
            m.d.comb += [l_it.eq(it), l_j.eq(j + 1)]
        row = t[:max((R - 1).bit_length(), 1)]  # the PE row being loaded (t mod R while loading)
        conv = None
        if self.cfg.bfp.in_array:
            load, l_it, l_j, conv = array_bfp.schedule(m, self.cfg, d, phase == _PRO, phase == _RUN, t, it, j,
                                                       last_step, (load, l_it, l_j))
        return item, load, swap, l_it, l_j, row, conv

    def _grad_load(self, m: Module, d: dict, load, l_it, l_j, row) -> tuple:
        """Gradient product dW = D X^T: each core reduces over its own batch
        rows; the "weights" are D, read from the core's activation memory
        (port B, one slot-major row = one PE row of the tile: D[ot*C + c, b]),
        rows of batch entries beyond op_batch read as zero. D as codes (pq_q,
        QAT's 16-bit errors) has two batch entries a word: half the rows, and
        the entry's half picked from the word. Returns the row address and the
        delayed zero flag and half."""
        ar, R = self.cfg.array, self.cfg.array.rows
        g_rowb = Signal(range(ar.psum_slots + 2 * R), name="grad_load_b")
        m.d.comb += g_rowb.eq(l_j * R + row)
        codes = d["pq_q"] != 0
        g_addr = Signal(range(self.a_rows * 2 + ar.psum_slots * (self.w_rows // ar.cols + 1)), name="grad_load_addr")
        m.d.comb += g_addr.eq(d["w_base"] + Mux(codes, l_it * (d["batch"] >> 1) + (g_rowb >> 1),
                                                l_it * d["batch"] + g_rowb))
        g_zero = (_delay(m, g_rowb >= d["batch"], 1, "grad_load_zero"), _delay(m, g_rowb[0], 1, "grad_load_half"))
        grad_load = Signal(name="grad_load")
        m.d.comb += grad_load.eq(d["grad"] & load)
        return g_addr, g_zero

    def _feature_major_memories(self, m: Module) -> list:
        """Feature-major memory per core, R banks of one word: X^T row (j, k)
        (batch entries j*R + r of feature k) keeps word r in bank (r + k) mod R
        at row t_base + j*K + k. A forward beat (one batch entry, C features)
        then writes one word per bank (a transposing store with no buffer),
        and a gradient product reads a row from all banks at one address."""
        cfg = self.cfg
        R, N, ab = cfg.array.rows, cfg.array.cores, cfg.pe.act32.bits
        tmem = [[TwoPortRAM(cfg.memory, ab, self.t_rows, f"tmem_{n}_b{b}", a_writable=True) for b in range(R)]
                for n in range(N)]
        for n in range(N):
            for b in range(R):
                m.submodules[f"tmem_{n}_b{b}"] = tmem[n][b].instance
        return tmem

    def _weight_memory(self, m: Module, d: dict, l_it, l_j, row) -> tuple[list, list]:
        """The weight memory: C banks, one read port per core (two cores per RAM
        instance) addressed by the tile and PE row loading, and the host's write
        port. Each bank is two groups of RAMs, rows [0, H) and [H, rows)
        (fixar.config.weight_groups): every port goes to the group its
        address is in, so the controller's Adam pass can use all of one
        group's ports while the array reads the other. Returns the banks'
        words as each core and the controller's paths see them, and each
        core's delayed zero-tile flag."""
        cfg = self.cfg
        C, N, wb = cfg.array.cols, cfg.array.cores, cfg.pe.weight.bits
        groups = weight_groups(cfg)
        ultra = cfg.memory.ultra(self.w_rows)
        # even and odd rows in separate RAMs: the soft update's third port (InterleavedRAM)
        banks = [[[InterleavedRAM(cfg.memory, wb, rows, f"wmem_b{b}_p{q}_g{g}", ultra)
                   for g, (_, rows) in enumerate(groups)] for q in range((N + 1) // 2)] for b in range(C)]
        half = groups[1][0]
        path = {k: self._group_route(m, getattr(self, f"wm_{k}addr"), half, k or "h")
                for k in ("", "a", "t", "tw")}    # the controller's and host's paths: (group, local row)
        w_zero, core_group = [], []
        for n in range(N):
            kt = Signal.like(d["n_kt"], name=f"load_kt_{n}")
            m.d.comb += kt.eq(_k_tile(d, l_j, n, N))
            zero = Signal(name=f"load_zero_{n}")
            m.d.comb += zero.eq(kt >= d["n_kt"])
            tile = Signal(range(self.w_rows // C + 1), name=f"load_tile_{n}")
            m.d.comb += tile.eq(Mux(d["transpose"], kt * d["n_ot"] + l_it, l_it * d["n_kt"] + kt))
            base = Signal(range(self.w_rows + C), name=f"load_base_{n}")
            m.d.comb += base.eq(d["w_base"] + tile * C)
            # a tile lies in one group (the compiler keeps each network in one)
            grp, base = self._group_route(m, base, half, f"load_{n}")
            for b in range(C):
                skew = Mux(row == 0, b, b + C - row) if b == 0 else Mux(b >= row, b - row, b + C - row)  # (b - r) mod C
                addr = Mux(d["transpose"], base + row, base + skew)
                for g, ram in enumerate(banks[b][n // 2]):
                    if n % 2 == 0:
                        host = self.wm_rea & (path["a"][0] == g) if n == 0 else Const(0)
                        m.d.comb += ram.a_addr.eq(Mux(host, path["a"][1], addr))
                    else:
                        host = (self.wm_we | self.wm_re) & (path[""][0] == g)
                        m.d.comb += ram.b_addr.eq(Mux(host, path[""][1], addr))
            w_zero.append(_delay(m, zero, 1, f"load_zero_{n}"))
            core_group.append(_delay(m, grp, 1, f"load_group_{n}"))
        for b in range(C):
            for q, pair in enumerate(banks[b]):
                for g, ram in enumerate(pair):
                    if N % 2 == 1 and q == len(banks[b]) - 1:
                        m.d.comb += ram.b_addr.eq(path[""][1])
                    m.d.comb += [ram.b_we.eq(self.wm_we & (path[""][0] == g)),
                                 ram.b_wdata.eq(self.wm_data[b * wb:(b + 1) * wb]),
                                 ram.t_we.eq(self.wm_twe & (path["tw"][0] == g)), ram.t_addr.eq(path["tw"][1]),
                                 ram.t_wdata.eq(self.wm_twdata[b * wb:(b + 1) * wb])]
                    ram.connect(m)
            for g, ram in enumerate(banks[b][0]):
                m.d.comb += [ram.s_re.eq(self.wm_tre & (path["t"][0] == g)), ram.s_addr.eq(path["t"][1])]
        # reads are registered: the group that answers is the one addressed a cycle ago
        was = {k: _delay(m, path[k][0], 1, f"wm_{k or 'h'}_group") for k in ("", "a", "t")}
        pick = lambda sel, words: Mux(sel, words[1], words[0])
        m.d.comb += [self.wm_tdata.eq(Cat(*[pick(was["t"], [r.s_data for r in banks[b][0]]) for b in range(C)])),
                     self.wm_rdata.eq(Cat(*[pick(was[""], [r.b_data for r in banks[b][0]]) for b in range(C)])),
                     self.wm_adata.eq(Cat(*[pick(was["a"], [r.a_data for r in banks[b][0]]) for b in range(C)]))]
        words = [[pick(core_group[n], [r.a_data if n % 2 == 0 else r.b_data for r in banks[b][n // 2]])
                  for b in range(C)] for n in range(N)]
        return words, w_zero

    @staticmethod
    def _group_route(m: Module, addr, half: int, name: str) -> tuple:
        """A weight row's group (1: at or above row ``half``) and its row in that group."""
        grp = Signal(name=f"wm_{name}_grp")
        local = Signal.like(addr, name=f"wm_{name}_local")
        m.d.comb += [grp.eq(addr >= half), local.eq(addr - Mux(grp, half, 0))]
        return grp, local

    def _weight_words(self, m: Module, d: dict, words: list, w_zero: list, row, amem: list, g_zero,
                      step) -> list:
        """Each core's weight row: the banks' words rotated to PE columns (zero
        past the last k-tile), registered, or in a gradient product D's row;
        D as codes (pq_q): each word's half of this batch entry, sign-extended,
        registered, then shifted by the entry's step e (after the register: off
        the RAM's output path)."""
        R, C, N = self.cfg.array.rows, self.cfg.array.cols, self.cfg.array.cores
        wb, qb = self.cfg.pe.weight.bits, self.cfg.pe.act16.bits
        g_zero, g_half = g_zero
        codes = (d["pq_q"] != 0) & d["grad"]
        row1 = _delay(m, row, 1, "load_row")
        w_data = []
        for n in range(N):
            port = words[n]
            rotated = []
            for c in range(C):
                word = Signal(wb, name=f"w_rot_{n}_{c}")
                m.d.comb += word.eq(MuxArray([port[(c + r) % C] for r in range(R)])[row1])
                rotated.append(word)
            wd = Signal(C * wb, name=f"w_data_{n}")
            from_weights = Mux(w_zero[n], 0, Cat(*rotated))
            d_row = amem[n].b_data
            halves = []
            for c in range(C):       # this entry's code of column c, sign-extended to a weight word
                h = Signal(signed(wb), name=f"d_code_{n}_{c}")
                m.d.comb += h.eq(Mux(g_half, d_row[c * wb + qb:c * wb + 2 * qb], d_row[c * wb:c * wb + qb]).as_signed())
                halves.append(h)
            halves = Cat(*halves)
            m.d.sync += wd.eq(Mux(d["grad"], Mux(g_zero, 0, Mux(codes, halves, d_row)), from_weights))
            shifted = Cat(*[(wd[c * wb:(c + 1) * wb].as_signed() << step)[:wb] for c in range(C)])
            w_data.append(Mux(codes, shifted, wd))
        return w_data

    def _bias_memory(self, m: Module, d: dict, it) -> tuple:
        """The bias memory (the tile's row read at each step) and its registered row."""
        cfg = self.cfg
        C, ob = cfg.array.cols, cfg.pe.out.bits
        bmem = TwoPortRAM(cfg.memory, C * ob, self.b_rows, "bmem")
        m.submodules.bmem = bmem.instance
        m.d.comb += [bmem.a_addr.eq(Mux(self.bm_rea, self.bm_aaddr, d["b_base"] + it)), bmem.b_addr.eq(self.bm_addr),
                     bmem.b_we.eq(self.bm_we), bmem.b_wdata.eq(self.bm_data)]
        bias = Signal(C * ob)
        m.d.sync += bias.eq(bmem.a_data)
        return bmem, bias

    @staticmethod
    def _grad_stride(m: Module, d: dict) -> tuple:
        """(fold, stride): whether a gradient product carries its bias gradient
        in its last slot (GStore.BOTH), and its X^T row stride: K, or in a
        packed gradient K / 2 feature pairs (the slots less the ones slot and
        the correction slot)."""
        fold = Signal(name="grad_fold_bias")
        m.d.comb += fold.eq(d["grad"] & (d["gstore"] == GStore.BOTH))
        stride = Signal.like(d["slots"], name="grad_stride")
        m.d.comb += stride.eq(d["slots"] - fold - d["pq"])
        return fold, stride

    def _activation_items(self, m: Module, d: dict, amem: list, tmem: list, t, j, grad_fold: tuple) -> list:
        """Each core's registered activation row of this item: slot-major from its
        activation memory, or X^T from the feature-major memory in a gradient product."""
        R, N, ab = self.cfg.array.rows, self.cfg.array.cores, self.cfg.pe.act32.bits
        rb = max((R - 1).bit_length(), 1)
        fold, stride = grad_fold
        ones1 = _delay(m, fold & (t == d["slots"] - 1), 1, "item_ones")
        ones = Const(sum((1 << self.cfg.pe.act32.frac) << (r * ab) for r in range(R)), R * ab)
        # a packed QAT product: slot 0 streams the correction's word, the others
        # the packed rows (S - 1 of them per k-tile)
        correction = d["pq"] & (t == 0)
        corr1 = _delay(m, correction, 1, "item_correction")
        corr_word = Cat(*[d["pq_c"]] * R)
        data_slot = Mux(d["pq"], Mux(correction, 0, t - 1), t)[:len(t)]
        data_slots = d["slots"] - d["pq"]
        a_data = []
        for n in range(N):
            m.submodules[f"amem_{n}"] = amem[n].instance
            kt = Signal.like(d["n_kt"], name=f"item_kt_{n}")
            m.d.comb += kt.eq(_k_tile(d, j, n, N))
            zero = Signal(name=f"item_zero_{n}")
            m.d.comb += zero.eq(kt >= d["n_kt"])
            item_row = d["x_base"] + Mux(zero, 0, kt) * data_slots + data_slot
            m.d.comb += amem[n].a_addr.eq(Mux(self.am_rea[n], self.am_aaddr, item_row))
            for b in range(R):
                m.d.comb += tmem[n][b].a_addr.eq(d["x_base"] + Mux(zero, 0, kt) * stride + data_slot)
            z1 = _delay(m, zero, 1, f"item_zero_{n}")
            # word r of feature k is in bank (r + k) mod R; of feature pair k', in bank (r + 2k') mod R
            k1 = _delay(m, Mux(d["pq"], data_slot << 1, data_slot)[:rb], 1, f"item_feature_{n}")
            xt = Cat(*[MuxArray([tmem[n][(r + q) % R].a_data for q in range(R)])[k1] for r in range(R)])
            a = Signal(R * ab, name=f"a_{n}")
            # a gradient product streams X^T from the feature-major memory; a folded
            # bias gradient's last slot streams ones (the X^T row it addresses is unused)
            m.d.sync += a.eq(Mux(z1, 0, Mux(ones1, ones, Mux(corr1, corr_word,
                                                             Mux(d["grad"], xt, amem[n].a_data)))))
            a_data.append(a)
        return a_data

    def _mask_memories(self, m: Module, d: dict, it, t) -> tuple[list, list]:
        """The ReLU mask memory per core: one bit per activation word, at the
        activation memory's rows (written by _outputs_and_store). A masked
        transposed product reads the row of its output item (m_base + it*S + t:
        output tile it is feature tile it, as R == C) with the item's request,
        so the bits reach the core beside the item's activations (PIPE) and
        travel down its pipeline: no extra cycle. Returns the memories and
        each core's registered keep bits (2R: the low lane's, then the high
        lane's; all ones when not masking) and port B's read of the high
        lane's rows (its enable and row), which the stores share."""
        R, N = self.cfg.array.rows, self.cfg.array.cores
        mmem = [TwoPortRAM(self.cfg.memory, R, self.a_rows, f"mmem_{n}", a_writable=True) for n in range(N)]
        ones = Const((1 << R) - 1, R)
        # (a packed forward product's mask flag means its store keeps mask bits: it reads none;
        # a packed transposed product reads its item's two vectors' rows, the FXP32 layout's
        # m_base + 2 (tile S' + slot) and the next, through ports A and B)
        packed_read = d["mask"] & d["pq"] & d["transpose"]
        pair_row = Signal(range(self.a_rows * 2 + 2 * self.cfg.array.psum_slots), name="mask_pair_row")
        m.d.comb += pair_row.eq(d["m_base"] + ((it * (d["slots"] - 1) + t - (t != 0)) << 1))
        keep = []
        for n in range(N):
            m.submodules[f"mmem_{n}"] = mmem[n].instance
            m.d.comb += mmem[n].a_addr.eq(Mux(packed_read, pair_row, d["m_base"] + it * d["slots"] + t))
            k = Signal(2 * R, name=f"keep_{n}")
            m.d.sync += k.eq(Cat(Mux(d["mask"] & (~d["pq"] | d["transpose"]), mmem[n].a_data, ones),
                                 Mux(packed_read, high_lane_mask(mmem[n].a_data, mmem[n].b_data), ones)))
            keep.append(k)
        return mmem, keep, (packed_read, pair_row + 1)

    def _core_control(self, m: Module, d: dict, item, t, j, it, last_round, load, row, swap, conv) -> dict:
        """Control to the cores, PIPE cycles after the request (a BFP
        operation's BFP_ITEM_STAGES more), and the weight conversion's requests
        with their tile's groups per core (``cv_group0_<n>``)."""
        # a packed gradient's bias slot (ones) is an FXP32 item like its correction
        ones = d["pq"] & d["grad"] & (d["gstore"] == GStore.BOTH) & (t == d["slots"] - 1)
        ctl = {"valid": item, "slot": t, "first": j == 0, "last": last_round, "w_ld": load, "w_row": row,
               "w_swap": swap, "correction": d["pq"] & (t == 0), "ones": ones}
        if self.cfg.pe.out.needs_random:
            ctl["rnd_i0"] = (it * self.cfg.array.cols)[:COORD_BITS]     # the feature of the item's column 0
        if conv is not None:
            ctl.update({k: conv[k] for k in ("cv", "cv_start", "cv_i")})
            for n in range(self.cfg.array.cores):    # column c of the converting tile: group0 + c stride
                ctl[f"cv_group0_{n}"], stride = array_bfp.weight_groups(self.cfg, d, conv, n, _k_tile)
            ctl["cv_stride"] = stride
        delayed = {k: _delay(m, v, self.PIPE, f"ctl_{k}") for k, v in ctl.items()}
        if self.cfg.bfp.in_array:
            delayed = {k: array_bfp.late(m, d, v, f"ctl_{k}") for k, v in delayed.items()}
        return delayed

    def _output_bookkeeping(self, m: Module, d: dict, item, t, it, last_step, final_out, finished) -> tuple:
        """Output bookkeeping, LATENCY cycles after the request: the store row,
        the tile, and the operation's end."""
        y_addr = Signal(range(self.a_rows * 2 + 2 * self.cfg.array.psum_slots), name="y_addr")
        # a packed QAT product's stored rows skip its correction slot (slot 0, never
        # output); a lane store's rows are the FXP32 layout's, two per packed item
        item_row = it * (d["slots"] - d["pq"]) + t - d["pq"]
        lane = d["pq_lane"]
        # (a pair store, pq_lane 3: one row per two items, written with the second)
        m.d.comb += y_addr.eq(d["y_base"] + Mux(lane == 3, item_row >> 1,
                                                Mux(lane != 0, (item_row << 1) + lane[1], item_row)))
        out_y_addr = self._out_delay(m, d, y_addr, "y_addr")
        # a packed store's mask rows: its two vectors' rows as an FXP32 product of
        # the same batch has them (2 S' per tile), from m_base
        m_addr = Signal(range(self.a_rows * 2 + 2 * self.cfg.array.psum_slots), name="m_addr")
        m.d.comb += m_addr.eq(d["m_base"] + ((it * (d["slots"] - 1) + t - 1) << 1))
        out_m_addr = self._out_delay(m, d, m_addr, "m_addr")
        out_tile = self._out_delay(m, d, it, "tile")
        final = Signal(name="final_req")
        m.d.comb += final.eq(item & last_step & (t == d["slots"] - 1))
        m.d.comb += final_out.eq(self._out_delay(m, d, final, "final", pulse=True))
        m.d.comb += finished.eq(final_out)
        m.d.comb += self.out_tile.eq(out_tile)
        return out_y_addr, out_m_addr, out_tile

    def _out_delay(self, m: Module, d: dict, value, name: str, pulse: bool = False):
        """``value`` LATENCY cycles later, as the outputs of its request (a BFP operation's are later still)."""
        out = _delay(m, value, self.LATENCY, name)
        return array_bfp.late(m, d, out, f"out_{name}", pulse) if self.cfg.bfp.in_array else out

    def _quantizer_table(self, m: Module, d: dict) -> dict:
        """QAT quantizer table: the operation's entry goes to every core's output stage."""
        qw = quantizer_widths(self.cfg)
        Q = self.cfg.array.quantizers
        table = {k: [Signal(unsigned(qw[k]), name=f"qt_{k}_{i}") for i in range(Q)]
                 for k in ("delta", "zero", "magic", "shift")}
        q_sel = {}
        for k, regs in table.items():
            with m.If(self.qt_we):
                for i in range(Q):
                    with m.If(self.qt_addr == i):
                        m.d.sync += regs[i].eq(getattr(self, f"qt_{k}"))
            q_sel[k] = Signal(unsigned(qw[k]), name=f"q_sel_{k}")
            m.d.sync += q_sel[k].eq(MuxArray(regs)[d["qidx"]])   # settles long before any output
        q_sel["step"] = self._table_step(m, d, table["delta"])
        return q_sel

    def _table_step(self, m: Module, d: dict, deltas: list):
        """e of table entry pq_q - 1, whose Delta is 2^(e + 16) (QAT's 16-bit
        errors), from Delta's leading one: two registers after the descriptor
        latches, long before an item reaches the lanes' shift (stage 5) or a
        gradient's first D row loads."""
        qb, top = self.cfg.pe.act16.bits, packed_shift_max(self.cfg)
        delta = Signal.like(deltas[0], name="pq_q_delta")
        for i, reg_i in enumerate(deltas):
            with m.If(d["pq_q"] == i + 1):
                m.d.sync += delta.eq(reg_i)
        e = Signal(range(top + 1), name="pq_q_e")
        for i in range(qb, min(len(delta), qb + top + 1)):     # the last assignment wins: the leading one
            with m.If(delta[i]):
                m.d.sync += e.eq(i - qb)
        return e

    def _cores(self, m: Module, d: dict, ctl_d: dict, w_data: list, a_data: list, keep: list, bias, q_sel: dict,
               rnd_seed: Signal, seed_w) -> list:
        """The N cores, fed the delayed control, their weight and activation rows and the descriptor."""
        cfg = self.cfg
        cores = []
        for n in range(cfg.array.cores):
            core = ArrayCore(cfg)
            m.submodules[f"core_{n}"] = core
            cores.append(core)
            m.d.comb += [
                core.w_ld.eq(ctl_d["w_ld"]), core.w_row.eq(ctl_d["w_row"]), core.w_swap.eq(ctl_d["w_swap"]),
                core.w_data.eq(w_data[n]),
                core.valid.eq(ctl_d["valid"]), core.slot.eq(ctl_d["slot"]), core.first.eq(ctl_d["first"]),
                core.last.eq(ctl_d["last"]), core.a.eq(a_data[n]), core.keep.eq(keep[n]), core.bias.eq(bias),
                # a packed QAT product: the bias and FXP32 for its correction item only
                core.bias_en.eq(d["bias"] & (Const(n == 0) | ~d["intra"]) & (~d["pq"] | ctl_d["correction"])),
                core.func.eq(d["func"]), core.grad.eq(d["grad"]),
                core.mode.eq(Mux(ctl_d["correction"] | ctl_d["ones"], PEMode.FXP32, d["mode"])),
                core.pq.eq(d["pq"]), core.corr.eq(ctl_d["correction"]),
                # (a gradient's pq_q is D's step, which the weight-load path applies: its lanes keep pq_e)
                core.pq_e.eq(Mux((d["pq_q"] != 0) & ~d["grad"], q_sel["step"], d["pq_e"])),
                core.fq.eq(d["fq"]), core.q_magic.eq(q_sel["magic"]), core.q_shift.eq(q_sel["shift"]),
                core.q_delta.eq(q_sel["delta"]), core.q_zero.eq(q_sel["zero"]),
            ]
            if cfg.bfp.in_array:
                m.d.comb += [core.bfp.eq(d["bfp_w"] != 0), core.m_w.eq(d["bfp_w"]), core.w_seed.eq(seed_w),
                             core.cv.eq(ctl_d["cv"]), core.cv_start.eq(ctl_d["cv_start"]), core.cv_i.eq(ctl_d["cv_i"]),
                             core.cv_group0.eq(ctl_d[f"cv_group0_{n}"]), core.cv_stride.eq(ctl_d["cv_stride"])]
            if cfg.pe.out.needs_random:
                # core n's slot 0 holds batch vector n * slots * (vectors per slot); one vector when intra-layer
                first_vec = Mux(d["intra"], 0, Mux(d["mode"] == PEMode.FXP16, (n * d["slots"]) << 1, n * d["slots"]))
                m.d.comb += [core.rnd_seed.eq(rnd_seed), core.rnd_b0.eq(first_vec[:COORD_BITS]),
                             core.rnd_i0.eq(ctl_d["rnd_i0"])]
        return cores

    def _cross_core_sums(self, m: Module, d: dict, cores: list):
        """Cross-core accumulation: core 0 adds the others' wide sums in intra-layer
        mode and in gradient products (each core summed its own batch rows)."""
        C, N, A = self.cfg.array.cols, self.cfg.array.cores, self.cfg.pe.acc_bits
        reduce_all = Signal()
        m.d.comb += reduce_all.eq(d["intra"] | d["grad"])
        # Two cores (the U50: one per SLR): core 1's sums go to core 0 as
        # they are, register to register; more cores are summed on the way.
        m.d.comb += cores[0].xin_en.eq(reduce_all)
        for lane in ("lo", "hi"):
            for c in range(C):
                others = [getattr(cores[n], f"sum_{lane}")[c * A:(c + 1) * A].as_signed() for n in range(1, N)]
                total = sum(others[1:], others[0]) if others else 0
                m.d.comb += getattr(cores[0], f"xin_{lane}")[c * A:(c + 1) * A].eq(total)
            for n in range(1, N):
                m.d.comb += [getattr(cores[n], f"xin_{lane}").eq(0), cores[n].xin_en.eq(0)]
        return reduce_all

    def _core_outputs(self, m: Module, cores: list) -> tuple[list, list]:
        """Each core's outputs registered once where they are used (the
        ARRAY_OUT_STAGES of fixar.config.timing): every store, the trackers
        and the out_* ports take ``outs[n]`` (core n's outputs, registered in
        its SLR); core n > 0 stores an intra-layer result from ``from0[n]``,
        its own register of core 0's outputs, so the crossing from core 0's
        SLR has no logic on it (the mux between the two comes after)."""
        def registered(core, name: str, fields: tuple[str, ...]) -> SimpleNamespace:
            return SimpleNamespace(**{f: reg(m, getattr(core, f"out_{f}"), f"{name}_{f}") for f in fields})

        outs = [registered(core, f"core{n}_out", ("valid", "slot", "lo", "hi", "code", "pre"))
                for n, core in enumerate(cores)]
        from0 = [None] + [registered(cores[0], f"core0_out_at{n}", ("valid", "lo")) for n in range(1, len(cores))]
        return outs, from0

    def _range_trackers(self, m: Module, d: dict, outs: list) -> None:
        """QAT phase 1: range trackers widened by every valid output of a
        tracking operation: one beat's min and max per core, registered beside
        the core and again where they meet (core n sits in SLR n: a register
        on each side of the crossing), then the trackers. A transposed
        product's tracker (a hidden error's, QAT's 16-bit errors) restarts
        with the operation's first beat: it holds the last step's range.
        The restart rides with that beat rather than happening at start, so
        a previous operation's beats still on their way cannot land in it."""
        C, N, Q, ob = self.cfg.array.cols, self.cfg.array.cores, self.cfg.array.quantizers, self.cfg.pe.out.bits
        rg_lo = [Signal(signed(ob), name=f"rg_lo_{i}") for i in range(Q)]
        rg_hi = [Signal(signed(ob), name=f"rg_hi_{i}") for i in range(Q)]
        beat_lo, beat_hi, valid = [], [], []
        for n in range(N):
            # the masked results before the quantizer (a hidden error's, quantized as it
            # leaves), both lanes (a packed product's high lane; 0 in FXP32), each lane's
            # tree in the first register stage, the two lanes met in the second
            lanes = []
            for lane in range(2):
                words = [outs[n].pre[(lane * C + c) * ob:(lane * C + c + 1) * ob].as_signed() for c in range(C)]
                lanes.append([reg(m, _tree(m, words, pick, f"beat_{lane}_{pick.__name__}_{n}"),
                                  f"beat_{lane}_{pick.__name__}_r_{n}") for pick in (min, max)])
            v = Signal(name=f"beat_valid_{n}")
            valid.append(d["track"] & outs[n].valid & (Const(n == 0) | ~(d["intra"] | d["grad"])))
            m.d.sync += v.eq(valid[-1])
            (lo_a, hi_a), (lo_b, hi_b) = lanes
            v2 = reg(m, v, f"beat_valid2_{n}")
            lo_2 = reg(m, Mux(lo_a < lo_b, lo_a, lo_b), f"beat_lo2_{n}")
            hi_2 = reg(m, Mux(hi_a > hi_b, hi_a, hi_b), f"beat_hi2_{n}")
            beat_lo.append(Mux(v2, lo_2, 0))
            beat_hi.append(Mux(v2, hi_2, 0))
        new_lo = _tree(m, beat_lo, min, "beat_lo_all")
        new_hi = _tree(m, beat_hi, max, "beat_hi_all")
        # the quantizer index travels with the beat: the next operation may latch its own meanwhile
        beat_q = reg(m, reg(m, d["qidx"], "beat_qidx1"), "beat_qidx")
        # armed when a tracking transposed product starts, spent by its first beat
        fresh, any_valid = Signal(name="rg_fresh"), Signal(name="beat_any_valid")
        m.d.comb += any_valid.eq(Cat(*valid).any())
        with m.If(self.start & ~self.busy):
            m.d.sync += fresh.eq(tracker_restarts(self.op_track, self.op_transpose))
        with m.Elif(any_valid):
            m.d.sync += fresh.eq(0)
        restart = reg(m, reg(m, fresh & any_valid, "beat_first1"), "beat_first")
        for i in range(Q):
            with m.If(self.rg_clear):
                m.d.sync += [rg_lo[i].eq(0), rg_hi[i].eq(0)]
            with m.Elif((beat_q == i) & restart):        # the range always holds zero
                m.d.sync += [rg_lo[i].eq(Mux(new_lo < 0, new_lo, 0)), rg_hi[i].eq(Mux(new_hi > 0, new_hi, 0))]
            with m.Elif(beat_q == i):
                m.d.sync += [rg_lo[i].eq(Mux(new_lo < rg_lo[i], new_lo, rg_lo[i])),
                             rg_hi[i].eq(Mux(new_hi > rg_hi[i], new_hi, rg_hi[i]))]
        m.d.sync += [self.rg_lo.eq(MuxArray(rg_lo)[self.rg_addr]), self.rg_hi.eq(MuxArray(rg_hi)[self.rg_addr])]

    def _outputs_and_store(self, m: Module, d: dict, outs: list, from0: list, amem: list, masks: tuple, reduce_all,
                           g_addr, out_y_addr) -> None:
        """The outputs, and results stored back as the next layer's activations (FXP32)
        through each activation memory's port B, which the host and gradient loads share.
        Each stored row also leaves its mask bits, 0 < y < limit, in the mask memory one
        cycle later (registered: the compare stays off the output path; the next
        operation reads masks R cycles after its start at the earliest)."""
        N, C, ob = self.cfg.array.cores, self.cfg.array.cols, self.cfg.pe.out.bits
        mmem, mask_read = masks
        valid = [outs[n].valid & (Const(n == 0) | ~reduce_all) for n in range(N)]
        m.d.comb += [self.out_valid.eq(Cat(*valid)), self.out_slot.eq(outs[0].slot),
                     self.out_lo.eq(Cat(*[o.lo for o in outs])),
                     self.out_hi.eq(Cat(*[o.hi for o in outs]))]
        # a packed QAT product stores its two vectors' 16-bit codes as one packed word
        store = d["store"] & ((d["mode"] == 0) | d["pq"]) & ~d["grad"]
        pair = d["pq_lane"] == 3
        for n in range(N):
            src = from0[n] if n else outs[0]
            lanes = lane_values(outs[n], d["pq_lane"])
            result = Mux(d["pq"] & (d["pq_lane"] == 0), outs[n].code,
                         Mux(pair, self._pair_word(m, outs[n], n), Mux(d["intra"], src.lo, lanes)))
            # a pair store writes once per two slots, with the odd one
            we = store & Mux(d["intra"], src.valid, outs[n].valid) & ~(pair & ~outs[n].slot[0])
            with m.If(self.am_we[n]):
                m.d.comb += [amem[n].b_addr.eq(self.am_addr), amem[n].b_we.eq(1), amem[n].b_wdata.eq(self.am_data)]
            with m.Elif(self.am_re[n]):
                m.d.comb += amem[n].b_addr.eq(self.am_addr)
            with m.Elif(d["grad"]):
                m.d.comb += amem[n].b_addr.eq(g_addr)
            with m.Else():
                m.d.comb += [amem[n].b_addr.eq(out_y_addr), amem[n].b_we.eq(we), amem[n].b_wdata.eq(result)]
            words = [result[c * ob:(c + 1) * ob].as_signed() for c in range(C)]
            bits = Cat(*[mask_bit(w, d["limit"]) for w in words])
            # (a packed store leaves no mask bits: a row holds two vectors, a mask row one)
            mask_we, mask_row = Signal(name=f"mask_we_{n}"), Signal.like(out_y_addr, name=f"mask_row_{n}")
            mask_bits = Signal(C, name=f"mask_bits_{n}")
            m.d.sync += [mask_we.eq(we & ~d["pq"] & ~pair), mask_row.eq(out_y_addr), mask_bits.eq(bits)]
            # port B reads a packed transposed product's high-lane mask rows when no store writes
            packed_read, read_row = mask_read
            m.d.comb += [mmem[n].b_we.eq(mask_we), mmem[n].b_wdata.eq(mask_bits),
                         mmem[n].b_addr.eq(Mux(packed_read & ~mask_we, read_row, mask_row))]

    def _pair_word(self, m: Module, out, n: int):
        """A pair store's word (pq_lane 3): each column's low 16-bit code of the
        even slot, held a cycle, beside the odd slot's (the packed layout:
        batch entries 2s' and 2s' + 1 in one word). Intra-batch slots leave
        in order, one a cycle, so the pair's two beats are back to back."""
        C, qb = self.cfg.array.cols, self.cfg.pe.act16.bits
        codes = [out.code[2 * qb * c:2 * qb * c + qb] for c in range(C)]      # each column's low lane
        held = [Signal(qb, name=f"pair_held_{n}_{c}") for c in range(C)]
        with m.If(out.valid & ~out.slot[0]):
            m.d.sync += [h.eq(code) for h, code in zip(held, codes)]
        return Cat(*[Cat(h, code) for h, code in zip(held, codes)])

    def _packed_mask_store(self, m: Module, d: dict, outs: list, mmem: list, out_m_addr) -> None:
        """A packed QAT product with ``mask`` keeps its two vectors' mask bits at
        their FXP32 rows (m_base + 2 (tile S' + slot) and the next), the first
        through port B, the second through port A (a packed product reads no
        mask), registered like the other stores' mask bits. The assignments
        override port A's read address, set in _mask_memories, while they write."""
        C, ob = self.cfg.array.cols, self.cfg.pe.out.bits
        for n, mem in enumerate(mmem):
            we = Signal(name=f"pmask_we_{n}")
            row = Signal.like(out_m_addr, name=f"pmask_row_{n}")
            lanes = []
            for lane in ("lo", "hi"):
                words = [getattr(outs[n], lane)[c * ob:(c + 1) * ob].as_signed() for c in range(C)]
                bits = Signal(C, name=f"pmask_{lane}_{n}")
                m.d.sync += bits.eq(Cat(*[mask_bit(w, d["limit"]) for w in words]))
                lanes.append(bits)
            m.d.sync += [we.eq(d["pq"] & d["mask"] & d["store"] & ~d["transpose"] & outs[n].valid),
                         row.eq(out_m_addr)]
            with m.If(we):
                m.d.comb += [mem.b_addr.eq(row), mem.b_we.eq(1), mem.b_wdata.eq(lanes[0]),
                             mem.a_addr.eq(row + 1), mem.a_we.eq(1), mem.a_wdata.eq(lanes[1])]

    def _transposing_store(self, m: Module, d: dict, outs: list, tmem: list, out_tile) -> None:
        """Transposing store into the feature-major memory (see _feature_major_memories)."""
        ar = self.cfg.array
        R, C, N, ab, ob = ar.rows, ar.cols, ar.cores, self.cfg.pe.act32.bits, self.cfg.pe.out.bits
        rb = max((R - 1).bit_length(), 1)
        for n in range(N):
            beat = d["store_t"] & outs[n].valid & ~d["intra"] & ((d["mode"] == 0) | d["pq"]) & ~d["grad"] \
                & ~d["transpose"]
            # the batch entry of the beat's (first) vector: its slot, or in a packed
            # product 2 (slot - 1), its second vector the next entry (port A)
            slot = Signal.like(outs[n].slot, name=f"t_entry_{n}")
            m.d.comb += slot.eq(Mux(d["pq"], (outs[n].slot - 1) << 1, outs[n].slot))
            r = slot[:rb]
            jb = slot >> rb
            row0 = Signal(range(self.t_rows * 2 + ar.psum_slots * (self.w_rows // C + 1)), name=f"t_row_{n}")
            m.d.comb += row0.eq(d["t_base"] + jb * (d["n_ot"] * C) + out_tile * C)
            pairs = self._pair_words(m, d, outs[n], r, jb, out_tile, n)
            for b in range(R):
                c = Signal(range(C), name=f"t_feature_{n}_{b}")     # (b - r) mod C
                m.d.comb += c.eq(Mux(r <= b, b - r, b + C - r))
                ram = tmem[n][b]
                with m.If(self.tm_we[n]):
                    m.d.comb += [ram.b_addr.eq(self.tm_addr), ram.b_we.eq(1),
                                 ram.b_wdata.eq(self.tm_data[b * ab:(b + 1) * ab])]
                with m.Elif(d["pq_t"]):
                    m.d.comb += [ram.b_addr.eq(pairs[b][0]), ram.b_we.eq(beat), ram.b_wdata.eq(pairs[b][1])]
                with m.Else():
                    m.d.comb += [ram.b_addr.eq(row0 + c), ram.b_we.eq(beat),
                                 ram.b_wdata.eq(MuxArray([outs[n].lo[k * ob:(k + 1) * ob] for k in range(C)])[c])]
                # a packed beat's second vector (entry + 1) through port A, which
                # reads only in gradient products (the assignment overrides its
                # read address, set in _activation_items, while it writes)
                c1 = Signal(range(C), name=f"t_feature1_{n}_{b}")     # (b - r - 1) mod C
                m.d.comb += c1.eq((b + C - 1 - r)[:max((C - 1).bit_length(), 1)])     # C is a power of two
                with m.If(beat & d["pq"] & ~d["pq_t"]):
                    m.d.comb += [ram.a_addr.eq(row0 + c1), ram.a_we.eq(1),
                                 ram.a_wdata.eq(MuxArray([outs[n].hi[k * ob:(k + 1) * ob] for k in range(C)])[c1])]

    def _pair_words(self, m: Module, d: dict, out, r, jb, out_tile, n: int) -> list:
        """A packed beat's codes in feature pairs (``pq_t``), the packed weight
        gradient's X^T: word (features 2k', 2k' + 1) of batch entry e in bank
        (e + 2k') mod R at row t_base + (e div R) (n_ot C / 2) + k'. The beat's
        entries are r and r + 1 (r even, as two vectors a slot), so the even
        banks take entry r's pairs (the low lane's codes) and the odd banks
        entry r + 1's (the high lane's): one word per bank. Returns each bank's
        (row, word)."""
        R, C = self.cfg.array.rows, self.cfg.array.cols
        cb16 = self.cfg.pe.act16.bits
        half = C // 2
        codes = [(out.code[2 * cb16 * c:2 * cb16 * c + cb16], out.code[2 * cb16 * c + cb16:2 * cb16 * (c + 1)])
                 for c in range(C)]      # per output feature: (entry r's code, entry r + 1's)
        row0 = Signal(range(self.t_rows * 2 + self.cfg.array.psum_slots * (self.w_rows // C + 1)),
                      name=f"t_pair_row_{n}")
        m.d.comb += row0.eq(d["t_base"] + (jb * d["n_ot"] + out_tile) * half)
        hb = max((half - 1).bit_length(), 1)
        words = []
        for b in range(R):
            lane = b % 2
            k = Signal(hb, name=f"t_pair_{n}_{b}")       # ((b - lane - r) mod R) / 2: the pair in bank b
            m.d.comb += k.eq(((b - lane + R - r) >> 1)[:hb] if half > 1 else 0)
            word = MuxArray([Cat(codes[2 * q][lane], codes[2 * q + 1][lane]) for q in range(half)])[k]
            words.append((row0 + k, word))
        return words

    def _packed_grad_high_word(self, m: Module, d: dict, ram, b: int, hi, kj, g_row0, w_beat) -> None:
        """Bank b's word of a packed gradient beat's high lane (input k + 1,
        output (b - k - 1) mod C, the row before the low lane's) through port
        A; the assignments override its read address while they write."""
        C, ob = self.cfg.array.cols, self.cfg.pe.out.bits
        cb = (C - 1).bit_length()
        c1 = Signal(range(C), name=f"grad_word_hi_{b}")
        m.d.comb += c1.eq((b + C - 1 - kj)[:cb])
        with m.If(w_beat & d["pq"]):
            m.d.comb += [ram.a_addr.eq(g_row0 + c1), ram.a_we.eq(1),
                         ram.a_wdata.eq(MuxArray([hi[q * ob:(q + 1) * ob] for q in range(C)])[c1])]

    def _gradient_memories(self, m: Module, d: dict, outs: list, out_tile, grad_fold: tuple) -> None:
        """Gradient memories: a gradient product's beat (C outputs o of one
        input k) goes to the weight gradients in the weight layout (gstore 1:
        word (o, k) of tile (ot, k div C) in bank (o + k) mod C, so the beat is
        one word per bank) or, for a bias gradient (one ones-feature slot), to
        a bias-layout row (gstore 2: row g_base + ot); gstore 3 does both, the
        ones slot (the last) to bias row b_base + ot. Port A reads them (host,
        Adam). A packed gradient's beat is two inputs, k = 2k' and k + 1 (its
        slot less the correction's): the low lane's C words go through port
        B as above, the high lane's, one row before in each bank, through
        port A (no pass may read the gradient memory meanwhile: the
        compiler keeps Adam passes off packed gradients)."""
        cfg = self.cfg
        ar, ob = cfg.array, cfg.pe.out.bits
        C = ar.cols
        gb_bits = cfg.adam.grad.bits
        cb = (C - 1).bit_length()
        gmem = [TwoPortRAM(cfg.memory, gb_bits, self.g_rows, f"gmem_b{b}", a_writable=True) for b in range(C)]
        gbmem = TwoPortRAM(cfg.memory, C * gb_bits, self.b_rows, "gbmem")
        m.submodules.gbmem = gbmem.instance
        g_beat = d["grad"] & outs[0].valid
        slot = outs[0].slot
        k = Signal.like(slot, name="grad_k")            # the (first) input of the beat
        m.d.comb += k.eq(Mux(d["pq"], (slot - 1) << 1, slot))
        kj = k[:cb]
        fold, stride = grad_fold
        ones = fold & (slot == d["slots"] - 1)           # the folded bias gradient's beat
        w_beat, b_beat = Signal(name="grad_w_beat"), Signal(name="grad_b_beat")
        m.d.comb += [w_beat.eq(g_beat & ((d["gstore"] == GStore.WEIGHT) | fold & ~ones)),
                     b_beat.eq(g_beat & ((d["gstore"] == GStore.BIAS) | ones))]
        n_kc = Signal(range(ar.psum_slots + C), name="grad_n_kc")
        m.d.comb += n_kc.eq(((stride << d["pq"]) + C - 1) >> cb)
        g_row0 = Signal(range(self.g_rows * 2 + (self.w_rows // C + 1) * ar.psum_slots * C), name="grad_row0")
        m.d.comb += g_row0.eq(d["g_base"] + (out_tile * n_kc + (k >> cb)) * C)
        for b in range(C):
            m.submodules[f"gmem_b{b}"] = gmem[b].instance
            c = Signal(range(C), name=f"grad_word_{b}")          # (b - j) mod C
            m.d.comb += c.eq(Mux(kj <= b, b - kj, b + C - kj))
            m.d.comb += [gmem[b].b_addr.eq(g_row0 + c), gmem[b].b_we.eq(w_beat),
                         gmem[b].b_wdata.eq(MuxArray([outs[0].lo[q * ob:(q + 1) * ob] for q in range(C)])[c]),
                         gmem[b].a_addr.eq(self.gm_raddr)]
            self._packed_grad_high_word(m, d, gmem[b], b, outs[0].hi, kj, g_row0, w_beat)
        m.d.comb += [self.gm_rdata.eq(Cat(*[g.a_data for g in gmem])),
                     gbmem.b_addr.eq(Mux(d["gstore"] == GStore.BOTH, d["b_base"], d["g_base"]) + out_tile),
                     gbmem.b_we.eq(b_beat),
                     gbmem.b_wdata.eq(outs[0].lo), gbmem.a_addr.eq(self.gbm_raddr),
                     self.gbm_rdata.eq(gbmem.a_data)]
