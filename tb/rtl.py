"""Where a bench finds its RTL: the committed rtl/ for the default config,
freshly generated folders under sim_build/ for variants."""
from __future__ import annotations

from pathlib import Path

from fixar.config import FixarConfig
from fixar.tb.runner import BUILD_ROOT, RTL_DIR


def shipped_rtl() -> Path:
    return RTL_DIR


def generated(cfg: FixarConfig) -> Path:
    from fixar.gen.emit import emit  # the bench harness needs RTL; the golden model never imports gen

    out = BUILD_ROOT / "gen" / f"{cfg.name}-{cfg.digest}"
    emit(cfg, out)
    return out
