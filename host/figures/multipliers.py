"""Figures of the approximate multipliers (issue 24): their error on the PE's
operands and the golden model's speed with them.

* ``mult_<name>_mean_rel_err`` / ``mult_<name>_bias``: mean of
  |p - x y| / |x y| and of (p - x y) / (x y) over random signed operand
  pairs of the PE's weight x lane product (``pe.weight.bits`` x
  ``pe.lane_bits``: 32 x 16 by default), each uniform over its two's-complement
  codes, pairs with a zero factor left out. Sign-magnitude makes the signed
  relative error that of the magnitudes, so the bias is the magnitude's.
  Uniform codes are almost all large (a leading one near the top), where
  a truncated array is at its best; ``..._loguniform`` repeats both with
  every bit length equally likely, nearer the spread of a network's codes.
* ``approx_golden_matmul_vs_exact_ratio_<name>``: time of the golden
  model's approximate product (``fixar.golden.multipliers.approx_matmul``)
  over its exact lane product (``fixar.golden.matmul.exact_matmul_lanes``,
  float64 BLAS) for a 300 x 400 @ 400 x 64 product, best of ``repeats``,
  the two timed alternately; weights of trained size (|w| < 1.0 in Q12.20),
  lanes uniform 16-bit codes. Whether numba ran is in ``..._numba`` (1 or 0).
  ``..._cpu_ratio_<name>``: the same with process CPU time (all threads:
  BLAS runs on both cores, the numba loop on one), which load from other
  processes on the machine distorts less than the wall clock.
* ``approx_golden_step_vs_exact_ratio_b64_<name>``: one whole golden DDPG
  training step (HalfCheetah's 400-300 networks, B = 64) with the
  multiplier over the same step with the exact one (median of
  ``reps``, interleaved); ``approx_golden_step_ms_b64_<name>`` its time.
* ``pe_<name>_lut`` / ``_dsp48e2`` / ``_ff``: Yosys (make bench's
  synth_xilinx script) of the PE generated with the multiplier;
  ``pe_<name>_logic_ns`` its logic-only critical path (make bench timing's
  estimate: 7-series cell delays, no routing, DSP48E2 as 0 ns) and
  ``pe_<name>_clock_mhz_estimate`` the clock that leaves routing its share.
* ``approx_pes_on_u50_<name>``: PEs the U50 would hold with that PE, at
  the budget the floorplan allows (90 % of the XCU50's LUTs, flip-flops and
  DSP48E2s) less the rest of the kernel (make bench's ``kernel_lut`` /
  ``kernel_ff`` / ``kernel_dsp48e2`` less 512 exact PEs, each counted as the stand-alone
  PE: the array shares some of a PE's output logic, so this rest is a
  lower bound); ``approx_ips_b512_<name>``: IPS by the cycle model (B =
  512, HalfCheetah 400-300, at the config's clock) of the largest array
  the generator builds within that many PEs (1 or 2 cores of R x R, R a
  power of two: ``docs/explore.md``).
* ``digits_acc_<name>``: the digits MLP (fixar.golden.digits, FXP32)
  trained with the multiplier in every product, mean test accuracy over 3
  seeds (``digits_acc_exact`` is ``digits_acc_fxp32``'s run).
"""
from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np

from fixar.config import DEFAULT, MULTIPLIERS, FixarConfig
from fixar.golden.fixed import numba_kernels
from fixar.golden.matmul import exact_matmul_lanes
from fixar.golden.multipliers import approx_matmul, approx_multiply

DIGITS_SEEDS = (0, 1, 2)


def _operands(rng, bits: int, n: int, log_uniform: bool) -> np.ndarray:
    if not log_uniform:
        return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), n)
    mag = np.floor(2.0 ** rng.uniform(0, bits - 1, n)).astype(np.int64)   # bit length uniform
    return np.where(rng.random(n) < 0.5, -mag, mag)


def error_figures(cfg: FixarConfig = DEFAULT, samples: int = 200_000, seed: int = 0) -> dict:
    """Mean relative error and bias of every multiplier on the PE's weight x lane operands."""
    wa, wb = cfg.pe.weight.bits, cfg.pe.lane_bits
    figs = {}
    for suffix, log_uniform in (("", False), ("_loguniform", True)):
        rng = np.random.default_rng(seed)
        a, b = _operands(rng, wa, samples, log_uniform), _operands(rng, wb, samples, log_uniform)
        keep = (a != 0) & (b != 0)
        a, b = a[keep], b[keep]
        exact = a.astype(np.float64) * b
        for name in MULTIPLIERS:
            rel = (approx_multiply(a, b, name, (wa, wb)) - a * b) / exact     # int64 difference: exact
            figs[f"mult_{name}_mean_rel_err{suffix}"] = float(f"{np.abs(rel).mean():.6g}")
            figs[f"mult_{name}_bias{suffix}"] = float(f"{rel.mean():.6g}")
    return figs


def speed_figures(cfg: FixarConfig = DEFAULT, shape: tuple[int, int, int] = (300, 400, 64),
                  repeats: int = 10) -> dict:
    """Approximate golden matmul time against the exact one, per multiplier."""
    m, k, n = shape
    rng = np.random.default_rng(1)
    wa, wb = cfg.pe.weight.bits, cfg.pe.lane_bits
    W = rng.integers(-(1 << cfg.pe.weight.frac), 1 << cfg.pe.weight.frac, (m, k))
    X = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), (k, n))
    figs = {"approx_golden_matmul_numba": int(numba_kernels() is not None)}
    exact_matmul_lanes(W, [X])
    for name in MULTIPLIERS:
        approx_matmul(W, X, name, (wa, wb))       # tables, numba compilation: not timed
        runs = {"exact": functools.partial(exact_matmul_lanes, W, [X]),
                "approx": functools.partial(approx_matmul, W, X, name, (wa, wb))}
        wall, cpu = dict.fromkeys(runs, np.inf), dict.fromkeys(runs, np.inf)
        for _ in range(repeats):                  # alternately, so that load on the machine hits both
            for which, fn in runs.items():
                t, c = time.perf_counter(), time.process_time()
                fn()
                wall[which] = min(wall[which], time.perf_counter() - t)
                cpu[which] = min(cpu[which], time.process_time() - c)
        figs[f"approx_golden_matmul_ms_{name}"] = round(wall["approx"] * 1e3, 3)
        figs[f"approx_golden_matmul_vs_exact_ratio_{name}"] = round(wall["approx"] / wall["exact"], 2)
        figs[f"approx_golden_matmul_vs_exact_cpu_ratio_{name}"] = round(cpu["approx"] / max(cpu["exact"], 1e-9), 2)
    return figs


def step_figures(cfg: FixarConfig = DEFAULT, batch: int = 64, reps: int = 3) -> dict:
    """A whole golden training step per multiplier against the exact one."""
    from fixar.rl.backends.golden import GoldenBackend
    from fixar.rl.hyper import Hyper
    rng = np.random.default_rng(1)
    obs, act = 17, 6
    data = (rng.normal(0, 1, (batch, obs)), rng.uniform(-1, 1, (batch, act)), rng.normal(-1, 1, batch),
            rng.normal(0, 1, (batch, obs)), np.zeros(batch))
    backends = {m: GoldenBackend(obs, act, Hyper(batch=batch), 0, cfg.with_multiplier(m)) for m in MULTIPLIERS}
    times = {m: [] for m in MULTIPLIERS}
    for b in backends.values():         # tables, numba compilation, allocations: not timed
        b.train(*data)
    for _ in range(reps):
        for m, b in backends.items():
            t = time.perf_counter()
            b.train(*data)
            times[m].append(time.perf_counter() - t)
    exact = float(np.median(times["exact"]))
    figs = {}
    for m in MULTIPLIERS:
        if m != "exact":
            ms = float(np.median(times[m]))
            figs[f"approx_golden_step_ms_b{batch}_{m}"] = round(ms * 1e3, 1)
            figs[f"approx_golden_step_vs_exact_ratio_b{batch}_{m}"] = round(ms / exact, 2)
    return figs


def digits_figures(cfg: FixarConfig = DEFAULT, seeds=DIGITS_SEEDS) -> dict:
    """The digits MLP trained in FXP32 with each multiplier."""
    from fixar.golden.digits import Setup, load_digits_split, train
    acc = {m: [] for m in MULTIPLIERS}
    for seed in seeds:
        data, setup = load_digits_split(seed), Setup(seed=seed)
        for m in MULTIPLIERS:
            acc[m].append(train("fxp32", data, setup, cfg.with_multiplier(m)))
    return {f"digits_acc_{m}": round(float(np.mean(a)), 4) for m, a in acc.items()}


def pe_resources(cfg: FixarConfig = DEFAULT) -> dict:
    """Yosys resources of the PE generated with each multiplier."""
    from fixar.figures.synth import summarize, synth
    from fixar.sim.rtl import generated
    figs = {}
    for m in MULTIPLIERS:
        r = summarize(synth(generated(cfg.with_multiplier(m)) / "fixar_pe.v", "fixar_pe"))
        figs.update({f"pe_{m}_{k}": r[k] for k in ("lut", "dsp48e2", "ff")})
    return figs


def pe_timing(cfg: FixarConfig = DEFAULT) -> dict:
    """Logic-only critical path of the PE generated with each multiplier
    (fixar.figures.timing's Yosys estimate, DSP48E2 as 0 ns) and the clock
    it supports: an approximate product is LUT logic in front of the
    product register, where the exact one is a DSP48E2."""
    from fixar.figures.timing import clock_mhz, logic_ns
    from fixar.sim.rtl import generated
    figs = {}
    for m in MULTIPLIERS:
        folder = generated(cfg.with_multiplier(m))
        print(f"  yosys sta: PE with {m}", flush=True)
        r = logic_ns(folder / "fixar_pe.v", "fixar_pe", extra=(folder / "fixar_ram.v",))
        figs[f"pe_{m}_logic_ns"] = r["ns"]
        figs[f"pe_{m}_clock_mhz_estimate"] = clock_mhz(r["ns"])
        figs[f"pe_{m}_logic_path"] = f"{r['start']} -> {r['end']}"
    return figs


def _shape(cfg: FixarConfig, cores: int, rows: int) -> FixarConfig:
    """``cfg`` with a cores x rows x rows array and memories four times as
    deep as the default's rows (depth adds no cycle; the workload must fit)."""
    m, a = cfg.memory, cfg.array
    mem = dataclasses.replace(m, weight_words=4 * m.weight_words // a.cols * rows,
                              grad_words=4 * m.grad_words // a.cols * rows,
                              bias_words=4 * m.bias_words // a.cols * rows,
                              act_words_per_core=4 * m.act_words_per_core // a.rows * rows,
                              xt_words_per_core=4 * m.xt_words_per_core // a.rows * rows)
    return dataclasses.replace(cfg, name="capacity", array=dataclasses.replace(a, cores=cores, rows=rows, cols=rows),
                               memory=mem)


def u50_capacity(cfg: FixarConfig, pe: dict, kernel: dict) -> dict:
    """PEs on the U50 and the IPS they give, per multiplier (see the module doc).
    ``pe``: :func:`pe_resources`' figures; ``kernel``: kernel_lut and
    kernel_dsp48e2 of the default kernel (512 exact PEs)."""
    from fixar.compiler.program import projected
    from fixar.figures.synth import U50_CAPACITY
    from fixar.gen.kernel.floorplan import MARGIN
    n_pes = cfg.array.pes
    figs = {}
    for m in MULTIPLIERS:
        room = []
        for r in ("lut", "ff", "dsp48e2"):       # flip-flops: a pipelined LUT product has a few hundred
            key = f"kernel_{r}"
            if key not in kernel:
                continue
            rest = kernel[key] - n_pes * pe[f"pe_exact_{r}"]
            if pe[f"pe_{m}_{r}"]:
                room.append((U50_CAPACITY[r] * (1 - MARGIN) - rest) // pe[f"pe_{m}_{r}"])
        pes = int(min(room))
        fits = [(c, rows) for c in (1, 2) for rows in (2, 4, 8, 16, 32, 64) if c * rows * rows <= pes]
        figs[f"approx_pes_on_u50_{m}"] = pes
        if fits:
            c, rows = max(fits, key=lambda f: f[0] * f[1] ** 2)
            figs[f"approx_ips_b512_{m}"] = projected(_shape(cfg.with_multiplier(m), c, rows), 17, 6, (400, 300),
                                                     512)["accel_ips"]
    return figs


def multiplier_figures(cfg: FixarConfig = DEFAULT, samples: int = 200_000, shape=(300, 400, 64),
                       repeats: int = 10, kernel: dict | None = None) -> dict:
    """Every figure above, one dict (what `make bench` merges into summary.json).
    ``kernel``: the figures of make bench's synth-kernel part (kernel_lut,
    kernel_dsp48e2), without which the U50 capacity figures are left out."""
    figs = {**error_figures(cfg, samples), **speed_figures(cfg, shape, repeats), **step_figures(cfg),
            **digits_figures(cfg), **pe_resources(cfg), **pe_timing(cfg)}
    if kernel and {"kernel_lut", "kernel_dsp48e2"} <= kernel.keys():
        figs.update(u50_capacity(cfg, figs, kernel))
    else:
        print("multipliers: no kernel_lut / kernel_dsp48e2 (make bench synth-kernel): PEs on the U50 left out")
    return figs
