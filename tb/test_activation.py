"""The activation unit against the golden model, bit for bit: the TB, its
cocotb test (module ``fixar.tb.test_activation``) and the pytest entries.

Inputs: every tanh segment boundary and its neighbours (both signs), the
extremes, the range limit, then random codes (full range and within the
table range), with the function changing every cycle. FIXAR_VECTORS sets
the random codes (default 50 000).
"""
from __future__ import annotations

import os
import re
import time

import cocotb
import numpy as np
import pytest

from fixar.config import FixarConfig, load
from fixar.golden.activation import activate_trace
from fixar.golden.fixed import to_unsigned
from fixar.sim.rtl import generated, run_module, run_mutated, shipped_rtl
from fixar.tb.base import BenchTB
from fixar.tb.figures import record

BENCH = "fixar.tb.test_activation"


def stimulus(cfg: FixarConfig, rng: np.random.Generator, n_random: int):
    fmt, act = cfg.pe.out, cfg.activation
    s = fmt.frac - act.tanh_segments_log2
    bounds = np.arange(act.tanh_points + 1, dtype=np.int64) << s
    near = np.concatenate([bounds - 1, bounds, bounds + 1])
    near = np.concatenate([near, -near, [0, fmt.max_int, fmt.min_int, fmt.min_int + 1, fmt.max_int - 1]])
    span = 1 << (act.tanh_range_log2 + fmt.frac + 1)
    rand = np.concatenate([rng.integers(fmt.min_int, fmt.max_int + 1, n_random // 2),
                           rng.integers(-span, span, n_random - n_random // 2)])
    x = np.clip(np.concatenate([near, rand]), fmt.min_int, fmt.max_int)
    func = rng.integers(0, 4, len(x))
    func[: len(near)] = 2  # the directed codes all go through tanh first ...
    x = np.concatenate([x, near])
    func = np.concatenate([func, rng.integers(0, 2, len(near))])  # ... then identity/ReLU
    return func, x


class TB(BenchTB):
    IDLE = ("x", "func")

    async def run(self, func: np.ndarray, x: np.ndarray) -> None:
        """One (func, x) per cycle; every output compared after the latency."""
        dut, lat, bits = self.dut, self.latency, self.cfg.pe.out.bits
        expected = to_unsigned(activate_trace(self.cfg, func, x), bits)
        xs, fs = to_unsigned(x, bits).tolist(), func.tolist()
        n = len(xs)
        got = [0] * n
        edge = self.edge
        start = time.perf_counter()
        for i in range(n + lat):
            await edge
            if i >= lat:
                got[i - lat] = dut.y.value.to_unsigned()
            if i < n:
                dut.x.value = xs[i]
                dut.func.value = fs[i]
        wall = time.perf_counter() - start
        got = np.array(got)
        bad = np.flatnonzero(got != expected)
        for i in bad[:8]:
            self.log.error("vector %d func=%d x=%d: expected 0x%x got 0x%x", i, fs[i], x[i], expected[i], got[i])
        assert len(bad) == 0, f"{len(bad)} of {n} activation outputs differ from the golden model"
        record(dut, {"test": "activation", "sim": cocotb.SIM_NAME, "vectors": n, "cycles": n + lat,
                     "wall_s": round(wall, 3), "cycles_per_s": round((n + lat) / wall, 1)})


# ---------------------------------------------------------------- cocotb tests

@cocotb.test()
async def test_activation_bit_exact(dut):
    tb = TB(dut)
    func, x = stimulus(tb.cfg, tb.rng, int(os.environ.get("FIXAR_VECTORS", "50000")))
    await tb.reset()
    await tb.run(func, x)


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_activation_default(sim):
    cfg = load("default")
    res = run_module(sim, cfg, shipped_rtl(), "fixar_act", BENCH)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_activation_narrow():
    cfg = load("narrow")
    res = run_module("verilator", cfg, generated(cfg), "fixar_act", BENCH)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_planted_bug():
    """One tanh table point off by one LSB: the bench must fail."""
    cfg = load("default")
    src = (shipped_rtl() / "fixar_act.v").read_text()
    line = re.search(r"tanh_rom\[100\] = (\d+)'h([0-9a-f]+);", src)
    assert line, "ROM initialisation not found in rtl/fixar_act.v"
    width, value = line.group(1), int(line.group(2), 16)
    res = run_mutated(cfg, "fixar_act", BENCH, line.group(0),
                      f"tanh_rom[100] = {width}'h{value ^ 1:x};", env={"FIXAR_VECTORS": "2000"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong tanh table point"
