"""HAQ after CVPR 2019 (fixar.haq): the action map and state, the lane
column cost model and HAQ's budget rule, the environment's episode, the quality score
on the real digits MLP, and the command end to end (small)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from fixar.config import DEFAULT
from fixar.haq import cost
from fixar.haq.env import REWARD_SCALE, HaqEnv
from fixar.haq.quality import Quality
from fixar.haq.search import METHODS
from fixar.haq.space import (
    DIGITS,
    Workload,
    action_to_width,
    flat,
    from_widths,
    normalised_features,
    uniform,
    width_to_action,
)

pytest.importorskip("sklearn")
WIDTHS = tuple(DEFAULT.bfp.widths)
SMALL = Workload("small", (64, 32, 10))
SMALL_B1 = Workload("small_b1", (64, 32, 10), batch=1)
QUICK = Quality(workload=SMALL, pretrain_epochs=4, finetune_epochs=1)


def test_actions_cover_the_widths_in_equal_shares():
    a = np.linspace(0, 1, 4001)
    picks = [action_to_width(x, WIDTHS) for x in a]
    counts = [picks.count(w) for w in WIDTHS]
    assert max(counts) - min(counts) <= 2 and picks[0] == WIDTHS[0] and picks[-1] == WIDTHS[-1]
    assert all(action_to_width(width_to_action(w, WIDTHS), WIDTHS) == w for w in WIDTHS)
    assert action_to_width(-3.0, WIDTHS) == WIDTHS[0] and action_to_width(7.0, WIDTHS) == WIDTHS[-1]


def test_state_is_normalised_and_alternates_weights_and_activations():
    f = normalised_features(DIGITS)
    assert f.shape == (2 * len(DIGITS.layers), 6) and f.min() >= 0 and f.max() <= 1
    assert f[:, 4].tolist() == [1, 0] * len(DIGITS.layers)
    assert f[0, 0] == 0 and f[-1, 0] == 1          # the layer index spans [0, 1]


def test_latency_is_the_lane_arrays_cycle_model():
    # 64 -> 128 on 32 columns of 16 rows: 4 output tiles of 4 groups; 8-bit weights take 4 passes a group
    # (16 a tile); 4-bit activations fill 8 lanes, so 20 vectors are batch passes of 8, 8 and 4 vectors,
    # each at least a cycle per vector it hands out (all below 16 here); the last tile's sums leave after
    # the fill (10) and its 4 lanes
    assert cost.layer_cycles(DEFAULT, DIGITS.layers[0], 8, 4, 20) == 4 * 3 * 16 + 10 + 4 - 1
    # 2-bit weights take 4 passes a tile, but 2-bit activations hand out 16 vectors a pass: the outputs
    # bound it, a cycle per vector: 4 tiles x 80 vectors
    assert cost.layer_cycles(DEFAULT, DIGITS.layers[0], 2, 2, 80) == 4 * 5 * 16 - 16 + 4 + 10 + 16 - 1
    assert cost.priced_batch(DEFAULT, DIGITS) == 80 and cost.priced_batch(DEFAULT, SMALL_B1) == 1
    lat = {(w, a): cost.latency(DEFAULT, DIGITS, tuple((w, a) for _ in DIGITS.layers)) for w in WIDTHS for a in WIDTHS}
    for w in WIDTHS:            # narrower never costs more, at 80 vectors, in either width
        for lo, hi in zip(WIDTHS, WIDTHS[1:]):
            assert lat[(w, lo)] <= lat[(w, hi)] and lat[(lo, w)] <= lat[(hi, w)]
    assert lat[(8, 8)] > 3.5 * lat[(4, 4)] and lat[(4, 4)] > lat[(2, 2)]
    bits = [cost.model_bits(DEFAULT, DIGITS, uniform(DIGITS, w)) for w in WIDTHS]
    assert bits == sorted(bits)


def test_one_vector_fills_no_lanes_so_activation_widths_cost_nothing():
    for w in WIDTHS:
        lat = {cost.latency(DEFAULT, SMALL_B1, tuple((w, a) for _ in SMALL_B1.layers)) for a in WIDTHS}
        assert len(lat) == 1, f"weights at {w} bits: activation widths changed the latency at B = 1"
    # 64 -> 32 and 32 -> 10, one output tile each: 4 and 2 groups, a pass per group at 2 bits, 4 at 8
    # bits, on top of each layer's fill of 10 cycles
    assert cost.latency(DEFAULT, SMALL_B1, uniform(SMALL_B1, 2)) == (4 + 10) + (2 + 10)
    assert cost.latency(DEFAULT, SMALL_B1, uniform(SMALL_B1, 8)) == (16 + 10) + (8 + 10)


def test_budget_rule_lowers_until_it_holds():
    for wl in (DIGITS, SMALL_B1):
        top = cost.latency(DEFAULT, wl, uniform(wl, 8))
        rng = np.random.default_rng(0)
        for frac in (0.1, 0.2, 0.25, 0.5, 1.0):
            budget = int(top * frac)
            if cost.latency(DEFAULT, wl, uniform(wl, 2)) > budget:
                continue
            for _ in range(20):
                asked = from_widths(wl, list(rng.choice(WIDTHS, len(wl.steps))))
                got = cost.enforce(DEFAULT, wl, asked, budget, WIDTHS)
                assert cost.latency(DEFAULT, wl, got) <= budget
                assert all(g <= a for g, a in zip(flat(got), flat(asked)))
                if cost.latency(DEFAULT, wl, asked) <= budget:
                    assert got == asked
                if wl.batch == 1:       # narrowing an activation buys nothing there, so it is never done
                    assert [a for _, a in got] == [a for _, a in asked]
    with pytest.raises(ValueError, match="not met even at 2-bit"):
        cost.enforce(DEFAULT, DIGITS, uniform(DIGITS, 8), cost.latency(DEFAULT, DIGITS, uniform(DIGITS, 2)) - 1,
                     WIDTHS)


def test_size_budget_lowers_weights_only_until_both_budgets_hold():
    top_cycles = cost.latency(DEFAULT, DIGITS, uniform(DIGITS, 8))
    top_bits = cost.model_bits(DEFAULT, DIGITS, uniform(DIGITS, 8))
    rng = np.random.default_rng(1)
    for cycles_frac, bits_frac in ((1.0, 0.35), (1.0, 0.6), (0.25, 0.35), (0.5, 0.9)):   # 2-bit: 0.31
        budget, max_bits = int(top_cycles * cycles_frac), int(top_bits * bits_frac)
        for _ in range(20):
            asked = from_widths(DIGITS, list(rng.choice(WIDTHS, 6)))
            got = cost.enforce(DEFAULT, DIGITS, asked, budget, WIDTHS, max_bits)
            assert cost.latency(DEFAULT, DIGITS, got) <= budget
            assert cost.model_bits(DEFAULT, DIGITS, got) <= max_bits
            assert all(g <= a for g, a in zip(flat(got), flat(asked)))
            if cycles_frac == 1.0:      # only the size is over: activations are never lowered for it
                assert [a for _, a in got] == [a for _, a in asked]
    with pytest.raises(ValueError, match="model-size budget"):
        cost.enforce(DEFAULT, DIGITS, uniform(DIGITS, 8), top_cycles, WIDTHS,
                     cost.model_bits(DEFAULT, DIGITS, uniform(DIGITS, 2)) - 1)


def test_score_is_deterministic_and_falls_with_width():
    ref = QUICK.reference()
    p8, p2 = uniform(SMALL, 8), uniform(SMALL, 2)
    a8 = QUICK.score(p8)
    assert a8 == QUICK.score(p8)
    assert abs(a8 - ref) < 0.03 and ref > 0.9
    assert QUICK.score(p2) < a8 - 0.1


def test_episode_walks_every_decision_and_pays_at_the_end():
    budget = cost.latency(DEFAULT, SMALL, uniform(SMALL, 4))
    seen = []

    def fake_score(policy):          # the environment only calls it; the real one is tested above
        seen.append(policy)
        return 0.5
    env = HaqEnv(SMALL, fake_score, 0.9, budget)
    obs, _ = env.reset()
    rewards = []
    for i in range(len(SMALL.steps)):
        assert obs[-1] == (0.0 if i == 0 else 1.0)
        obs, r, done, _, info = env.step([1.0])
        rewards.append(r)
        assert done == (i == len(SMALL.steps) - 1)
    assert rewards[:-1] == [0.0] * (len(rewards) - 1)
    assert rewards[-1] == pytest.approx(REWARD_SCALE * 100 * (0.5 - 0.9))
    assert info["asked"] == uniform(SMALL, 8) and cost.latency(DEFAULT, SMALL, info["policy"]) <= budget
    assert seen == [info["policy"]]
    with pytest.raises(ValueError, match="not a finite number"):
        env.reset()
        env.step([float("nan")])


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_returns_one_record_per_evaluation(method):
    budget = cost.latency(DEFAULT, SMALL, uniform(SMALL, 4))
    env = HaqEnv(SMALL, lambda p: float(np.mean(flat(p))) / 8, 1.0, budget)
    recs = METHODS[method](env, 6, seed=0)
    assert len(recs) == 6 and all(r["latency"] <= budget for r in recs)
    assert all(len(r["policy"]) == len(SMALL.steps) for r in recs)


def test_command_end_to_end_and_resume(tmp_path):
    args = [sys.executable, "-m", "fixar.haq", "--no-ray", "--budget", "3", "--latency", "0.25",
            "--out", str(tmp_path)]
    first = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    # progress names the best policy so far, one w<bits>a<bits> per layer
    assert re.search(r"best \d\.\d{4} \(w\da\d(,w\da\d)+\)", first.stdout), first.stdout[-1000:]
    figs = json.loads((tmp_path / "results.json").read_text())
    for key in ("haq_latency_speedup_vs_uniform8", "haq_quality_drop", "haq_policy", "haq_evals_to_baselines_best"):
        assert key in figs
    assert figs["haq_latency_speedup_vs_uniform8"] >= 4.0      # the budget: a quarter of uniform 8-bit's latency
    assert (tmp_path / "convergence.png").stat().st_size > 0 and (tmp_path / "policy.png").stat().st_size > 0
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "runs to do" not in again.stdout      # every run was kept
    assert json.loads((tmp_path / "results.json").read_text()) == figs


@pytest.mark.parametrize(("args", "message"), [
    (["--methods", "haq,bogus"], "unknown ['bogus']"), (["--latency", "0.01"], "not met even at 2-bit"),
    (["--budget", "0"], "--budget must be at least 1"), (["--latency", "1.5"], "must be in (0, 1]"),
    (["--size", "0.01"], "--size 0.01: model-size budget"), (["--size", "2"], "--size must be in (0, 1]"),
])
def test_command_errors_are_one_line(args, message, tmp_path):
    p = subprocess.run([sys.executable, "-m", "fixar.haq", "--no-ray", "--out", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_bfp_actor_follows_the_golden_actor_and_degrades_with_width():
    """The deployed actor in uniform 8-bit BFP acts as the FXP32 golden
    actor does, within BFP's rounding; at 2 bits it strays much further."""
    from fixar.haq.actor import PENDULUM, BfpActor
    from fixar.rl.backends.golden import GoldenBackend
    from fixar.rl.hyper import Hyper
    backend = GoldenBackend(3, 1, Hyper(hidden=(64, 64)), seed=3)
    states = np.random.default_rng(0).uniform(-1, 1, (50, 3)) * [1, 1, 8]
    want = np.array([backend.act(s, False) for s in states])
    err = {}
    for w in (8, 2):
        actor = BfpActor(DEFAULT, backend.ddpg.actor, uniform(PENDULUM, w))
        got = np.array([actor.act(s) for s in states])
        assert got.shape == want.shape and np.all(np.abs(got) <= 1)
        err[w] = float(np.abs(got - want).mean())
    assert err[8] < 0.02 * np.abs(want).mean() + 1e-3 and err[2] > 5 * err[8]


@pytest.mark.slow      # trains the Pendulum actor first (about a minute)
def test_pendulum_task_end_to_end(tmp_path):
    args = [sys.executable, "-m", "fixar.haq", "--no-ray", "--task", "pendulum", "--budget", "2",
            "--episodes", "2", "--actor-dir", str(tmp_path / "actor"), "--out", str(tmp_path / "out")]
    p = subprocess.run(args, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-2000:]
    figs = json.loads((tmp_path / "out" / "results.json").read_text())
    assert figs["haq_pendulum_uniform8_return"] > figs["haq_pendulum_uniform2_return"]
    assert figs["haq_pendulum_latency_speedup_vs_uniform8"] >= 2.0


def test_default_latency_budgets_can_be_met():
    """Each task's default share of uniform 8-bit's latency is within reach of
    the narrowest widths (on the lane array each layer's run has a fill the
    widths do not shorten)."""
    from fixar.haq.actor import PENDULUM
    from fixar.haq.space import DEFAULT_LATENCY

    for task, wl in (("digits", DIGITS), ("pendulum", PENDULUM)):
        top = cost.latency(DEFAULT, wl, uniform(wl, 8))
        budget = int(top * DEFAULT_LATENCY[task])
        assert cost.latency(DEFAULT, wl, uniform(wl, 2)) <= budget < top


def test_runs_share_a_quality_prepared_once_before_they_start(tmp_path, monkeypatch):
    """run_all makes the quality's shared inputs (the Pendulum actor, trained
    into one folder) before any run starts: two Ray workers each found the
    actor missing and trained it into the same files. Here a run that
    starts before reference() was called fails."""
    from dataclasses import dataclass, field

    from fixar.haq import study
    from fixar.haq.study import Plan, run_all

    @dataclass(frozen=True)
    class Prepared:
        workload: Workload = DIGITS
        relative: bool = False
        made: list = field(default_factory=list, hash=False, compare=False)

        def reference(self) -> float:
            self.made.append(1)
            return 0.5

        def score(self, policy) -> float:
            return 0.5

    quality = Prepared()
    real = study.run_one

    def starts_prepared(method, seed, plan):
        assert quality.made, "a run started before the shared quality was prepared"
        return real(method, seed, plan)

    monkeypatch.setattr(study, "run_one", starts_prepared)
    runs = run_all(Plan(methods=("random",), seeds=1, budget=2, quality=quality), tmp_path, use_ray=False)
    assert len(runs) == 1 and len(runs[0]["records"]) == 2 and quality.made


def test_budget_rule_stops_with_one_line_when_no_lowering_helps(monkeypatch):
    """A latency that only the all-narrowest policy meets and no single
    lowering reduces: the rule says so instead of looping."""
    monkeypatch.setattr(cost, "latency", lambda cfg, wl, p: 0 if set(flat(p)) == {WIDTHS[0]} else 100)
    with pytest.raises(ValueError, match="no narrower width of .* lowers what is over"):
        cost.enforce(DEFAULT, DIGITS, uniform(DIGITS, 8), 50, WIDTHS)
