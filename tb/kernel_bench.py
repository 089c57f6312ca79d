"""cocotb bench of the U50 kernel as the host sees it: AXI4-Lite control
(cocotbext-axi AxiLiteMaster), HBM as an AXI RAM model (AxiRam), command
buffers packed by fixar.driver.kernel_io from fixar.driver.engine's writes and reads.

Whole DDPG steps (through a QAT switch) and actions are checked bit for bit
against the golden model running the same program, with the kernel's
ap_ctrl_hs protocol (ap_start, ap_done clear-on-read, ap_idle, ap_ready,
interrupt and its status register) checked around every run.

Environment: FIXAR_CONFIG_JSON, FIXAR_LATENCY, FIXAR_NETS, FIXAR_STEPS,
FIXAR_QAT_SWITCH, FIXAR_AXI_PAUSE (1: idle cycles on every AXI channel).
"""
from __future__ import annotations

import itertools
import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from fixar.config import FixarConfig
from fixar.driver.kernel_io import CommandBuffer
from fixar.compiler.program import step_cycles
from fixar.tb.figures import record
from fixar.tb.golden_twin import GoldenTwin

CMD_ADDR, OUT_ADDR = 0x0000_0000, 0x0080_0000      # two 4 KB-aligned buffers in the RAM model
CTRL, GIE, IER, ISR = 0x00, 0x04, 0x08, 0x0C
ARG_CMD, ARG_OUT, ARG_N = 0x10, 0x18, 0x20


def _pause(seed: int):
    """Idle cycles on an AXI channel: a fixed pseudo-random pattern (~1 in 3)."""
    rng = np.random.default_rng(seed)
    return itertools.cycle([bool(x) for x in rng.random(257) < 0.35])


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"])
        cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                                  reset_active_level=False)
        self.mem = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n,
                          reset_active_level=False, size=1 << 24)
        if os.environ.get("FIXAR_AXI_PAUSE") == "1":
            for i, ch in enumerate([self.mem.write_if.aw_channel, self.mem.write_if.w_channel,
                                    self.mem.write_if.b_channel, self.mem.read_if.ar_channel,
                                    self.mem.read_if.r_channel]):
                ch.set_pause_generator(_pause(i))
            for i, ch in enumerate([self.ctrl.write_if.aw_channel, self.ctrl.write_if.w_channel,
                                    self.ctrl.read_if.ar_channel]):
                ch.set_pause_generator(_pause(10 + i))

    async def reset(self):
        self.dut.ap_rst_n.value = 0
        for _ in range(4):
            await RisingEdge(self.dut.ap_clk)
        self.dut.ap_rst_n.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.ap_clk)

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
            await RisingEdge(self.dut.ap_clk)
        assert await self.reg(ISR) == 1, "the interrupt status should show ap_done"
        ctrl = await self.reg(CTRL)
        assert ctrl & 0b0110 == 0b0110, f"after the run: control {ctrl:#x}, expected ap_done and ap_idle"
        assert (await self.reg(CTRL)) & 0b0010 == 0, "ap_done is clear on read"
        await self.ctrl.write_dword(ISR, 1)                  # toggle on write: clears the status
        assert await self.reg(ISR) == 0 and not self.dut.interrupt.value
        out = np.frombuffer(self.mem.read(OUT_ADDR, 64 * n_out), dtype=np.uint8)
        return cb.results(out)


@cocotb.test()
async def test_training_steps_through_the_kernel(dut):
    tb = TB(dut)
    cfg = tb.cfg
    nets = json.loads(os.environ.get("FIXAR_NETS", "[8, 2, [32, 32], 16]"))
    batch = nets[3]
    steps = int(os.environ.get("FIXAR_STEPS", "3"))
    qat_switch = int(os.environ.get("FIXAR_QAT_SWITCH", "-1"))
    latency = int(os.environ["FIXAR_LATENCY"])
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
        model = step_cycles(cfg, host.prog, batch, latency)
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
    record(dut, {"test": "kernel_steps", "steps": steps, "identical_steps": matched,
                 "pause": os.environ.get("FIXAR_AXI_PAUSE") == "1"})


@cocotb.test()
async def test_control_protocol_and_reset(dut):
    """Idle after reset; argument registers read back; back-to-back runs
    without interrupts (polling ap_done); reset in between."""
    tb = TB(dut)
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
