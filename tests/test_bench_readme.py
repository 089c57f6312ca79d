"""The README's generated tables: figures come from summary.json only."""
from __future__ import annotations

from fixar.bench.__main__ import resource_rows
from fixar.bench.synth import U50_CAPACITY


def test_resource_table_is_rendered_from_the_summary():
    summary = {"kernel_lut": 123_456, "kernel_ff": 7_890, "kernel_dsp48e2": 1_111, "kernel_bram": 600.5,
               "kernel_uram": 494, "kernel_synth_s": 42, "bench_commit_synth_kernel": "abc1234"}
    for k, cap in U50_CAPACITY.items():
        summary[f"kernel_{k}_u50_fraction"] = round(summary[f"kernel_{k}"] / cap, 4)
    text = "\n".join(resource_rows(summary))
    assert "| LUT | 123,456 | 14.2 % | 872,000 | 508,100 |" in text
    assert "| URAM288 | 494 | 77.2 % | 640 | 128 |" in text
    assert "| BRAM36 | 600.5 |" in text and "abc1234" in text and "42 s" in text


def test_resource_table_says_when_not_measured():
    assert "Not measured yet" in resource_rows({"kernel_ff": 1})[0]
