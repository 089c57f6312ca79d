"""Where the kernel goes on the U50 (docs/board.md): its UltraRAM, block RAM
and DSP48E2 counted per SLR as Vivado maps them, each array core with its
own memories in its own SLR, the shared parts placed where they fit, and
the Vivado hook that puts the cells there (inside the platform's dynamic
region).

    python -m fixar.gen.kernel.floorplan --config default     # the table of docs/board.md

Capacity (per SLR, available to kernels, i.e. the dynamic region of the
xdma platforms): 304 UltraRAM, 564 RAMB36, 2 580 DSP48E2. Source: UG1120's
U50 table as quoted in Xilinx/finn src/finn/util/platforms.py
(Alveo_NxU50_Platform: "According to UG1120: U50 has identical resource
counts on both SLRs ... [365000, 2*365000, 2*564, 304, 2580]"; it also
records Vivado reporting 2 592 and 2 760 DSPs; the smaller figure is used).
The whole XCU50 has 640 / 1 344 / 5 952; the rest is the static shell.
Margin: 10 % of that, because UG1393 ("Determining Where to Place the
Kernels", 2022.2) says 10 % of the available resources can be used by
system infrastructure (the HBM interconnect and the SLR-crossing logic that
v++ adds inside the dynamic region). Budget = floor(0.9 x capacity).

Counting, a model of Vivado's mapping (not a Vivado run): UltraRAM as
ceil(width / 72) x ceil(rows / 4096) URAM288; block RAM as the cheapest
single RAMB36/RAMB18 aspect ratio for the width and depth (72 bits wide
only in simple dual port); DSP48E2 per unit from Yosys's figures of the
units (make bench), which add up to Yosys's whole-kernel figure.
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import math
import sys
from pathlib import Path

from fixar.config import ISA_FIELD_BITS, ISA_WORDS, KERNEL_BEAT_BITS, ConfigError, FixarConfig, load, weight_groups

U50_SLRS = 2
RESOURCES = ("uram", "bram36", "dsp48e2")
NAMES = {"uram": "URAM", "bram36": "BRAM36", "dsp48e2": "DSP48E2"}
SLR_AVAILABLE = {"uram": 304, "bram36": 564, "dsp48e2": 2580}
MARGIN = 0.10
SLR_BUDGET = {k: math.floor(v * (1 - MARGIN)) for k, v in SLR_AVAILABLE.items()}

# Memory kinds as Vivado maps them
ULTRA = "ultra"            # fixar_uram (ram_style "ultra")
BLOCK_TDP = "block_tdp"    # fixar_ram: port A reads, port B reads or writes: true dual port
BLOCK_SDP = "block_sdp"    # one write port and one registered read port: simple dual port (72-bit mode)
DISTRIBUTED = "lutram"     # read combinationally: LUT RAM, no block RAM

URAM_ROWS, URAM_BITS = 4096, 72     # URAM288: 4K x 72, fixed aspect ratio (UG573)
# RAMB36E2 / RAMB18E2 aspect ratios (width, depth) in true dual port; simple dual port adds the widest
BRAM36_TDP = ((1, 32768), (2, 16384), (4, 8192), (9, 4096), (18, 2048), (36, 1024))
BRAM18_TDP = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024))
SDP_WIDE = {1.0: (72, 512), 0.5: (36, 512)}

SUMMARY = Path(__file__).resolve().parents[2] / "bench" / "results" / "summary.json"
UNIT_KEYS = ("pe_dsp48e2", "act_dsp48e2", "adam_dsp48e2", "vector_dsp48e2", "array_dsp48e2")


@dataclasses.dataclass(frozen=True)
class Memory:
    path: str      # the instance, '/'-separated below the kernel's top, as Vivado names the cell
    width: int
    depth: int
    kind: str


@dataclasses.dataclass(frozen=True)
class Group:
    """Cells placed together: ``cells`` are get_cells patterns below the compute
    unit's instance (one hierarchy level per '/'); ``slr`` is fixed or None."""
    name: str
    cells: tuple[str, ...]
    slr: int | None


def uram288(width: int, depth: int) -> int:
    """URAM288 blocks: Vivado puts one word per 72-bit row (a 32-bit bank uses 32 of the 72 bits)."""
    return math.ceil(width / URAM_BITS) * math.ceil(depth / URAM_ROWS)


def bram36(width: int, depth: int, sdp: bool) -> float:
    """RAMB36 equivalents (a RAMB18 is half of one) for the cheapest single aspect ratio."""
    modes = [(w, d, 1.0) for w, d in BRAM36_TDP] + [(w, d, 0.5) for w, d in BRAM18_TDP]
    if sdp:
        modes += [(w, d, size) for size, (w, d) in SDP_WIDE.items()]
    return min(math.ceil(width / w) * math.ceil(depth / d) * size for w, d, size in modes)


def memory_cost(mem: Memory) -> dict:
    if mem.kind == ULTRA:
        return {"uram": uram288(mem.width, mem.depth), "bram36": 0.0}
    if mem.kind in (BLOCK_TDP, BLOCK_SDP):
        return {"uram": 0, "bram36": bram36(mem.width, mem.depth, mem.kind == BLOCK_SDP)}
    return {"uram": 0, "bram36": 0.0}


def _ram(cfg: FixarConfig, path: str, width: int, depth: int, rows_for_kind: int | None = None) -> Memory:
    # the generator's own choice (gen/lib/ram.py TwoPortRAM: MemoryConfig.ultra by row count; an
    # InterleavedRAM's halves by the whole memory's rows, ``rows_for_kind``)
    return Memory(path, width, depth, ULTRA if cfg.memory.ultra(rows_for_kind or depth) else BLOCK_TDP)


def kernel_memories(cfg: FixarConfig) -> list[Memory]:
    """Every memory of the kernel that Vivado can map to block RAM or UltraRAM,
    plus the program memory (LUT RAM). Row counts come from the generator's
    own objects; the widths that the generator writes inline in elaborate()
    are computed here from the config, and tests/test_floorplan.py checks
    this list against the instances of the generated Verilog. Left out: the
    activation units' tanh tables and the Adam lanes' seed tables (a few
    hundred words, read combinationally: LUT ROM)."""
    from fixar.gen.kernel.top import Kernel
    from fixar.gen.units.trainer import Trainer

    eng = Trainer(cfg)
    arr = eng.array
    for sized in (eng, arr):    # read for their row counts only, never elaborated: not "unused" designs
        sized._MustUse__used = True
    ar, pe, ad = cfg.array, cfg.pe, cfg.adam
    R, C, N = ar.rows, ar.cols, ar.cores
    a = "engine/array"
    mems = []
    for n in range(N):
        mems.append(_ram(cfg, f"{a}/amem_{n}", R * pe.act32.bits, arr.a_rows))
        mems.append(_ram(cfg, f"{a}/mmem_{n}", R, arr.a_rows))      # the ReLU mask bits, one per activation word
        mems += [_ram(cfg, f"{a}/tmem_{n}_b{b}", pe.act32.bits, arr.t_rows) for b in range(R)]
        # the partial sums: both lanes' wide sums of every column, written one stage after the read
        mems.append(Memory(f"{a}/core_{n}/psum", 2 * C * pe.acc_bits, ar.psum_slots, BLOCK_SDP))
    # each weight bank as two groups of rows (fixar.config.weight_groups), each two RAMs, its even
    # and its odd rows (gen/lib/ram.py InterleavedRAM)
    mems += [_ram(cfg, f"{a}/wmem_b{b}_p{q}_g{g}_{h}", pe.weight.bits, (rows + 1 - i) // 2, arr.w_rows)
             for b in range(C) for q in range((N + 1) // 2) for g, (_, rows) in enumerate(weight_groups(cfg))
             for i, h in enumerate("eo")]
    mems.append(_ram(cfg, f"{a}/bmem", C * pe.out.bits, arr.b_rows))
    mems += [_ram(cfg, f"{a}/gmem_b{b}", ad.grad.bits, arr.g_rows) for b in range(C)]
    mems.append(_ram(cfg, f"{a}/gbmem", C * ad.grad.bits, arr.b_rows))
    for name, bits, rows in (("adam_m", ad.m.bits, eng.g_rows), ("adam_v", ad.v.bits, eng.g_rows),
                             ("adam_bm", ad.m.bits, eng.b_rows), ("adam_bv", ad.v.bits, eng.b_rows)):
        mems.append(_ram(cfg, f"engine/{name}", C * bits, rows))
    mems.append(Memory("engine/program", ISA_WORDS * ISA_FIELD_BITS, cfg.memory.program_instrs, DISTRIBUTED))
    # the command DMA's FIFOs (Amaranth SyncFIFOBuffered keeps depth - 1 words in memory, one in a register)
    mems.append(Memory("cmd_fifo/storage", KERNEL_BEAT_BITS, 2 * Kernel.READ_BURST - 1, BLOCK_SDP))
    mems.append(Memory("out_fifo/storage", KERNEL_BEAT_BITS, 4 * Kernel.WRITE_BURST - 1, BLOCK_SDP))
    return mems


def groups(cfg: FixarConfig) -> list[Group]:
    """Core n with its activation and feature-major memories in SLR n (FIXAR:
    one core per SLR); the command DMA, the vector unit and the bias memory
    in SLR0 next to the HBM and the shell's control path; the weight memory,
    the gradient memory and the Adam lanes with their moments wherever they
    fit. The controller's flat logic (engine, array) is in no group: Vivado
    places it."""
    a = "engine/array"
    cores = [Group(f"core_{n}", (f"{a}/core_{n}", f"{a}/amem_{n}", f"{a}/mmem_{n}", f"{a}/tmem_{n}_b*"), n)
             for n in range(cfg.array.cores)]
    return cores + [
        Group("control", ("cmd_fifo", "out_fifo", "engine/vector", f"{a}/bmem"), 0),
        Group("weights", (f"{a}/wmem_b*",), None),
        Group("adam", ("engine/adam_*",), None),
        Group("gradients", (f"{a}/gmem_b*", f"{a}/gbmem"), None),
    ]


def in_group(path: str, group: Group) -> bool:
    """A path lies in a group when one of its patterns matches the path or one of its ancestors."""
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:k]), pat)
               for pat in group.cells for k in range(1, len(parts) + 1)
               if pat.count("/") == k - 1)


def measured_units(summary: dict | None = None) -> dict:
    """DSP48E2 per unit, Yosys-measured by `make bench` (parts synth and
    synth-array) in bench/results/summary.json: the PE, the activation unit,
    an Adam lane, the vector unit, and the rest of a core (output rounding,
    QAT quantizer, address arithmetic) per PE column, from the one-core
    16 x 16 array of the default config less its PEs and activation units."""
    if summary is None:
        summary = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {}
    missing = [k for k in UNIT_KEYS if k not in summary]
    if missing:
        raise ConfigError(f"floorplan: {', '.join(missing)} missing from {SUMMARY.name}: "
                          "run `python -m fixar.figures synth` and `... synth-array`")
    ref = load("default").array
    rest = summary["array_dsp48e2"] - ref.rows * ref.cols * summary["pe_dsp48e2"] \
        - 2 * ref.cols * summary["act_dsp48e2"]
    return {"pe": summary["pe_dsp48e2"], "act": summary["act_dsp48e2"], "adam": summary["adam_dsp48e2"],
            "vector": summary["vector_dsp48e2"], "core_rest_per_column": rest / ref.cols}


def group_dsp(cfg: FixarConfig, name: str, units: dict) -> int:
    """DSP48E2 of a group: R x C PEs and 2C activation units (one per lane and
    column) a core, C Adam lanes, one vector unit; the memories have none."""
    R, C = cfg.array.rows, cfg.array.cols
    if name.startswith("core_"):
        return R * C * units["pe"] + 2 * C * units["act"] + math.ceil(C * units["core_rest_per_column"])
    return {"adam": C * units["adam"], "control": units["vector"]}.get(name, 0)


def group_resources(cfg: FixarConfig, units: dict) -> dict[str, dict]:
    """Resources of each group; memories in no group count in 'rest' (SLR0: what Vivado
    places freely lands next to the AXI master and the HBM)."""
    gs = groups(cfg)
    out = {g.name: {"uram": 0, "bram36": 0.0, "dsp48e2": group_dsp(cfg, g.name, units)} for g in gs}
    out["rest"] = {"uram": 0, "bram36": 0.0, "dsp48e2": 0}
    for mem in kernel_memories(cfg):
        owners = [g.name for g in gs if in_group(mem.path, g)] or ["rest"]
        if len(owners) > 1:
            raise AssertionError(f"{mem.path} is in groups {owners}")
        for k, v in memory_cost(mem).items():
            out[owners[0]][k] += v
    return out


def _over(total: dict) -> str | None:
    """The first resource over budget, or None."""
    return next((k for k in RESOURCES if total[k] > SLR_BUDGET[k]), None)


def _why(k: str) -> str:
    return f"{SLR_AVAILABLE[k]} per SLR in the U50's dynamic region less {MARGIN:.0%}"


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _add(total: dict, more: dict) -> dict:
    return {k: total[k] + more[k] for k in RESOURCES}


def _place_fixed(res: dict, fixed: dict) -> list[dict]:
    """Per-SLR totals of the parts with a fixed SLR; ConfigError when one overflows."""
    total = [{"uram": 0, "bram36": 0.0, "dsp48e2": 0} for _ in range(U50_SLRS)]
    for name, slr in fixed.items():
        total[slr] = _add(total[slr], res[name])
    for slr in range(U50_SLRS):
        k = _over(total[slr])
        if k:
            who = ", ".join(n for n, s in fixed.items() if s == slr and any(res[n].values()))
            raise ConfigError(f"SLR{slr}: {_fmt(total[slr][k])} {NAMES[k]} needed ({who}), "
                              f"budget {SLR_BUDGET[k]} ({_why(k)})")
    return total


def _place_floating(res: dict, names: list[str], total: list[dict], where: dict) -> None:
    """The shared parts, the most UltraRAM first, each in SLR0 if it fits, else SLR1."""
    for name in sorted(names, key=lambda n: (-res[n]["uram"], names.index(n))):
        slr = next((s for s in range(U50_SLRS) if _over(_add(total[s], res[name])) is None), None)
        if slr is None:
            trial = [_add(total[s], res[name]) for s in range(U50_SLRS)]
            over = [(s, _over(trial[s])) for s in range(U50_SLRS)]
            raise ConfigError(f"{name} fits in neither SLR: " + "; ".join(
                f"SLR{s} would need {_fmt(trial[s][k])} {NAMES[k]}, budget {SLR_BUDGET[k]}" for s, k in over)
                + f" ({_why(over[0][1])})")
        where[name] = slr
        total[slr] = _add(total[slr], res[name])


def plan(cfg: FixarConfig, summary: dict | None = None) -> dict:
    """The floorplan: {"slr": {part: SLR}, "total": [resources per SLR], "groups": {part: resources}}.
    Raises ConfigError (one line, naming the SLR and the resource) when a
    fixed part overflows its SLR or a shared part fits in neither."""
    if cfg.array.cores > U50_SLRS:
        raise ConfigError(f"array.cores = {cfg.array.cores}: the U50 has {U50_SLRS} SLRs and each core takes one")
    res = group_resources(cfg, measured_units(summary))
    where = {g.name: g.slr for g in groups(cfg) if g.slr is not None} | {"rest": 0}
    total = _place_fixed(res, dict(where))
    _place_floating(res, [g.name for g in groups(cfg) if g.slr is None], total, where)
    return {"slr": where, "total": total, "groups": res}


def slr_resources(cfg: FixarConfig, summary: dict | None = None) -> dict:
    """Per-SLR resources of the floorplan, for summary.json (make bench):
    slr0_uram, slr1_uram, slr0_bram36, slr1_bram36, slr0_dsp48e2, slr1_dsp48e2."""
    total = plan(cfg, summary)["total"]
    return {f"slr{s}_{k}": total[s][k] for k in RESOURCES for s in range(U50_SLRS)}


def floorplan_tcl(cfg: FixarConfig, cu: str, summary: dict | None = None) -> str:
    """The OPT_DESIGN.TCL.POST hook (link.cfg): the kernel's cells into the
    platform's pblock_dynamic_SLR0/1. The U50 xdma platforms are DFX: kernels
    live in the dynamic region's pblocks, so the hook adds cells to those
    with -clear_locs rather than creating pblocks of its own, as
    Xilinx/Vitis_Libraries database/L2/tests/gqeJoin/post_opt_u50.tcl does
    (add_cells_to_pblock pblock_dynamic_SLR1 [get_cells
    level0_i/ulp/gqeJoin_1/inst/...] -clear_locs, hooked by
    prop=run.impl_1.STEPS.OPT_DESIGN.TCL.POST in opts_u55c.cfg). Every
    pattern must match: a renamed hierarchy stops the run instead of
    leaving the cells unplaced."""
    p = plan(cfg, summary)
    lines = [f"# generated by fixar.gen.kernel.floorplan from config {cfg.name} ({cfg.digest}); do not edit",
             "proc fixar_place {cu pblock pattern} {",
             "    set cells [get_cells -quiet $cu/$pattern]",
             '    if {[llength $cells] == 0} { error "fixar floorplan: no cell $cu/$pattern" }',
             "    add_cells_to_pblock [get_pblocks $pblock] $cells -clear_locs",
             "}",
             "# the compute unit (level0_i/ulp/<cu>/inst on the U50 xdma platforms)",
             f"set fixar_cu [get_cells -hierarchical -filter {{NAME =~ */{cu}/inst}}]",
             "if {[llength $fixar_cu] != 1} {",
             f'    error "fixar floorplan: [llength $fixar_cu] cells match */{cu}/inst"',
             "}"]
    for g in groups(cfg):
        slr = p["slr"][g.name]
        r = p["groups"][g.name]
        lines.append(f"# {g.name}: SLR{slr} ({r['uram']} URAM, {_fmt(r['bram36'])} BRAM36, {r['dsp48e2']} DSP48E2)")
        lines += [f"fixar_place $fixar_cu pblock_dynamic_SLR{slr} {pat}" for pat in g.cells]
    return "\n".join(lines) + "\n"


def table(cfg: FixarConfig, summary: dict | None = None) -> str:
    """The floorplan as a markdown table (docs/board.md)."""
    p = plan(cfg, summary)
    rows = ["| part | SLR | URAM | BRAM36 | DSP48E2 |", "|---|---|---|---|---|"]
    for name, slr in p["slr"].items():
        r = p["groups"][name]
        if name == "rest" and not any(r.values()):
            continue
        rows.append(f"| {name} | {slr} | {r['uram']} | {_fmt(r['bram36'])} | {r['dsp48e2']} |")
    for s, t in enumerate(p["total"]):
        rows.append(f"| **SLR{s} total** (budget {SLR_BUDGET['uram']} / {SLR_BUDGET['bram36']} / "
                    f"{SLR_BUDGET['dsp48e2']}) | {s} | {t['uram']} | {_fmt(t['bram36'])} | {t['dsp48e2']} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fixar.gen.kernel.floorplan", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default")
    args = ap.parse_args(argv)
    try:
        cfg = load(args.config)
        print(f"config {cfg.name} ({cfg.digest})\n")
        print(table(cfg))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
