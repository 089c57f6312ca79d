"""The Yosys script of every resource figure (make bench's synthesis and the
design-space search's fits, which must count alike): synth_xilinx for
UltraScale+ with ABC9's LUT mapping replaced by classic abc (the yowasp
build ends silently inside ABC9). ``{src}``: the Verilog files, ``{top}``:
the module, ``{stat}``: where `stat -json` writes its counts."""
from __future__ import annotations

SYNTH_SCRIPT = """\
read_verilog {src}
synth_xilinx -family xcup -noiopad -uram -flatten -top {top} -run :map_luts
opt_expr -mux_undef -noclkinv
abc -luts 2:2,3,6:5,10,20
clean
xilinx_srl -fixed -minlen 3
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
xilinx_dffopt
opt_lut_ins -tech xilinx
synth_xilinx -family xcup -noiopad -top {top} -run finalize:
tee -q -o {stat} stat -json
"""
