"""python -m fixar.haq.verify_lanes on the lane array bench's config (two
lane columns, Verilator): policies' layers bit-exact, each policy's RTL cycles equal to
the latency the search is fed; a latency that is not the array's is caught;
a missing results file is one line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from fixar.haq import cost, verify_lanes
from fixar.haq.actor import PENDULUM
from fixar.haq.space import DIGITS, uniform
from fixar.tb.test_lane_array import bench_config

pytestmark = pytest.mark.sim

SMALL = bench_config()
POLICIES = {"digits": {"haq": ((2, 8), (6, 2), (4, 4)), "uniform8": uniform(DIGITS, 8)},
            "pendulum": {"haq": ((8, 2), (2, 8), (6, 6)), "uniform8": uniform(PENDULUM, 8)}}


def test_policies_run_on_the_lane_array_at_the_searchs_latency():
    v = verify_lanes.measure(SMALL, POLICIES, log=lambda *_: None)
    assert v["passed"] and v["layers"] == 12
    for task, workload in (("digits", DIGITS), ("pendulum", PENDULUM)):
        for name, policy in POLICIES[task].items():
            got = v["tasks"][task][name]
            assert got["cycles_rtl"] == cost.latency(SMALL, workload, policy) == sum(got["layer_cycles_rtl"])
    assert v["tasks"]["digits"]["uniform8"]["cycles_rtl"] > 2 * v["tasks"]["digits"]["haq"]["cycles_rtl"]


def test_a_latency_that_is_not_the_arrays_is_caught(monkeypatch):
    """Planted: the search's latency one cycle off the array's."""
    real = cost.latency
    monkeypatch.setattr(cost, "latency", lambda *a: real(*a) + 1)
    assert not verify_lanes.measure(SMALL, {"pendulum": POLICIES["pendulum"]}, log=lambda *_: None)["passed"]


def test_missing_results_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fixar.haq.verify_lanes", "--config", "small"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("haq verify_lanes:") and len(proc.stderr.strip().splitlines()) == 1
