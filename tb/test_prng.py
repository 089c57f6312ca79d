"""The xorshift32 generator against the golden stream, with stalls: the TB,
its cocotb test (module ``fixar.tb.test_prng``) and the pytest entry
(Verilator and Icarus)."""
from __future__ import annotations

import cocotb
import numpy as np
import pytest

from fixar.config import load
from fixar.golden.prng import stream
from fixar.sim.rtl import run_in_slots, run_module, shipped_rtl
from fixar.tb.base import BenchTB

BENCH = "fixar.tb.test_prng"


class TB(BenchTB):
    IDLE = ("en",)

    async def check_stream(self, en: np.ndarray) -> None:
        """Step the generator where ``en`` is set; the output must follow the
        golden stream every cycle, holding while it is stalled."""
        cfg = self.cfg.prng
        golden = [cfg.seed, *stream(cfg, int(en.sum())).tolist()]
        dut = self.dut
        steps = 0
        for i in range(len(en)):
            got = dut.out.value.to_unsigned()
            assert got == golden[steps], f"cycle {i}: out=0x{got:08x}, golden 0x{golden[steps]:08x} after {steps} steps"
            dut.en.value = int(en[i])
            await self.edge
            steps += int(en[i])
        assert dut.out.value.to_unsigned() == golden[steps]


# ---------------------------------------------------------------- cocotb tests

@cocotb.test()
async def test_stream_with_stalls(dut):
    tb = TB(dut)
    en = (tb.rng.random(5000) < 0.7).astype(int)
    await tb.reset()
    await tb.check_stream(en)


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_prng_matches_golden(sim):
    cfg = load("default")
    res = run_module(sim, cfg, shipped_rtl(), "fixar_prng", BENCH)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_runs_share_no_build_folder():
    """run_in_slots, as the long bench parts use it: two runs at once, each in
    a build folder of its own (one bench at a time may use a folder), both
    handed back by name and passing."""
    cfg = load("default")
    envs = {"first": {}, "second": {}}
    got = dict(run_in_slots("verilator", cfg, shipped_rtl(), "fixar_prng", BENCH, envs, jobs=2))
    assert set(got) == set(envs)
    assert all(res.passed for res in got.values()), {k: str(r.results_xml) for k, r in got.items()}
    folders = {res.results_xml.parent.name for res in got.values()}
    assert folders == {f"fixar_prng-{cfg.digest}", f"fixar_prng-{cfg.digest}-slot1"}, folders
