"""The U50 kernel as the host sees it: AXI4-Lite control (cocotbext-axi
AxiLiteMaster), HBM as an AXI RAM model (AxiRam), command buffers packed by
fixar.driver.kernel_io from fixar.driver.engine's writes and reads. The TB,
its cocotb tests (module ``fixar.tb.test_kernel``) and the pytest entries
(small config: 2 cores of 4 x 4).

Whole DDPG steps (through a QAT switch) and actions are checked bit for bit
against the golden model running the same program, with the kernel's
ap_ctrl_hs protocol (ap_start, ap_done clear-on-read, ap_idle, ap_ready,
interrupt and its status register) checked around every run, and the
kernel's error status read after every run (zero unless the test made the
memory answer with an error). Every test runs with three slaves: idle-free
AXI channels, back-pressure (idle cycles on every channel of the RAM model
and of the control master), and a slave that takes each write burst's data
before its address (AWREADY low until the burst's last W beat is in and
24 cycles more, WREADY high): a master that waits for AWREADY before
WVALID deadlocks with it.

Error responses: the RAM model answers one write burst (BRESP) and one
command beat (RRESP) with SLVERR, another with DECERR; the run must still
finish, the status register must say which, and after a read error no
command may run (the bad beat's data is a planted READ header that would
write far past the output buffer).

The AXI master's bursts: every burst the RAM model accepts (AR and AW:
address, length, size, type) is checked as it arrives: 64-byte INCR beats,
no longer than the kernel's bursts, never across a 4 KB boundary. After each
run the bursts must tile the command buffer (reads) and the output buffer
(writes) exactly, in order, and the page on either side of the output
buffer must be untouched. No run's buffers are page-aligned: each is placed
so that it ends at a page boundary, one beat before or one beat after one,
and a sweep puts the command and output buffers at every beat offset of a
page with lengths that are not whole bursts.

Environment: FIXAR_NETS (JSON [obs, act, [h1, h2], batch]).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
from collections import Counter

import cocotb
import numpy as np
import pytest
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout

from fixar.compiler.program import step_cycles, step_scaled_errors
from fixar.config import load
from fixar.driver import kernel_io
from fixar.driver.engine import Read, Write
from fixar.driver.kernel_io import BEAT_BYTES, CommandBuffer, KernelRunError, check_status, port_widths
from fixar.gen.kernel.top import Kernel
from fixar.sim.rtl import generated, run_module, run_mutated
from fixar.tb.base import BenchTB
from fixar.tb.figures import record
from fixar.tb.golden_twin import GoldenTwin

BENCH = "fixar.tb.test_kernel"
NETS = [8, 2, [32, 32], 16]

CMD_ADDR, OUT_ADDR = 0x0010_0000, 0x0080_0000      # where the two buffers' pages start in the RAM model
PAGE = 4096                                         # an AXI burst must not cross a 4 KB boundary
PAGE_BEATS = PAGE // BEAT_BYTES
PAGE_ENDS = (0, -1, 1)     # where a run's buffers end: at a page boundary, one beat before it, one beat after it
GUARD = b"\xa5"            # the output buffer and a page either side are filled with it before a run
SWEEP_ROWS = 256           # weight-memory rows the page-offset sweep writes and reads back
CTRL, GIE, IER, ISR = 0x00, 0x04, 0x08, 0x0C
ARG_CMD, ARG_OUT, ARG_N = 0x10, 0x18, 0x20
STATUS = kernel_io.STATUS_OFFSET           # read through the host's constants: the RTL must agree with them
SLAVES = ["free", "pause", "w_first"]      # idle-free, back-pressure, write data before its address
AW_HOLD = 24                               # w_first: cycles AWREADY stays low after the burst's last W beat
SLVERR, DECERR = 2, 3
POLLS = 2000               # control reads before a polled run that has not finished counts as hung


def _pause(seed: int):
    """Idle cycles on an AXI channel: a fixed pseudo-random pattern (~1 in 3)."""
    rng = np.random.default_rng(seed)
    return itertools.cycle([bool(x) for x in rng.random(257) < 0.35])


class TB(BenchTB):
    CLK, RST, RST_ACTIVE = "ap_clk", "ap_rst_n", 0
    RESET_EDGES, SETTLE_EDGES = 4, 2
    EDGE = RisingEdge   # the AXI models act on rising edges; so does the bench here

    def __init__(self, dut, slave: str):
        super().__init__(dut)
        assert slave in SLAVES, slave
        self.slave = slave
        # cocotbext-axi is the optional `axi` extra: imported here so that
        # pytest can collect this file (and run the packing test) without it
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                                  reset_active_level=False)
        self.mem = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n,
                          reset_active_level=False, size=1 << 24)
        if slave == "pause":
            for i, ch in enumerate([self.mem.write_if.aw_channel, self.mem.write_if.w_channel,
                                    self.mem.write_if.b_channel, self.mem.read_if.ar_channel,
                                    self.mem.read_if.r_channel]):
                ch.set_pause_generator(_pause(i))
            for i, ch in enumerate([self.ctrl.write_if.aw_channel, self.ctrl.write_if.w_channel,
                                    self.ctrl.read_if.ar_channel]):
                ch.set_pause_generator(_pause(10 + i))
        # every burst the RAM model takes is checked before the model acts on it
        # (should cocotbext-axi stop taking them through recv, nothing is
        # recorded and the first run's tiling check fails)
        self.bursts: dict[str, list[tuple[int, int]]] = {"read": [], "write": []}
        self.seen = Counter()      # (kind, page situation) -> bursts, over the test
        self.runs = 0
        self.status = None         # the status register after the last run
        self._watch(self.mem.read_if.ar_channel, "read", "ar", Kernel.READ_BURST)
        self._watch(self.mem.write_if.aw_channel, "write", "aw", Kernel.WRITE_BURST)
        self.w_first = 0           # write bursts whose every W beat the slave took before their AW
        if slave == "w_first":
            self._data_before_address()
        # error responses to plant in the next run: {"write": (burst, resp), "read": (beat, resp, data)}
        self.plant: dict[str, tuple] = {}
        self._answers = Counter()  # B responses and R beats sent in this run
        self._plant_errors()

    def _data_before_address(self) -> None:
        """Make the RAM model a slave that takes a write burst's W beats first
        and its AW only ``AW_HOLD`` cycles after the burst's last W beat
        (AXI lets a slave wait for W before AWREADY). The AW sink's ready is
        computed right after each handshake from its ``full()``, so it is
        overridden there: nothing lags behind by a cycle."""
        w, aw = self.mem.write_if.w_channel, self.mem.write_if.aw_channel
        w.queue_occupancy_limit = -1          # W beats are taken while their burst's AW waits
        lasts: list[int] = []                 # the cycle of each burst's last W beat
        taken = [0]                           # AW beats taken
        cycle = [0]
        put_w, put_aw = w.queue.put_nowait, aw.queue.put_nowait

        def w_beat(obj):
            if int(obj.wlast):
                lasts.append(cycle[0])
            put_w(obj)

        def aw_beat(obj):
            if taken[0] < len(lasts):
                self.w_first += 1
            taken[0] += 1
            put_aw(obj)

        def waiting() -> bool:                # AWREADY low: the next burst's data is not all in, or too recent
            k = taken[0]
            return not (k < len(lasts) and cycle[0] - lasts[k] >= AW_HOLD)

        async def clock():
            while True:
                await RisingEdge(self.dut.ap_clk)
                cycle[0] += 1
                aw.wake_event.set()           # (a sink that saw itself full sleeps until woken)

        w.queue.put_nowait, aw.queue.put_nowait, aw.full = w_beat, aw_beat, waiting
        cocotb.start_soon(clock())

    def _plant_errors(self) -> None:
        """Wrap the RAM model's B and R sources: the response (and for R the
        data) of the run's burst or beat named in ``self.plant`` is replaced."""
        b, r = self.mem.write_if.b_channel, self.mem.read_if.r_channel
        send_b, send_r = b.send, r.send

        async def b_answer(t):
            k = self._answers["b"]
            self._answers["b"] += 1
            if "write" in self.plant and self.plant["write"][0] == k:
                t.bresp = self.plant["write"][1]
            await send_b(t)

        async def r_answer(t):
            k = self._answers["r"]
            self._answers["r"] += 1
            if "read" in self.plant and self.plant["read"][0] == k:
                _, t.rresp, t.rdata = self.plant["read"]
            await send_r(t)

        b.send, r.send = b_answer, r_answer

    def _watch(self, channel, kind: str, p: str, longest: int) -> None:
        """Wrap the RAM model's AR or AW sink: each address beat it accepts
        (sampled at its handshake) is recorded and must be a legal burst of
        the kernel's. A failed check ends the test at that burst."""
        recv = channel.recv

        async def checked():
            t = await recv()
            addr, n = int(getattr(t, p + "addr")), int(getattr(t, p + "len")) + 1
            size, burst = int(getattr(t, p + "size")), int(getattr(t, p + "burst"))
            self.bursts[kind].append((addr, n))
            where = f"{kind} burst at {addr:#x} of {n} beats"
            assert 1 << size == BEAT_BYTES and burst == 1, f"{where}: size {size}, type {burst} (64-byte INCR beats)"
            assert addr % BEAT_BYTES == 0, f"{where}: not beat-aligned"
            assert n <= longest, f"{where}: longer than the kernel's {longest}-beat bursts"
            last = addr + n * BEAT_BYTES - 1
            assert addr // PAGE == last // PAGE, (f"{where} (to {last:#x}) crosses the 4 KB boundary at "
                                                  f"{(last // PAGE) * PAGE:#x}: AXI forbids it")
            return t

        channel.recv = checked

    async def reg(self, addr: int) -> int:
        return await self.ctrl.read_dword(addr)

    async def run(self, cb: CommandBuffer, cmd_at: int | None = None, out_at: int | None = None,
                  failing: str | None = None) -> dict | None:
        """One kernel run of ``cb``: buffers, arguments, ap_start, wait for the
        interrupt, check the control bits, the status register and the
        bursts, parse the output buffer. The buffers start ``cmd_at`` and
        ``out_at`` beats into a page; by default they end at a page boundary,
        one beat before it or one beat after it, in turn from run to run.
        ``failing`` ("write", "read"): the run has an error planted
        (``self.plant``) and must report it; after a read error the bursts
        only cover the buffers' beginnings and nothing is parsed."""
        cb.end()
        n_cmd, n_out = len(cb.beats), cb.output_beats()
        k = self.runs
        self.runs += 1
        if cmd_at is None:
            cmd_at = (PAGE_ENDS[k % 3] - n_cmd) % PAGE_BEATS
        if out_at is None:
            out_at = (PAGE_ENDS[(k + 1) % 3] - n_out) % PAGE_BEATS
        cmd, out = CMD_ADDR + cmd_at * BEAT_BYTES, OUT_ADDR + out_at * BEAT_BYTES
        self.mem.write(cmd, cb.command_bytes().tobytes())
        lo, hi = out - PAGE, out + n_out * BEAT_BYTES + PAGE
        self.mem.write(lo, GUARD * (hi - lo))
        for kind in self.bursts:
            self.bursts[kind].clear()
        self._answers.clear()
        w_first = self.w_first
        for off, value in ((ARG_CMD, cmd), (ARG_OUT, out)):
            await self.ctrl.write_dword(off, value & 0xFFFFFFFF)
            await self.ctrl.write_dword(off + 4, value >> 32)
        await self.ctrl.write_dword(ARG_N, n_cmd)
        ctrl = await self.reg(CTRL)
        assert ctrl & 0b0100 and not ctrl & 0b0001, f"before ap_start: control {ctrl:#x}, expected idle"
        await self.ctrl.write_dword(CTRL, 1)
        # (a bound for a kernel that never finishes: far above any run's cycles)
        limit = 1_000_000 + 100 * (n_cmd + n_out)
        try:
            await with_timeout(RisingEdge(self.dut.interrupt), limit * self.PERIOD_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(f"no interrupt {limit} cycles after ap_start ({n_cmd} command beats at {cmd:#x}, "
                                 f"{n_out} output beats at {out:#x}); bursts {self.bursts}") from None
        assert await self.reg(ISR) == 1, "the interrupt status should show ap_done"
        ctrl = await self.reg(CTRL)
        assert ctrl & 0b0110 == 0b0110, f"after the run: control {ctrl:#x}, expected ap_done and ap_idle"
        assert (await self.reg(CTRL)) & 0b0010 == 0, "ap_done is clear on read"
        await self.ctrl.write_dword(ISR, 1)                  # toggle on write: clears the status
        assert await self.reg(ISR) == 0 and not self.dut.interrupt.value
        self.status = await self.reg(STATUS)
        self.plant = {}
        if failing is None:
            assert self.status == 0, (f"run {k}: status {self.status:#x} ({kernel_io.status_errors(self.status)}) "
                                      "without an error response")
        else:
            want = kernel_io.STATUS_ERROR | {"write": kernel_io.STATUS_WRITE_ERROR,
                                             "read": kernel_io.STATUS_READ_ERROR}[failing]
            assert self.status & 0xFF == want, f"run {k}: a {failing} error planted, status {self.status:#x}"
        whole = failing != "read"
        if self.slave == "w_first":
            assert self.w_first - w_first == len(self.bursts["write"]), (
                f"run {k}: {self.w_first - w_first} of {len(self.bursts['write'])} write bursts had their data "
                "taken before their address")
        bad = self._tiled("read", cmd, n_cmd, whole) + self._tiled("write", out, n_out, whole)
        assert not bad, f"run {k}: {'; '.join(bad)}"
        buf = self.mem.read(lo, hi - lo)
        inside = slice(out - lo, out - lo + n_out * BEAT_BYTES)
        for name, part in (("before", buf[:inside.start]), ("after", buf[inside.stop:])):
            assert part == GUARD * len(part), (f"run {k}: the page {name} the output buffer ({out:#x}, {n_out} "
                                               f"beats) was written")
        return cb.results(np.frombuffer(buf[inside], dtype=np.uint8)) if whole else None

    def _tiled(self, kind: str, base: int, beats: int, whole: bool = True) -> list[str]:
        """The run's ``kind`` bursts must cover [base, base + beats) beat after
        beat, in order, nothing else (not ``whole``: a beginning of it); their
        page situations are counted."""
        bad, addr = [], base
        bursts = self.bursts[kind]
        for i, (a, n) in enumerate(bursts):
            if a != addr:
                bad.append(f"{kind} burst {i} at {a:#x}, the next beat of the buffer at {addr:#x}")
            addr = a + n * BEAT_BYTES
            if addr % PAGE == 0 and i + 1 < len(bursts):
                self.seen[kind, "ends at a page, the buffer goes on"] += 1
            if addr % PAGE == PAGE - BEAT_BYTES:
                self.seen[kind, "ends one beat before a page"] += 1
            if a % PAGE == 0 and i > 0 and i + 1 == len(bursts) and n == 1:
                self.seen[kind, "the buffer's last beat, one after a page"] += 1
        end = base + beats * BEAT_BYTES
        if (addr != end) if whole else (addr > end):
            bad.append(f"{kind} bursts end at {addr:#x}, the buffer ({beats} beats from {base:#x}) at "
                       f"{base + beats * BEAT_BYTES:#x}")
        return bad


# ---------------------------------------------------------------- cocotb tests

# Steps, and the step before which QAT switches: one step of phase 1 and one
# of phase 2 with every slave (the second step starts from the weights,
# moments and ranges the first left on the board). CI time: the free slave's
# second phase-1 step (about 20 s) added nothing the others do not check.
STEPS = {"free": 2, "pause": 2, "w_first": 2}
# FIXAR_KERNEL_STEPS = "slave:steps:switch" runs that one case instead (more steps after the switch)
RUNS = [(s, n, n - 1) for s, n in STEPS.items()]
if os.environ.get("FIXAR_KERNEL_STEPS"):
    _slave, _steps, _switch = os.environ["FIXAR_KERNEL_STEPS"].split(":")
    RUNS = [(_slave, int(_steps), int(_switch))]


@cocotb.test()
@cocotb.parametrize((("slave", "steps", "qat_switch"), RUNS))
async def test_training_steps_through_the_kernel(dut, slave: str, steps: int, qat_switch: int):
    tb = TB(dut, slave)
    cfg = tb.cfg
    nets = json.loads(os.environ.get("FIXAR_NETS", json.dumps(NETS)))
    batch = nets[3]
    twin = GoldenTwin(cfg, nets, qat_switch >= 0, cocotb.RANDOM_SEED)
    host = twin.host
    await tb.reset()
    await tb.ctrl.write_dword(GIE, 1)
    await tb.ctrl.write_dword(IER, 1)

    cb = CommandBuffer(cfg)
    cb.writes(host.setup_writes())
    cb.prng_set(host.prng_seed())
    await tb.run(cb)

    matched, error_steps = 0, []      # 16-bit errors: their steps for the next step, from the trackers
    for step in range(steps):
        if step == qat_switch:
            cb = CommandBuffer(cfg)
            cb.read(host.range_read(), "ranges")
            ranges = (await tb.run(cb))["ranges"]
            cb = CommandBuffer(cfg)
            cb.writes(twin.switch_writes(ranges))
            await tb.run(cb)

        # one kernel run: batch in, the step, every parameter out, one exploring action
        cb = CommandBuffer(cfg)
        cb.writes(error_steps + twin.train_writes())
        cb.run(0, "train_cycles")
        reads = host.param_reads()
        for key, r in reads.items():
            cb.read(r, key)
        for key, r in host.stats_reads().items():
            cb.read(r, f"stat.{key}")
        cb.writes(twin.act_writes())
        cb.run(host.act_pc, "act_cycles")
        cb.read(host.action_read(True), "action")
        cb.prng_get()
        errors = step_scaled_errors(cfg) and host.quantizers is not None
        if errors:
            cb.read(host.range_read(), "ranges")
        res = await tb.run(cb)

        bad = []
        if errors:
            if twin.error_range_mismatch(res["ranges"]):
                bad.append("error ranges")
            error_steps = twin.error_writes(res["ranges"])
        model = step_cycles(cfg, host.prog, batch, tb.latency)
        if res["train_cycles"] != model:
            bad.append(f"step cycles {res['train_cycles']} (model {model})")
        bad += twin.param_mismatches({k: res[k] for k in reads}, dut._log)
        bad += twin.stat_mismatches({key: res[f"stat.{key}"] for key in host.stats_reads()})
        if not np.array_equal(host.decode_action(res["action"]), twin.action(True)):
            bad.append("action")
        if res["prng"] != twin.st.prng:
            bad.append("noise generator state")
        dut._log.info("step %d (%s): %d cycles through the kernel; %s", step,
                      "QAT phase 2" if host.quantized else "FXP32 / QAT phase 1", res["train_cycles"],
                      "all state equal" if not bad else f"differ: {bad}")
        assert not bad, f"step {step}: kernel and golden model differ in {bad}"
        matched += 1
    record(dut, {"test": "kernel_steps", "steps": steps, "identical_steps": matched, "slave": slave,
                 "w_first_bursts": tb.w_first,
                 "situations": {f"{kind}: {what}": n for (kind, what), n in sorted(tb.seen.items())}})


@cocotb.test()
@cocotb.parametrize(slave=SLAVES)
async def test_control_protocol_and_reset(dut, slave: str):
    """Idle after reset; argument registers read back; the status register
    zero and read-only; back-to-back runs without interrupts (polling
    ap_done); reset in between."""
    tb = TB(dut, slave)
    await tb.reset()
    assert await tb.reg(CTRL) == 0b0100, "after reset: only ap_idle"
    await tb.ctrl.write_dword(STATUS, 0xFFFF_FFFF)
    assert await tb.reg(STATUS) == 0, "the status register is zero after reset and read-only"
    await tb.ctrl.write_dword(ARG_OUT, 0x1234_5000)
    await tb.ctrl.write_dword(ARG_OUT + 4, 0x1)
    assert await tb.reg(ARG_OUT) == 0x1234_5000 and await tb.reg(ARG_OUT + 4) == 1
    for seed in (0x1234_5678, 0x0BAD_F00D):
        cb = CommandBuffer(tb.cfg)
        cb.prng_set(seed)
        cb.prng_get()
        cb.end()
        tb.mem.write(CMD_ADDR, cb.command_bytes().tobytes())
        for off, value in ((ARG_CMD, CMD_ADDR), (ARG_OUT, OUT_ADDR)):
            await tb.ctrl.write_dword(off, value)
            await tb.ctrl.write_dword(off + 4, 0)
        await tb.ctrl.write_dword(ARG_N, len(cb.beats))
        await tb.ctrl.write_dword(CTRL, 1)
        for _ in range(POLLS):
            ctrl = await tb.reg(CTRL)
            if ctrl & 0b0010:
                break
        else:
            raise AssertionError(f"no ap_done after {POLLS} reads of the control register (a run of a few "
                                 "hundred cycles)")
        assert ctrl & 0b0100, "ap_idle with ap_done"
        assert not tb.dut.interrupt.value, "no interrupt without the global enable"
        res = cb.results(np.frombuffer(tb.mem.read(OUT_ADDR, 64 * cb.output_beats()), dtype=np.uint8))
        assert res["prng"] == seed
        assert await tb.reg(STATUS) == 0, "no error in a run without error responses"
        await tb.reset()
        assert await tb.reg(CTRL) == 0b0100 and await tb.reg(ARG_OUT) == 0, "reset clears the registers"


def _length(at: int, end: int, k: int, least: int) -> int:
    """Beats of a buffer starting ``at`` beats into a page so that it ends
    ``end`` beats from a page boundary, spanning k % 3 more pages, at least ``least``."""
    n = (end - at) % PAGE_BEATS + PAGE_BEATS * (k % 3)
    while n < least:
        n += PAGE_BEATS
    return n


@cocotb.test()
@cocotb.parametrize(slave=SLAVES)
async def test_buffers_at_every_page_offset(dut, slave: str):
    """Command and output buffers at every beat offset of a 4 KB page (a
    different pairing of the two in each run), each ending at a page
    boundary, one beat before or one beat after it, over up to three pages,
    with lengths that are not whole bursts: every run writes random rows to
    the weight memory, reads rows back (before or after its writes), sets
    and reads the noise generator; the rows read equal what the bench wrote.
    The command fetch's bursts (up to a page) and the output's (up to 16
    beats) thus start and end everywhere in a page."""
    tb = TB(dut, slave)
    cfg = tb.cfg
    width = port_widths(cfg)["wm_data"]
    rng = np.random.default_rng(cocotb.RANDOM_SEED)

    def rows(n: int) -> list[int]:
        return [int.from_bytes(rng.bytes(-(-width // 8)), "little") & ((1 << width) - 1) for _ in range(n)]

    await tb.reset()
    await tb.ctrl.write_dword(GIE, 1)
    await tb.ctrl.write_dword(IER, 1)
    memory = rows(SWEEP_ROWS)                   # what the weight memory's rows 0 .. SWEEP_ROWS - 1 hold
    cb = CommandBuffer(cfg)
    cb.write(Write("wm", 0, tuple(memory)))
    await tb.run(cb)
    for i in range(PAGE_BEATS):
        cmd_at, out_at = i, (23 * i + 11) % PAGE_BEATS
        n_cmd = _length(cmd_at, PAGE_ENDS[i % 3], i, 6)
        n_out = _length(out_at, PAGE_ENDS[i // 3 % 3], i // 2, 2)
        n_write, n_read = n_cmd - 5, n_out - 1   # (headers: write, read, noise set and get, end; the noise beat)
        w0, r0 = (int(rng.integers(0, SWEEP_ROWS - n + 1)) for n in (n_write, n_read))
        new = rows(n_write)
        cb = CommandBuffer(cfg)
        for step in ("read", "write") if i % 2 else ("write", "read"):
            if step == "write":
                cb.write(Write("wm", w0, tuple(new)))
                memory[w0:w0 + n_write] = new
            else:
                cb.read(Read("wm_addr", ("wm_rdata",), r0, n_read, re="wm_re"), "rows")
                expected = memory[r0:r0 + n_read]
        seed = int(rng.integers(1, 1 << 32))
        cb.prng_set(seed)
        cb.prng_get()
        res = await tb.run(cb, cmd_at, out_at)
        assert (len(cb.beats), cb.output_beats()) == (n_cmd, n_out)
        got = [r[0] for r in res["rows"]]
        wrong = [j for j, (a, b) in enumerate(zip(got, expected)) if a != b]
        assert not wrong, (f"run {i} (command buffer {n_cmd} beats at beat {cmd_at} of a page, output {n_out} "
                           f"at {out_at}): {len(wrong)} rows read wrong, the first row {r0 + wrong[0]}")
        assert res["prng"] == seed, f"run {i}: noise generator state {res['prng']:#x}, set {seed:#x}"
    missing = [(kind, what) for kind in ("read", "write") for what in (
        "ends at a page, the buffer goes on", "ends one beat before a page", "the buffer's last beat, one after a page")
        if not tb.seen[kind, what]]
    assert not missing, f"no burst in these page situations: {missing}"
    record(dut, {"test": "kernel_page_offsets", "slave": slave, "runs": tb.runs, "w_first_bursts": tb.w_first,
                 "situations": {f"{kind}: {what}": n for (kind, what), n in sorted(tb.seen.items())}})


def _random_rows(rng, width: int, n: int) -> list[int]:
    return [int.from_bytes(rng.bytes(-(-width // 8)), "little") & ((1 << width) - 1) for _ in range(n)]


@cocotb.test()
@cocotb.parametrize(slave=SLAVES)
async def test_error_responses(dut, slave: str):
    """The RAM model answers one write burst with SLVERR, then one command
    beat (a READ header, its data replaced by a READ of 4 000 rows that
    would run far past the output buffer) with SLVERR, then the first command
    beat of a run with DECERR. Each run must finish with ap_done, the status
    register must name the channel and the response, the host must raise on
    it, and after a read error no burst may be fetched and no command may
    run. The runs in between and after, without error responses, must show
    a clear status and right data: the error is per run."""
    tb = TB(dut, slave)
    cfg = tb.cfg
    width = port_widths(cfg)["wm_data"]
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    wm = Read("wm_addr", ("wm_rdata",), 0, 40, re="wm_re")       # 40 output beats: three write bursts
    await tb.reset()
    await tb.ctrl.write_dword(GIE, 1)
    await tb.ctrl.write_dword(IER, 1)
    memory = _random_rows(rng, width, 80)

    async def write_and_read(failing: str | None = None, cmd_at: int | None = None) -> dict | None:
        """Beats 0-80 write the rows, 81 reads 40 of them, 82 gets the noise
        state, 83-163 write the rows again (so that a third read burst follows)."""
        cb = CommandBuffer(cfg)
        cb.write(Write("wm", 0, tuple(memory)))
        cb.read(wm, "rows")
        cb.prng_get()
        cb.write(Write("wm", 0, tuple(memory)))
        return await tb.run(cb, cmd_at=cmd_at, failing=failing)

    def raises(status: int, words: tuple[str, ...]) -> None:
        try:
            check_status(status)
        except KernelRunError as exc:
            assert all(w in str(exc) for w in words), f"status {status:#x}: {exc} should name {words}"
        else:
            raise AssertionError(f"status {status:#x}: the host does not raise")

    res = await write_and_read()
    assert [r[0] for r in res["rows"]] == memory[:40]

    # a write burst answered SLVERR: the run goes on to the end, the data is still written
    tb.plant = {"write": (1, SLVERR)}
    res = await write_and_read("write")
    assert (tb.status >> kernel_io.STATUS_BRESP_AT) & 3 == SLVERR, f"status {tb.status:#x}"
    raises(tb.status, ("SLVERR", "output buffer"))
    assert [r[0] for r in res["rows"]] == memory[:40]
    res = await write_and_read()                                   # cleared when the next run starts
    assert [r[0] for r in res["rows"]] == memory[:40]

    # the READ header (beat 81, in the second read burst of a page-aligned buffer) answered SLVERR
    evil = CommandBuffer(cfg)
    evil.read(Read("wm_addr", ("wm_rdata",), 0, 4000, re="wm_re"), "evil")
    memory = _random_rows(rng, width, 80)
    tb.plant = {"read": (81, SLVERR, evil.beats[0])}
    await write_and_read("read", cmd_at=0)
    assert (tb.status >> kernel_io.STATUS_RRESP_AT) & 3 == SLVERR, f"status {tb.status:#x}"
    raises(tb.status, ("SLVERR", "command buffer"))
    assert len(tb.bursts["read"]) == 2, f"read bursts {tb.bursts['read']}: none after the one with the error"
    assert not tb.bursts["write"], f"write bursts {tb.bursts['write']} after a read error before any output"

    # the first command beat answered DECERR: nothing runs
    tb.plant = {"read": (0, DECERR, evil.beats[0])}
    await write_and_read("read")
    assert (tb.status >> kernel_io.STATUS_RRESP_AT) & 3 == DECERR, f"status {tb.status:#x}"
    raises(tb.status, ("DECERR", "command buffer"))
    assert len(tb.bursts["read"]) == 1, f"read bursts {tb.bursts['read']}: none after the one with the error"
    assert not tb.bursts["write"], f"write bursts {tb.bursts['write']} after a read error before any output"

    res = await write_and_read()
    assert [r[0] for r in res["rows"]] == memory[:40], "a run after a read error"
    record(dut, {"test": "kernel_error_responses", "slave": slave, "runs": tb.runs})


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


def test_host_packing_widths_match_the_generated_engine():
    """fixar.driver.kernel_io packs rows with widths computed from the config; the
    generated engine's ports must have exactly those widths."""
    cfg = load("small")
    manifest = json.loads((generated(cfg, array=True) / "manifest.json").read_text())
    ports = manifest["modules"]["fixar_trainer"]["ports"]
    for name, width in port_widths(cfg).items():
        assert ports[name]["width"] == width, (f"{name}: the engine has {ports[name]['width']} bits, "
                                               f"the host packs {width}")


def test_register_map_agrees_with_the_host():
    """The host's status constants (the driver may not import the generator)
    are the kernel's, and the status register sits apart from the arguments."""
    for name in ("STATUS_ERROR", "STATUS_WRITE_ERROR", "STATUS_READ_ERROR", "STATUS_BRESP_AT", "STATUS_RRESP_AT"):
        assert getattr(kernel_io, name) == getattr(Kernel, name), name
    assert kernel_io.STATUS_OFFSET == Kernel.STATUS
    assert all(not off <= Kernel.STATUS < off + size for _, off, size, _ in Kernel.ARGS)
    check_status(0)


def test_host_status_messages():
    """check_status raises on every error bit and names the channel and the response."""
    cases = {kernel_io.STATUS_ERROR | kernel_io.STATUS_WRITE_ERROR | SLVERR << kernel_io.STATUS_BRESP_AT:
             ("output buffer", "SLVERR"),
             kernel_io.STATUS_ERROR | kernel_io.STATUS_READ_ERROR | DECERR << kernel_io.STATUS_RRESP_AT:
             ("command buffer", "DECERR", "bank"),
             kernel_io.STATUS_ERROR: ("does not know",)}
    for status, words in cases.items():
        with pytest.raises(KernelRunError) as exc:
            check_status(status)
        assert exc.value.status == status and all(w in str(exc.value) for w in words), str(exc.value)


def test_kernel_runs_training_steps_through_the_qat_switch_bit_exact():
    """Every test with each slave (idle-free, back-pressure, write data before
    its address): same results."""
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, kernel=True), "fixar_kernel", BENCH,
                     env={"FIXAR_NETS": json.dumps(NETS)})
    assert res.passed and res.tests == 12, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    figs = res.figures()
    steps = {f["slave"]: f["identical_steps"] for f in figs if f["test"] == "kernel_steps"}
    assert steps == STEPS, f"identical steps by slave: {steps}"
    sweeps = {f["slave"]: f["runs"] for f in figs if f["test"] == "kernel_page_offsets"}
    assert sweeps == dict.fromkeys(SLAVES, PAGE_BEATS + 1), f"page-offset runs by slave: {sweeps}"
    w_first = {f["test"]: f["w_first_bursts"] for f in figs if f.get("slave") == "w_first" and "w_first_bursts" in f}
    assert len(w_first) == 2 and min(w_first.values()) > 0, f"write bursts with data before address: {w_first}"
    errors = {f["slave"] for f in figs if f["test"] == "kernel_error_responses"}
    assert errors == set(SLAVES), f"error-response tests run with {errors}"


@pytest.mark.slow      # CI time: the trainer bench runs qat16d through the switch in CI
def test_kernel_runs_16_bit_errors_through_the_qat_switch_bit_exact():
    """Config qat16d's 16-bit errors on the small kernel: one phase-1 step,
    the switch, three phase-2 steps, each error's range read with the
    step's results and its step written with the next batch; every step
    bit-exact at the model's cycles."""
    small = load("small")
    cfg = small.variant(name="small_q16d", array=dataclasses.replace(
        small.array, quantizer_scale="pow2", qat_errors="fxp16_delayed", quantizers=12))
    res = run_module("verilator", cfg, generated(cfg, kernel=True), "fixar_kernel", BENCH,
                     testcase="test_training_steps_through_the_kernel/slave=free/steps=4/qat_switch=1",
                     env={"FIXAR_NETS": json.dumps(NETS), "FIXAR_KERNEL_STEPS": "free:4:1"})
    assert res.passed and res.tests == 1, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    steps = [f["identical_steps"] for f in res.figures() if f["test"] == "kernel_steps"]
    assert steps == [4], steps


# The page limits of the output's and the command fetch's bursts, as Yosys
# writes them: a page's 64 beats less the beat of the burst's address in its page.
PAGE_LIMITS = {"write": "assign wpage = 7'h40 - m_axi_gmem_AWADDR[11:6];",
               "read": "assign to_page = 7'h40 - m_axi_gmem_ARADDR[11:6];"}


@pytest.mark.parametrize("kind", ["write", pytest.param("read", marks=pytest.mark.slow)])
def test_bench_catches_a_burst_crossing_a_page(kind):
    """A page limit one beat too long: a write burst starting in a page's
    last 16 beats (issue 21), or a command fetch not starting on a page,
    runs one beat into the next page. The page-offset sweep must fail."""
    cfg = load("small")
    src_dir = generated(cfg, kernel=True)
    limit = PAGE_LIMITS[kind]
    assert limit in (src_dir / "fixar_kernel.v").read_text(), f"the {kind} page limit is not in fixar_kernel.v"
    res = run_mutated(cfg, "fixar_kernel", BENCH, limit, limit.replace("7'h40", "7'h41"),
                      src_dir=src_dir, testcase="test_buffers_at_every_page_offset/slave=free")
    assert res.tests == 1 and res.failed == 1, f"the bench did not notice a {kind} burst crossing a 4 KB page"


def _planted(text: str, pattern: str, new: str) -> tuple[str, str]:
    """The one line of the generated kernel matching ``pattern`` and its planted version."""
    lines = re.findall(pattern, text, flags=re.M)
    assert len(lines) == 1, f"{pattern!r}: {len(lines)} lines in fixar_kernel.v, the planted bug needs updating"
    return lines[0], re.sub(r" = (.*);$", new, lines[0])


# The AXI master as it was (issue 20): WVALID only after the AW handshake; and
# an error response not latched. Each must make the bench fail.
PLANTED = {
    # (the shortest case that meets it: one polled run; the training steps and the page sweep hang the same way)
    "w_waits_for_aw": (r"^\s*assign m_axi_gmem_WVALID = .*;$", r" = \1 & ~m_axi_gmem_AWVALID;",
                       "test_control_protocol_and_reset/slave=w_first"),
    "bresp_ignored": (r"^\s*assign \S+\s+= m_axi_gmem_BVALID & m_axi_gmem_BRESP\[1\];$", r" = 1'h0;",
                      "test_error_responses/slave=free"),
    "rresp_ignored": (r"^\s*assign \S+\s+= \S+\s+& m_axi_gmem_RRESP\[1\];$", r" = 1'h0;",
                      "test_error_responses/slave=free"),
}


# CI time: all three are -m slow; the kernel bench's burst-crossing planted bug stays in CI
@pytest.mark.parametrize("bug", [pytest.param(b, marks=pytest.mark.slow)
                                 for b in ("w_waits_for_aw", "bresp_ignored", "rresp_ignored")])
def test_bench_catches_the_old_axi_master(bug):
    """W held until the AW handshake deadlocks with the slave that takes W
    first (the run times out); an error response the kernel does not latch
    leaves the status register clear."""
    cfg = load("small")
    src_dir = generated(cfg, kernel=True)
    pattern, new, testcase = PLANTED[bug]
    old, planted = _planted((src_dir / "fixar_kernel.v").read_text(), pattern, new)
    res = run_mutated(cfg, "fixar_kernel", BENCH, old, planted, src_dir=src_dir, testcase=testcase)
    assert res.tests == 1 and res.failed == 1, f"the bench did not notice the planted bug {bug} ({planted.strip()})"
