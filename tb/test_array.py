"""The whole adaptive array (cores, memories, controller) running layer
operations, checked bit for bit against the golden model and cycle for cycle
against the cycle model of ``fixar.compiler.array_ops``: the TB, its cocotb
tests (module ``fixar.tb.test_array``) and the pytest entries (small config:
2 cores of 4 x 4).

The TB writes the memories through the host ports in the layouts of
``fixar.compiler.array_ops`` (the same code the host will use), describes an
operation, pulses ``start``, collects the output beats until ``done`` and
compares. Environment: FIXAR_CASES (random operations, default 1000),
FIXAR_DDPG_BATCH (default 8), FIXAR_BENCH_OPS (JSON list for `make bench`),
FIXAR_BENCH_JSON (figures).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time

import cocotb
import numpy as np
import pytest

from fixar.compiler.array_ops import (
    LayerOp,
    activation_image,
    bias_image,
    cycles,
    describe,
    feature_major_image,
    grad_images,
    out_dims,
    packed_slot_major_image,
    pair_image,
    unpack_outputs,
    useful_macs,
    utilization,
    weight_from_image,
    weight_image,
    weight_rows,
)
from fixar.config import ActFunc, GStore, PEMode, load, mask_no_limit, packed_shift_max, weight_groups
from fixar.driver.engine import quantizer_words
from fixar.golden.ddpg import bias_grad, weight_grad
from fixar.golden.layer import linear, transposed
from fixar.golden.qat import dequantize16, quantize16, quantizer
from fixar.sim.rtl import generated, run_module, run_mutated
from fixar.tb.base import BenchTB
from fixar.tb.figures import record

BENCH = "fixar.tb.test_array"

PRIMES = [1, 2, 3, 5, 7, 11, 13, 17, 23, 29, 31, 37]
# every control input the bench does not use is held at zero (a four-state
# simulator would otherwise see X on the read-enable muxes)
HOST_PORTS = ("wm_we", "am_we", "bm_we", "tm_we", "start", "qt_we", "rg_clear", "wm_re", "am_re", "wm_rea", "bm_rea",
              "am_rea", "gm_raddr", "gbm_raddr", "wm_tre", "wm_twe")   # the last two: the training controller's


class TB(BenchTB):
    IDLE = HOST_PORTS
    SETTLE_EDGES = 1

    def __init__(self, dut):
        super().__init__(dut)
        self.op_cycles = 0
        self.op_wall = 0.0
        self.log_ops = False  # record every operation's cycles (make bench)
        self.rnd_seed = None  # the last operation's stochastic-rounding seed (stochastic pe.out)

    async def write_rows(self, prefix: str, base: int, rows: list[int], we: int = 1):
        dut = self.dut
        we_h, addr_h, data_h = (getattr(dut, f"{prefix}_{x}") for x in ("we", "addr", "data"))
        for i, word in enumerate(rows):
            we_h.value, addr_h.value, data_h.value = we, base + i, word
            await self.edge
        we_h.value = 0

    async def read_activation_rows(self, base: int, n: int) -> list[list[int]]:
        """Rows base.. base + n - 1 of every core's activation memory (port B, registered)."""
        dut, N, width = self.dut, self.cfg.array.cores, self.cfg.array.rows * self.cfg.pe.act32.bits
        out: list[list[int]] = [[] for _ in range(N)]
        await self.edge    # an operation's last results reach memory at the edge after its done
        dut.am_re.value, dut.am_addr.value = (1 << N) - 1, base
        for i in range(n):                       # as read_rows
            await self.edge
            word = dut.am_rdata.value.to_unsigned()
            for core in range(N):
                out[core].append((word >> (core * width)) & ((1 << width) - 1))
            dut.am_addr.value = base + i + 1
        dut.am_re.value = 0
        return out

    async def read_rows(self, prefix: str, base: int, n: int) -> list[int]:
        """Rows of a memory with a read port (``<prefix>_raddr``/``_rdata``, registered)."""
        addr, data = getattr(self.dut, f"{prefix}_raddr"), getattr(self.dut, f"{prefix}_rdata")
        out = []
        await self.edge    # an operation's last results reach memory at the edge after its done
        addr.value = base
        for i in range(n):
            await self.edge                      # the rising edge before it latched the address
            out.append(data.value.to_unsigned())
            addr.value = base + i + 1
        return out

    # ------------------------------------------------------------ operations
    def codes(self, fmt, shape, scale_frac):
        """Random codes: mostly near +-1.0 (so sums stay in range and exercise
        rounding), one in five anywhere in the format (saturation, wrap)."""
        rng = self.rng
        wide = rng.integers(fmt.min_int, fmt.max_int + 1, shape)
        one = min(1 << max(scale_frac, 0), fmt.max_int)
        near = rng.integers(-one, one + 1, shape)
        return np.where(rng.random(shape) < 0.2, wide, near)

    def random_operands(self, op: LayerOp):
        pe = self.cfg.pe
        if op.grad:   # "W" is the error D (M x batch), X the layer input (K x batch)
            return (self.codes(pe.act32, (op.M, op.batch), pe.act32.frac - 4),
                    self.codes(pe.act32, (op.K, op.batch), pe.act32.frac), None)
        act = pe.act32 if op.mode == PEMode.FXP32 else pe.act16
        _, n_red = out_dims(op)
        W = self.codes(pe.weight, (op.M, op.K), pe.weight.frac - 2)
        X = self.codes(act, (n_red, op.batch), act.frac)
        b = self.codes(pe.out, (op.M,), pe.out.frac) if op.bias else None
        return W, X, b

    def golden(self, op: LayerOp, W, X, b):
        if op.grad:
            dW = weight_grad(self.cfg, W, X)
            # a folded bias gradient is the beat of one more slot (GStore.BOTH)
            return np.hstack([dW, bias_grad(self.cfg, W)[:, None]]) if op.gstore == GStore.BOTH else dW
        if op.transpose:
            return transposed(self.cfg, W, X, op.func, op.mode, rnd_seed=self.rnd_seed)
        return linear(self.cfg, W, X, b, op.func, op.mode, rnd_seed=self.rnd_seed)

    async def load(self, op: LayerOp, W=None, X=None, b=None):
        """Write whichever of W, X, b are given into the memories of ``op``."""
        d = describe(self.cfg, op)
        if op.grad:   # both operands per core: D slot-major, X^T feature-major (X None: on chip already)
            for n in range(self.cfg.array.cores):
                d_rows, x_rows = grad_images(self.cfg, d, W, np.zeros((op.K, op.batch)) if X is None else X, n)
                await self.write_rows("am", op.w_base, d_rows, we=1 << n)
                if X is not None:
                    await self.write_rows("tm", op.x_base, x_rows, we=1 << n)
            return
        if W is not None:
            await self.write_rows("wm", op.w_base, weight_image(self.cfg, W))
        if b is not None:
            await self.write_rows("bm", op.b_base, bias_image(self.cfg, b))
        if X is not None:
            N = self.cfg.array.cores
            images = [activation_image(self.cfg, op, d, X, n) for n in range(N)]
            if all(img == images[0] for img in images):
                await self.write_rows("am", op.x_base, images[0], we=(1 << N) - 1)
            else:
                for n, img in enumerate(images):
                    await self.write_rows("am", op.x_base, img, we=1 << n)

    async def execute(self, op: LayerOp, label: str):
        """Run one loaded operation; return (Y from the output beats, measured cycles)."""
        dut, cfg = self.dut, self.cfg
        d = describe(cfg, op)
        N, C, ob = cfg.array.cores, cfg.array.cols, cfg.pe.out.bits
        for k, v in d.ports().items():
            getattr(dut, k).value = v
        if cfg.pe.out.needs_random:     # a fresh seed per operation, as the host would give
            self.rnd_seed = int(self.rng.integers(1 << 32))
            dut.rnd_seed.value = self.rnd_seed
        dut.start.value = 1
        beats = []
        n = 0
        limit = 4 * cycles(cfg, d, self.latency) + 100
        start = time.perf_counter()
        while True:
            await self.edge
            dut.start.value = 0
            n += 1
            valid = dut.out_valid.value.to_unsigned()
            if valid:
                tile, slot = dut.out_tile.value.to_unsigned(), dut.out_slot.value.to_unsigned()
                try:
                    lo, hi = dut.out_lo.value.to_unsigned(), dut.out_hi.value.to_unsigned()
                except ValueError:
                    raise AssertionError(f"{label}: X in outputs: lo={dut.out_lo.value} hi={dut.out_hi.value} "
                                         f"valid={valid}") from None
                mask = (1 << (C * ob)) - 1
                for core in range(N):
                    if valid >> core & 1:
                        beats.append((core, tile, slot, (lo >> (core * C * ob)) & mask,
                                      (hi >> (core * C * ob)) & mask))
            if dut.done.value:
                break
            assert n < limit, f"{label}: no done after {n} cycles"
        self.op_wall += time.perf_counter() - start
        self.op_cycles += n
        assert not dut.busy.value, f"{label}: busy still high in the done cycle"
        return unpack_outputs(cfg, op, d, beats), n

    async def check(self, op: LayerOp, W, X, b, label: str, want=None):
        got, n = await self.execute(op, label)
        if want is None:
            want = self.golden(op, W, X, b)
        bad = np.argwhere(got != want)
        for i, v in bad[:6]:
            self.dut._log.error("%s: Y[%d, %d] expected %d got %d", label, i, v, want[i, v], got[i, v])
        assert len(bad) == 0, f"{label}: {len(bad)} of {want.size} outputs differ from the golden model"
        model = cycles(self.cfg, describe(self.cfg, op), self.latency)
        assert n == model, f"{label}: {n} cycles measured, the cycle model says {model}"
        if self.log_ops:
            record(self.dut, {"test": "bench_op", "M": op.M, "K": op.K, "batch": op.batch, "mode": op.mode.name,
                              "transpose": op.transpose, "intra": op.intra_layer, "cycles": n,
                              "utilization": round(utilization(self.cfg, op, n), 4)})
        return got, n

    def record(self, test: str, cases: int, **extra) -> None:
        rec = {"test": test, "sim": cocotb.SIM_NAME, "cases": cases, "cycles": self.op_cycles,
               "wall_s": round(self.op_wall, 3),
               "cycles_per_s": round(self.op_cycles / max(self.op_wall, 1e-9), 1), **extra}
        record(self.dut, rec)


def random_op(tb: TB) -> LayerOp:
    """A random operation that fits the config: any shape (primes and 1 often),
    batch 1..512, both formats, both parallelism modes, forward or transposed,
    every function, random memory bases."""
    cfg, rng = tb.cfg, tb.rng
    R, C, N = cfg.array.rows, cfg.array.cols, cfg.array.cores
    dim = lambda hi: int(rng.choice(PRIMES)) if rng.random() < 0.5 else int(rng.integers(1, hi + 1))
    M, K = dim(3 * C), dim(3 * R)
    if rng.random() < 0.2:
        return random_grad_op(tb, M, min(K, cfg.array.psum_slots))
    mode, func = PEMode(int(rng.integers(2))), ActFunc(int(rng.integers(3)))
    intra = bool(rng.random() < 0.25)
    per = 2 if mode == PEMode.FXP16 else 1
    if intra:
        batch = int(rng.integers(1, per + 1))
    else:
        u = rng.random()
        batch = int(rng.integers(1, 4)) if u < 0.3 else int(rng.integers(1, 2 * R * N * per + 1)) if u < 0.97 \
            else int(rng.integers(2 * R * N, min(512, cfg.array.psum_slots * per * N) + 1))
    transpose = bool(rng.random() < 0.3)
    op = LayerOp(M=M, K=K, batch=batch, mode=mode, func=func, transpose=transpose, intra_layer=intra,
                 bias=not transpose and rng.random() < 0.8)
    d = describe(cfg, op)
    (_, rows0), (start1, rows1) = weight_groups(cfg)
    x_free = cfg.memory.act_words_per_core // R - d.n_kt * d.slots
    b_free = cfg.memory.bias_words // C - d.n_ot
    pick = lambda free: int(rng.integers(0, min(free, 1000) + 1))
    # the weights in either group of the weight memory's RAMs, near its start (a tensor lies in one)
    group = int(rng.integers(0, 2))
    w_base = (start1 if group else 0) + pick((rows1 if group else rows0) - weight_rows(cfg, M, K))
    return LayerOp(**{**op.__dict__, "w_base": w_base, "x_base": pick(x_free), "b_base": pick(b_free)})


def random_grad_op(tb: TB, M: int, K: int) -> LayerOp:
    """A weight-gradient product dW = D X^T with a random batch and memory bases."""
    cfg, rng = tb.cfg, tb.rng
    R, N = cfg.array.rows, cfg.array.cores
    u = rng.random()
    batch = int(rng.integers(1, 4)) if u < 0.3 else int(rng.integers(1, 3 * R * N + 1)) if u < 0.95 \
        else int(rng.integers(3 * R * N, 513))
    fold = K < cfg.array.psum_slots and rng.random() < 0.4      # with its bias gradient in one more slot
    op = LayerOp(M=M, K=K, batch=batch, grad=True, bias=False, gstore=GStore.BOTH if fold else GStore.NONE)
    d = describe(cfg, op)
    a_rows, t_rows = cfg.memory.act_words_per_core // R, cfg.memory.xt_words_per_core // R
    w_base = int(rng.integers(0, min(a_rows - d.n_ot * d.batch, 500) + 1))
    x_base = int(rng.integers(0, min(t_rows - d.n_kr * K, 500) + 1))
    b_base = int(rng.integers(0, cfg.memory.bias_words // cfg.array.cols - d.n_ot + 1)) if fold else 0
    return LayerOp(**{**op.__dict__, "w_base": w_base, "x_base": x_base, "b_base": b_base})


# HalfCheetah's DDPG networks (state 17, action 6): actor 17-400-300-6, critic (17+6)-400-300-1.
ACTOR = [(400, 17, ActFunc.RELU), (300, 400, ActFunc.RELU), (6, 300, ActFunc.TANH)]
CRITIC = [(400, 23, ActFunc.RELU), (300, 400, ActFunc.RELU), (1, 300, ActFunc.IDENTITY)]


async def network_forward(tb: TB, layers, batch: int, mode: PEMode, intra: bool, label: str):
    """Chained forward pass on chip: in FXP32 each layer's output is stored into
    activation memory and is the next layer's input; in FXP16 (whose outputs
    need the QAT quantizer first) the bench loads each layer's input. Returns
    the total measured cycles and useful MACs."""
    cfg = tb.cfg
    C = cfg.array.cols
    w_base, b_base, x_base = 0, 0, 0
    store = mode == PEMode.FXP32
    act = cfg.pe.act32 if mode == PEMode.FXP32 else cfg.pe.act16
    X = tb.codes(act, (layers[0][1], batch), act.frac)
    total, macs = 0, 0
    ops = []
    # layer inputs, and where each sits feature-major on chip: the network's
    # input (written by the bench for its gradient) first, then what the
    # forward products store
    R = cfg.array.rows
    inputs, xt_bases = [], [None]
    per_core = -(-batch // cfg.array.cores)               # ceiling divisions
    t_base = -(-per_core // R) * layers[0][1]
    for M, K, func in layers:
        op = LayerOp(M=M, K=K, batch=batch, mode=mode, func=func, intra_layer=intra, w_base=w_base,
                     b_base=b_base)
        ops.append(op)
        w_base += weight_rows(cfg, M, K)
        b_base += -(-M // C)
    # weights and biases of the whole network first (they stay on chip)
    params = []
    for op in ops:
        W = tb.codes(cfg.pe.weight, (op.M, op.K), cfg.pe.weight.frac - 3)
        b = tb.codes(cfg.pe.out, (op.M,), cfg.pe.out.frac - 2)
        await tb.load(op, W=W, b=b)
        params.append((W, b))
    first = True
    for i, (op, (W, b)) in enumerate(zip(ops, params)):
        d = describe(cfg, op)
        y_base = x_base + d.n_kt * d.slots
        store_t = store and not intra   # the feature-major copy a weight gradient reads
        op = LayerOp(**{**op.__dict__, "x_base": x_base, "y_base": y_base, "store": store, "store_t": store_t,
                        "t_base": t_base})
        if first or not store:
            await tb.load(op, X=X)
        inputs.append(X)
        xt_bases.append(t_base if store_t else None)   # this layer's output = the next layer's input
        if store_t:
            t_base += -(-d.slots // cfg.array.rows) * d.n_ot * C
        want = tb.golden(op, W, X, b)
        _, n = await tb.check(op, W, X, b, f"{label} layer {i} ({op.K}->{op.M})", want=want)
        total += n
        macs += useful_macs(op)
        X = want if store else np.clip(want >> (cfg.pe.out.frac - act.frac), act.min_int, act.max_int)
        x_base, first = y_base, False
    return total, macs, params, inputs, xt_bases


async def network_backward(tb: TB, layers, params, batch: int, mode: PEMode, label: str,
                           inputs=None, xt_bases=None):
    """Every layer's transposed product (W^T D, same stored weights; ``mode``)
    and weight gradient (D X^T, FXP32: errors and gradients stay 32-bit in QAT).
    Where the forward pass left a layer's input feature-major on chip
    (``xt_bases``), the gradient reads it from there; else the bench writes X."""
    cfg = tb.cfg
    act = cfg.pe.act32 if mode == PEMode.FXP32 else cfg.pe.act16
    w_base, b_base, total, macs = 0, 0, 0, 0
    gb = cfg.adam.grad.bits
    for i, ((M, K, _), (W, _)) in enumerate(zip(layers, params)):
        op = LayerOp(M=M, K=K, batch=batch, mode=mode, transpose=True, bias=False, w_base=w_base)
        D = tb.codes(act, (M, batch), act.frac)
        await tb.load(op, X=D)
        _, n = await tb.check(op, W, D, None, f"{label} W^T D ({M}x{K})")
        total += n
        macs += useful_macs(op)
        w_base += weight_rows(cfg, M, K)
        on_chip = xt_bases is not None and xt_bases[i] is not None
        n_bt = -(-M // cfg.array.cols)
        if on_chip:   # the stored copy is padded to whole tiles of features (zeros); as the compiler
            # does, the bias gradient rides in one more slot of the same product (GStore.BOTH)
            Kp = -(-K // cfg.array.cols) * cfg.array.cols
            op = LayerOp(M=M, K=Kp, batch=batch, grad=True, bias=False, x_base=xt_bases[i], gstore=GStore.BOTH,
                         g_base=w_base - weight_rows(cfg, M, K), b_base=b_base)
            X = np.zeros((Kp, batch), dtype=np.int64)
            X[:K] = inputs[i]
            D = tb.random_operands(op)[0]
            await tb.load(op, D, None)
        else:   # written by the bench to rows the forward products left free (row 0 on)
            op = LayerOp(M=M, K=K, batch=batch, grad=True, bias=False, gstore=GStore.WEIGHT,
                         g_base=w_base - weight_rows(cfg, M, K))
            D, X = tb.random_operands(op)[:2]
            await tb.load(op, D, X)
        fold = op.gstore == GStore.BOTH
        want = np.hstack([weight_grad(cfg, D, X), bias_grad(cfg, D)[:, None]]) if fold else None
        where = ", X^T stored on chip, db" if on_chip else ""
        dW, n = await tb.check(op, D, X, None, f"{label} D X^T ({M}x{K}{where})", want=want)
        total += n
        macs += useful_macs(op)
        if fold:
            dW, db = dW[:, :op.K], dW[:, op.K:]
        # the gradient memory holds dW in the weight layout, where Adam will read it
        kept = weight_from_image(cfg, await tb.read_rows("gm", op.g_base, weight_rows(cfg, M, op.K)), M, op.K, gb)
        bad = np.argwhere(kept != dW)
        assert len(bad) == 0, (f"{label}: the gradient memory does not hold dW ({M}x{K}): {len(bad)} words "
                               f"differ, e.g. dW[{bad[0][0]}, {bad[0][1]}] = {dW[tuple(bad[0])]}, "
                               f"kept {kept[tuple(bad[0])]}" if len(bad) else "")
        if not fold:   # the bias gradient: the same product with one input of ones (1.0), kept in bias layout
            ones = np.full((1, batch), 1 << cfg.pe.act32.frac, dtype=np.int64)
            op = LayerOp(M=M, K=1, batch=batch, grad=True, bias=False, gstore=GStore.BIAS, g_base=b_base)
            await tb.load(op, D, ones)
            db, n = await tb.check(op, D, ones, None, f"{label} db ({M})", want=bias_grad(cfg, D)[:, None])
            total += n
        rows = await tb.read_rows("gbm", b_base, n_bt)
        kept = np.array([(r >> (c * gb)) & ((1 << gb) - 1) for r in rows for c in range(cfg.array.cols)])[:M]
        assert np.array_equal(np.where(kept >> (gb - 1), kept - (1 << gb), kept), db[:, 0]), \
            f"{label}: the bias-gradient memory does not hold db ({M})"
        b_base += n_bt
    return total, macs


# ---------------------------------------------------------------- cocotb tests

@cocotb.test()
async def test_random_ops(dut):
    """Random operations back to back, each bit-exact and cycle-exact."""
    tb = TB(dut)
    await tb.reset()
    n = int(os.environ.get("FIXAR_CASES", "1000"))
    for case in range(n):
        op = random_op(tb)
        W, X, b = tb.random_operands(op)
        await tb.load(op, W, X, b)
        kind = "D X^T" if op.grad else "W^T X" if op.transpose else "W X + b" if op.bias else "W X"
        await tb.check(op, W, X, b, f"case {case} ({kind}, {op.M}x{op.K}, B={op.batch}, {op.mode.name}, "
                                    f"{'intra-layer' if op.intra_layer else 'intra-batch'}, {op.func.name})")
    tb.record("random_ops", n)


def packed_qat_operands(tb: TB, batch: int | None = None):
    """A random packed QAT product (docs/array.md, "Packed QAT products") and
    its golden result: a power-of-two quantizer (zero point z, step 2^e),
    codes q for which (q - z) 2^e is an act32 code, the array given the
    offset codes q - 2^15; the golden model's FXP32 product of (q - z) 2^e is
    the answer. Returns (op, W, offset codes, b, want)."""
    cfg, rng = tb.cfg, tb.rng
    pe, R, C, N = cfg.pe, cfg.array.rows, cfg.array.cols, cfg.array.cores
    half, act = 1 << (pe.act16.bits - 1), pe.act32
    while True:     # a zero point and step whose code 2^15 (the correction's input) is an act32 code
        e, z = int(rng.integers(0, packed_shift_max(cfg) + 1)), int(rng.integers(0, 2 * half + 1))
        if rng.random() < 0.3:
            z = int(rng.choice([0, half, 2 * half]))
        if act.min_int <= (half - z) << e <= act.max_int:
            break
    lo_q = max(0, z + -(-act.min_int >> e))
    hi_q = min(2 * half - 1, z + (act.max_int >> e))
    M = int(rng.choice(PRIMES)) if rng.random() < 0.5 else int(rng.integers(1, 3 * C + 1))
    K = int(rng.choice(PRIMES)) if rng.random() < 0.5 else int(rng.integers(1, 3 * R + 1))
    if batch is None:
        batch = int(rng.integers(1, 4)) if rng.random() < 0.3 else int(rng.integers(1, 4 * R * N + 1))
    op = LayerOp(M=M, K=K, batch=batch, mode=PEMode.FXP16, func=ActFunc(int(rng.integers(3))),
                 bias=bool(rng.random() < 0.8), packed=True, pq_zero=z, pq_e=e)
    d = describe(cfg, op)
    x_free = cfg.memory.act_words_per_core // R - d.n_kt * (d.slots - 1)
    op = LayerOp(**{**op.__dict__, "x_base": int(rng.integers(0, min(x_free, 1000) + 1)),
                    "b_base": int(rng.integers(0, cfg.memory.bias_words // C - d.n_ot + 1))})
    W = tb.codes(pe.weight, (M, K), pe.weight.frac - 2)
    q = rng.integers(lo_q, hi_q + 1, (K, batch))
    q = np.where(rng.random((K, batch)) < 0.1, rng.choice([lo_q, hi_q, min(max(z, lo_q), hi_q)]), q)
    b = tb.codes(pe.out, (M,), pe.out.frac) if op.bias else None
    want = linear(cfg, W, (q - z) << e, b, op.func, PEMode.FXP32)
    return op, W, q - half, b, want


@cocotb.test()
async def test_packed_qat_products(dut):
    """Packed QAT products (two vectors per word in FXP16, the zero point's
    correction slot, the lanes shifted by e) equal the FXP32 product of the
    dequantized inputs, bit for bit, at the cycles the model counts; then
    chains through the quantizers, the packed store and the backward's reads
    of its mask bits and feature-major copy."""
    tb = TB(dut)
    await tb.reset()
    n = int(os.environ.get("FIXAR_PACKED_CASES", "60"))
    for case in range(n):
        op, W, X, b, want = packed_qat_operands(tb)
        await tb.load(op, W, X, b)
        await tb.check(op, W, X, b, f"packed case {case} ({op.M}x{op.K}, B={op.batch}, z={op.pq_zero}, "
                                    f"e={op.pq_e}, {op.func.name})", want=want)
    by_limit = by_relu = 0
    for case in range(max(n // 4, 2)):
        a, b = await packed_chain(tb, f"packed chain {case}", limited=case % 2 == 1)
        by_limit, by_relu = by_limit + a, by_relu + b
    assert by_limit and by_relu, f"the chains' masks zeroed {by_limit} outputs at a limit and {by_relu} at y <= 0"
    tb.record("packed_qat_products", n, masked_by_limit=by_limit, masked_by_relu=by_relu)


async def write_quantizer(tb: TB, i: int, delta: int, zero: int) -> None:
    """Entry ``i`` of the array's quantizer table, as the host writes it at the switch."""
    dut = tb.dut
    words = quantizer_words(tb.cfg, delta, zero)
    dut.qt_we.value, dut.qt_addr.value = 1, i
    dut.qt_delta.value, dut.qt_zero.value, dut.qt_magic.value, dut.qt_shift.value = words
    await tb.edge
    dut.qt_we.value = 0


async def packed_chain(tb: TB, label: str, limited: bool) -> tuple[int, int]:
    """Two chained packed QAT products, as QAT's phase 2 runs a network's
    layers: the first's outputs leave through a power-of-two quantizer (its
    range from the golden outputs, as phase 1 would have tracked it) and are
    stored as packed 16-bit codes, which the second reads with that
    quantizer's zero point and step; the first also keeps its outputs'
    feature-major copy and mask bits (two vectors a beat), which an FXP32
    masked transposed product and weight gradient then read, as the
    backward pass does. Every result compared with the golden model: the
    FXP32 products of the dequantized inputs, its quantizer, its masks.
    ``limited``: the mask bits with a limit (one of the outputs), as in QAT's
    phase 2. Returns (outputs zeroed by the limit, outputs zeroed as y <= 0)."""
    cfg, rng = tb.cfg, tb.rng
    R, N = cfg.array.rows, cfg.array.cores
    pow2 = cfg.variant(array=dataclasses.replace(cfg.array, quantizer_scale="pow2"))
    op1, W1, X1, b1, y1 = packed_qat_operands(tb, batch=2 * N * int(rng.integers(1, 2 * R + 1)))
    delta, zero = quantizer(pow2, min(int(y1.min()), 0), max(int(y1.max()), 0))
    qidx = int(rng.integers(cfg.array.quantizers))
    await write_quantizer(tb, qidx, delta, zero)
    d1 = describe(cfg, op1)
    y_base = op1.x_base + d1.n_kt * (d1.slots - 1)
    m_base = y_base + d1.n_ot * (d1.slots - 1)            # mask rows: 2 per stored row
    q1 = quantize16(cfg, delta, zero, y1)
    Y1 = dequantize16(cfg, delta, zero, q1)
    limit = int(rng.choice(Y1[Y1 > 0])) if limited and (Y1 > 0).any() else None
    op1 = dataclasses.replace(op1, fq=True, qidx=qidx, store=True, y_base=y_base, store_t=True, t_base=0,
                              mask=True, m_base=m_base, limit=limit)
    await tb.load(op1, W1, X1, b1)
    await tb.check(op1, W1, X1, b1, f"{label} layer 1 ({op1.M}x{op1.K}, B={op1.batch}, fq)", want=Y1)
    free_row = m_base + 2 * d1.n_ot * (d1.slots - 1)
    e = delta.bit_length() - 1 - cfg.pe.act16.bits
    free_row = await packed_last_layer(tb, op1, q1, zero, e, y_base, free_row, label)
    masked = await packed_backward(tb, op1, Y1, free_row, label)
    await packed_gradient_on_pairs(tb, op1, (W1, X1, b1, Y1), q1, zero, e, free_row, label)
    return masked


async def packed_last_layer(tb: TB, op1: LayerOp, q1: np.ndarray, zero: int, e: int, x_base: int, y_base: int,
                            label: str) -> int:
    """A packed product on layer 1's stored codes q1 (zero point ``zero``,
    step 2^e), as a network's last layer: once with its outputs only on the
    output beats, then once per lane storing that lane's FXP32 values
    (pq_lane), after which the activation memory must hold the outputs in
    the FXP32 slot-major layout an FXP32 product reads. Returns the first
    activation row it left free."""
    cfg, rng = tb.cfg, tb.rng
    M2 = int(rng.integers(1, 3 * cfg.array.cols + 1))
    op2 = LayerOp(M=M2, K=op1.M, batch=op1.batch, mode=PEMode.FXP16, func=ActFunc(int(rng.integers(3))),
                  packed=True, pq_zero=zero, pq_e=e, x_base=x_base, w_base=weight_rows(cfg, op1.M, op1.K))
    W2 = tb.codes(cfg.pe.weight, (M2, op1.M), cfg.pe.weight.frac - 2)
    b2 = tb.codes(cfg.pe.out, (M2,), cfg.pe.out.frac)
    want = linear(cfg, W2, (q1 - zero) << e, b2, op2.func, PEMode.FXP32)
    await tb.load(op2, W2, None, b2)
    shape = f"{M2}x{op1.M}, z={zero}, e={e}"
    await tb.check(op2, W2, None, b2, f"{label} layer 2 ({shape}) on the stored codes", want=want)
    for lane in (1, 2):
        stored = dataclasses.replace(op2, store=True, y_base=y_base, pq_lane=lane)
        await tb.check(stored, W2, None, b2, f"{label} layer 2 ({shape}) storing lane {lane}", want=want)
    # the rows an FXP32 product reading the outputs as its input expects (R == C: the tiles agree)
    assert cfg.array.rows == cfg.array.cols
    reader = LayerOp(M=1, K=M2, batch=op1.batch, x_base=y_base)
    d = describe(cfg, reader)
    rows = await tb.read_activation_rows(y_base, d.n_kt * d.slots)
    for n, got in enumerate(rows):
        expect = activation_image(cfg, reader, d, want, n)
        bad = [i for i, (a, b) in enumerate(zip(got, expect)) if a != b]
        assert not bad, f"{label}: the lane stores left core {n}'s activation rows {bad[:6]} unlike the FXP32 layout"
    return y_base + d.n_kt * d.slots


async def packed_backward(tb: TB, fwd: LayerOp, Y: np.ndarray, free_row: int, label: str) -> tuple[int, int]:
    """What the backward pass reads of a packed forward product's outputs Y:
    its mask bits (a masked FXP32 transposed product whose outputs are Y's
    features) and its feature-major copy (a weight gradient with the bias
    gradient folded in, its input padded to whole tiles). Returns the
    masked outputs' counts, as packed_chain."""
    cfg, rng = tb.cfg, tb.rng
    C, F, B = cfg.array.cols, fwd.M, fwd.batch
    w_base = weight_rows(cfg, fwd.M, fwd.K)
    M2 = int(rng.integers(1, 3 * C + 1))
    back = LayerOp(M=M2, K=F, batch=B, transpose=True, bias=False, mask=True, m_base=fwd.m_base,
                   w_base=w_base, x_base=free_row)
    W2 = tb.codes(cfg.pe.weight, (M2, F), cfg.pe.weight.frac - 2)
    D = tb.codes(cfg.pe.act32, (M2, B), cfg.pe.act32.frac)
    await tb.load(back, W2, D)
    top = mask_no_limit(cfg) if fwd.limit is None else fwd.limit
    raw = transposed(cfg, W2, D)
    await tb.check(back, W2, D, None, f"{label} masked W^T D on the packed store's mask bits ({M2}x{F}, B={B})",
                   want=raw * ((Y > 0) & (Y < top)))
    Kp = -(-F // C) * C
    grad = LayerOp(M=M2, K=Kp, batch=B, grad=True, bias=False, x_base=fwd.t_base, gstore=GStore.BOTH,
                   w_base=free_row, g_base=0, b_base=0)
    X = np.zeros((Kp, B), dtype=np.int64)
    X[:F] = Y
    D2 = tb.random_operands(grad)[0]
    await tb.load(grad, D2, None)
    await tb.check(grad, D2, X, None, f"{label} D X^T on the packed store's feature-major copy ({M2}x{F})",
                   want=np.hstack([weight_grad(cfg, D2, X), bias_grad(cfg, D2)[:, None]]))
    return int(np.count_nonzero((Y >= top) & (raw != 0))), int(np.count_nonzero((Y <= 0) & (raw != 0)))


async def packed_gradient_on_pairs(tb: TB, fwd: LayerOp, operands: tuple, q: np.ndarray, zero: int, e: int,
                                   free_row: int, label: str) -> None:
    """The packed weight gradient's chain: the forward product again, its
    codes stored in feature pairs (pq_t, over the FXP32 copy's rows, which
    packed_backward has read), then a packed gradient on them with the
    bias gradient folded in; dW must equal the FXP32 gradient on the
    dequantized inputs (q - z) 2^e, on the output beats and in the gradient
    memory, where the high lane's words arrive through its second port."""
    cfg, rng = tb.cfg, tb.rng
    C, F, B = cfg.array.cols, fwd.M, fwd.batch
    W, X, b, Y = operands
    pairs = dataclasses.replace(fwd, store=False, mask=False, pq_t=True, t_base=0)
    await tb.check(pairs, W, X, b, f"{label} layer 1 again, its codes stored in feature pairs", want=Y)
    Kp = -(-F // C) * C
    M2 = int(rng.integers(1, 3 * C + 1))
    g_base = int(rng.integers(0, 50))
    grad = LayerOp(M=M2, K=Kp, batch=B, grad=True, bias=False, mode=PEMode.FXP16, packed=True, pq_zero=zero,
                   pq_e=e, x_base=0, gstore=GStore.BOTH, w_base=free_row, g_base=g_base, b_base=0)
    Xf = np.zeros((Kp, B), dtype=np.int64)
    Xf[:F] = (q - zero) << e
    D = tb.random_operands(grad)[0]
    await tb.load(grad, D, None)
    dW, _ = await tb.check(grad, D, Xf, None, f"{label} packed D X^T on the stored pairs ({M2}x{F}, B={B})",
                           want=np.hstack([weight_grad(cfg, D, Xf), bias_grad(cfg, D)[:, None]]))
    await expect_gradient_memory(tb, grad, dW[:, :Kp], label)


async def expect_gradient_memory(tb: TB, op: LayerOp, dW: np.ndarray, label: str) -> None:
    """The gradient memory holds dW in the weight layout, where Adam reads it."""
    cfg = tb.cfg
    rows = await tb.read_rows("gm", op.g_base, weight_rows(cfg, op.M, op.K))
    kept = weight_from_image(cfg, rows, op.M, op.K, cfg.adam.grad.bits)
    bad = np.argwhere(kept != dW)
    assert len(bad) == 0, (f"{label}: the gradient memory does not hold dW ({op.M}x{op.K}): {len(bad)} words "
                           f"differ, e.g. dW[{bad[0][0]}, {bad[0][1]}] = {dW[tuple(bad[0])]}, "
                           f"kept {kept[tuple(bad[0])]}" if len(bad) else "")


def packed_grad_operands(tb: TB):
    """A random packed weight gradient (docs/array.md, "Packed weight
    gradients"): errors D, inputs as a power-of-two quantizer's offset codes
    q - 2^15 (any zero point and step whose correction is an act32 code),
    any shape and batch, the bias gradient folded or not. Returns (op, D,
    offset codes, want): want is the FXP32 gradient on (q - z) 2^e."""
    cfg, rng = tb.cfg, tb.rng
    R, C, N = cfg.array.rows, cfg.array.cols, cfg.array.cores
    half, act = 1 << (cfg.pe.act16.bits - 1), cfg.pe.act32
    while True:
        e, z = int(rng.integers(0, packed_shift_max(cfg) + 1)), int(rng.integers(0, 2 * half + 1))
        if act.min_int <= (half - z) << e <= act.max_int:
            break
    lo_q, hi_q = max(0, z + -(-act.min_int >> e)), min(2 * half - 1, z + (act.max_int >> e))
    M = int(rng.choice(PRIMES)) if rng.random() < 0.5 else int(rng.integers(1, 3 * C + 1))
    K = int(rng.choice(PRIMES)) if rng.random() < 0.5 else int(rng.integers(1, 3 * R + 1))
    batch = int(rng.integers(1, 4)) if rng.random() < 0.3 else int(rng.integers(1, 4 * R * N + 1))
    fold = bool(rng.random() < 0.5)
    op = LayerOp(M=M, K=K, batch=batch, grad=True, bias=False, mode=PEMode.FXP16, packed=True, pq_zero=z, pq_e=e,
                 gstore=GStore.BOTH if fold else GStore.WEIGHT)
    d = describe(cfg, op)
    a_rows, t_rows = cfg.memory.act_words_per_core // R, cfg.memory.xt_words_per_core // R
    op = dataclasses.replace(op, w_base=int(rng.integers(0, min(a_rows - d.n_ot * d.batch, 500) + 1)),
                             x_base=int(rng.integers(0, min(t_rows - d.n_kr * ((K + 1) // 2), 500) + 1)),
                             b_base=int(rng.integers(0, cfg.memory.bias_words // C - d.n_ot + 1)) if fold else 0)
    D = tb.codes(act, (M, batch), act.frac - 4)
    q = rng.integers(lo_q, hi_q + 1, (K, batch))
    q = np.where(rng.random((K, batch)) < 0.1, rng.choice([lo_q, hi_q, min(max(z, lo_q), hi_q)]), q)
    X = (q - z) << e
    want = weight_grad(cfg, D, X)
    if fold:
        want = np.hstack([want, bias_grad(cfg, D)[:, None]])
    return op, D, q - half, want


@cocotb.test()
async def test_packed_weight_gradients(dut):
    """Packed weight gradients (two input features a word in FXP16, D the PE
    weights, the correction slot, the cores' lane sums added then shifted by
    e) equal the FXP32 gradient of the dequantized inputs, bit for bit, at
    the cycles the model counts, and the gradient memory holds them (the high
    lane's words through its second port)."""
    tb = TB(dut)
    await tb.reset()
    n = int(os.environ.get("FIXAR_PACKED_CASES", "60"))
    for case in range(n):
        op, D, X, want = packed_grad_operands(tb)
        await tb.load(op, D, X)
        label = (f"packed gradient {case} ({op.M}x{op.K}, B={op.batch}, z={op.pq_zero}, e={op.pq_e}"
                 f"{', db' if op.gstore == GStore.BOTH else ''})")
        dW, _ = await tb.check(op, D, X, None, label, want=want)
        if op.K % 2 == 0:       # an odd K's last pair writes its padding feature's (unchecked) column too
            await expect_gradient_memory(tb, op, dW[:, :op.K], label)
    tb.record("packed_weight_gradients", n)


def corner_operands(tb: TB, mode: PEMode, transpose: bool, intra: bool):
    """An operation whose outputs are mostly exact rounding ties (even and odd
    kept LSBs, through both lanes of FXP32's recombination) and, in two rows,
    saturate both ways: (op, W, X, exact sums). Row i's weights are odd * 2^J
    on reduction index 0 (and an even multiple on index R, which the other
    core adds in intra-layer mode); X holds odd multiples of 2^(s - 1 - J),
    so every product is an odd multiple of 2^(s - 1): a tie. The last two
    rows put the largest weights on indices 1 and 2, which meet the largest X
    (two products: one FXP16 product alone cannot pass the lower limit)."""
    cfg, rng, R, C = tb.cfg, tb.rng, tb.cfg.array.rows, tb.cfg.array.cols
    pe = cfg.pe
    s = pe.shift32 if mode == PEMode.FXP32 else pe.shift16
    act = pe.act32 if mode == PEMode.FXP32 else pe.act16
    J = min(9, s - 2, act.bits - 3)
    n_out, K = C, (2 * R if intra else 3)
    batch = 1 if intra else int(rng.integers(2, 7)) * (2 if mode == PEMode.FXP16 else 1)
    W = np.zeros((n_out, K), dtype=np.int64)
    W[:, 0] = (2 * rng.integers(-20, 20, n_out) + 1) << J
    if intra:
        W[:, R] = (2 * rng.integers(-10, 10, n_out)) << J
    W[-2:, 0] = 0
    W[-2:, 1] = W[-2:, 2] = (pe.weight.max_int, pe.weight.min_int)
    top = (act.max_int >> (s - 1 - J)) // 2 - 1
    X = np.zeros((K, batch), dtype=np.int64)
    X[0] = (2 * rng.integers(-top, top, batch) + 1) << (s - 1 - J)
    if intra:
        X[R] = X[0]
    X[1] = X[2] = rng.choice([act.max_int, act.min_int], batch)
    if transpose:       # the transposed product reads W^T: store the transpose
        op = LayerOp(M=K, K=n_out, batch=batch, mode=mode, transpose=True, bias=False, intra_layer=intra)
        return op, W.T.copy(), X, W @ X
    op = LayerOp(M=n_out, K=K, batch=batch, mode=mode, bias=False, intra_layer=intra)
    return op, W, X, W @ X


async def masked_pair(tb: TB, label: str) -> tuple[int, int]:
    """A stored forward product (its mask bits kept with a limit: none, zero, one
    of its own outputs (so y == limit occurs) or the largest code), then at
    once a masked transposed product whose outputs are that tensor's features:
    its outputs must be W^T D zeroed where the stored y is not in (0, limit).
    Returns (outputs zeroed by the limit, outputs zeroed as y <= 0)."""
    cfg, rng = tb.cfg, tb.rng
    R, C, N = cfg.array.rows, cfg.array.cols, cfg.array.cores
    intra = bool(rng.random() < 0.2)
    batch = 1 if intra else int(rng.integers(1, 3 * R * N + 1))
    F, K, M2 = (int(rng.integers(1, 3 * C + 1)) for _ in range(3))
    fwd = LayerOp(M=F, K=K, batch=batch, func=ActFunc(int(rng.integers(3))), intra_layer=intra, store=True)
    W, X, b = tb.random_operands(fwd)
    Y = tb.golden(fwd, W, X, b)
    pos = Y[Y > 0]
    choice = int(rng.integers(4))
    limit = (None if choice == 0 else 0 if choice == 1 or not pos.size
             else int(rng.choice(pos)) if choice == 2 else mask_no_limit(cfg))
    d = describe(cfg, fwd)
    y_base = d.n_kt * d.slots + int(rng.integers(0, 50))
    fwd = LayerOp(**{**fwd.__dict__, "y_base": y_base, "limit": limit})
    back = LayerOp(M=M2, K=F, batch=batch, transpose=True, bias=False, intra_layer=intra, mask=True, m_base=y_base,
                   w_base=weight_rows(cfg, F, K), x_base=y_base + d.n_ot * d.slots + int(rng.integers(0, 50)),
                   store=bool(rng.random() < 0.5))
    db = describe(cfg, back)
    back = LayerOp(**{**back.__dict__, "y_base": back.x_base + db.n_kt * db.slots})
    W2 = tb.codes(cfg.pe.weight, (M2, F), cfg.pe.weight.frac - 2)
    D = tb.codes(cfg.pe.act32, (M2, batch), cfg.pe.act32.frac)
    await tb.load(fwd, W, X, b)          # both operations' operands first: the second starts in
    await tb.load(back, W2, D)           # the first one's done cycle, one cycle before its last bits land
    await tb.check(fwd, W, X, b, f"{label} forward ({F}x{K}, B={batch}, limit {limit})", want=Y)
    top = mask_no_limit(cfg) if limit is None else limit
    raw = transposed(cfg, W2, D)
    want = raw * ((Y > 0) & (Y < top))
    await tb.check(back, W2, D, None, f"{label} masked W^T D ({M2}x{F}, B={batch})", want=want)
    return int(np.count_nonzero((Y >= top) & (raw != 0))), int(np.count_nonzero((Y <= 0) & (raw != 0)))


async def read_range(tb: TB, i: int) -> tuple[int, int]:
    """Range tracker ``i`` (its registered read port), once the last beats have landed."""
    for _ in range(4):
        await tb.edge
    tb.dut.rg_addr.value = i
    await tb.edge
    await tb.edge
    return tb.dut.rg_lo.value.to_signed(), tb.dut.rg_hi.value.to_signed()


async def error_pair_store(tb: TB, label: str) -> dict:
    """The top of a backward pass with QAT's 16-bit errors (docs/program.md,
    "16-bit errors"): a stored forward product (its mask bits, with a limit
    half the time), then a masked transposed product that masks, tracks
    (its tracker restarting), quantizes with a hidden error's quantizer
    (Delta = 2^(s + 16), z = 2^15, s at, below or above what the error
    needs) and pair-stores the codes. Checked: the output beats (the 16-bit
    values), the stored rows (codes, two batch entries a word, as a packed
    product reads them) and the tracker (the masked error's range before
    the quantizer). Returns what a chain goes on from: the codes ``q``, their
    table entry ``qidx`` and step ``s``, the error's features ``F``, the
    batch, the first free weight and activation rows, and the counts of
    codes clipped and errors masked out."""
    cfg, rng = tb.cfg, tb.rng
    R, C, N = cfg.array.rows, cfg.array.cols, cfg.array.cores
    batch = 2 * N * int(rng.integers(1, min(cfg.array.psum_slots // 2, 2 * R) + 1))
    F, K, M2 = (int(rng.integers(1, 3 * C + 1)) for _ in range(3))
    fwd = LayerOp(M=F, K=K, batch=batch, func=ActFunc.RELU, store=True)
    W, X, b = tb.random_operands(fwd)
    Y = tb.golden(fwd, W, X, b)
    limit = int(rng.choice(Y[Y > 0])) if (Y > 0).any() and rng.random() < 0.5 else None
    d = describe(cfg, fwd)
    fwd = dataclasses.replace(fwd, y_base=d.n_kt * d.slots, limit=limit)
    W2 = tb.codes(cfg.pe.weight, (M2, F), cfg.pe.weight.frac - 2)
    D = tb.codes(cfg.pe.act32, (M2, batch), cfg.pe.act32.frac)
    top = mask_no_limit(cfg) if limit is None else limit
    E = transposed(cfg, W2, D) * ((Y > 0) & (Y < top))
    need = max(0, int(np.abs(E).max()).bit_length() - (cfg.pe.act16.bits - 1))
    s = min(max(need + int(rng.integers(-2, 2)), 0), packed_shift_max(cfg))
    delta, zero = 1 << (s + cfg.pe.act16.bits), 1 << (cfg.pe.act16.bits - 1)
    qidx = int(rng.integers(cfg.array.quantizers))
    await write_quantizer(tb, qidx, delta, zero)
    x_base = fwd.y_base + d.n_ot * d.slots
    back = LayerOp(M=M2, K=F, batch=batch, transpose=True, bias=False, mask=True, m_base=fwd.y_base,
                   w_base=weight_rows(cfg, F, K), x_base=x_base, store=True, track=True, fq=True, qidx=qidx,
                   pq_lane=3)
    db = describe(cfg, back)
    back = dataclasses.replace(back, y_base=x_base + db.n_kt * db.slots)
    q = quantize16(cfg, delta, zero, E)
    await tb.load(fwd, W, X, b)
    await tb.load(back, W2, D)
    await tb.check(fwd, W, X, b, f"{label} forward ({F}x{K}, B={batch}, limit {limit})", want=Y)
    shape = f"{M2}x{F}, B={batch}, s={s} for {need}"
    await tb.check(back, W2, D, None, f"{label} masked W^T D, quantized ({shape})",
                   want=dequantize16(cfg, delta, zero, q))
    rows = await tb.read_activation_rows(back.y_base, db.n_ot * db.slots // 2)
    for n, got in enumerate(rows):
        want = packed_slot_major_image(cfg, q - zero, batch, n)
        bad = [i for i, (a, w) in enumerate(zip(got, want)) if a != w]
        assert not bad, f"{label}: core {n}'s pair-stored rows {bad[:6]} differ from the codes' packed image"
    got = await read_range(tb, qidx)
    want = (min(int(E.min()), 0), max(int(E.max()), 0))
    assert got == want, f"{label}: tracker {qidx} holds {got}, the masked error's range is {want}"
    return {"q": q, "qidx": qidx, "s": s, "F": F, "batch": batch, "x_base": back.y_base,
            "w_free": back.w_base + weight_rows(cfg, M2, F), "a_free": back.y_base + db.n_ot * db.slots // 2,
            "clipped": int(np.count_nonzero((q == 0) | (q == (1 << cfg.pe.act16.bits) - 1))),
            "masked": int(np.count_nonzero((E == 0) & (transposed(cfg, W2, D) != 0)))}


async def gradient_on_error_codes(tb: TB, top: dict, label: str) -> None:
    """A weight gradient whose D is the pair-stored error codes (pq_q: each
    word's half picked, sign-extended and shifted by the entry's step as
    the PEs load it), X^T an FXP32 feature-major copy or, half the time,
    a packed gradient's codes in feature pairs; the bias gradient folded in.
    dW and db must equal the gradient on the dequantized error, on the
    output beats and in the gradient memory."""
    cfg, rng = tb.cfg, tb.rng
    C, N, qb = cfg.array.cols, cfg.array.cores, cfg.pe.act16.bits
    F, batch, half = top["F"], top["batch"], 1 << (qb - 1)
    D = (top["q"] - half) << top["s"]
    K = int(rng.integers(1, 3 * C + 1))
    Kp = -(-K // C) * C
    grad = LayerOp(M=F, K=Kp, batch=batch, grad=True, bias=False, gstore=GStore.BOTH, pq_q=top["qidx"] + 1,
                   w_base=top["x_base"], x_base=0, g_base=int(rng.integers(0, 50)), b_base=0)
    X = np.zeros((Kp, batch), dtype=np.int64)
    if rng.random() < 0.5:
        zero, e = int(rng.integers(0, 1 << qb)), int(rng.integers(0, 8))
        q = rng.integers(0, 1 << qb, (K, batch))
        X[:K] = (q - zero) << e
        grad = dataclasses.replace(grad, mode=PEMode.FXP16, packed=True, pq_zero=zero, pq_e=e)
        images = [pair_image(cfg, q - half, batch, n, Kp // 2, pad=zero - half) for n in range(N)]
    else:
        X[:K] = tb.codes(cfg.pe.act32, (K, batch), cfg.pe.act32.frac)
        images = [feature_major_image(cfg, X, batch, n, Kp) for n in range(N)]
    for n, rows in enumerate(images):
        await tb.write_rows("tm", 0, rows, we=1 << n)
    dW, _ = await tb.check(grad, None, None, None, f"{label} D X^T, D the error's codes ({F}x{K}, B={batch}, "
                           f"{'packed' if grad.packed else 'FXP32'} X)",
                           want=np.hstack([weight_grad(cfg, D, X), bias_grad(cfg, D)[:, None]]))
    await expect_gradient_memory(tb, grad, dW[:, :Kp], label)


async def packed_error_products(tb: TB, top: dict, label: str) -> int:
    """Below the top of the backward pass: a masked packed transposed
    product on the pair-stored codes (their step from the table, pq_q), its
    mask bits two rows an item from a forward store, its error tracked and
    quantized into another entry and stored as codes; then, as the -Q pass's
    W0^T, a packed transposed product on those codes whose two lane stores
    leave FXP32 values in the FXP32 layout. Returns the errors masked out."""
    cfg, rng = tb.cfg, tb.rng
    C, qb = cfg.array.cols, cfg.pe.act16.bits
    F, batch, q1, e1 = top["F"], top["batch"], top["q"], top["s"]
    zero = 1 << (qb - 1)
    F3, K3, F5 = (int(rng.integers(1, 3 * C + 1)) for _ in range(3))
    fwd = LayerOp(M=F3, K=K3, batch=batch, func=ActFunc.RELU, store=True, w_base=top["w_free"],
                  x_base=top["a_free"])
    W3, X3, b3 = tb.random_operands(fwd)
    Y3 = tb.golden(fwd, W3, X3, b3)
    d3 = describe(cfg, fwd)
    fwd = dataclasses.replace(fwd, y_base=fwd.x_base + d3.n_kt * d3.slots)
    await tb.load(fwd, W3, X3, b3)
    await tb.check(fwd, W3, X3, b3, f"{label} forward below ({F3}x{K3})", want=Y3)
    W4 = tb.codes(cfg.pe.weight, (F, F3), cfg.pe.weight.frac - 2)
    raw = transposed(cfg, W4, (q1 - zero) << e1)
    E2 = raw * (Y3 > 0)
    s2 = min(max(0, int(np.abs(E2).max()).bit_length() - (qb - 1) + int(rng.integers(-1, 2))),
             packed_shift_max(cfg))
    qidx2 = int(rng.choice([i for i in range(cfg.array.quantizers) if i != top["qidx"]]))
    await write_quantizer(tb, qidx2, 1 << (s2 + qb), zero)
    w4 = fwd.w_base + weight_rows(cfg, F3, K3)
    op = LayerOp(M=F, K=F3, batch=batch, transpose=True, bias=False, mode=PEMode.FXP16, packed=True, pq_zero=zero,
                 pq_q=top["qidx"] + 1, mask=True, m_base=fwd.y_base, store=True, fq=True, track=True, qidx=qidx2,
                 w_base=w4, x_base=top["x_base"], y_base=fwd.y_base + d3.n_ot * d3.slots)
    await tb.load(op, W4)
    q2 = quantize16(cfg, 1 << (s2 + qb), zero, E2)
    d = describe(cfg, op)
    await tb.check(op, W4, None, None, f"{label} packed masked W^T on codes ({F}x{F3}, B={batch}, e={e1}, s={s2})",
                   want=dequantize16(cfg, 1 << (s2 + qb), zero, q2))
    rows = await tb.read_activation_rows(op.y_base, d.n_ot * (d.slots - 1))
    for n, got in enumerate(rows):
        bad = [i for i, (a, w) in enumerate(zip(got, packed_slot_major_image(cfg, q2 - zero, batch, n))) if a != w]
        assert not bad, f"{label}: core {n}'s stored codes {bad[:6]} differ from the golden codes' packed image"
    got, want = await read_range(tb, qidx2), (min(int(E2.min()), 0), max(int(E2.max()), 0))
    assert got == want, f"{label}: tracker {qidx2} holds {got}, the masked error's range is {want}"
    W5 = tb.codes(cfg.pe.weight, (F3, F5), cfg.pe.weight.frac - 2)
    dx = transposed(cfg, W5, (q2 - zero) << s2)
    lanes = LayerOp(M=F3, K=F5, batch=batch, transpose=True, bias=False, mode=PEMode.FXP16, packed=True,
                    pq_zero=zero, pq_q=qidx2 + 1, store=True, pq_lane=1, w_base=w4 + weight_rows(cfg, F, F3),
                    x_base=op.y_base, y_base=op.y_base + d.n_ot * (d.slots - 1))
    await tb.load(lanes, W5)
    for lane in (1, 2):
        await tb.check(dataclasses.replace(lanes, pq_lane=lane), W5, None, None,
                       f"{label} W0^T on codes ({F3}x{F5}) storing lane {lane}", want=dx)
    reader = LayerOp(M=1, K=F5, batch=batch, x_base=lanes.y_base)
    dr = describe(cfg, reader)
    rows = await tb.read_activation_rows(lanes.y_base, dr.n_kt * dr.slots)
    for n, got in enumerate(rows):
        bad = [i for i, (a, w) in enumerate(zip(got, activation_image(cfg, reader, dr, dx, n))) if a != w]
        assert not bad, f"{label}: the lane stores left core {n}'s rows {bad[:6]} unlike the FXP32 layout"
    return int(np.count_nonzero((E2 == 0) & (raw != 0)))


@cocotb.test()
async def test_error_pair_stores(dut):
    """Hidden errors quantized at the output stage and pair-stored (QAT's
    16-bit errors), after the mask and with their trackers restarted; the
    cases must include codes that clipped and errors the mask cut."""
    tb = TB(dut)
    await tb.reset()
    n = int(os.environ.get("FIXAR_PAIR_CASES", "24"))
    clipped = masked = 0
    for case in range(n):
        top = await error_pair_store(tb, f"pair case {case}")
        clipped, masked = clipped + top["clipped"], masked + top["masked"]
    assert clipped > 0 and masked > 0, f"{clipped} codes clipped, {masked} errors masked"
    tb.record("error_pair_stores", n, clipped=clipped, masked=masked)


@cocotb.test()
async def test_packed_error_products(dut):
    """The backward pass below its top with QAT's 16-bit errors: each case a
    pair store, a weight gradient on its codes, then packed transposed
    products on them (one masked, quantized and stored as codes, one storing
    FXP32 lanes); the masks must cut errors of the packed products' both lanes."""
    tb = TB(dut)
    await tb.reset()
    n = int(os.environ.get("FIXAR_PAIR_CASES", "24")) // 2
    masked = 0
    for case in range(n):
        top = await error_pair_store(tb, f"chain case {case}")
        await gradient_on_error_codes(tb, top, f"chain case {case}")
        masked += await packed_error_products(tb, top, f"chain case {case}")
    assert masked > 0, "no error of a packed transposed product was masked"
    tb.record("packed_error_products", n, masked=masked)


@cocotb.test()
async def test_relu_masks(dut):
    """Masked transposed products (the backward's ReLU mask and, in QAT phase 2,
    its quantizer's top, at the output stage) right after the forward product
    whose store left their mask bits; the limit and the ReLU both really cut."""
    tb = TB(dut)
    await tb.reset()
    n = int(os.environ.get("FIXAR_MASK_CASES", "60"))
    at_limit = at_zero = 0
    for case in range(n):
        a, z = await masked_pair(tb, f"mask case {case}")
        at_limit, at_zero = at_limit + a, at_zero + z
    assert at_limit > 0 and at_zero > 0, f"the limit zeroed {at_limit} outputs and the ReLU {at_zero}"
    tb.record("relu_masks", n, at_limit=at_limit, at_zero=at_zero)


@cocotb.test()
async def test_output_stage_corners(dut):
    """Exact ties and saturation both ways through every output stage of the
    array (FXP32 and FXP16, forward and transposed, intra-batch and the
    cross-core sum of intra-layer mode), each checked against the golden
    model; the test also checks that its ties and limits really occur."""
    tb = TB(dut)
    await tb.reset()
    pe = tb.cfg.pe
    ties = limits = 0
    for mode in PEMode:
        s = pe.shift32 if mode == PEMode.FXP32 else pe.shift16
        for transpose in (False, True):
            for intra in (False, True):
                if intra and transpose:
                    continue
                op, W, X, exact = corner_operands(tb, mode, transpose, intra)
                await tb.load(op, W, X)
                got, _ = await tb.check(op, W, X, None, f"corners {mode.name} {'W^T X' if transpose else 'W X'} "
                                                     f"{'intra-layer' if intra else 'intra-batch'}")
                ties += int(np.sum((exact[:-2] & ((1 << s) - 1)) == 1 << (s - 1)))
                limits += int(np.sum(got == pe.out.max_int) > 0) + int(np.sum(got == pe.out.min_int) > 0)
    assert ties >= 40 and limits == 12, f"only {ties} ties and {limits} of 12 limits reached"
    tb.record("output_stage_corners", 6, ties=ties)


@cocotb.test()
async def test_ddpg_networks(dut):
    """The HalfCheetah actor and critic: chained forward passes in both
    parallelism modes and both formats, every transposed product and every
    weight gradient."""
    tb = TB(dut)
    await tb.reset()
    B = int(os.environ.get("FIXAR_DDPG_BATCH", "8"))
    for mode in PEMode:
        for name, layers in (("actor", ACTOR), ("critic", CRITIC)):
            await network_forward(tb, layers, 1, mode, True, f"{name} intra-layer {mode.name}")
            _, _, params, inputs, xts = await network_forward(tb, layers, B, mode, False, f"{name} B={B} {mode.name}")
            await network_backward(tb, layers, params, B, mode, f"{name} B={B} {mode.name}", inputs, xts)
    tb.record("ddpg_networks", 12)


@cocotb.test(skip=not os.environ.get("FIXAR_BENCH_OPS"))
async def test_bench_figures(dut):
    """`make bench`: the workloads behind the array_* figures, checked like the
    others. FIXAR_BENCH_OPS is a JSON list of [label, batch, mode]; label
    'infer' is the actor's forward pass for one vector in intra-layer mode,
    'train' the forward and transposed products of both networks."""
    tb = TB(dut)
    tb.log_ops = True
    await tb.reset()
    for label, batch, mode_name in json.loads(os.environ["FIXAR_BENCH_OPS"]):
        mode = PEMode[mode_name]
        tb.op_cycles, tb.op_wall = 0, 0.0
        cyc, macs = 0, 0
        if label == "infer":
            c, m, *_ = await network_forward(tb, ACTOR, batch, mode, True, "bench actor intra-layer")
            cyc, macs = cyc + c, macs + m
        else:
            for layers in (ACTOR, CRITIC):
                c, m, params, inputs, xts = await network_forward(tb, layers, batch, mode, False, f"bench B={batch}")
                cb, mb = await network_backward(tb, layers, params, batch, mode, f"bench B={batch}", inputs, xts)
                cyc, macs = cyc + c + cb, macs + m + mb
        peak = tb.cfg.array.pes * (2 if mode == PEMode.FXP16 else 1)
        tb.record("bench_workload", 1, label=label, batch=batch, mode=mode_name, workload_cycles=cyc,
                  macs=macs, utilization=round(macs / (peak * cyc), 4))


# ---------------------------------------------------------------- pytest entries

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_array_bit_exact_and_cycle_exact(sim):
    cfg = load("small")
    # Icarus runs the small array at ~600 cycles/s (Verilator ~200 000): it
    # checks the same RTL's semantics on 40 random operations and the output
    # stage's corners, not the DDPG networks (CI time; FIXAR_CASES for more;
    # make test-slow's long regression runs 10 000 under Verilator).
    cases = os.environ.get("FIXAR_CASES", "300" if sim == "verilator" else "40")
    res = run_module(sim, cfg, generated(cfg, array=True), "fixar_array", BENCH,
                     testcase=None if sim == "verilator" else ["test_random_ops", "test_output_stage_corners",
                                                               "test_packed_qat_products",
                                                               "test_packed_weight_gradients",
                                                               "test_error_pair_stores",
                                                               "test_packed_error_products"],
                     env={"FIXAR_CASES": cases, "FIXAR_DDPG_BATCH": "8",
                          "FIXAR_PACKED_CASES": "60" if sim == "verilator" else "4",
                          "FIXAR_PAIR_CASES": "24" if sim == "verilator" else "8"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def _pair_bench(tag: str, testcase: str = "test_error_pair_stores"):
    """An array bench test of the 16-bit errors on an array generated now (with whatever a test planted)."""
    from fixar.gen.emit import emit
    from fixar.sim.runner import BUILD_ROOT
    cfg = load("small")
    out = BUILD_ROOT / "planted_bug" / f"array_{tag}"
    emit(cfg, out, array=True)
    return run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-{tag}",
                      testcase=testcase, env={"FIXAR_PAIR_CASES": "8"})


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_a_high_lane_masked_by_the_low_lanes_row(monkeypatch):
    """A packed transposed product's high lane planted to take its mask bits
    from the low lane's row: its odd batch entries are masked by the even
    ones' bits, and the packed error products' test must fail."""
    from fixar.gen.units import array
    monkeypatch.setattr(array, "high_lane_mask", lambda row, next_row: row)
    res = _pair_bench("high-mask-low-row", "test_packed_error_products")
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a high lane masked by the low lane's row"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_pair_stores_with_their_halves_swapped(monkeypatch):
    """A pair store planted to put the odd slot's codes in the low half: the
    stored rows must differ from the codes' packed image."""
    def swapped(self, m, out, n):
        qb, C = self.cfg.pe.act16.bits, self.cfg.array.cols
        from amaranth.hdl import Cat, Signal
        codes = [out.code[2 * qb * c:2 * qb * c + qb] for c in range(C)]
        held = [Signal(qb, name=f"pair_held_{n}_{c}") for c in range(C)]
        with m.If(out.valid & ~out.slot[0]):
            m.d.sync += [h.eq(code) for h, code in zip(held, codes)]
        return Cat(*[Cat(code, h) for h, code in zip(held, codes)])
    from fixar.gen.units.array import Array
    monkeypatch.setattr(Array, "_pair_word", swapped)
    res = _pair_bench("pair-swapped")
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a pair store's halves swapped"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_a_quantizer_ahead_of_the_mask(monkeypatch):
    """The output stage planted in its old order, the quantizer on the
    unmasked results (the mask on the bypass only): a masked-out error then
    leaves as its quantized value, and the pair-store test must fail."""
    from fixar.gen.units import core
    monkeypatch.setattr(core, "quantizer_input", lambda masked, unmasked: unmasked)
    res = _pair_bench("quantizer-before-mask")
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a quantizer ahead of the mask"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_a_mask_that_passes_zeros(monkeypatch):
    """The mask bit planted as y >= 0 instead of y > 0: a ReLU's zero outputs
    would pass error. The mask test must fail."""
    from fixar.gen.emit import emit
    from fixar.gen.units import array
    from fixar.sim.runner import BUILD_ROOT
    cfg = load("small")
    monkeypatch.setattr(array, "mask_bit", lambda word, limit: (word >= 0) & (word < limit))
    out = BUILD_ROOT / "planted_bug" / "array_mask_ge0"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-mask-ge0",
                     testcase="test_relu_masks", env={"FIXAR_MASK_CASES": "20"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a mask that passes zeros"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_ties_rounded_half_up(monkeypatch):
    """The generator's rne entry planted as round-half-up: every array output
    stage then rounds exact ties upward. Random operands make no exact tie;
    the corner test must fail."""
    from amaranth.hdl import Const

    from fixar.gen.emit import emit
    from fixar.gen.lib import arith
    from fixar.sim.runner import BUILD_ROOT
    cfg = load("small")
    monkeypatch.setitem(arith.ROUNDERS, "rne", lambda value, shift, rnd: Const(1 << (shift - 1), shift))
    out = BUILD_ROOT / "planted_bug" / "array_ties_half_up"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-ties-half-up",
                     testcase="test_output_stage_corners")
    assert res.tests == 1 and res.failed == 1, "the bench did not notice ties rounded half up"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_a_folded_bias_gradient_on_the_wrong_stride(monkeypatch):
    """The weight gradient's X^T row stride planted as its slots (the folded
    bias gradient's ones slot not taken off): every X^T row after the first
    feature tile is read from the wrong place and the ones slot never streams
    ones. The DDPG networks' gradients (GStore.BOTH where X^T is on chip) must fail."""
    from amaranth.hdl import Signal

    from fixar.gen.emit import emit
    from fixar.gen.units import array
    from fixar.sim.runner import BUILD_ROOT

    def no_fold(m, d):
        fold, stride = Signal(name="grad_fold_bias"), Signal.like(d["slots"], name="grad_stride")
        m.d.comb += [fold.eq(0), stride.eq(d["slots"])]
        return fold, stride

    cfg = load("small")
    monkeypatch.setattr(array.Array, "_grad_stride", staticmethod(no_fold))
    out = BUILD_ROOT / "planted_bug" / "array_fold_stride"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-fold-stride",
                     testcase="test_ddpg_networks", env={"FIXAR_DDPG_BATCH": "8"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice the folded bias gradient's stride"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
@pytest.mark.parametrize("testcase", ["test_packed_qat_products", "test_packed_weight_gradients"])
def test_bench_catches_packed_lanes_left_unshifted(monkeypatch, testcase):
    """The cores' packed lanes planted unshifted: every packed QAT product
    with e > 0 then sums its lanes at the wrong scale against the correction,
    and so does every packed weight gradient (its lane sums, the cores'
    added). Both packed tests must fail."""
    from fixar.gen.emit import emit
    from fixar.gen.units import core
    from fixar.sim.runner import BUILD_ROOT
    cfg = load("small")
    monkeypatch.setattr(core, "packed_lane", lambda lane_sum, e: lane_sum)
    out = BUILD_ROOT / "planted_bug" / "array_packed_unshifted"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-packed-unshifted",
                     testcase=testcase, env={"FIXAR_PACKED_CASES": "20"})
    assert res.tests == 1 and res.failed == 1, f"{testcase} did not notice packed lanes left unshifted"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_a_packed_store_without_mask_bits(monkeypatch):
    """The packed store's mask writes planted away: the masked transposed
    products of the packed chains then read stale bits. The packed test must fail."""
    from fixar.gen.emit import emit
    from fixar.gen.units import array
    from fixar.sim.runner import BUILD_ROOT
    cfg = load("small")
    monkeypatch.setattr(array.Array, "_packed_mask_store", lambda self, m, d, outs, mmem, out_m_addr: None)
    out = BUILD_ROOT / "planted_bug" / "array_packed_no_masks"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-packed-no-masks",
                     testcase="test_packed_qat_products", env={"FIXAR_PACKED_CASES": "8"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a packed store without mask bits"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_a_lane_store_of_the_wrong_lane(monkeypatch):
    """Lane stores planted to write the low lane's values for both lanes: the
    rows of every odd batch entry are then wrong. The packed test must fail."""
    from fixar.gen.emit import emit
    from fixar.gen.units import array
    from fixar.sim.runner import BUILD_ROOT
    cfg = load("small")
    monkeypatch.setattr(array, "lane_values", lambda out, lane: out.lo)
    out = BUILD_ROOT / "planted_bug" / "array_lane_store_low_only"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-lane-low-only",
                     testcase="test_packed_qat_products", env={"FIXAR_PACKED_CASES": "8"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a lane store of the wrong lane"


@pytest.mark.slow      # CI time (make test-slow runs it); the bench's main planted bug stays in CI
def test_bench_catches_a_packed_gradient_without_its_high_words(monkeypatch):
    """The packed weight gradient's high-lane writes (port A of the gradient
    memory) planted away: every odd input's gradient is then missing where
    Adam reads it, though the output beats are right. The packed gradient
    test must fail."""
    from fixar.gen.emit import emit
    from fixar.gen.units import array
    from fixar.sim.runner import BUILD_ROOT
    cfg = load("small")
    monkeypatch.setattr(array.Array, "_packed_grad_high_word", lambda self, *args: None)
    out = BUILD_ROOT / "planted_bug" / "array_packed_grad_no_high"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-packed-grad-no-high",
                     testcase="test_packed_weight_gradients", env={"FIXAR_PACKED_CASES": "20"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a packed gradient without its high words"


# CI time: Icarus runs the array's main bench in CI; its stochastic-rounding run is -m slow
@pytest.mark.parametrize("sim", ["verilator", pytest.param("icarus", marks=pytest.mark.slow)])
def test_array_stochastic_rounding(sim):
    """Stochastic rounding at every output stage (pe.out), added through the
    format registry: random operations bit-exact against the golden model,
    which draws the same words from each output's coordinates."""
    cfg = load("small_stochastic")
    res = run_module(sim, cfg, generated(cfg, array=True), "fixar_array", BENCH, testcase="test_random_ops",
                     env={"FIXAR_CASES": "300" if sim == "verilator" else "60"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


@pytest.mark.slow      # CI time (make test-slow runs it); the array bench's main planted bug stays in CI
def test_stochastic_bench_catches_a_wrong_hash_constant():
    """The noise hash's first constant changed in the generated array: the words
    differ from the golden model's and the bench must fail."""
    cfg = load("small_stochastic")
    src_dir = generated(cfg, array=True)
    const = "+ 31'h7ed55d16;"      # the hash's first round constant (gen/lib/noise.py), as Yosys writes it
    assert const in (src_dir / "fixar_array.v").read_text(), "the noise hash's constant is not in fixar_array.v"
    res = run_mutated(cfg, "fixar_array", BENCH, const, "+ 31'h7ed55d17;", src_dir=src_dir,
                      testcase="test_random_ops", env={"FIXAR_CASES": "100"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong noise hash"


@pytest.mark.slow      # CI: the PE bench and the rtl backend's training run with MBM (about 2.5 min here)
def test_array_with_an_approximate_multiplier():
    """Every PE built with MBM's LUT circuit (fixar.gen.lib.multipliers):
    random operations (forward, transposed, gradient, both modes) bit-exact
    against the golden model, whose products come from MBM's functional
    model, and cycle-exact (the product stage keeps its register)."""
    cfg = load("small").with_multiplier("mbm")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_array", BENCH, testcase="test_random_ops",
                     env={"FIXAR_CASES": "300"})
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


@pytest.mark.slow      # CI: the same planted constant in the circuit check (tests/test_multipliers.py)
def test_approximate_bench_catches_a_wrong_mbm_constant(monkeypatch):
    """The array generated with MBM's correction 4/64 instead of 5/64 (the
    golden model keeps 5/64): the random operations must fail."""
    import functools

    from fixar.gen.emit import emit
    from fixar.gen.lib import multipliers
    from fixar.sim.runner import BUILD_ROOT
    cfg = load("small").with_multiplier("mbm")
    monkeypatch.setitem(multipliers.GENERATORS, "mbm", functools.partial(multipliers.GENERATORS["mbm"], corr=4))
    out = BUILD_ROOT / "planted_bug" / "array_mbm_corr4"
    emit(cfg, out, array=True)
    res = run_module("verilator", cfg, out, "fixar_array", BENCH, tag=f"{cfg.digest}-mbm-corr4",
                     testcase="test_random_ops", env={"FIXAR_CASES": "100"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong MBM constant"


@pytest.mark.slow
def test_array_long_regression():
    cfg = load("small")
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_array", BENCH,
                     testcase="test_random_ops", env={"FIXAR_CASES": "10000"}, seed=1)
    assert res.passed, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


def column0_fxp32_limit(verilog: str, bits: int, max_int: int) -> re.Match | None:
    """The FXP32 output stage's positive limit of column 0 (the first core's,
    the first in the file), not the QAT quantizer's: the mux on the sign of
    the column's requantized value (``fxp32_0_q``; ``col0_fxp32_q`` in newer
    generators, ``col0_fxp32_narrow`` since the rounding's carry is added to
    a narrowed value; ``col0_fxp32_k`` since the fit is decided beside the
    increment). Yosys may write that sign as the top bit of the wire the value
    is sign-extended from, or of the register it is a copy of, so that wire's
    bit is looked for too."""
    signs = []
    for name in ("fxp32_0_q", "col0_fxp32_q", "col0_fxp32_narrow", "col0_fxp32_k"):
        signs.append(rf"{name}\[\d+\]")
        ext = re.search(rf"assign {name} = \{{ (\\\S+) \[(\d+)\], \1\s*\}};", verilog)
        if ext:
            signs.append(rf"{re.escape(ext.group(1))} \[{ext.group(2)}\]")
        alias = re.search(rf"assign {name} = (\w+);", verilog)
        if alias:
            signs.append(rf"{alias.group(1)}\[\d+\]")
    return re.search(rf"(?:{'|'.join(signs)}) \? {bits}'d\d+ : {bits}'d{max_int};", verilog)


def test_bench_catches_planted_bug():
    """One saturation limit of one output column changed: the bench must fail."""
    cfg = load("small")
    bits, max_int = cfg.pe.out.bits, cfg.pe.out.max_int
    src_dir = generated(cfg, array=True)
    found = column0_fxp32_limit((src_dir / "fixar_array.v").read_text(), bits, max_int)
    assert found, "the FXP32 saturation limit of column 0 was not found in fixar_array.v"
    res = run_mutated(cfg, "fixar_array", BENCH, found.group(0),
                      found.group(0).replace(f"{bits}'d{max_int};", f"{bits}'d{max_int - 1};"),
                      src_dir=src_dir, testcase="test_random_ops", env={"FIXAR_CASES": "200"})
    assert res.tests == 1 and res.failed == 1, "the bench did not notice a wrong saturation limit"
