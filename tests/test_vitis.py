"""The U50 build's generated inputs agree with the generated kernel: kernel.xml
arguments with the register map, the AXI interfaces with the Verilog ports,
the packaging script with the interfaces, the link config with the master."""
from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fixar.config import KERNEL_BEAT_BITS, ConfigError, load
from fixar.gen.kernel.top import Kernel
from fixar.gen.kernel.vitis import KERNEL, pblocks_xdc, write_build_inputs

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


def test_link_config_and_pblocks(build):
    cfg = (build / "link.cfg").read_text()
    assert f"sp={KERNEL}_1.m_axi_gmem:HBM[0]" in cfg and f"nk={KERNEL}:1" in cfg
    assert str((build / "pblocks.xdc").resolve()) in cfg
    xdc = (build / "pblocks.xdc").read_text()
    assert "SLR0" in xdc and "SLR1" in xdc and "core_0" in xdc and "core_1" in xdc
    small = load("small")
    three = small.variant(name="three", array=dataclasses.replace(small.array, cores=3))
    with pytest.raises(ConfigError, match="the U50 has 2 SLRs"):
        pblocks_xdc(three)
