"""make bench's explore-verify part, the parts that need no simulator or
Yosys: which design it builds, and the error for a design the table lacks."""
from __future__ import annotations

import pytest

from fixar.compiler.program import compile_ddpg, step_cycles
from fixar.figures.explore_verify import NETS, design_config


def test_the_found_design_becomes_its_own_config():
    cfg, values = design_config()
    assert (cfg.array.cores, cfg.array.rows, cfg.array.cols) == (values["cores"], values["rows"], values["rows"])
    assert cfg.memory.weight_words == values["weight_rows"] * values["rows"]
    obs, act, hidden, batch = NETS
    assert step_cycles(cfg, compile_ddpg(cfg, obs, act, hidden, batch), batch) > 0    # the workload fits it


def test_a_design_the_table_lacks_is_named():
    with pytest.raises(KeyError, match="no 'nosuch_design'.*python -m fixar.explore"):
        design_config("nosuch_design")
