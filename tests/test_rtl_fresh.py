"""The committed rtl/ must be exactly what the generator makes from the default config."""
from __future__ import annotations

from pathlib import Path

from fixar.config import DEFAULT
from fixar.gen.emit import emit

RTL = Path(__file__).resolve().parent.parent / "rtl"


def test_rtl_is_fresh(tmp_path):
    emit(DEFAULT, tmp_path)
    fresh = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in RTL.iterdir() if p.name != "README.md")   # the folder's own note
    assert fresh == committed, "rtl/ holds other files than the generator makes"
    for name in fresh:
        assert (RTL / name).read_text() == (tmp_path / name).read_text(), (
            f"rtl/{name} is stale: run `make verilog` and commit the result")
