"""The U50 floorplan (gen/kernel/floorplan.py): per-SLR UltraRAM, block RAM
and DSP48E2 within each SLR's budget for the default config, a config too
large reported in one line naming the SLR and the resource, and the counted
memories, units and cell patterns equal to what the generated kernel
instantiates."""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import re

import pytest

from fixar.config import ConfigError, load
from fixar.gen.kernel import floorplan as fp

U50_KEYS = {f"slr{s}_{k}" for s in range(2) for k in ("uram", "bram36", "dsp48e2")}


@pytest.fixture(scope="module")
def small_kernel():
    """The small config's kernel, generated (the folder tb/test_kernel.py
    simulates, emitted once): {module path: Verilog body}."""
    from fixar.sim.rtl import generated

    text = (generated(load("small"), kernel=True) / "fixar_kernel.v").read_text()
    modules = {}
    for m in re.finditer(r"^module \\?(fixar_kernel\S*) \((.*?)^endmodule", text, re.M | re.S):
        modules["/".join(m.group(1).split(".")[1:])] = m.group(2)
    return modules


def instantiated_memories(modules: dict) -> dict:
    """path -> (width, depth, kind) of every RAM instance and Amaranth memory."""
    found = {}
    ram = re.compile(r"^\s*(fixar_u?ram)(?:_tdp)? #\(\s*\.ABITS\(32'd\d+\),\s*\.DEPTH\(32'd(\d+)\),\s*"
                     r"\.WIDTH\(32'd(\d+)\)\s*\)\s*(\w+) \(", re.M)
    mem = re.compile(r"^\s*reg \[(\d+):0\] \\?(\w+)\s*\[(\d+):0\];", re.M)
    for path, body in modules.items():
        prefix = f"{path}/" if path else ""
        for kind, depth, width, name in ram.findall(body):
            found[prefix + name] = (int(width), int(depth), fp.ULTRA if kind == "fixar_uram" else fp.BLOCK_TDP)
        for hi, name, last in mem.findall(body):
            found[prefix + name] = (int(hi) + 1, int(last) + 1, None)
    return found


def cells(modules: dict) -> set[str]:
    """Every hierarchical cell below the kernel's top: submodule instances and RAM instances."""
    return {p for p in modules if p} | {p for p, (_, _, kind) in instantiated_memories(modules).items() if kind}


def test_default_fits_each_slr_budget():
    cfg = load("default")
    res = fp.slr_resources(cfg)
    assert set(res) == U50_KEYS
    for key, value in res.items():
        assert 0 < value <= fp.SLR_BUDGET[key.split("_", 1)[1]], key
    p = fp.plan(cfg)
    assert p["slr"]["core_0"] == 0 and p["slr"]["core_1"] == 1 and p["slr"]["control"] == 0
    # every memory's UltraRAM and block RAM is in one SLR or the other
    mems = [fp.memory_cost(m) for m in fp.kernel_memories(cfg)]
    assert res["slr0_uram"] + res["slr1_uram"] == sum(c["uram"] for c in mems)
    assert res["slr0_bram36"] + res["slr1_bram36"] == sum(c["bram36"] for c in mems)
    # nothing with block RAM or UltraRAM is left outside the groups the hook places
    assert not any(p["groups"]["rest"][k] for k in ("uram", "bram36"))


def test_budget_is_the_dynamic_region_less_the_margin():
    assert fp.SLR_AVAILABLE == {"uram": 304, "bram36": 564, "dsp48e2": 2580}
    assert fp.SLR_BUDGET == {"uram": 273, "bram36": 507, "dsp48e2": 2322}


@pytest.mark.parametrize("field, factor, match", [
    # a core's activation memory alone beyond one SLR's UltraRAM
    ("act_words_per_core", 4, r"^SLR0: \d+ URAM needed \(core_0, control\), budget 273 "),
    # weights too large for the UltraRAM either SLR has left
    ("weight_words", 2, r"^weights fits in neither SLR: SLR0 would need \d+ URAM, budget 273; SLR1 would need"),
])
def test_a_config_too_large_is_one_line_naming_slr_and_resource(field, factor, match):
    cfg = load("default")
    grown = {field: factor * getattr(cfg.memory, field)}
    big = cfg.variant(name="big", memory=dataclasses.replace(cfg.memory, **grown))
    with pytest.raises(ConfigError, match=match) as err:
        fp.slr_resources(big)
    assert "\n" not in str(err.value)


def test_a_bigger_array_overflows_a_resource():
    cfg = load("default")
    big = cfg.variant(name="array32", array=dataclasses.replace(cfg.array, rows=32, cols=32))
    with pytest.raises(ConfigError, match=r"^SLR0: \d+(\.5)? (URAM|BRAM36|DSP48E2) needed \(core_0"):
        fp.slr_resources(big)


def test_three_cores_do_not_fit_two_slrs():
    small = load("small")
    three = small.variant(name="three", array=dataclasses.replace(small.array, cores=3))
    with pytest.raises(ConfigError, match="the U50 has 2 SLRs"):
        fp.plan(three)


def test_counted_memories_are_the_instantiated_ones(small_kernel):
    found = instantiated_memories(small_kernel)
    counted = {m.path: m for m in fp.kernel_memories(load("small"))}
    # the lookup tables read combinationally (LUT ROM) are the only memories not counted
    assert {p.rsplit("/", 1)[1] for p in set(found) - set(counted)} <= {"tanh_rom", "rsqrt_seeds"}
    assert set(counted) <= set(found)
    for path, m in counted.items():
        width, depth, kind = found[path]
        assert (m.width, m.depth) == (width, depth), path
        assert kind is None or kind == m.kind, path     # fixar_uram / fixar_ram as the generator chose
    assert {m.kind for m in counted.values()} >= {fp.ULTRA, fp.BLOCK_TDP, fp.BLOCK_SDP}


def test_dsp_units_are_the_instantiated_ones(small_kernel):
    cfg = load("small")
    R, C, N = cfg.array.rows, cfg.array.cols, cfg.array.cores
    assert len([p for p in small_kernel if re.fullmatch(r"engine/adam_\d+", p)]) == C
    assert len([p for p in small_kernel if p == "engine/vector"]) == 1
    for n in range(N):
        assert len([p for p in small_kernel if re.fullmatch(rf"engine/array/core_{n}/act_(lo|hi)_\d+", p)]) == 2 * C
        # R x C PEs, flattened into the core: two lane products each, each the weight's top bits
        # (the low ones multiply in LUTs: fixar.config.timing.exact_split) times the lane
        products = re.findall(r"= \$signed\(w_\d+_\d+(?:\[31:5\])?\) \* ", small_kernel[f"engine/array/core_{n}"])
        assert len(products) == 2 * R * C


def test_cell_patterns_match_the_generated_hierarchy(small_kernel):
    have = cells(small_kernel)
    for group in fp.groups(load("small")):
        for pattern in group.cells:
            assert any(fnmatch.fnmatchcase(c, pattern) for c in have if c.count("/") == pattern.count("/")), pattern
    # no cell is claimed by two groups
    for c in have:
        owners = [g.name for g in fp.groups(load("small")) if fp.in_group(c, g)]
        assert len(owners) <= 1, (c, owners)


def test_hook_adds_cells_to_the_platform_pblocks():
    tcl = fp.floorplan_tcl(load("small"), "fixar_kernel_1")
    assert "create_pblock" not in tcl and "resize_pblock" not in tcl
    assert "add_cells_to_pblock [get_pblocks $pblock] $cells -clear_locs" in tcl
    places = re.findall(r"^fixar_place \$fixar_cu (pblock_dynamic_SLR[01]) (\S+)$", tcl, re.M)
    assert ("pblock_dynamic_SLR0", "engine/array/core_0") in places
    assert ("pblock_dynamic_SLR1", "engine/array/core_1") in places
    assert len({pat for _, pat in places}) == len(places)
    assert "NAME =~ */fixar_kernel_1/inst" in tcl


def test_missing_measurements_are_named():
    with pytest.raises(ConfigError, match="pe_dsp48e2.*missing"):
        fp.measured_units({"act_dsp48e2": 1})


def test_dsp_model_adds_up_to_the_whole_kernel_measurement():
    """The per-unit DSP model against Yosys's whole default kernel (when make bench measured it)."""
    summary = json.loads(fp.SUMMARY.read_text()) if fp.SUMMARY.exists() else {}
    if "kernel_dsp48e2" not in summary:
        pytest.skip("kernel_dsp48e2 not measured (python -m fixar.figures synth-kernel)")
    res = fp.slr_resources(load("default"), summary)
    assert res["slr0_dsp48e2"] + res["slr1_dsp48e2"] == pytest.approx(summary["kernel_dsp48e2"], rel=0.01)
