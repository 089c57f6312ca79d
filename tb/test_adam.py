"""The Adam unit against fixar.golden.adam, bit for bit: the TB, its cocotb
test (module ``fixar.tb.test_adam``) and the pytest entries.

Blocks of weights, each with its own hyper-parameter codes and step size
(held steady while the block is in flight, as the controller does); inside a
block, random bubbles in ``valid``. Operands mix every magnitude (log-uniform
over the format), zeros and the format extremes; step sizes include the first
steps of a real bias-corrected schedule and random codes up to the largest.
FIXAR_BLOCKS (default 24) blocks of FIXAR_BLOCK_SIZE (default 1000) weights.
"""
from __future__ import annotations

import os
import re
import time

import cocotb
import numpy as np
import pytest

from fixar.config import FixarConfig, FixedFormat, load
from fixar.golden.adam import AdamCodes, StepSize, adam_update
from fixar.golden.fixed import I64, to_unsigned
from fixar.sim.rtl import generated, run_module, run_mutated, shipped_rtl
from fixar.tb.base import BenchTB
from fixar.tb.figures import record

BENCH = "fixar.tb.test_adam"

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
    """Lazily, one block at a time: the bench's bubbles draw from the same
    ``rng`` between blocks."""
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


class TB(BenchTB):
    IDLE = ("valid",)

    def __init__(self, dut):
        super().__init__(dut)
        self.updates = self.cycles = self.bad = 0

    async def block(self, codes: AdamCodes, lr: int, w, g, m, v, expected) -> None:
        """One block through the unit: codes and step size steady, operands
        with random bubbles (85 % valid), outputs compared in order, then the
        pipeline drained (the codes change only between passes)."""
        dut, ad, wf, lat = self.dut, self.cfg.adam, self.cfg.pe.weight, self.latency
        for port, value in (("b1", codes.b1), ("c1", codes.c1), ("b2", codes.b2), ("c2", codes.c2),
                            ("e2", codes.e2), ("lr", lr)):
            getattr(dut, port).value = value
        ins = list(zip(to_unsigned(w, wf.bits).tolist(), to_unsigned(g, ad.grad.bits).tolist(),
                       to_unsigned(m, ad.m.bits).tolist(), v.tolist()))
        ew, em, ev = expected
        expect = list(zip(to_unsigned(ew, wf.bits).tolist(), to_unsigned(em, ad.m.bits).tolist(), ev.tolist()))
        got = []
        i = 0
        while len(got) < len(ins):
            await self.edge
            self.cycles += 1
            if dut.out_valid.value:
                got.append((dut.out_w.value.to_unsigned(), dut.out_m.value.to_unsigned(),
                            dut.out_v.value.to_unsigned()))
            if i < len(ins) and self.rng.random() < 0.85:
                dut.valid.value = 1
                dut.w.value, dut.g.value, dut.m.value, dut.v.value = ins[i]
                i += 1
            else:
                dut.valid.value = 0
            if self.cycles > 10 * (self.updates + len(ins)) + 100 * lat:
                raise AssertionError("the Adam unit stopped producing outputs")
        for j, (e, o) in enumerate(zip(expect, got)):
            if e != o:
                self.bad += 1
                if self.bad <= 8:
                    self.log.error("lr=%d w=%d g=%d m=%d v=%d: expected (w, m, v) %s got %s",
                                   lr, w[j], g[j], m[j], v[j], e, o)
        self.updates += len(ins)
        dut.valid.value = 0
        for _ in range(lat):
            await self.edge
            self.cycles += 1
            assert not dut.out_valid.value, "the Adam unit produced more outputs than it was given"


# ---------------------------------------------------------------- cocotb tests

@cocotb.test()
async def test_adam_bit_exact(dut):
    tb = TB(dut)
    n_blocks = int(os.environ.get("FIXAR_BLOCKS", "24"))
    size = int(os.environ.get("FIXAR_BLOCK_SIZE", "1000"))
    await tb.reset()
    start = time.perf_counter()
    for codes, lr, w, g, m, v, expected in blocks(tb.cfg, tb.rng, n_blocks, size):
        await tb.block(codes, lr, w, g, m, v, expected)
    wall = time.perf_counter() - start
    assert tb.bad == 0, f"{tb.bad} of {tb.updates} Adam updates differ from the golden model"
    record(dut, {"test": "adam", "sim": cocotb.SIM_NAME, "updates": tb.updates, "cycles": tb.cycles,
                 "wall_s": round(wall, 3), "cycles_per_s": round(tb.cycles / wall, 1)})


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_adam_unit_default(sim):
    cfg = load("default")
    env = {} if sim == "verilator" else {"FIXAR_BLOCKS": "8", "FIXAR_BLOCK_SIZE": "300"}
    res = run_module(sim, cfg, shipped_rtl(), "fixar_adam", BENCH, env=env)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_adam_unit_narrow():
    """Another format set (the narrow config's weights) through the same bench."""
    cfg = load("narrow")
    res = run_module("verilator", cfg, generated(cfg), "fixar_adam", BENCH,
                     env={"FIXAR_BLOCKS": "8", "FIXAR_BLOCK_SIZE": "500"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_adam_unit_moments_rounded_to_nearest():
    """adam.m and adam.v rounded to nearest (the shipped config adam_rne, the
    default before the moments were rounded toward zero): the unit against
    the golden model, which follows the same config."""
    cfg = load("adam_rne")
    res = run_module("verilator", cfg, generated(cfg), "fixar_adam", BENCH,
                     env={"FIXAR_BLOCKS": "8", "FIXAR_BLOCK_SIZE": "500"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_moments_floored_instead_of_truncated():
    """The first toward-zero rounding (m's) loses its correction for negative
    sums, i.e. it floors: the bench must fail."""
    cfg = load("default")
    cf = cfg.adam.coef_frac
    text = (shipped_rtl() / "fixar_adam.v").read_text()
    found = re.search(rf"\? {cf}'h{(1 << cf) - 1:x} : {cf}'h0+;", text)
    assert found, "the toward-zero correction was not found in rtl/fixar_adam.v"
    res = run_mutated(cfg, "fixar_adam", BENCH, found.group(0),
                      found.group(0).replace(f"{cf}'h{(1 << cf) - 1:x}", f"{cf}'h0"),
                      env={"FIXAR_BLOCKS": "4", "FIXAR_BLOCK_SIZE": "500"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice moments that floor"


def test_bench_catches_planted_bug():
    """One rsqrt seed off by one LSB: the Newton steps shrink the error but
    must not hide it from the bench."""
    cfg = load("default")
    src = (shipped_rtl() / "fixar_adam.v").read_text()
    line = re.search(r"rsqrt_seeds\[37\] = (\d+)'h([0-9a-f]+);", src)
    assert line, "seed ROM initialisation not found in rtl/fixar_adam.v"
    width, value = line.group(1), int(line.group(2), 16)
    res = run_mutated(cfg, "fixar_adam", BENCH, line.group(0),
                      f"rsqrt_seeds[37] = {width}'h{value ^ (1 << 24):x};",
                      env={"FIXAR_BLOCKS": "4", "FIXAR_BLOCK_SIZE": "2000"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong rsqrt seed"
