"""The package's layers, enforced on every import statement (lazy ones too).

Lowest first: config -> {golden, gen} (never each other) -> compiler ->
driver -> sim -> rl -> {figures, cli}; tb/ and tests/ on top. A module may
import its own layer and the layers below it. On top of that, only the
simulation layer and what stands on it may reach the generator: the
compiler, the driver and the RL loop run on the golden path, which must not
load Amaranth.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"fixar": ROOT / "host", "fixar.gen": ROOT / "gen", "fixar.tb": ROOT / "tb"}

# (package prefix, layer); the longest matching prefix wins
LAYERS = [("fixar.config", 0), ("fixar.golden", 1), ("fixar.gen", 1), ("fixar.compiler", 2),
          ("fixar.driver", 3), ("fixar.sim", 4), ("fixar.rl", 5), ("fixar.explore", 5), ("fixar.figures", 6),
          ("fixar.haq", 6),
          ("fixar.cli", 7), ("fixar.tb", 8), ("tests", 9)]
# imports forbidden although the layers allow them
FORBIDDEN = [("fixar.golden", "fixar.gen"), ("fixar.gen", "fixar.golden"),
             ("fixar.compiler", "fixar.gen"), ("fixar.driver", "fixar.gen"), ("fixar.rl", "fixar.gen")]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(name: str) -> tuple[str, int] | None:
    if name == "fixar":
        return ("fixar", 0)     # the empty root package
    found = [(p, n) for p, n in LAYERS if _within(name, p)]
    return max(found, key=lambda pn: len(pn[0])) if found else None


def modules() -> dict[str, Path]:
    """Every module of the package (and the tests) by dotted name."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if not any(_within(name, other) for other in FOLDERS if other != package and len(other) > len(package)):
                found[name] = path
    for path in (ROOT / "tests").glob("*.py"):
        found[f"tests.{path.stem}"] = path
    return found


def imported(source: str) -> list[tuple[int, str]]:
    """(line, module) of every fixar import in ``source``, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)]
    return [(line, name) for line, name in out if _within(name, "fixar")]


def violations(name: str, source: str) -> list[str]:
    me = layer_of(name)
    if me is None:
        return [f"{name}: in no layer (add it to tests/test_layers.py)"]
    found = []
    for line, target in imported(source):
        them = layer_of(target)
        if them is None:
            found.append(f"{name}:{line} imports {target}, which is in no layer")
        elif them[1] > me[1] or (them[1] == me[1] and them[0] != me[0]):
            found.append(f"{name}:{line} imports {target}: layer {them[0]} is not below {me[0]}")
        for low, high in FORBIDDEN:
            if _within(name, low) and _within(target, high):
                found.append(f"{name}:{line} imports {target}: {low} must never import {high}")
    return found


def test_every_import_respects_the_layers():
    found = [v for name, path in sorted(modules().items()) for v in violations(name, path.read_text())]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name, source, why", [
    ("fixar.golden.adam", "from fixar.gen.units.adam import AdamUnit", "must never import"),
    ("fixar.gen.units.pe", "def f():\n    import fixar.golden.pe", "must never import"),
    ("fixar.compiler.program", "from fixar.gen.units.array import Array", "must never import"),
    ("fixar.rl.loop", "from fixar.tb.golden_twin import GoldenTwin", "is not below"),
    ("fixar.config", "from fixar.golden.fixed import quantize", "is not below"),
    ("fixar.sim.runner", "from fixar.rl.hyper import Hyper", "is not below"),
])
def test_a_planted_violation_is_caught(name, source, why):
    found = violations(name, source)
    assert found and all(why in v or "is not below" in v for v in found), found
    assert any(why in v for v in found), found


TRAIN = """
from fixar.cli import main
rc = main(["train", "--backend", "golden", "--env", "Pendulum-v1", "--hidden", "16,16", "--steps", "300",
           "--warmup", "100", "--batch", "16", "--precision", "qat", "--qat-delay", "200", "--out", OUT])
"""
REPORT = """
import sys
print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] == "amaranth" or m.startswith("fixar.gen")))
sys.exit(rc)
"""


def _generator_modules_after(code: str, out: Path) -> str:
    res = subprocess.run([sys.executable, "-c", f"OUT = {str(out)!r}\n" + code + REPORT],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    (line,) = [x for x in res.stdout.splitlines() if x.startswith("LOADED")]
    return line


def test_the_golden_path_never_loads_the_generator(tmp_path):
    """A short golden QAT training run through `fixar train`'s entry point in
    a fresh interpreter: neither Amaranth nor fixar.gen is loaded at its end."""
    assert _generator_modules_after(TRAIN, tmp_path / "run") == "LOADED []"


def test_the_generator_check_sees_a_planted_import(tmp_path):
    """The same check with one import of the generator planted before the run."""
    loaded = _generator_modules_after("import fixar.gen.emit\n" + TRAIN, tmp_path / "run")
    assert "'fixar.gen.emit'" in loaded and "'amaranth'" in loaded
