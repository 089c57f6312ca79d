"""pytest hooks for the benches: show which simulators (and versions) run them."""
from __future__ import annotations

from fixar.sim.runner import ToolError, check_simulator


def pytest_report_header(config):
    lines = []
    for sim in ("verilator", "icarus"):
        try:
            lines.append(f"{sim}: {check_simulator(sim)}")
        except ToolError as exc:
            lines.append(f"{sim}: unavailable ({exc})")
    return lines
