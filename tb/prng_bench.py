"""cocotb bench: the xorshift32 generator against the golden stream, with stalls."""
from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from fixar.config import FixarConfig
from fixar.golden.prng import stream


@cocotb.test()
async def test_stream_with_stalls(dut):
    cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"]).prng
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    n = 5000
    en = (rng.random(n) < 0.7).astype(int)
    golden = [cfg.seed, *stream(cfg, int(en.sum())).tolist()]
    Clock(dut.clk, 10, unit="ns").start()
    dut.en.value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    steps = 0
    for i in range(n):
        got = dut.out.value.to_unsigned()
        assert got == golden[steps], f"cycle {i}: out=0x{got:08x}, golden 0x{golden[steps]:08x} after {steps} steps"
        dut.en.value = int(en[i])
        await FallingEdge(dut.clk)
        steps += int(en[i])
    assert dut.out.value.to_unsigned() == golden[steps]
