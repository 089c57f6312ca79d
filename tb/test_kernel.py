"""The U50 kernel as the host sees it: AXI4-Lite control (cocotbext-axi
AxiLiteMaster), HBM as an AXI RAM model (AxiRam), command buffers packed by
fixar.driver.kernel_io from fixar.driver.engine's writes and reads. The TB,
its cocotb tests (module ``fixar.tb.test_kernel``) and the pytest entries
(small config: 2 cores of 4 x 4).

Whole DDPG steps (through a QAT switch) and actions are checked bit for bit
against the golden model running the same program, with the kernel's
ap_ctrl_hs protocol (ap_start, ap_done clear-on-read, ap_idle, ap_ready,
interrupt and its status register) checked around every run. Every test
runs twice: with idle-free AXI channels and under back-pressure (idle
cycles on every channel of the RAM model and of the control master).

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

import itertools
import json
import os
from collections import Counter

import cocotb
import numpy as np
import pytest
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout

from fixar.compiler.program import step_cycles
from fixar.config import load
from fixar.driver.engine import Read, Write
from fixar.driver.kernel_io import BEAT_BYTES, CommandBuffer, port_widths
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


def _pause(seed: int):
    """Idle cycles on an AXI channel: a fixed pseudo-random pattern (~1 in 3)."""
    rng = np.random.default_rng(seed)
    return itertools.cycle([bool(x) for x in rng.random(257) < 0.35])


class TB(BenchTB):
    CLK, RST, RST_ACTIVE = "ap_clk", "ap_rst_n", 0
    RESET_EDGES, SETTLE_EDGES = 4, 2
    EDGE = RisingEdge   # the AXI models act on rising edges; so does the bench here

    def __init__(self, dut, pause: bool):
        super().__init__(dut)
        # cocotbext-axi is the optional `axi` extra: imported here so that
        # pytest can collect this file (and run the packing test) without it
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                                  reset_active_level=False)
        self.mem = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n,
                          reset_active_level=False, size=1 << 24)
        if pause:
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
        self._watch(self.mem.read_if.ar_channel, "read", "ar", Kernel.READ_BURST)
        self._watch(self.mem.write_if.aw_channel, "write", "aw", Kernel.WRITE_BURST)

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

    async def run(self, cb: CommandBuffer, cmd_at: int | None = None, out_at: int | None = None) -> dict:
        """One kernel run of ``cb``: buffers, arguments, ap_start, wait for the
        interrupt, check the control bits and the bursts, parse the output
        buffer. The buffers start ``cmd_at`` and ``out_at`` beats into a page;
        by default they end at a page boundary, one beat before it or one
        beat after it, in turn from run to run."""
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
        bad = self._tiled("read", cmd, n_cmd) + self._tiled("write", out, n_out)
        assert not bad, f"run {k}: {'; '.join(bad)}"
        buf = self.mem.read(lo, hi - lo)
        inside = slice(out - lo, out - lo + n_out * BEAT_BYTES)
        for name, part in (("before", buf[:inside.start]), ("after", buf[inside.stop:])):
            assert part == GUARD * len(part), (f"run {k}: the page {name} the output buffer ({out:#x}, {n_out} "
                                               f"beats) was written")
        return cb.results(np.frombuffer(buf[inside], dtype=np.uint8))

    def _tiled(self, kind: str, base: int, beats: int) -> list[str]:
        """The run's ``kind`` bursts must cover [base, base + beats) beat after
        beat, in order, nothing else; their page situations are counted."""
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
        if addr != base + beats * BEAT_BYTES:
            bad.append(f"{kind} bursts end at {addr:#x}, the buffer ({beats} beats from {base:#x}) at "
                       f"{base + beats * BEAT_BYTES:#x}")
        return bad


# ---------------------------------------------------------------- cocotb tests

# Steps, and the step before which QAT switches: with idle-free channels two
# steps of phase 1 and one of phase 2; under back-pressure (slower) one each.
@cocotb.test()
@cocotb.parametrize((("pause", "steps", "qat_switch"), [(False, 3, 2), (True, 2, 1)]))
async def test_training_steps_through_the_kernel(dut, pause: bool, steps: int, qat_switch: int):
    tb = TB(dut, pause)
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

    matched = 0
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
        cb.writes(twin.train_writes())
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
        res = await tb.run(cb)

        bad = []
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
    record(dut, {"test": "kernel_steps", "steps": steps, "identical_steps": matched, "pause": pause,
                 "situations": {f"{kind}: {what}": n for (kind, what), n in sorted(tb.seen.items())}})


@cocotb.test()
@cocotb.parametrize(pause=[False, True])
async def test_control_protocol_and_reset(dut, pause: bool):
    """Idle after reset; argument registers read back; back-to-back runs
    without interrupts (polling ap_done); reset in between."""
    tb = TB(dut, pause)
    await tb.reset()
    assert await tb.reg(CTRL) == 0b0100, "after reset: only ap_idle"
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
        while True:
            ctrl = await tb.reg(CTRL)
            if ctrl & 0b0010:
                break
        assert ctrl & 0b0100, "ap_idle with ap_done"
        assert not tb.dut.interrupt.value, "no interrupt without the global enable"
        res = cb.results(np.frombuffer(tb.mem.read(OUT_ADDR, 64 * cb.output_beats()), dtype=np.uint8))
        assert res["prng"] == seed
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
@cocotb.parametrize(pause=[False, True])
async def test_buffers_at_every_page_offset(dut, pause: bool):
    """Command and output buffers at every beat offset of a 4 KB page (a
    different pairing of the two in each run), each ending at a page
    boundary, one beat before or one beat after it, over up to three pages,
    with lengths that are not whole bursts: every run writes random rows to
    the weight memory, reads rows back (before or after its writes), sets
    and reads the noise generator; the rows read equal what the bench wrote.
    The command fetch's bursts (up to a page) and the output's (up to 16
    beats) thus start and end everywhere in a page."""
    tb = TB(dut, pause)
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
    record(dut, {"test": "kernel_page_offsets", "pause": pause, "runs": tb.runs,
                 "situations": {f"{kind}: {what}": n for (kind, what), n in sorted(tb.seen.items())}})


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


def test_kernel_runs_training_steps_through_the_qat_switch_bit_exact():
    """Every test with idle-free AXI channels and under back-pressure: same results."""
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, kernel=True), "fixar_kernel", BENCH,
                     env={"FIXAR_NETS": json.dumps(NETS)})
    assert res.passed and res.tests == 6, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    steps = {f["pause"]: f["identical_steps"] for f in res.figures() if f["test"] == "kernel_steps"}
    assert steps == {False: 3, True: 2}, f"identical steps by back-pressure: {steps}"
    sweeps = {f["pause"]: f["runs"] for f in res.figures() if f["test"] == "kernel_page_offsets"}
    assert sweeps == {False: PAGE_BEATS + 1, True: PAGE_BEATS + 1}, f"page-offset runs by back-pressure: {sweeps}"


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
                      src_dir=src_dir, testcase="test_buffers_at_every_page_offset/pause=False")
    assert res.tests == 1 and res.failed == 1, f"the bench did not notice a {kind} burst crossing a 4 KB page"
