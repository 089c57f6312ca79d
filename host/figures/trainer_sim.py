"""Full DDPG training steps of HalfCheetah's 400-300 networks on the default
training engine (2 cores of 16 x 16) in cycle-accurate RTL simulation, each
step checked bit for bit against the golden model running the same program:
cycles per step and the accelerator's IPS at FIXAR's 164 MHz (accel_ips_164mhz_*:
the training step alone; accel_ips_fixar_* and accel_ips_qat2_*: per
environment step, the acting pass included, as FIXAR counts), for a step of
QAT's phase 1 (FXP32, ranges tracked) and, after the switch, of phase 2
(the 16-bit quantizers at the output stage; suffix _fxp16). The engine's
config is the given one with power-of-two quantizer steps (config
qat_pow2's quantizer; the same RTL), so phase 2 runs packed, two vectors
per PE (docs/program.md, "Packed phase 2"); phase 1 is FXP32 either way."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from fixar.config import FixarConfig
from fixar.config.timing import timing
from fixar.figures.cold import run_cold
from fixar.figures.part_cache import PartCache
from fixar.sim.rtl import generated, run_in_slots, run_module
from fixar.sim.runner import BUILD_ROOT

BATCHES = (64, 128, 256, 512)


def trainer_sim(cfg: FixarConfig, batches=BATCHES, cache_dir: Path | None = None) -> dict:
    """The figures above; each batch size's bench record is kept in
    ``cache_dir`` (default bench/results) for this commit and config, so that
    an interrupted run resumes at the next batch size."""
    figs: dict = {}
    cfg = cfg.variant(name=f"{cfg.name}_pow2", array=dataclasses.replace(cfg.array, quantizer_scale="pow2"))
    clock_hz = _fixars_clock(cfg)
    records, build_s = _records(cfg, batches, "trainer_records.json", cache_dir)
    for batch, rec in records.items():
        figs[f"act_cycles_b{batch}"] = rec["act_cycles"]
        for suffix, key, per_env in (("", "cycles_fxp32", "fixar"), ("_fxp16", "cycles_qat_phase2", "qat2")):
            cycles = rec[key]
            figs[f"train_step_cycles_b{batch}{suffix}"] = cycles
            figs[f"accel_ips_164mhz_b{batch}{suffix}"] = round(batch * clock_hz / cycles)
            # FIXAR's accelerator IPS: per environment step, so one acting pass and one training step
            figs[f"accel_ips_{per_env}_b{batch}"] = round(batch * clock_hz / (cycles + rec["act_cycles"]))
            print(f"  B = {batch}{suffix or ' (FXP32)'}: {cycles} cycles per step, "
                  f"{batch * clock_hz / cycles:.0f} IPS at 164 MHz (bit-exact against the golden program)", flush=True)
    figs["trainer_verilator_build_s"] = round(build_s, 1)
    return figs


def trainer_sim_16_bit_errors(batches=(64, 512), cache_dir: Path | None = None) -> dict:
    """Config qat16d (QAT whose hidden errors are 16-bit too, docs/program.md
    "16-bit errors") on the default engine: one step each side of the switch
    per batch size in RTL, bit-exact; accel_ips_qat16d_* per environment step
    (the acting pass included) at 164 MHz, train_step_cycles_b*_qat16d the
    phase-2 step's cycles."""
    from fixar.config import load

    cfg = load("qat16d")
    clock_hz = _fixars_clock(cfg)
    records, build_s = _records(cfg, batches, "trainer16_records.json", cache_dir)
    figs: dict = {}
    for batch, rec in records.items():
        cycles = rec["cycles_qat_phase2"]
        figs[f"train_step_cycles_b{batch}_qat16d"] = cycles
        figs[f"accel_ips_qat16d_b{batch}"] = round(batch * clock_hz / (cycles + rec["act_cycles"]))
        print(f"  B = {batch}: phase 2 {cycles} cycles per step (phase 1 {rec['cycles_fxp32']}), "
              f"{figs[f'accel_ips_qat16d_b{batch}']} environment steps/s at 164 MHz (bit-exact)", flush=True)
    figs["trainer16_verilator_build_s"] = round(build_s, 1)
    return figs


def trainer_sim_bfp(cache_dir: Path | None = None) -> dict:
    """Config bfp (the array's BFP front) on the 2 x 16 x 16 engine:
    HalfCheetah's 400-300 DDPG in BFP, every step bit-exact against the
    golden program in RTL. Its schedule here widens every layer at every
    step (threshold 0), so at B = 64 the four steps run at 2, 4, 6 and 8
    mantissa bits: bfp_train_step_cycles_b64_m{2,4,6,8}. bfp_ips_b64 per
    environment step (the acting pass included) at 164 MHz, and
    bfp_speedup_vs_fxp32_b64 against FXP32's step of the same program
    shape on the same engine (the cycle model, which the trainer part
    measures equal). B = 512 is trainer_sim_bfp512's, at fixed widths: a
    scheduled step keeps the training forward passes' inputs to its end for
    the schedule's check, and at 400-300 they do not fit the activation
    memory beside the step's other tensors (the compiler says so)."""
    from fixar.compiler.program import compile_ddpg, step_cycles
    from fixar.config import load

    base = load("bfp")
    cfg = base.variant(name="bfp_sweep", bfp=dataclasses.replace(base.bfp, schedule_every=1, threshold=0.0))
    clock_hz = _fixars_clock(cfg)
    from fixar.figures.summary import ROOT, commit

    measured = commit()
    cache = PartCache((cache_dir or ROOT / "bench" / "results") / "trainer_bfp_records.json",
                      f"{measured} {cfg.digest}", reuse=not measured.endswith("-dirty"))
    rtl = generated(cfg, array=True)
    figs: dict = {}
    for batch, steps in ((64, 4),):
        rec = cache.get(str(batch))
        if rec is None:
            env = {"FIXAR_STEPS": str(steps), "FIXAR_BFP": "1", "FIXAR_NETS": json.dumps([17, 6, [400, 300], batch])}
            res = run_module("verilator", cfg, rtl, "fixar_trainer", "fixar.tb.test_engine", env=env)
            if not res.passed:
                raise RuntimeError(f"BFP training-engine bench failed at B = {batch}; see {res.results_xml}")
            (rec,) = [r for r in res.figures() if r["test"] == "training_steps"]
            cache.put(str(batch), rec)
        for step in rec["bfp_steps"]:
            (m,) = {w for ws in step["widths"] for w in ws}         # every layer at one width
            figs[f"bfp_train_step_cycles_b{batch}_m{m}"] = step["cycles"]
        cycles = rec["bfp_steps"][0]["cycles"]
        figs[f"bfp_act_cycles_b{batch}"] = rec["act_cycles"]
        figs[f"bfp_ips_b{batch}"] = round(batch * clock_hz / (cycles + rec["act_cycles"]))
        fxp = compile_ddpg(base, 17, 6, (400, 300), batch)
        fxp_env = step_cycles(base, fxp, batch) + step_cycles(base, fxp, batch, acting=True)
        figs[f"bfp_speedup_vs_fxp32_b{batch}"] = round(fxp_env / (cycles + rec["act_cycles"]), 4)
        print(f"  B = {batch}: BFP steps {[s['cycles'] for s in rec['bfp_steps']]} cycles "
              f"(widths {[s['widths'][0][0] for s in rec['bfp_steps']]}), {figs[f'bfp_ips_b{batch}']} environment "
              f"steps/s at 164 MHz, {figs[f'bfp_speedup_vs_fxp32_b{batch}']} x FXP32 (bit-exact)", flush=True)
    return figs


def trainer_sim_bfp512(cache_dir: Path | None = None, jobs: int | None = None) -> dict:
    """Config bfp on the 2 x 16 x 16 engine at B = 512: one training step of
    HalfCheetah's 400-300 DDPG with every layer fixed at each mantissa width
    (no schedule, so the program keeps no inputs for a check and fits the
    activation memory), bit-exact against the golden program in RTL:
    bfp_train_step_cycles_b512_m{2,4,6,8}. bfp_ips_b512 and
    bfp_speedup_vs_fxp32_b512 at the slowest width's step (acting pass
    included, 164 MHz): any mix of widths over a run is at least as fast.
    A scheduled run's check steps at B = 512 still do not fit (docs/bfp.md).
    The widths run ``jobs`` at a time (default: one per core; a width took
    about 50 minutes here with two running), each in a build folder of its
    own (run_in_slots)."""
    from fixar.compiler.program import compile_ddpg, step_cycles
    from fixar.config import load
    from fixar.figures.summary import ROOT, commit

    cfg, batch = load("bfp"), 512
    clock_hz = _fixars_clock(cfg)
    measured = commit()
    cache = PartCache((cache_dir or ROOT / "bench" / "results") / "trainer_bfp512_records.json",
                      f"{measured} {cfg.digest}", reuse=not measured.endswith("-dirty"))
    pending = {str(m): {"FIXAR_STEPS": "1", "FIXAR_BFP": "1", "FIXAR_BFP_FIXED": str(m),
                        "FIXAR_NETS": json.dumps([17, 6, [400, 300], batch])}
               for m in cfg.bfp.widths if cache.get(str(m)) is None}
    if pending:
        print(f"  B = {batch}: one step in RTL with every layer at each of {list(pending)} bits, "
              f"{min(jobs or os.cpu_count() or 1, len(pending))} at a time ...", flush=True)
    failed = []
    for m, res in run_in_slots("verilator", cfg, generated(cfg, array=True), "fixar_trainer",
                               "fixar.tb.test_engine", pending, jobs=jobs):
        if not res.passed:     # the other widths still finish and are kept
            failed.append(f"m = {m}: see {res.results_xml}")
            continue
        (rec,) = [r for r in res.figures() if r["test"] == "training_steps"]
        print(f"  B = {batch}, every layer at {m} bits: {rec['bfp_steps'][0]['cycles']} cycles, bit-exact",
              flush=True)
        cache.put(m, rec)
    if failed:
        raise RuntimeError(f"BFP training-engine bench failed at B = {batch}: {'; '.join(failed)}")
    steps = {m: cache.get(str(m)) for m in cfg.bfp.widths}
    figs: dict = {f"bfp_train_step_cycles_b{batch}_m{m}": rec["bfp_steps"][0]["cycles"] for m, rec in steps.items()}
    slowest = max(steps.values(), key=lambda r: r["bfp_steps"][0]["cycles"] + r["act_cycles"])
    env_cycles = slowest["bfp_steps"][0]["cycles"] + slowest["act_cycles"]
    figs[f"bfp_act_cycles_b{batch}"] = slowest["act_cycles"]
    figs[f"bfp_ips_b{batch}"] = round(batch * clock_hz / env_cycles)
    fxp = compile_ddpg(cfg, 17, 6, (400, 300), batch)
    fxp_env = step_cycles(cfg, fxp, batch) + step_cycles(cfg, fxp, batch, acting=True)
    figs[f"bfp_speedup_vs_fxp32_b{batch}"] = round(fxp_env / env_cycles, 4)
    print(f"  B = {batch}: BFP steps {[figs[f'bfp_train_step_cycles_b{batch}_m{m}'] for m in cfg.bfp.widths]} "
          f"cycles at {list(cfg.bfp.widths)} bits, {figs[f'bfp_ips_b{batch}']} environment steps/s at 164 MHz, "
          f"{figs[f'bfp_speedup_vs_fxp32_b{batch}']} x FXP32 (bit-exact)", flush=True)
    return figs


def _fixars_clock(cfg: FixarConfig) -> float:
    clock_hz = timing(cfg).clock_hz
    if clock_hz != 164e6:
        raise ValueError(f"the accel_ips_* figures are at FIXAR's 164 MHz; {cfg.name} targets {clock_hz / 1e6:g} MHz")
    return clock_hz


def _records(cfg: FixarConfig, batches, cache_name: str, cache_dir: Path | None) -> tuple[dict, float]:
    """Each batch size's bench record, from the cache (this commit and
    config) or a run, and the engine's cold build time."""
    from fixar.figures.summary import ROOT, commit

    measured = commit()
    cache = PartCache((cache_dir or ROOT / "bench" / "results") / cache_name, f"{measured} {cfg.digest}",
                      reuse=not measured.endswith("-dirty"))
    rtl = generated(cfg, array=True)
    records = {}
    for batch in batches:
        rec = cache.get(str(batch))
        if rec is None:
            rec = _bench_step(cfg, rtl, batch, cache)
        else:
            print(f"  B = {batch}: kept from an earlier run at this commit ({cache.path.name})", flush=True)
        records[batch] = rec
    return records, cache.get("build_s")


def _bench_step(cfg: FixarConfig, rtl: Path, batch: int, cache: PartCache) -> dict:
    """One phase-1 step, the switch and one phase-2 step at ``batch`` on the
    generated engine in ``rtl`` (cold-built the first time, for its build time)."""
    env = {"FIXAR_STEPS": "2", "FIXAR_QAT_SWITCH": "1", "FIXAR_NETS": json.dumps([17, 6, [400, 300], batch])}
    built = BUILD_ROOT / "verilator" / f"fixar_trainer-{cfg.digest}-cold"
    if cache.get("build_s") is None or not built.exists():
        res = run_cold(cfg, rtl, "fixar_trainer", "fixar.tb.test_engine", env=env)
        cache.put("build_s", res.build_s)
    else:   # same design: reuse the build
        res = run_module("verilator", cfg, rtl, "fixar_trainer", "fixar.tb.test_engine",
                         tag=f"{cfg.digest}-cold", env=env)
    if not res.passed:
        raise RuntimeError(f"training-engine bench failed at B = {batch}; see {res.results_xml}")
    (rec,) = [r for r in res.figures() if r["test"] == "training_steps"]
    cache.put(str(batch), rec)
    return rec


def engine_bench(cfg: FixarConfig, nets: list, steps: int, qat_switch: int):
    """The training-engine bench on ``cfg``'s generated engine: ``steps``
    DDPG steps of ``nets`` ([obs, act, [h1, h2], batch]) with the QAT switch
    at ``qat_switch``, every step bit- and cycle-exact against the golden
    model (the bench asserts both). (the run, its training_steps record or None)."""
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", "fixar.tb.test_engine",
                     env={"FIXAR_STEPS": str(steps), "FIXAR_QAT_SWITCH": str(qat_switch),
                          "FIXAR_NETS": json.dumps(nets)})
    recs = [r for r in res.figures() if r["test"] == "training_steps"]
    return res, recs[0] if recs else None


def identical_steps(steps: int = 50) -> dict:
    """Consecutive full QAT steps, the switch half way (8-32-32-2 networks,
    B = 16, small config), whose every weight, bias, target, moment, range
    and action matched the golden model."""
    from fixar.config import load

    _, rec = engine_bench(load("small"), [8, 2, [32, 32], 16], steps, steps // 2)
    return {"rtl_golden_identical_steps": rec["identical_steps"] if rec else 0,
            "train_step_cycles_small_8x32x32x2_b16": rec["cycles_per_step"] if rec else None}
