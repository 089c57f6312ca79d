"""cocotb bench: one array core computing whole layers, against the golden
model bit for bit and against the cycle model cycle for cycle.

Environment: FIXAR_CONFIG_JSON, FIXAR_LATENCY, FIXAR_CASES (random layers,
default 1000), FIXAR_DDPG_BATCH (batch of the DDPG-shape layers, default 8),
FIXAR_BENCH_JSON (figures).
"""
from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from fixar.config import ActFunc, FixarConfig, PEMode
from fixar.golden.layer import linear
from fixar.tb.figures import record
from fixar.tb.core_schedule import Layer, cycles, slots, stream, unpack_outputs

PORTS = ("w_ld", "w_row", "w_data", "w_swap", "valid", "a", "slot", "first", "last", "bias", "func", "mode")
PRIMES = [1, 2, 3, 5, 7, 11, 13, 17, 23, 29, 31, 37]


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"])
        self.latency = int(os.environ["FIXAR_LATENCY"])
        self.rng = np.random.default_rng(cocotb.RANDOM_SEED)
        self.handles = {p: getattr(dut, p) for p in PORTS}
        self.total_cycles = 0
        self.wall = 0.0

    async def reset(self):
        Clock(self.dut.clk, 10, unit="ns").start()
        for h in self.handles.values():
            h.value = 0
        self.dut.rst.value = 1
        for _ in range(2):
            await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    def random_layer(self, M, K, B, mode, func) -> Layer:
        pe, rng = self.cfg.pe, self.rng
        act = pe.act32 if mode == PEMode.FXP32 else pe.act16

        def codes(fmt, shape, scale_frac):
            wide = rng.integers(fmt.min_int, fmt.max_int + 1, shape)
            one = min(1 << scale_frac, fmt.max_int)
            near = rng.integers(-one, one + 1, shape)
            return np.where(rng.random(shape) < 0.2, wide, near)

        return Layer(W=codes(pe.weight, (M, K), pe.weight.frac - 2), X=codes(act, (K, B), act.frac),
                     bias=codes(pe.out, (M,), pe.out.frac), func=func, mode=mode)

    async def run_layer(self, layer: Layer, label: str) -> None:
        dut, h = self.dut, self.handles
        edge = FallingEdge(dut.clk)
        outputs = []
        n = 0
        start = time.perf_counter()

        def sample():
            if dut.out_valid.value:
                outputs.append((dut.out_slot.value.to_unsigned(), dut.out_lo.value.to_unsigned(),
                                dut.out_hi.value.to_unsigned()))

        for item in stream(self.cfg, layer):
            await edge
            sample()
            for k, v in item.items():
                h[k].value = v
            n += 1
        drain = 0
        want_n = -(-layer.W.shape[0] // self.cfg.array.cols) * slots(layer)
        while len(outputs) < want_n and drain < 10 * self.latency + 10:
            await edge
            sample()
            if drain == 0:  # the last item has been clocked in; stop loading and computing
                for k in ("w_ld", "w_swap", "valid"):
                    h[k].value = 0
            drain += 1
        self.wall += time.perf_counter() - start
        measured = n + drain  # falling edges from the first driven item to the sample of the last output
        self.total_cycles += measured
        got = unpack_outputs(self.cfg, layer, outputs)
        want = linear(self.cfg, layer.W, layer.X, layer.bias, layer.func, layer.mode)
        assert len(outputs) == want_n, f"{label}: {len(outputs)} outputs, expected {want_n}"
        bad = np.argwhere(got != want)
        for i, b in bad[:6]:
            dut._log.error("%s: Y[%d, %d] expected %d got %d", label, i, b, want[i, b], got[i, b])
        assert len(bad) == 0, f"{label}: {len(bad)} of {want.size} outputs differ from the golden model"
        model = cycles(self.cfg, layer, self.latency)
        assert measured == model, f"{label}: {measured} cycles measured, cycle model says {model}"

    def record(self, label: str, cases: int) -> None:
        rec = {"test": label, "sim": cocotb.SIM_NAME, "cases": cases, "cycles": self.total_cycles,
               "wall_s": round(self.wall, 3), "cycles_per_s": round(self.total_cycles / max(self.wall, 1e-9), 1)}
        record(self.dut, rec)


@cocotb.test()
async def test_random_layers(dut):
    """Random shapes (primes and 1 included), batches, modes and functions, back to back."""
    tb = TB(dut)
    await tb.reset()
    R, C = tb.cfg.array.rows, tb.cfg.array.cols
    n = int(os.environ.get("FIXAR_CASES", "1000"))
    rng = tb.rng
    for case in range(n):
        dim = lambda hi: int(rng.choice(PRIMES)) if rng.random() < 0.5 else int(rng.integers(1, hi + 1))
        M, K = dim(3 * C), dim(3 * R)
        B = int(rng.choice([1, 2, 3, int(rng.integers(1, 2 * R + 1))]))
        mode, func = PEMode(int(rng.integers(2))), ActFunc(int(rng.integers(3)))
        await tb.run_layer(tb.random_layer(M, K, B, mode, func), f"case {case} ({M}x{K}, B={B}, {mode.name}, {func.name})")
    tb.record("random_layers", n)


@cocotb.test()
async def test_ddpg_layers(dut):
    """HalfCheetah's DDPG layer shapes (state 17, action 6), both modes."""
    tb = TB(dut)
    await tb.reset()
    B = int(os.environ.get("FIXAR_DDPG_BATCH", "8"))
    shapes = [(400, 17, ActFunc.RELU), (300, 400, ActFunc.RELU), (6, 300, ActFunc.TANH),
              (400, 23, ActFunc.RELU), (1, 300, ActFunc.IDENTITY)]
    for mode in PEMode:
        for M, K, func in shapes:
            await tb.run_layer(tb.random_layer(M, K, B, mode, func), f"{K}->{M} B={B} {mode.name}")
    tb.record("ddpg_layers", 2 * len(shapes))


@cocotb.test(skip=not os.environ.get("FIXAR_BENCH_LAYERS"))
async def test_bench_layers(dut):
    """Layers listed in FIXAR_BENCH_LAYERS (JSON [[M, K, B, mode], ...]) for `make bench`:
    checked like the others, and their cycles and utilization recorded."""
    spec = json.loads(os.environ.get("FIXAR_BENCH_LAYERS", "[]"))
    tb = TB(dut)
    await tb.reset()
    R, C = tb.cfg.array.rows, tb.cfg.array.cols
    for M, K, B, mode in spec:
        before = tb.total_cycles
        layer = tb.random_layer(M, K, B, PEMode[mode], ActFunc.RELU)
        await tb.run_layer(layer, f"bench {K}->{M} B={B} {mode}")
        spent = tb.total_cycles - before
        # A PE does one MAC per cycle in FXP32 and two (one per lane) in FXP16.
        peak = R * C * (2 if mode == "FXP16" else 1)
        rec = {"test": "bench_layer", "M": M, "K": K, "B": B, "mode": mode, "cycles": spent,
               "utilization": round(M * K * B / (peak * spent), 4)}
        record(dut, rec)
    tb.record("bench_layers", len(spec))
