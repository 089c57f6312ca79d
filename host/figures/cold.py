"""Run a bench on a cold Verilator build: a fresh folder and no ccache, so the
recorded build time is what a new design costs (`make test`'s incremental
builds are near-instant)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from fixar.config import FixarConfig
from fixar.sim.rtl import run_module
from fixar.sim.runner import BUILD_ROOT, SimResult


def run_cold(cfg: FixarConfig, rtl_dir: Path, module: str, test_module: str, **kwargs) -> SimResult:
    tag = f"{cfg.digest}-cold"
    shutil.rmtree(BUILD_ROOT / "verilator" / f"{module}-{tag}", ignore_errors=True)
    saved = os.environ.get("OBJCACHE")
    os.environ["OBJCACHE"] = ""
    try:
        return run_module("verilator", cfg, rtl_dir, module, test_module, tag=tag, **kwargs)
    finally:
        if saved is None:
            os.environ.pop("OBJCACHE")
        else:
            os.environ["OBJCACHE"] = saved
