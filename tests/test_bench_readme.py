"""The README's generated tables: figures come from summary.json only."""
from __future__ import annotations

from fixar.figures.summary import resource_rows
from fixar.figures.synth import U50_CAPACITY


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


def test_study_figures_come_from_each_studys_table(tmp_path):
    import json

    from fixar.figures.summary import study_figures
    cell = {"final_mean": 12.5, "final": [10.0, 15.0], "second_half_mean": 11.0}
    (tmp_path / "docs" / "study" / "40k").mkdir(parents=True)
    (tmp_path / "docs" / "study" / "results.json").write_text(json.dumps(
        {"steps": 20000, "table": {"Hopper-v5": {"qat": cell}}}))
    figs = study_figures(tmp_path)
    assert figs == {"study_hopper_qat_final_return": 12.5, "study_hopper_qat_final_return_worst_seed": 10.0,
                    "study_hopper_qat_second_half_return": 11.0, "study_steps": 20000}
    (tmp_path / "docs" / "study" / "40k" / "results.json").write_text(json.dumps(
        {"steps": 40000, "table": {"HalfCheetah-v5": {"fxp32": {"final_mean": 5.0, "final": [4.0, 6.0]}}}}))
    figs = study_figures(tmp_path)
    assert figs["study40k_halfcheetah_fxp32_final_return_worst_seed"] == 4.0 and figs["study40k_steps"] == 40000
    assert "study40k_halfcheetah_fxp32_second_half_return" not in figs


def test_hbm_time_is_bounded_by_one_beat_per_kernel_cycle():
    """The kernel's one AXI master moves at most one beat per clock, so a
    step's HBM time is at least its beats times the clock period, whatever
    the pseudo-channel could take."""
    from fixar.config import load
    from fixar.config.timing import timing
    from fixar.driver.kernel_io import BEAT_BYTES
    from fixar.figures.kernel_bytes import kernel_bytes

    cfg = load("default")
    figs = kernel_bytes(cfg)
    for batch in (64, 512):
        beats = figs[f"kernel_bytes_per_step_b{batch}"] / BEAT_BYTES
        floor_us = beats / timing(cfg).clock_hz * 1e6
        assert figs[f"kernel_hbm_us_per_step_b{batch}"] >= round(floor_us, 2), batch


def test_step_breakdown_accounts_for_every_cycle():
    """The instruction kinds' cycles add up to the step (all but the HALT's
    fetch and decode), and the step's utilization is below one MAC per PE
    per cycle."""
    from fixar.config import load
    from fixar.figures.schedule import step_breakdown

    cfg = load("small")
    for batch in (16, 32):
        cycles, kinds, macs = step_breakdown(cfg, batch, (8, 2, (32, 32)))
        assert sum(kinds.values()) == cycles - 2
        assert {"forward", "transposed", "weight_grad", "adam", "soft"} <= set(kinds)
        assert 0 < macs <= cfg.array.pes * cycles


def test_a_new_explore_run_drops_its_own_stale_keys_but_not_explore_verifys():
    from fixar.figures.summary import stale_keys
    summary = {"explore_ga_evals_to_best": 3, "confuciux_best_ips_b64": 1.0, "explore_seconds": 9,
               "explore_verified_lut_yosys": 5, "explore_verify_s": 7, "golden_step_ms_b64": 8}
    figs = {"explore_seconds": 10}
    assert sorted(stale_keys(summary, figs, "explore")) == ["confuciux_best_ips_b64", "explore_ga_evals_to_best"]
    assert stale_keys(summary, figs, "explore-verify") == [] and stale_keys(summary, figs, "golden") == []
