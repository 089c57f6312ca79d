"""The vector unit against fixar.golden.vector, bit for bit: the TB, its
cocotb test (module ``fixar.tb.test_vector``) and the pytest entries.

Random rows through every operation, the operation changing every cycle
(with bubbles), operands mixing every magnitude, the format extremes and the
values the operations branch on (0, +-1, +-1 +- 1 LSB); coefficients real
(gamma, tau, 2/B, noise scale) and random; the limit (RELU_MASK's and
DTANH's) absent, random, just below one, or equal to one of the row's b.
NOISE rows use a random number of lanes, and the PRNG is reseeded once in
the middle of the run. FIXAR_ROWS rows (default 20 000).
"""
from __future__ import annotations

import os
import re
import time

import cocotb
import numpy as np
import pytest

from fixar.config import FixarConfig, VecOp, load
from fixar.golden.fixed import I64, from_unsigned, to_unsigned
from fixar.golden.vector import noise_add, vector_op
from fixar.sim.rtl import run_module, run_mutated, shipped_rtl
from fixar.tb.base import BenchTB
from fixar.tb.figures import record

BENCH = "fixar.tb.test_vector"


def operands(cfg: FixarConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    fmt = cfg.pe.act32
    one = 1 << fmt.frac
    mag = np.minimum(np.floor(2.0 ** rng.uniform(0, fmt.bits - 1, n)), fmt.max_int).astype(I64)
    x = np.where(rng.random(n) < 0.5, -mag, mag)
    special = np.array([0, 1, -1, one, -one, one + 1, -one - 1, one - 1, -one + 1, fmt.max_int, fmt.min_int])
    pick = rng.random(n) < 0.15
    return np.where(pick, rng.choice(special, n), x).astype(I64)


def pack(words, bits: int) -> int:
    return sum(int(w) << (i * bits) for i, w in enumerate(to_unsigned(np.asarray(words), bits).tolist()))


def unpack(value: int, lanes: int, bits: int) -> np.ndarray:
    return from_unsigned(np.array([(value >> (i * bits)) & ((1 << bits) - 1) for i in range(lanes)]), bits)


def random_row(cfg: FixarConfig, rng: np.random.Generator, real: list[int]) -> dict:
    """One row's inputs: operation, operands a and b, flags, coefficient c,
    lane count (NOISE's) and limit (RELU_MASK's and DTANH's)."""
    L, bits, cf = cfg.array.rows, cfg.pe.act32.bits, cfg.vector.coef_frac
    one = 1 << cfg.pe.act32.frac
    op = VecOp(int(rng.integers(0, len(VecOp))))
    a, b = operands(cfg, rng, L), operands(cfg, rng, L)
    flag = rng.random(L) < 0.5
    c = int(rng.choice(real)) if rng.random() < 0.5 else int(rng.integers(0, 1 << (cf + 1)))
    count = int(rng.integers(1, L + 1))
    # the limit: none (2^(bits-1)), one of the row's b (the edge), just below
    # one (where DTANH's limits lie), or any
    kind = rng.integers(0, 4)
    limit = (1 << (bits - 1)) if kind == 0 else int(abs(b[rng.integers(0, L)])) if kind == 1 \
        else one - int(rng.integers(0, 1 << 12)) if kind == 2 else int(rng.integers(0, (1 << (bits - 1)) + 1))
    return dict(op=op, a=a, b=b, flag=flag, c=c, count=count, limit=limit)


class TB(BenchTB):
    IDLE = ("valid", "seed_we")

    def __init__(self, dut):
        super().__init__(dut)
        self.lanes, self.bits = self.cfg.array.rows, self.cfg.pe.act32.bits

    def sample(self) -> np.ndarray | None:
        """The row leaving the unit this cycle, if any."""
        if self.dut.out_valid.value:
            return unpack(self.dut.y.value.to_unsigned(), self.lanes, self.bits)
        return None

    def drive(self, row: dict) -> None:
        dut, bits = self.dut, self.bits
        dut.valid.value = 1
        dut.op.value, dut.count.value = int(row["op"]), row["count"]
        dut.c.value, dut.limit.value = row["c"], row["limit"]
        dut.a.value, dut.b.value = pack(row["a"], bits), pack(row["b"], bits)
        dut.flag.value = sum(int(f) << k for k, f in enumerate(row["flag"]))

    def reseed(self, state: int) -> None:
        self.dut.seed_we.value, self.dut.seed.value = 1, state
        self.dut.valid.value = 0

    def compare(self, expected: list, got: list) -> int:
        """Rows that differ (unused NOISE lanes are don't-care); logs the first few."""
        bad = 0
        for k, ((op, count, e), g) in enumerate(zip(expected, got)):
            lanes = count if op == VecOp.NOISE else self.lanes
            if not np.array_equal(e[:lanes], g[:lanes]):
                bad += 1
                if bad <= 8:
                    self.log.error("row %d %s count=%d: expected %s got %s", k, op.name, count, e[:lanes], g[:lanes])
        return bad


# ---------------------------------------------------------------- cocotb tests

@cocotb.test()
async def test_vector_bit_exact(dut):
    tb = TB(dut)
    cfg, rng, lat, L = tb.cfg, tb.rng, tb.latency, tb.lanes
    rows = int(os.environ.get("FIXAR_ROWS", "20000"))
    cf = cfg.vector.coef_frac
    real = [round(x * 2 ** cf) for x in (0.99, 0.005, 2 / 64, 2 / 512, 0.1 * 3 ** 0.5, 0.3 * 3 ** 0.5, 1.0)]
    await tb.reset()

    state = cfg.prng.seed
    expected, got = [], []
    i = cycles = 0
    reseeded = False
    start = time.perf_counter()
    while len(got) < rows:
        await tb.edge
        cycles += 1
        y = tb.sample()
        if y is not None:
            got.append(y)
        dut.seed_we.value = 0
        if i == rows // 2 and not reseeded:   # reseed mid-run, once, between rows
            reseeded = True
            state = int(rng.integers(1, 1 << 32))
            tb.reseed(state)
            continue
        if i < rows and rng.random() < 0.85:
            row = random_row(cfg, rng, real)
            op, count = row["op"], row["count"]
            if op == VecOp.NOISE:
                y, state = noise_add(cfg, row["a"][:count], state, row["c"])
                y = np.concatenate([y, np.zeros(L - count, dtype=I64)])
            else:
                y = vector_op(cfg, op, row["a"], row["b"], row["flag"], row["c"], row["limit"])
            expected.append((op, count, y))
            tb.drive(row)
            i += 1
        else:
            dut.valid.value = 0
        if cycles > 3 * rows + 10 * lat:
            raise AssertionError("the vector unit stopped producing rows")
    wall = time.perf_counter() - start
    bad = tb.compare(expected, got)
    assert bad == 0, f"{bad} of {rows} vector rows differ from the golden model"
    assert int(dut.prng_state.value) == state, "the PRNG state differs from the golden model's"
    record(dut, {"test": "vector", "sim": cocotb.SIM_NAME, "rows": rows, "lanes": L, "cycles": cycles,
                 "wall_s": round(wall, 3), "cycles_per_s": round(cycles / wall, 1)})


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_vector_unit_default(sim):
    cfg = load("default")
    env = {} if sim == "verilator" else {"FIXAR_ROWS": "1500"}
    res = run_module(sim, cfg, shipped_rtl(), "fixar_vector", BENCH, env=env)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def test_bench_catches_planted_bug():
    """Lane 0's noise truncated instead of rounded (its rounding constant
    zeroed): the bench must fail."""
    cfg = load("default")
    shift = cfg.vector.coef_frac + cfg.prng.width // 2 - cfg.pe.act32.frac
    src = (shipped_rtl() / "fixar_vector.v").read_text()
    found = re.search(rf"(\d+)'h{1 << (shift - 1):x}\)", src)
    assert found, "the noise rounding constant was not found in rtl/fixar_vector.v"
    res = run_mutated(cfg, "fixar_vector", BENCH, found.group(0),
                      f"{found.group(1)}'h0)", env={"FIXAR_ROWS": "3000"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong noise rounding"
