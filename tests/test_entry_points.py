"""Command-line entry points: clear failures, and the lint gate on rtl/."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)


def test_generator_rejects_unknown_config(tmp_path):
    res = run(sys.executable, "-m", "fixar.gen", "--config", "no_such_config", "--out", str(tmp_path))
    assert res.returncode == 2
    assert "neither a shipped config" in res.stderr
    assert not any(tmp_path.iterdir())


def test_generator_says_what_the_array_cannot_build(tmp_path):
    """Stochastic weight gradients would need random words the array draws for pe.out only."""
    from fixar.config import DEFAULT
    g = DEFAULT.adam.grad
    bad = tmp_path / "gradsr.toml"
    bad.write_text(f'name = "gradsr"\n[adam.grad]\nbits = {g.bits}\nfrac = {g.frac}\nrounding = "stochastic"\n')
    res = run(sys.executable, "-m", "fixar.gen", "--config", str(bad), "--array", "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    assert "adam.grad: weight gradients leave the array rounded 'stochastic'" in res.stderr


def test_generator_rejects_non_square_array(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[array]\nrows = 8\n')
    res = run(sys.executable, "-m", "fixar.gen", "--config", str(bad), "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    assert "array.rows (8) must equal array.cols (16)" in res.stderr


def test_generator_rejects_impossible_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[pe]\nacc_bits = 40\n')
    res = run(sys.executable, "-m", "fixar.gen", "--config", str(bad), "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    assert "pe.acc_bits: a 40-bit accumulator is narrower" in res.stderr


def test_bitstream_stops_at_once_naming_the_missing_tools():
    """Without Vivado and v++ on PATH: a clear message, before any setup or generation."""
    import os
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "vivado").exists() and not (Path(p) / "v++").exists())
    res = run("make", "--no-print-directory", "bitstream", env={**os.environ, "PATH": path})
    assert res.returncode != 0
    assert "missing: vivado v++" in res.stderr and "settings64.sh" in res.stderr
    assert "python" not in res.stdout   # nothing generated


@pytest.mark.sim
def test_rtl_is_lint_clean():
    """verilator --lint-only -Wall with only the waivers listed in the Makefile."""
    res = run("make", "--no-print-directory", "lint")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("--lint-only") == len(list((ROOT / "rtl").glob("*.v")))
