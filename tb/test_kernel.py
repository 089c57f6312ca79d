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

Environment: FIXAR_NETS (JSON [obs, act, [h1, h2], batch]).
"""
from __future__ import annotations

import itertools
import json
import os

import cocotb
import numpy as np
import pytest
from cocotb.triggers import RisingEdge

from fixar.compiler.program import step_cycles
from fixar.config import load
from fixar.driver.kernel_io import CommandBuffer, port_widths
from fixar.sim.rtl import generated, run_module
from fixar.tb.base import BenchTB
from fixar.tb.figures import record
from fixar.tb.golden_twin import GoldenTwin

BENCH = "fixar.tb.test_kernel"
NETS = [8, 2, [32, 32], 16]

CMD_ADDR, OUT_ADDR = 0x0000_0000, 0x0080_0000      # two 4 KB-aligned buffers in the RAM model
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

    async def reg(self, addr: int) -> int:
        return await self.ctrl.read_dword(addr)

    async def run(self, cb: CommandBuffer) -> dict:
        """One kernel run of ``cb``: buffers, arguments, ap_start, wait for the
        interrupt, check the control bits, parse the output buffer."""
        cb.end()
        data = cb.command_bytes()
        self.mem.write(CMD_ADDR, data.tobytes())
        n_out = cb.output_beats()
        self.mem.write(OUT_ADDR, bytes(64 * n_out))
        for off, value in ((ARG_CMD, CMD_ADDR), (ARG_OUT, OUT_ADDR)):
            await self.ctrl.write_dword(off, value & 0xFFFFFFFF)
            await self.ctrl.write_dword(off + 4, value >> 32)
        await self.ctrl.write_dword(ARG_N, len(cb.beats))
        ctrl = await self.reg(CTRL)
        assert ctrl & 0b0100 and not ctrl & 0b0001, f"before ap_start: control {ctrl:#x}, expected idle"
        await self.ctrl.write_dword(CTRL, 1)
        while not self.dut.interrupt.value:
            await self.edge
        assert await self.reg(ISR) == 1, "the interrupt status should show ap_done"
        ctrl = await self.reg(CTRL)
        assert ctrl & 0b0110 == 0b0110, f"after the run: control {ctrl:#x}, expected ap_done and ap_idle"
        assert (await self.reg(CTRL)) & 0b0010 == 0, "ap_done is clear on read"
        await self.ctrl.write_dword(ISR, 1)                  # toggle on write: clears the status
        assert await self.reg(ISR) == 0 and not self.dut.interrupt.value
        out = np.frombuffer(self.mem.read(OUT_ADDR, 64 * n_out), dtype=np.uint8)
        return cb.results(out)


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
    record(dut, {"test": "kernel_steps", "steps": steps, "identical_steps": matched, "pause": pause})


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
    """Both tests with idle-free AXI channels and under back-pressure: same results."""
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, kernel=True), "fixar_kernel", BENCH,
                     env={"FIXAR_NETS": json.dumps(NETS)})
    assert res.passed and res.tests == 4, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    steps = {f["pause"]: f["identical_steps"] for f in res.figures() if f["test"] == "kernel_steps"}
    assert steps == {False: 3, True: 2}, f"identical steps by back-pressure: {steps}"
