"""The U50 build's generated inputs agree with the generated kernel: kernel.xml
arguments with the register map, the AXI interfaces with the Verilog ports,
the packaging script with the interfaces, the registers and the kernel's
own files, the link config with the master and the platform's SLR
conventions (the floorplan itself: tests/test_floorplan.py)."""
from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fixar.config import KERNEL_BEAT_BITS, ConfigError, load
from fixar.gen.kernel.top import Kernel
from fixar.gen.kernel.vitis import CONTROL_REGISTERS, CU, KERNEL, write_build_inputs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("u50")
    write_build_inputs(load("small"), out, "xilinx_u50_gen3x16_xdma_5_202210_1")
    return out


def test_kernel_xml_matches_the_register_map_and_ports(build):
    root = ET.parse(build / "kernel.xml").getroot()
    kernel = root.find("kernel")
    assert kernel.get("name") == KERNEL and kernel.get("hwControlProtocol") == "ap_ctrl_hs"
    ports = {p.get("name"): p for p in kernel.find("ports")}
    assert set(ports) == {"s_axi_control", "m_axi_gmem"}
    assert int(ports["m_axi_gmem"].get("dataWidth")) == KERNEL_BEAT_BITS
    args = [(a.get("name"), int(a.get("offset"), 16), int(a.get("size"), 16)) for a in kernel.find("args")]
    assert args == [(n, off, size) for n, off, size, _ in Kernel.ARGS]
    assert all(off >= 0x10 and off % 4 == 0 for _, off, _ in args)     # after the ap_ctrl_hs block


def test_verilog_has_the_exact_vitis_port_names(build):
    manifest = json.loads((build / "rtl" / "manifest.json").read_text())
    ports = manifest["modules"][KERNEL]["ports"]
    for name in ("ap_clk", "ap_rst_n", "interrupt"):
        assert name in ports
    for ch in ("AW", "W", "B", "AR", "R"):
        assert f"s_axi_control_{ch}VALID" in ports and f"m_axi_gmem_{ch}VALID" in ports
    assert ports["m_axi_gmem_AWADDR"]["width"] == 64 and ports["m_axi_gmem_ARADDR"]["width"] == 64
    assert ports["m_axi_gmem_WDATA"]["width"] == KERNEL_BEAT_BITS
    text = (build / "rtl" / f"{KERNEL}.v").read_text()
    assert re.search(rf"module {KERNEL}\(", text)
    # every AXI interface of the Verilog is associated with ap_clk by the packaging script
    prefixes = {m.group(1) for m in re.finditer(r"\b((?:s_axi|m_axi)_[a-z0-9]+)_[A-Z]+\b", text)}
    tcl = (ROOT / "constraints" / "package_kernel.tcl").read_text()
    for prefix in prefixes:
        assert f"-busif {prefix} -clock ap_clk" in tcl, prefix
    assert "ipx::check_integrity -kernel" in tcl and "sdx_kernel true" in tcl
    assert "package_xo" in (ROOT / "constraints" / "gen_xo.tcl").read_text()


def test_link_config_follows_the_platform_conventions(build):
    cfg = (build / "link.cfg").read_text()
    assert f"sp={CU}.m_axi_gmem:HBM[0]" in cfg and f"nk={KERNEL}:1:{CU}" in cfg
    # the compute unit spans both SLRs: no slr= assignment (UG1393), a post-opt_design hook instead
    assert not re.search(r"^slr=", cfg, re.M)
    hook = build / "floorplan.tcl"
    assert f"prop=run.impl_1.STEPS.OPT_DESIGN.TCL.POST={hook.resolve()}" in cfg.splitlines()
    tcl = hook.read_text()
    assert "create_pblock" not in tcl and "-clear_locs" in tcl
    assert re.search(r"^fixar_place \$fixar_cu pblock_dynamic_SLR0 engine/array/core_0$", tcl, re.M)
    assert re.search(r"^fixar_place \$fixar_cu pblock_dynamic_SLR1 engine/array/core_1$", tcl, re.M)
    assert f"*/{CU}/inst" in tcl


def test_three_cores_stop_the_build(tmp_path):
    small = load("small")
    three = small.variant(name="three", array=dataclasses.replace(small.array, cores=3))
    with pytest.raises(ConfigError, match="the U50 has 2 SLRs"):
        write_build_inputs(three, tmp_path / "u50", "xilinx_u50_gen3x16_xdma_5_202210_1")
    assert not (tmp_path / "u50").exists()


def test_registers_are_declared_from_the_register_map(build):
    regs = (build / "registers.tcl").read_text()
    declared = re.findall(r"^fixar_register (\w+) (0x[0-9a-f]+) (\d+)(?: (\w+))?$", regs, re.M)
    want = [(name, off, 32, "") for name, off in CONTROL_REGISTERS]
    want += [(name, off, 8 * size, "m_axi_gmem" if kind == "buffer" else "") for name, off, size, kind in Kernel.ARGS]
    assert [(n, int(o, 16), int(b), busif) for n, o, b, busif in declared] == want
    assert f"set_property range 0x{1 << Kernel.CTRL_ADDR_BITS:x} $blk" in regs
    # every buffer argument is a 64-bit pointer into the master kernel.xml names
    assert all(kind != "buffer" or size == 8 for _, _, size, kind in Kernel.ARGS)


def test_packaging_script_follows_the_reference(build):
    tcl = (ROOT / "constraints" / "package_kernel.tcl").read_text()
    code = "\n".join(line for line in tcl.splitlines() if not line.lstrip().startswith("#"))
    # get-or-create: the memory map, the address block, each register and its ASSOCIATED_BUSIF
    for getter, adder in (("ipx::get_memory_maps s_axi_control", "ipx::add_memory_map s_axi_control"),
                          ("ipx::get_address_blocks reg0", "ipx::add_address_block reg0"),
                          ("ipx::get_registers $name", "ipx::add_register $name"),
                          ("ipx::get_register_parameters ASSOCIATED_BUSIF",
                           "ipx::add_register_parameter ASSOCIATED_BUSIF"),
                          ("ipx::get_bus_parameters FREQ_HZ", "ipx::add_bus_parameter FREQ_HZ")):
        assert getter in code and adder in code and code.index(getter) < code.index(adder), adder
    assert "source $build/registers.tcl" in code
    # only the kernel's files (sources.txt), never a glob of the rtl folder
    assert not re.search(r"\bglob\b", code) and "$build/sources.txt" in code
    facts = json.loads((build / "build.json").read_text())
    listed = (build / "sources.txt").read_text().split()
    assert listed == facts["sources"]
    texts = [(build / f).read_text() for f in listed]
    defined = {m for t in texts for m in re.findall(r"^module \\?(\S+?)\s*(?:#|\()", t, re.M)}
    used = {m for t in texts for m in re.findall(r"^\s*\\?(fixar_\S+?)\s+(?:#\(|\w+ \()", t, re.M)}
    assert KERNEL in defined and used <= defined, used - defined
    assert len(listed) < len(list((build / "rtl").glob("*.v")))       # the unit designs stay out
    # FREQ_HZ: the clock argument, overridable by v++, never a number in the script
    assert "set freq_hz [lindex $argv 2]" in code and "set_property value $freq_hz $freq" in code
    assert "value_resolve_type user" in code and not re.search(r"value \d{6,}", code)
    makefile = (ROOT / "Makefile").read_text()
    assert "-tclargs $(U50_BUILD) $(U50_PART) $(KERNEL_MHZ)000000" in makefile
