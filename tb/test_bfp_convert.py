"""The generated BFP converter (gen/units/bfp_convert.py) against
fixar.golden.bfp.to_bfp, bit for bit: the TB, its cocotb tests (module
``fixar.tb.test_bfp_convert``) and the pytest entries (Verilator and Icarus;
stochastic rounding in rtl/, round-to-nearest in a generated variant).

Each trace is whole tensors converted by the golden model (one seed each)
whose groups the TB presents in the tensor's order, with the group's flat
index: the converter must give every group's mantissas and shift, at every
width. Tensors: log-uniform codes over the whole Q12.20 range, with idle
cycles between groups; corners (all-zero groups, one -2^31 among codes of
one LSB, every code at its group's largest positive or negative value so
mantissas saturate, groups small enough to be kept exactly).
FIXAR_GROUPS sets the number of random groups per width (default 400).
"""
from __future__ import annotations

import dataclasses
import os
import re

import cocotb
import numpy as np
import pytest

from fixar.config import load
from fixar.golden.bfp import to_bfp
from fixar.golden.fixed import to_unsigned
from fixar.sim.rtl import generated, run_module, run_mutated, shipped_rtl
from fixar.tb.base import BenchTB
from fixar.tb.figures import record

BENCH = "fixar.tb.test_bfp_convert"
MODULE = "fixar_bfp_convert"


def random_tensor(rng: np.random.Generator, rows: int, n: int, bits: int = 32) -> np.ndarray:
    """Codes whose magnitudes are log-uniform over every bit length, both signs, some zeros."""
    mag = np.floor(2.0 ** rng.uniform(0, bits - 1, (rows, n))).astype(np.int64)
    q = mag * rng.choice([-1, 1], (rows, n))
    q[rng.random((rows, n)) < 0.05] = 0
    return q


def corner_tensors(g: int, bits: int = 32) -> list[np.ndarray]:
    """Groups the rules single out (docs/bfp.md, steps 2-6)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    zero = np.zeros((2, 2 * g), dtype=np.int64)
    zero[1, g + 3] = 1
    tiny = np.ones((1, g), dtype=np.int64) * np.array([1, -1] * (g // 2) + [1] * (g % 2))
    tiny[0, g // 2] = lo                              # -2^31 among codes of one LSB
    tops = [np.full((1, g), v, dtype=np.int64) for v in (hi, lo, 3, -4, 7, 127, -128, 255, (1 << 20) - 1)]
    ramp = np.arange(-g, g, dtype=np.int64).reshape(2, g)     # small codes, kept exactly at wide mantissas
    return [zero, tiny, ramp, *tops]


class TB(BenchTB):
    """Presents one group per cycle on falling edges; collects every converted group."""

    IDLE = ("valid", "q", "m", "seed", "group")

    def __init__(self, dut):
        super().__init__(dut)
        self.groups = int(os.environ.get("FIXAR_GROUPS", "400"))
        self.frac = self.cfg.pe.act32.frac
        self.mant_bits = max(self.cfg.bfp.widths)

    def convert(self, tensors: list[np.ndarray]) -> tuple[list[dict], list[tuple]]:
        """(inputs per group, expected (mantissas, shift or None for an all-zero group) per group)."""
        g, ins, want = self.cfg.bfp.group, [], []
        for q in tensors:
            for m in self.cfg.bfp.widths:
                seed = int(self.rng.integers(1 << 32))
                t = to_bfp(q, self.frac, self.cfg.bfp.format(m), seed, axis=-1)
                padded = np.zeros((q.shape[0], t.mant.shape[1] * g), dtype=np.int64)
                padded[:, :q.shape[1]] = q
                lsb = t.lsb_exp + self.frac
                for row in range(q.shape[0]):
                    for k in range(t.mant.shape[1]):
                        words = to_unsigned(padded[row, k * g:(k + 1) * g], 32).tolist()
                        ins.append({"q": sum(int(v) << (32 * r) for r, v in enumerate(words)), "m": m,
                                    "seed": seed, "group": row * t.mant.shape[1] + k})
                        nonzero = bool(padded[row, k * g:(k + 1) * g].any())
                        want.append((t.mant[row, k].tolist(), int(lsb[row, k]) if nonzero else None))
        return ins, want

    async def run(self, tensors: list[np.ndarray], label: str, idle: float = 0.0) -> None:
        dut = self.dut
        ins, want = self.convert(tensors)
        got, i, cycles = [], 0, 0
        mask = (1 << self.mant_bits) - 1
        while len(got) < len(want):
            await self.edge
            cycles += 1
            if dut.out_valid.value:
                raw = int(dut.mant.value)
                mants = [((raw >> (self.mant_bits * r)) & mask) for r in range(self.cfg.bfp.group)]
                mants = [v - (1 << self.mant_bits) if v >> (self.mant_bits - 1) else v for v in mants]
                got.append((mants, dut.shift.value.to_signed()))
            if i < len(ins) and self.rng.random() >= idle:
                for k, v in ins[i].items():
                    getattr(dut, k).value = v
                dut.valid.value = 1
                i += 1
            else:
                dut.valid.value = 0
            assert cycles < 4 * len(want) + 100, f"{label}: {len(got)} of {len(want)} groups came out"
        bad = [j for j, ((wm, ws), (gm, gs)) in enumerate(zip(want, got)) if wm != gm or (ws is not None and ws != gs)]
        for j in bad[:6]:
            self.log.error("%s: group %d (m = %d): expected %s, got %s", label, j, ins[j]["m"], want[j], got[j])
        assert not bad, f"{label}: {len(bad)} of {len(want)} groups differ from the golden model"
        self.log.info("%s: %d groups bit-exact", label, len(want))
        record(dut, {"test": label, "sim": cocotb.SIM_NAME, "groups": len(want), "cycles": cycles})


@cocotb.test()
async def test_random_tensors(dut):
    """Log-uniform codes at every width, with idle cycles between groups."""
    tb = TB(dut)
    await tb.reset()
    g = tb.cfg.bfp.group
    n = g * 3 - 5                                    # a short last group, zero-padded
    rows = max(1, tb.groups // 3)
    await tb.run([random_tensor(tb.rng, rows, n)], "random", idle=0.2)


@cocotb.test()
async def test_corners(dut):
    tb = TB(dut)
    await tb.reset()
    await tb.run(corner_tensors(tb.cfg.bfp.group), "corners")


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


def _convert(sim, cfg, rtl_dir, groups, **kwargs):
    return run_module(sim, cfg, rtl_dir, MODULE, BENCH, env={"FIXAR_GROUPS": str(groups)}, **kwargs)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_bfp_convert_bit_exact(sim):
    """The committed rtl/ converter (stochastic rounding): random tensors and corners."""
    cfg = load("default")
    res = _convert(sim, cfg, shipped_rtl(), 400 if sim == "verilator" else 100)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
    assert res.tests == 2


def test_bfp_convert_round_to_nearest():
    """bfp.rounding = "nearest" generates the other rounding: ties to even, no words."""
    base = load("default")
    cfg = base.variant(name="bfp_nearest", bfp=dataclasses.replace(base.bfp, rounding="nearest"))
    res = _convert("verilator", cfg, generated(cfg), 200)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def _key_plant() -> tuple[str, str]:
    """Element 1's key, group * g + 1, as Amaranth wrote it in rtl/ (found
    through the key1 wire that names it), and the same with + 2."""
    src = (shipped_rtl() / f"{MODULE}.v").read_text()
    name = re.search(r"assign key1 = (\\\$\d+) \[31:0\];", src).group(1)
    line = re.search(rf"assign {re.escape(name)}  = (\\\$\d+)  \+ 1'h1;", src).group(0)
    return line, line.replace("+ 1'h1;", "+ 2'h2;")


def test_bench_catches_planted_bug():
    """Element r's random word keyed by group * g + r + 1 (one off): the random tensors must fail."""
    cfg = load("default")
    old, new = _key_plant()
    res = run_mutated(cfg, MODULE, BENCH, old, new, testcase="test_random_tensors", env={"FIXAR_GROUPS": "100"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong random-word key"
