"""Where a bench finds its RTL (the committed rtl/ for the default config,
freshly generated folders under sim_build/ for variants) and how it runs on it."""
from __future__ import annotations

import json
from pathlib import Path

from fixar.config import FixarConfig
from fixar.sim.runner import BUILD_ROOT, RTL_DIR, SimResult, folder_lock, run_bench


def shipped_rtl() -> Path:
    return RTL_DIR


def generated(cfg: FixarConfig, array: bool = False, kernel: bool = False) -> Path:
    from fixar.gen.emit import emit  # the bench harness needs RTL; the golden model never imports gen

    suffix = "-kernel" if kernel else "-array" if array else ""
    out = BUILD_ROOT / "gen" / f"{cfg.name}-{cfg.digest}{suffix}"
    with folder_lock(out):      # another test worker may be generating the same folder
        emit(cfg, out, array=array or kernel, kernel=kernel)
    return out


def run_module(sim: str, cfg: FixarConfig, rtl_dir: Path, module: str, test_module: str,
               *, tag: str | None = None, env: dict[str, str] | None = None, **kwargs) -> SimResult:
    """Run ``test_module`` against ``module`` of a generated folder, checking
    that the folder was generated from ``cfg`` and passing on its latency."""
    manifest = json.loads((rtl_dir / "manifest.json").read_text())
    if manifest["config_digest"] != cfg.digest:
        raise RuntimeError(f"{rtl_dir} was generated from config {manifest['config_name']} "
                           f"({manifest['config_digest']}), not {cfg.name} ({cfg.digest}): run `make verilog`")
    mod = manifest["modules"][module]
    sources = [rtl_dir / mod["file"]] + [rtl_dir / f for f in mod.get("sources", [])]
    return run_bench(sim=sim, top=module, sources=sources, test_module=test_module,
                     cfg=cfg, tag=tag or cfg.digest,
                     env={"FIXAR_LATENCY": str(mod["latency"]), **(env or {})}, **kwargs)


def run_mutated(cfg: FixarConfig, module: str, test_module: str, old: str, new: str,
                src_dir: Path = RTL_DIR, **kwargs) -> SimResult:
    """Run a bench on a copy of ``module`` (from rtl/ or another generated
    folder) with the first ``old`` replaced by ``new``: a planted bug the
    bench is expected to catch."""
    src = (src_dir / f"{module}.v").read_text()
    if old not in src:
        raise AssertionError(f"{old!r} not found in rtl/{module}.v: the planted bug needs updating")
    bug_dir = BUILD_ROOT / "planted_bug" / module
    with folder_lock(bug_dir):      # the copy is this module's only planted-bug folder: one writer at a time
        bug_dir.mkdir(parents=True, exist_ok=True)
        (bug_dir / "manifest.json").write_text((src_dir / "manifest.json").read_text())
        (bug_dir / f"{module}.v").write_text(src.replace(old, new, 1))
        for extra in json.loads((src_dir / "manifest.json").read_text())["modules"][module].get("sources", []):
            (bug_dir / extra).write_text((src_dir / extra).read_text())
        return run_module("verilator", cfg, bug_dir, module, test_module, tag=f"{cfg.digest}-planted-bug",
                          **kwargs)
