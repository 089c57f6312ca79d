"""cocotb bench: whole DDPG training steps on the training engine (array,
vector unit, Adam lanes, controller running the compiled program), compared
after every step with the golden model running the same program: every
weight, bias, target and Adam moment, bit for bit.

Environment: FIXAR_CONFIG_JSON, FIXAR_NETS (JSON [obs, act, [h1, h2], batch]),
FIXAR_STEPS (training steps), FIXAR_BENCH_JSON (figures).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge
from cocotb.utils import get_sim_time

from fixar.array_ops import (bias_image, feature_major_image, slot_major_image, weight_from_image,
                             weight_image)
from fixar.config import FixarConfig, Scalar
from fixar.golden.fixed import I64, quantize
from fixar.golden.program import ProgramState, execute, program_params
from fixar.program import compile_ddpg, encode, step_cycles
from fixar.rl.golden_backend import GoldenBackend
from fixar.rl.hyper import Hyper
from fixar.tb.figures import record

HOST_PORTS = ("wm_we", "wm_re", "am_we", "am_re", "bm_we", "tm_we", "st_we", "prog_we", "scal_we", "start",
              "start_pc", "prng_we", "gm_raddr", "gbm_raddr", "st_addr")


PERIOD_NS = 10


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.cfg = FixarConfig.from_json(os.environ["FIXAR_CONFIG_JSON"])
        self.edge = FallingEdge(dut.clk)

    async def reset(self):
        Clock(self.dut.clk, PERIOD_NS, unit="ns").start()
        for p in HOST_PORTS:
            getattr(self.dut, p).value = 0
        self.dut.rst.value = 1
        for _ in range(2):
            await self.edge
        self.dut.rst.value = 0
        await self.edge

    async def write(self, prefix: str, base: int, rows: list[int], we: int = 1, data: str = "data"):
        dut = self.dut
        we_h, addr_h = getattr(dut, f"{prefix}_we"), getattr(dut, f"{prefix}_addr")
        data_h = getattr(dut, f"{prefix}_{data}")
        for i, word in enumerate(rows):
            we_h.value, addr_h.value, data_h.value = we, base + i, word
            await self.edge
        we_h.value = 0

    async def read(self, addr_port: str, data_ports: list[str], base: int, n: int, re: str | None = None):
        """Rows through a registered read port: data the cycle after the address."""
        dut = self.dut
        if re:
            getattr(dut, re).value = 1
        addr = getattr(dut, addr_port)
        out = []
        addr.value = base
        for i in range(n):
            await self.edge
            out.append(tuple(getattr(dut, p).value.to_unsigned() for p in data_ports))
            addr.value = base + i + 1
        if re:
            getattr(dut, re).value = 0
        return out


def _unpack(rows, C, bits, signed=True):
    v = np.array([[(r >> (c * bits)) & ((1 << bits) - 1) for c in range(C)] for r in rows], dtype=I64).ravel()
    return np.where(v >> (bits - 1), v - (1 << bits), v) if signed else v


@cocotb.test()
async def test_training_steps(dut):
    tb = TB(dut)
    cfg = tb.cfg
    ar, ad = cfg.array, cfg.adam
    R, C, N = ar.rows, ar.cols, ar.cores
    obs, act, hidden, batch = json.loads(os.environ.get("FIXAR_NETS", "[8, 2, [32, 32], 16]"))
    steps = int(os.environ.get("FIXAR_STEPS", "20"))
    array_latency = int(os.environ["FIXAR_LATENCY"])
    hp = dataclasses.replace(Hyper(), hidden=tuple(hidden), batch=batch)
    ddpg = GoldenBackend(obs, act, hp, seed=11, cfg=cfg).ddpg
    prog = compile_ddpg(cfg, obs, act, tuple(hidden), batch)
    st = ProgramState(cfg, prog, batch)
    for name, value in program_params(ddpg, prog).items():
        st.t[name] = value
    T = prog.tensors
    fmt = cfg.pe.act32
    one = 1 << fmt.frac
    obs_p = -(-obs // R) * R
    await tb.reset()

    # program, constant scalars, parameters, zero moments
    words, act_pc = encode(cfg, prog, batch)
    await tb.write("prog", 0, words)
    st.prng = int(ddpg.prng)
    dut.prng_seed.value, dut.prng_we.value = st.prng, 1
    await tb.edge
    dut.prng_we.value = 0
    for reg, value in ((Scalar.GAMMA, ddpg.gamma), (Scalar.TAU, ddpg.tau), (Scalar.LOSS_SCALE, ddpg.loss_scale),
                       (Scalar.NOISE, ddpg.noise_scale),
                       (Scalar.B1, ddpg.adam.b1), (Scalar.C1, ddpg.adam.c1), (Scalar.B2, ddpg.adam.b2),
                       (Scalar.C2, ddpg.adam.c2), (Scalar.E2, ddpg.adam.e2)):
        await tb.write("scal", int(reg), [int(value)])
    for name, t in T.items():
        if t.space == "W":
            await tb.write("wm", t.base, weight_image(cfg, st.t[name]))
        elif t.space == "B":
            await tb.write("bm", t.base, bias_image(cfg, st.t[name]))
    w_rows = max(t.base + t.rows for t in T.values() if t.space == "W" and not t.name.split(".")[0].endswith("_t"))
    b_rows = max(t.base + t.rows for t in T.values() if t.space == "B")
    dut.st_m_data.value, dut.st_v_data.value = 0, 0
    await tb.write("st", 0, [0] * max(w_rows, b_rows), we=3, data="m_data")

    async def write_act(name, X):
        for n in range(N):
            await tb.write("am", T[name].base, slot_major_image(cfg, X, batch, n), we=1 << n)

    async def write_t(name, X):
        for n in range(N):
            await tb.write("tm", T[name].base, feature_major_image(cfg, X, batch, n, T[name].shape[0]), we=1 << n)

    async def run(pc: int) -> int:
        """Start the program at ``pc``; cycles from start to done (the simulator
        runs freely in between: no Python per cycle)."""
        dut.start_pc.value, dut.start.value = pc, 1
        t0 = get_sim_time("ns")
        await tb.edge
        dut.start.value = 0
        if not dut.done.value:
            await RisingEdge(dut.done)
            await tb.edge
        return round((get_sim_time("ns") - t0) / PERIOD_NS)

    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    total_cycles, matched = 0, 0
    start_wall = time.perf_counter()
    for step in range(steps):
        S_ = quantize(rng.normal(size=(obs, batch)), fmt)
        A_ = quantize(rng.uniform(-1, 1, (act, batch)), fmt)
        Rw = quantize(rng.normal(size=(1, batch)), fmt)
        S2 = quantize(rng.normal(size=(obs, batch)), fmt)
        done = np.where(rng.random(batch) < 0.2, one, 0)[None, :]
        lr = {name: copy.deepcopy(sched).next() for name, sched in ddpg.steps.items()}
        for sched in ddpg.steps.values():
            sched.next()
        sa = np.zeros((obs_p + act, batch), dtype=I64)
        sa[:obs], sa[obs_p:] = S_, A_
        host = {"[s;mu]": S_, "s^T": S_, "[s;a]": sa, "[s;a]^T": sa, "[s2;mu']": S2, "r": Rw, "done": done,
                "ones^T": np.full((1, batch), one), "-2^k/B": np.full((1, batch), ddpg.actor_error_code())}
        for name, X in host.items():
            st.write(name, X)
            await (write_t if T[name].space == "T" else write_act)(name, X)
        for reg, value in ((Scalar.CRITIC_LR, lr["critic"]), (Scalar.ACTOR_LR, lr["actor"])):
            await tb.write("scal", int(reg), [value])
        execute(st, {"gamma": ddpg.gamma, "tau": ddpg.tau, "loss_scale": ddpg.loss_scale,
                     "critic_lr": lr["critic"], "actor_lr": lr["actor"]}, ddpg.adam)

        cycles = await run(0)
        total_cycles += cycles
        model = step_cycles(cfg, prog, batch, array_latency)
        assert cycles == model, f"step {step}: {cycles} cycles measured, the program's cycle model says {model}"

        bad = []
        for name, t in T.items():
            want = st.t[name]
            if t.space == "W":
                rows = await tb.read("wm_addr", ["wm_rdata"], t.base, t.rows, re="wm_re")
                got = weight_from_image(cfg, [r[0] for r in rows], *t.shape, cfg.pe.weight.bits)
            elif t.space == "B":
                rows = await tb.read("bm_addr", ["bm_rdata"], t.base, t.rows)
                got = _unpack([r[0] for r in rows], C, cfg.pe.out.bits)[:t.shape[0]]
            else:
                continue
            if not np.array_equal(got, want):
                bad.append(name)
                idx = np.argwhere(got != want)
                dut._log.error("%s: %d of %d differ, first at %s: expected %d got %d", name, len(idx), want.size,
                               tuple(idx[0]), want[tuple(idx[0])], got[tuple(idx[0])])
            if name in st.m:
                if t.space == "W":
                    rows = await tb.read("st_addr", ["st_m_rdata", "st_v_rdata"], t.base, t.rows)
                    gm = weight_from_image(cfg, [r[0] for r in rows], *t.shape, ad.m.bits)
                    gv = weight_from_image(cfg, [r[1] for r in rows], *t.shape, ad.v.bits, signed=False)
                else:
                    rows = await tb.read("st_addr", ["st_bm_rdata", "st_bv_rdata"], t.base, t.rows)
                    gm = _unpack([r[0] for r in rows], C, ad.m.bits)[:t.shape[0]]
                    gv = _unpack([r[1] for r in rows], C, ad.v.bits, signed=False)[:t.shape[0]]
                if not (np.array_equal(gm, st.m[name]) and np.array_equal(gv, st.v[name])):
                    bad.append(f"{name} moments")
        # acting: one state through the actor in intra-layer mode, plus noise
        state = quantize(rng.normal(size=(obs, 1)), fmt)
        st.write("state", state)
        for n in range(N):
            await tb.write("am", T["state"].base, slot_major_image(cfg, state, 1, 0), we=1 << n)
        execute(st, {"noise": ddpg.noise_scale}, None, acting=True)
        act_cycles = await run(act_pc)
        model = step_cycles(cfg, prog, batch, array_latency, acting=True)
        assert act_cycles == model, f"acting: {act_cycles} cycles measured, the cycle model says {model}"
        (row,) = await tb.read("am_addr", ["am_rdata"], T["action"].base, 1, re="am_re")
        got = _unpack([row[0] & ((1 << (R * fmt.bits)) - 1)], R, fmt.bits)[:act]
        if not np.array_equal(got, st.t["action"][:act, 0]):
            bad.append("action")
            dut._log.error("action: expected %s got %s", st.t["action"][:act, 0], got)
        if int(dut.prng_state.value) != st.prng:
            bad.append("noise generator state")
        dut._log.info("step %d: %d cycles, acting %d cycles; %s", step, cycles, act_cycles,
                      "all state equal" if not bad else f"differ: {bad}")
        if bad:
            record(dut, {"test": "training_steps", "sim": cocotb.SIM_NAME, "nets": [obs, act, hidden, batch],
                         "steps": step + 1, "identical_steps": matched, "cycles_per_step": cycles})
        assert not bad, f"step {step}: RTL and golden model differ in {bad}"
        matched += 1
    record(dut, {"test": "training_steps", "sim": cocotb.SIM_NAME, "nets": [obs, act, hidden, batch],
                 "steps": steps, "identical_steps": matched, "cycles_per_step": total_cycles // max(steps, 1),
                 "act_cycles": act_cycles,
                 "wall_s": round(time.perf_counter() - start_wall, 1)})
