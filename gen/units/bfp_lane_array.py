"""The lane array: one BFP lane column (gen/units/bfp_lanes.py) per column
of the array, with its weight and activation memories and a sequencer that
runs one fully connected layer's products for a batch (docs/bfp.md, "The
lane array"). Shape from fixar.config.bfp.lane_array_shape, timing from
fixar.config.timing (lane_array_layer_cycles).

A layer of M outputs, K inputs and B vectors is ``tiles`` = ceil(M /
columns) x ceil(B / lanes(m_a)) tiles, taken output tile by output tile and,
within one, batch pass by batch pass; a tile is ``groups`` = ceil(K / rows)
groups of m_w / 2 passes, one pass a cycle. Weight word t x groups + k holds
group k of tile t's outputs (column c: output t x columns + c); activation
word b x groups + k holds group k of batch pass b (lane l: vector b x
lanes + l). A tile's last wide sums are copied into shadow registers and
leave one lane a cycle (``out_valid``, ``out_sum``: every column's sum of
that lane), so a tile takes at least as many cycles as it has lanes to hand
out and the next tile's sums never overwrite sums still waiting. A tile of
the last batch pass hands out only ``last_lanes`` lanes, the vectors it
holds (one, when an actor acts on one observation).

The sums are the layer's wide sums; the output stage (the rounding into
the next layer's format) is not part of this unit. This module knows
nothing of the golden model (fixar.golden.lane_array).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fixar.config import FixarConfig
from fixar.config.bfp import lane_array_shape
from fixar.gen.lib.pipe import reg
from fixar.gen.lib.ram import TwoPortRAM
from fixar.gen.units.bfp_lanes import BfpLanes


def _bits(n: int) -> int:
    return max(n.bit_length(), 1)


class BfpLaneArray(wiring.Component):
    """Ports (``sync`` domain):

    w_we, w_addr, w_data    write one word of the weight memory
    a_we, a_addr, a_data    write one word of the activation memory
    start                   take a run (ignored while busy, or with a count of 0)
    tiles, groups, passes   output tiles, groups along the reduction, batch passes
    last_lanes              the vectors of the last batch pass (1 .. lanes(m_a))
    w_sel, a_sel            the weight and activation widths: indices into ``bfp.widths``
    busy                    a run is under way (high from the cycle after ``start``)
    out_valid, out_sum      one lane of a tile: every column's wide sum
    """

    def __init__(self, cfg: FixarConfig):
        self.cfg = cfg
        self.shape = sh = lane_array_shape(cfg)
        self.widths = tuple(cfg.bfp.widths)
        sel = unsigned(_bits(len(self.widths) - 1))
        super().__init__({
            "w_we": In(1), "w_addr": In(unsigned(_bits(sh.w_depth - 1))), "w_data": In(unsigned(sh.w_word_bits)),
            "a_we": In(1), "a_addr": In(unsigned(_bits(sh.a_depth - 1))), "a_data": In(unsigned(sh.a_word_bits)),
            "start": In(1),
            "tiles": In(unsigned(_bits(sh.w_depth))),
            "groups": In(unsigned(_bits(sh.a_depth))),
            "passes": In(unsigned(_bits(sh.a_depth))),
            "last_lanes": In(unsigned(_bits(sh.lanes.max_lanes))),
            "w_sel": In(sel), "a_sel": In(sel),
            "busy": Out(1),
            "out_valid": Out(1),
            "out_sum": Out(data.ArrayLayout(signed(sh.lanes.fmac.acc_bits), sh.columns)),
        })

    def _table(self, sel, values) -> Mux:
        """values[sel] for a width index (the first entry for an index past the widths)."""
        out = values[0]
        for s, v in enumerate(values[1:], start=1):
            out = Mux(sel == s, v, out)
        return out

    def _memories(self, m: Module) -> tuple[TwoPortRAM, TwoPortRAM]:
        sh = self.shape
        wram = TwoPortRAM(self.cfg.memory, sh.w_word_bits, sh.w_depth, "lane_wmem")
        aram = TwoPortRAM(self.cfg.memory, sh.a_word_bits, sh.a_depth, "lane_amem")
        for ram, we, addr, wdata in ((wram, self.w_we, self.w_addr, self.w_data),
                                     (aram, self.a_we, self.a_addr, self.a_data)):
            m.submodules[ram.instance_name] = ram.instance
            m.d.comb += [ram.b_addr.eq(addr), ram.b_we.eq(we), ram.b_wdata.eq(wdata)]
        return wram, aram

    def elaborate(self, platform):
        m = Module()
        self.accept = Signal(name="accept")
        m.d.comb += self.accept.eq(self.start & ~self.busy & (self.tiles != 0) & (self.groups != 0)
                                   & (self.passes != 0) & (self.last_lanes != 0))
        wram, aram = self._memories(m)
        run, issue = self._sequencer(m, wram, aram)
        accs, acc_valid = self._columns(m, run, issue, wram, aram)
        self._drain(m, run, accs, acc_valid)
        return m

    def _sequencer(self, m: Module, wram: TwoPortRAM, aram: TwoPortRAM) -> tuple[dict, dict]:
        """The run's parameters, taken at ``start``, and the pass issued each
        cycle: (tile t, batch pass b, group k, weight chunk p), its memory
        words addressed now and its controls registered to meet them."""
        sh = self.shape
        lanes_of = [sh.lanes.lanes(w) for w in self.widths]
        passes_of = [sh.lanes.passes(w) for w in self.widths]
        run = {name: Signal(getattr(self, name).shape(), name=f"run_{name}")
               for name in ("tiles", "groups", "passes", "last_lanes", "w_sel", "a_sel")}
        n = Signal(range(max(passes_of) + 1), name="run_n")         # passes a group
        lanes = Signal(range(sh.lanes.max_lanes + 1), name="run_lanes")
        work = Signal(unsigned(len(run["groups"]) + _bits(max(passes_of))), name="run_work")  # a tile's passes
        span_full, span_last = Signal.like(work, name="span_full"), Signal.like(work, name="span_last")
        run.update(n=n, lanes=lanes)

        issuing, padding = Signal(name="issuing"), Signal(name="padding")
        t, b = Signal.like(run["tiles"], name="t"), Signal.like(run["passes"], name="b")
        k, p = Signal.like(run["groups"], name="k"), Signal.like(n, name="p")
        c = Signal.like(work, name="c")                          # the cycle within the tile
        w_row = Signal(unsigned(len(wram.a_addr)), name="w_row")  # t x groups
        a_row = Signal(unsigned(len(aram.a_addr)), name="a_row")  # b x groups
        with m.If(self.accept):
            m.d.sync += [run[name].eq(getattr(self, name))
                         for name in ("tiles", "groups", "passes", "last_lanes", "w_sel", "a_sel")]
            n_new, lanes_new = self._table(self.w_sel, passes_of), self._table(self.a_sel, lanes_of)
            work_new = self.groups * n_new
            m.d.sync += [n.eq(n_new), lanes.eq(lanes_new), work.eq(work_new),
                         span_full.eq(Mux(work_new > lanes_new, work_new, lanes_new)),
                         span_last.eq(Mux(work_new > self.last_lanes, work_new, self.last_lanes)),
                         issuing.eq(1), padding.eq(0), t.eq(0), b.eq(0), k.eq(0), p.eq(0), c.eq(0),
                         w_row.eq(0), a_row.eq(0)]
        with m.Elif(issuing):
            m.d.sync += c.eq(c + 1)
            span = Mux(b == run["passes"] - 1, span_last, span_full)
            with m.If(c == span - 1):              # the tile's last cycle: on to the next
                m.d.sync += [c.eq(0), k.eq(0), p.eq(0), padding.eq(0)]
                with m.If(b == run["passes"] - 1):
                    m.d.sync += [b.eq(0), a_row.eq(0), t.eq(t + 1), w_row.eq(w_row + run["groups"])]
                    with m.If(t == run["tiles"] - 1):
                        m.d.sync += issuing.eq(0)
                with m.Else():
                    m.d.sync += [b.eq(b + 1), a_row.eq(a_row + run["groups"])]
            with m.Elif(~padding):
                with m.If(p == n - 1):
                    m.d.sync += [p.eq(0), k.eq(k + 1)]
                    with m.If(k == run["groups"] - 1):  # the tile's passes are done: idle to its span
                        m.d.sync += [k.eq(0), padding.eq(1)]
                with m.Else():
                    m.d.sync += p.eq(p + 1)
        m.d.comb += [wram.a_addr.eq(w_row + k), aram.a_addr.eq(a_row + k)]

        last = p == n - 1
        issue = {"valid": issuing & ~padding, "p": p, "w_top": last, "first": p == 0, "last": last,
                 "clear": last & (k == 0)}
        # registered once, to meet the words the memories read for them
        issue = {name: reg(m, v, f"issue_{name}") for name, v in issue.items()}
        return run, issue

    def _columns(self, m: Module, run: dict, issue: dict, wram: TwoPortRAM, aram: TwoPortRAM) -> tuple[list, Signal]:
        """The lane columns, each fed its share of the weight word and the
        whole activation word, its scales the sums of the exponents."""
        sh = self.shape
        f, lw = sh.lanes.fmac, sh.lanes
        e = sh.exp_bits
        a_words = lw.fmac.rows * lw.word_bits
        sa = [aram.a_data[a_words + e * lane:a_words + e * (lane + 1)].as_signed() for lane in range(lw.max_lanes)]
        units = []
        for col in range(sh.columns):
            unit = BfpLanes(self.cfg)
            m.submodules[f"lanes{col}"] = unit
            base = col * sh.w_column_bits
            mants = wram.a_data[base:base + f.rows * f.mant_bits]
            sw = wram.a_data[base + f.rows * f.mant_bits:base + sh.w_column_bits].as_signed()
            m.d.comb += [unit.wm.as_value().eq(mants), unit.aw.as_value().eq(aram.a_data[:a_words]),
                         unit.a_sel.eq(run["a_sel"])]
            m.d.comb += [getattr(unit, name).eq(v) for name, v in issue.items()]
            for lane in range(lw.max_lanes):
                # only the low scale_bits: the golden model defines a group whose G is not zero
                # only for scales in 0..scale_max, and a zero G shifted anywhere adds 0
                s = Signal(signed(e + 1), name=f"scale{col}_{lane}")
                m.d.comb += [s.eq(sw + sa[lane]), unit.scale[lane].eq(s[:f.scale_bits])]
            units.append(unit)
        # every column sees the same passes, so column 0's acc_valid times them all
        return [u.acc for u in units], units[0].acc_valid

    def _drain(self, m: Module, run: dict, accs: list, acc_valid) -> None:
        """Every ``groups``-th wide sum is a tile's: copied to the shadow
        registers, then handed out a lane a cycle. ``busy`` falls with the
        last lane of the last tile."""
        sh = self.shape
        f = sh.lanes.fmac
        shadow = [[Signal(signed(f.acc_bits), name=f"shadow{col}_{lane}") for lane in range(sh.lanes.max_lanes)]
                  for col in range(sh.columns)]
        seen = Signal.like(run["groups"], name="groups_seen")
        left = Signal(unsigned(len(run["tiles"]) + len(run["passes"])), name="tiles_left")
        lane = Signal(range(sh.lanes.max_lanes), name="drain_lane")
        draining = Signal(name="draining")
        pass_out = Signal.like(run["passes"], name="drain_pass")    # the batch pass of the tile handed out
        final = acc_valid & (seen == run["groups"] - 1)
        with m.If(self.accept):
            m.d.sync += [seen.eq(0), left.eq(self.tiles * self.passes), self.busy.eq(1), pass_out.eq(0)]
        with m.Elif(acc_valid):
            m.d.sync += seen.eq(Mux(final, 0, seen + 1))
        ending = draining & (lane == Mux(pass_out == run["passes"] - 1, run["last_lanes"], run["lanes"]) - 1)
        with m.If(ending):          # (the next tile's sums may arrive in this very cycle)
            m.d.sync += left.eq(left - 1)
            with m.If(left == 1):
                m.d.sync += self.busy.eq(0)
        with m.If(final):
            m.d.sync += [shadow[col][ln].eq(accs[col][ln]) for col in range(sh.columns)
                         for ln in range(sh.lanes.max_lanes)]
            m.d.sync += [draining.eq(1), lane.eq(0)]
        with m.Elif(draining):
            m.d.sync += lane.eq(lane + 1)
        with m.If(ending):
            m.d.sync += pass_out.eq(Mux(pass_out == run["passes"] - 1, 0, pass_out + 1))
            with m.If(~final):
                m.d.sync += draining.eq(0)
        m.d.comb += self.out_valid.eq(draining)
        for col in range(sh.columns):
            picked = shadow[col][0]
            for ln in range(1, sh.lanes.max_lanes):
                picked = Mux(lane == ln, shadow[col][ln], picked)
            m.d.comb += self.out_sum[col].eq(picked)

