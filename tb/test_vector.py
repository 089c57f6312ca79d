"""cocotb bench: the vector unit against fixar.golden.vector, bit for bit.

Random rows through every operation, the operation changing every cycle
(with bubbles), operands mixing every magnitude, the format extremes and the
values the operations branch on (0, +-1, +-1 +- 1 LSB); coefficients real
(gamma, tau, 2/B, noise scale) and random; the limit (RELU_MASK's and
DTANH's) absent, random, just below one, or equal to one of the row's b. NOISE rows use a random number of lanes, and
the PRNG is reseeded once in the middle of the run.
"""
from __future__ import annotations

import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from fixar.config import FixarConfig, VecOp
from fixar.golden.fixed import I64, from_unsigned, to_unsigned
from fixar.golden.vector import noise_add, vector_op
from fixar.tb.figures import record


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


@cocotb.test()
async def test_vector_bit_exact(dut):
    cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"])
    lat = int(os.environ["FIXAR_LATENCY"])
    rows = int(os.environ.get("FIXAR_ROWS", "20000"))
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    L, bits, cf = cfg.array.rows, cfg.pe.act32.bits, cfg.vector.coef_frac
    one = 1 << cfg.pe.act32.frac
    real = [round(x * 2 ** cf) for x in (0.99, 0.005, 2 / 64, 2 / 512, 0.1 * 3 ** 0.5, 0.3 * 3 ** 0.5, 1.0)]

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.valid.value = 0
    dut.seed_we.value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    edge = FallingEdge(dut.clk)

    state = cfg.prng.seed
    expected, got = [], []
    i = cycles = 0
    reseeded = False
    start = time.perf_counter()
    while len(got) < rows:
        await edge
        cycles += 1
        if dut.out_valid.value:
            got.append(unpack(dut.y.value.to_unsigned(), L, bits))
        dut.seed_we.value = 0
        if i == rows // 2 and not reseeded:   # reseed mid-run, once, between rows
            reseeded = True
            state = int(rng.integers(1, 1 << 32))
            dut.seed_we.value, dut.seed.value = 1, state
            dut.valid.value = 0
            continue
        if i < rows and rng.random() < 0.85:
            op = VecOp(int(rng.integers(0, len(VecOp))))
            a, b = operands(cfg, rng, L), operands(cfg, rng, L)
            flag = rng.random(L) < 0.5
            c = int(rng.choice(real)) if rng.random() < 0.5 else int(rng.integers(0, 1 << (cf + 1)))
            count = int(rng.integers(1, L + 1))
            # RELU_MASK's and DTANH's limit: none (2^(bits-1)), one of the row's b (the
            # edge), just below one (where DTANH's limits lie), or any
            kind = rng.integers(0, 4)
            limit = (1 << (bits - 1)) if kind == 0 else int(abs(b[rng.integers(0, L)])) if kind == 1 \
                else one - int(rng.integers(0, 1 << 12)) if kind == 2 else int(rng.integers(0, (1 << (bits - 1)) + 1))
            if op == VecOp.NOISE:
                y, state = noise_add(cfg, a[:count], state, c)
                y = np.concatenate([y, np.zeros(L - count, dtype=I64)])
            else:
                y = vector_op(cfg, op, a, b, flag, c, limit)
            expected.append((op, count, y))
            dut.valid.value = 1
            dut.op.value, dut.count.value, dut.c.value, dut.limit.value = int(op), count, c, limit
            dut.a.value, dut.b.value = pack(a, bits), pack(b, bits)
            dut.flag.value = sum(int(f) << k for k, f in enumerate(flag))
            i += 1
        else:
            dut.valid.value = 0
        if cycles > 3 * rows + 10 * lat:
            raise AssertionError("the vector unit stopped producing rows")
    wall = time.perf_counter() - start
    bad = 0
    for k, ((op, count, e), g) in enumerate(zip(expected, got)):
        lanes = count if op == VecOp.NOISE else L   # unused NOISE lanes are don't-care
        if not np.array_equal(e[:lanes], g[:lanes]):
            bad += 1
            if bad <= 8:
                dut._log.error("row %d %s count=%d: expected %s got %s", k, op.name, count, e[:lanes], g[:lanes])
    assert bad == 0, f"{bad} of {rows} vector rows differ from the golden model"
    assert int(dut.prng_state.value) == state, "the PRNG state differs from the golden model's"
    record(dut, {"test": "vector", "sim": cocotb.SIM_NAME, "rows": rows, "lanes": L, "cycles": cycles,
                 "wall_s": round(wall, 3), "cycles_per_s": round(cycles / wall, 1)})
