"""The Yosys resource flow runs and maps the PE onto DSP48E2 slices.

Resource *goals* (<= 4 DSP48E2, <= 400 LUT per PE) are figures in
`make bench`, not thresholds here; this test guards the flow itself (the
yowasp build once ended silently inside ABC9 and wrote no netlist).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from fixar.config import DEFAULT
from fixar.figures.synth import summarize, synth

RTL = Path(__file__).resolve().parent.parent / "rtl"

pytestmark = pytest.mark.synth


def test_pe_maps_multipliers_to_dsp_slices():
    s = summarize(synth(RTL / "fixar_pe.v", "fixar_pe"))
    assert s["dsp48e2"] > 0, f"no DSP48E2 inferred: {s}"
    # The two accumulators alone are 2 * acc_bits flip-flops.
    assert s["ff"] >= 2 * DEFAULT.pe.acc_bits, s
    assert s["lut"] > 0, s


def test_the_exact_split_halves_the_pes_dsps(tmp_path):
    """One DSP48E2 per lane with the weight's low bits in LUTs (the shipped
    PE), two per lane with the whole product left to the DSPs
    (pe.lut_product_bits = 0): synthesis, not the generator's word for it."""
    import dataclasses

    from amaranth.back import verilog

    from fixar.gen.units.pe import PE

    whole = dataclasses.replace(DEFAULT.pe, lut_product_bits=0)
    src = tmp_path / "fixar_pe.v"
    src.write_text(verilog.convert(PE(whole), name="fixar_pe", emit_src=False))
    split, full = (summarize(synth(p, "fixar_pe"))["dsp48e2"] for p in (RTL / "fixar_pe.v", src))
    assert (split, full) == (2, 4)


def test_ram_template_is_inferred_as_block_ram():
    """The hand-written RAM every array memory instantiates must become block
    RAM, not thousands of flip-flops (default parameters: 1024 x 32)."""
    s = summarize(synth(RTL / "fixar_ram.v", "fixar_ram"))
    assert s["bram36"] >= 1, s
    assert s["ff"] < 100, s


def test_uram_template_is_inferred_as_ultraram():
    """fixar_uram (the deep memories, memory.uram_min_rows) must become
    URAM288 and stay so: its ports are "no change", as UltraRAM's are."""
    s = summarize(synth(RTL / "fixar_ram.v", "fixar_uram"))
    assert s["uram"] >= 1 and s["bram36"] == 0, s
    assert s["ff"] < 100, s


@pytest.mark.parametrize("module, kind", [("fixar_ram_tdp", "bram36"), ("fixar_uram_tdp", "uram")])
def test_two_write_port_templates_map_to_the_same_rams(module, kind):
    """The templates with port A writing too (the feature-major and mask
    memories of a packed QAT store) must map to the same RAM cells as the
    one-write-port ones, not to flip-flops: Yosys maps UltraRAM's two write
    ports only in the order its library defines (docs/array.md)."""
    one = summarize(synth(RTL / "fixar_ram.v", module.removesuffix("_tdp")))
    two = summarize(synth(RTL / "fixar_ram.v", module))
    assert two[kind] == one[kind] >= 1 and two["ff"] < 100, (one, two)
