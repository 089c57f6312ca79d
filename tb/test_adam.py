"""cocotb bench: the Adam unit against fixar.golden.adam, bit for bit.

Blocks of weights, each with its own hyper-parameter codes and step size
(held steady while the block is in flight, as the controller does); inside a
block, random bubbles in ``valid``. Operands mix every magnitude (log-uniform
over the format), zeros and the format extremes; step sizes include the first
steps of a real bias-corrected schedule and random codes up to the largest.
"""
from __future__ import annotations

import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from fixar.config import FixarConfig, FixedFormat
from fixar.golden.adam import AdamCodes, StepSize, adam_update
from fixar.golden.fixed import I64, to_unsigned
from fixar.tb.figures import record

HYPER = [(0.9, 0.999, 1e-8), (0.5, 0.9, 1e-4), (0.99, 0.9999, 1e-6), (0.2, 0.3, 1e-2)]


def codes_of(fmt: FixedFormat, rng: np.random.Generator, n: int) -> np.ndarray:
    """Log-uniform magnitudes over the whole format, with zeros and both extremes."""
    top = fmt.bits - 1 if fmt.signed else fmt.bits
    mag = np.floor(2.0 ** rng.uniform(0, top, n)).astype(I64)
    mag = np.minimum(mag, fmt.max_int)
    x = np.where(rng.random(n) < 0.5, -mag, mag) if fmt.signed else mag
    special = rng.random(n)
    x = np.where(special < 0.03, 0, x)
    x = np.where((special >= 0.03) & (special < 0.05), fmt.max_int, x)
    x = np.where((special >= 0.05) & (special < 0.07), fmt.min_int, x)
    return x.astype(I64)


def blocks(cfg: FixarConfig, rng: np.random.Generator, n_blocks: int, size: int):
    ad = cfg.adam
    lr_max = (1 << (ad.lr_frac + 1)) - 1
    schedule = StepSize(cfg, 1e-3, 0.9, 0.999)
    for i in range(n_blocks):
        b1, b2, eps = HYPER[i % len(HYPER)]
        codes = AdamCodes.build(cfg, b1, b2, eps)
        lr = schedule.next() if i < n_blocks // 2 else int(rng.integers(1, lr_max + 1))
        w = codes_of(cfg.pe.weight, rng, size)
        g, m, v = codes_of(ad.grad, rng, size), codes_of(ad.m, rng, size), codes_of(ad.v, rng, size)
        yield codes, lr, w, g, m, v, adam_update(cfg, codes, lr, w, g, m, v)


@cocotb.test()
async def test_adam_bit_exact(dut):
    cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"])
    lat = int(os.environ["FIXAR_LATENCY"])
    n_blocks = int(os.environ.get("FIXAR_BLOCKS", "24"))
    size = int(os.environ.get("FIXAR_BLOCK_SIZE", "1000"))
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    ad, wf = cfg.adam, cfg.pe.weight

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.valid.value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    edge = FallingEdge(dut.clk)
    bad, total, cycles = 0, 0, 0
    start = time.perf_counter()
    for codes, lr, w, g, m, v, (ew, em, ev) in blocks(cfg, rng, n_blocks, size):
        for port, value in (("b1", codes.b1), ("c1", codes.c1), ("b2", codes.b2), ("c2", codes.c2),
                            ("e2", codes.e2), ("lr", lr)):
            getattr(dut, port).value = value
        ins = list(zip(to_unsigned(w, wf.bits).tolist(), to_unsigned(g, ad.grad.bits).tolist(),
                       to_unsigned(m, ad.m.bits).tolist(), v.tolist()))
        expect = list(zip(to_unsigned(ew, wf.bits).tolist(), to_unsigned(em, ad.m.bits).tolist(), ev.tolist()))
        got = []
        i = 0
        while len(got) < len(ins):
            await edge
            cycles += 1
            if dut.out_valid.value:
                got.append((dut.out_w.value.to_unsigned(), dut.out_m.value.to_unsigned(),
                            dut.out_v.value.to_unsigned()))
            if i < len(ins) and rng.random() < 0.85:
                dut.valid.value = 1
                dut.w.value, dut.g.value, dut.m.value, dut.v.value = ins[i]
                i += 1
            else:
                dut.valid.value = 0
            if cycles > 10 * (total + len(ins)) + 100 * lat:
                raise AssertionError("the Adam unit stopped producing outputs")
        for j, (e, o) in enumerate(zip(expect, got)):
            if e != o:
                bad += 1
                if bad <= 8:
                    dut._log.error("lr=%d w=%d g=%d m=%d v=%d: expected (w, m, v) %s got %s",
                                   lr, w[j], g[j], m[j], v[j], e, o)
        total += len(ins)
        # drain before the codes change: they are steady for a whole pass
        dut.valid.value = 0
        for _ in range(lat):
            await edge
            cycles += 1
            assert not dut.out_valid.value, "the Adam unit produced more outputs than it was given"
    wall = time.perf_counter() - start
    assert bad == 0, f"{bad} of {total} Adam updates differ from the golden model"
    record(dut, {"test": "adam", "sim": cocotb.SIM_NAME, "updates": total, "cycles": cycles,
                 "wall_s": round(wall, 3), "cycles_per_s": round(cycles / wall, 1)})
