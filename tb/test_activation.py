"""cocotb bench: the activation unit against the golden model, bit for bit.

Inputs: every tanh segment boundary and its neighbours (both signs), the
extremes, the range limit, then random codes (full range and within the
table range), with the function changing every cycle.
"""
from __future__ import annotations

import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from fixar.config import FixarConfig
from fixar.golden.activation import activate_trace
from fixar.golden.fixed import to_unsigned
from fixar.tb.figures import record


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


@cocotb.test()
async def test_activation_bit_exact(dut):
    cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"])
    lat = int(os.environ["FIXAR_LATENCY"])
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    func, x = stimulus(cfg, rng, int(os.environ.get("FIXAR_VECTORS", "50000")))
    bits = cfg.pe.out.bits
    expected = to_unsigned(activate_trace(cfg, func, x), bits)
    xs, fs = to_unsigned(x, bits).tolist(), func.tolist()
    n = len(xs)
    got = [0] * n
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.x.value = 0
    dut.func.value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    edge = FallingEdge(dut.clk)
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
        dut._log.error("vector %d func=%d x=%d: expected 0x%x got 0x%x", i, fs[i], x[i], expected[i], got[i])
    assert len(bad) == 0, f"{len(bad)} of {n} activation outputs differ from the golden model"
    rec = {"test": "activation", "sim": cocotb.SIM_NAME, "vectors": n, "cycles": n + lat,
           "wall_s": round(wall, 3), "cycles_per_s": round((n + lat) / wall, 1)}
    record(dut, rec)
