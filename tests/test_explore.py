"""fixar.explore: the design space, the cost and resource models, the
searches and ConfuciuX's policy gradient (docs/explore.md). Fast: the
searches run on a synthetic objective, one short search on the real one."""
from __future__ import annotations

import numpy as np
import pytest

from fixar.compiler.program import compile_ddpg, step_cycles
from fixar.config import ConfigError, load
from fixar.explore import cost, resources, synthfit
from fixar.explore.cli import main
from fixar.explore.evaluate import TIE, Evaluator, memory_share
from fixar.explore.policy import Policy
from fixar.explore.search import METHODS
from fixar.explore.space import DIMS, Dim, Space

# The default's shape with every memory at the smallest depth that fits the workload (level 0)
FITS = dict(cores=2, rows=16, psum_slots=512, weight_level=0, grad_level=0, act_level=0, xt_level=0, bias_level=0,
            uram_min_rows=20480)


def test_an_invalid_candidate_fails_with_the_configs_own_error():
    """A space that also searches cols proposes a non-square array: the config's check rejects it."""
    space = Space(DIMS + (Dim("cols", (8, 16)),))
    cand = space.index(FITS | {"cols": 8})
    with pytest.raises(ConfigError, match=r"array.rows \(16\) must equal array.cols \(8\)"):
        space.build(cand)
    e = Evaluator(space).evaluate(cand)
    assert e.status == "invalid" and "must equal array.cols" in e.message and e.fitness == -2


def test_a_workload_that_does_not_fit_is_rejected_by_the_compiler():
    space = Space()
    e = Evaluator(space).evaluate(space.index(FITS | {"act_level": -1}))
    assert e.status == "nofit" and "activation memory" in e.message and e.fitness == pytest.approx(-1.1)
    assert space.resolve(space.index(FITS))["act_rows"] == 36864        # the default's depth: 36 352 rows needed
    tiny = Evaluator(space).evaluate(space.index(FITS | {"rows": 4}))
    assert tiny.status == "nofit" and tiny.fitness == -2


def test_cost_model_cycles_are_the_compilers():
    cfg = load("default")
    for batch in (64, 512):
        p = compile_ddpg(cfg, 17, 6, (400, 300), batch)
        got = cost.step(cfg, batch)
        assert got["train_cycles"] == step_cycles(cfg, p, batch)
        assert got["act_cycles"] == step_cycles(cfg, p, batch, acting=True)
        assert got["ips"] == pytest.approx(batch * 164e6 / (got["train_cycles"] + got["act_cycles"]))


def test_the_budget_check_catches_a_planted_over_budget_design():
    """2 x 32 x 32 PEs (four times the default's) fit neither the LUTs nor the DSP48E2 of an SLR
    (the message names the worst resource, here the block RAM); the default shape fits."""
    space, ev = Space(), Evaluator(Space())
    big = ev.evaluate(space.index(FITS | {"rows": 32}))
    cap = resources.budget()
    assert big.status == "over" and "over budget" in big.message and -1 <= big.fitness < 0
    assert all(t[k] > cap[k] for t in big.place["total"] for k in ("dsp48e2", "lut"))
    ok = ev.evaluate(space.index(FITS))
    assert ok.ok and 0.9 < ok.fitness <= 1.0
    assert all(t[k] <= cap[k] for t in ok.place["total"] for k in resources.KINDS)


def test_ips_per_dsp_divides_each_designs_ips_by_its_own_dsps():
    """The second objective against the first on two feasible designs of
    different shapes: the fitnesses before the memory term differ by exactly
    the ratio of the default's DSP48E2 to the design's (from the placement)."""
    by_ips, by_dsp = Evaluator(Space()), Evaluator(Space(), objective="ips_per_dsp")
    dsp = lambda e: sum(t["dsp48e2"] for t in e.place["total"])
    ref = by_ips.evaluate(by_ips.space.index(FITS))
    for values in (FITS, FITS | {"rows": 8, "uram_min_rows": 32768}):
        a, b = by_ips.evaluate(Space().index(values)), by_dsp.evaluate(Space().index(values))
        assert a.ok and b.ok and a.place == b.place
        mem = TIE * memory_share(a.place)
        assert b.fitness + mem == pytest.approx((a.fitness + mem) * dsp(ref) / dsp(a))
    with pytest.raises(ValueError, match="unknown objective 'area'"):
        Evaluator(Space(), objective="area")


def test_the_second_workload_sets_its_own_memory_levels_and_cycles():
    """Hopper's 64-64 networks: level 0 is a smaller memory than HalfCheetah's
    400-300 need, and the evaluator's cycles are the compiler's for that shape."""
    hop = Space(workload=cost.HOPPER64)
    small, big = hop.resolve(hop.index(FITS)), Space().resolve(Space().index(FITS))
    assert all(small[k] < big[k] for k in ("weight_rows", "grad_rows", "act_rows", "xt_rows"))
    e = Evaluator(hop).evaluate(hop.index(FITS))
    cfg = hop.build(hop.index(FITS))
    p = compile_ddpg(cfg, 11, 3, (64, 64), 64)
    assert e.ok and e.cycles[64]["train_cycles"] == step_cycles(cfg, p, 64)
    assert e.ips[64] > 10 * Evaluator(Space()).evaluate(Space().index(FITS)).ips[64]


def test_the_core_model_reproduces_its_fit_points():
    pts = synthfit.load_measured()
    coef = synthfit.fit(pts)
    for p in pts:
        if p["rows"] in synthfit.FIT_ROWS:
            pred = synthfit.predict(coef, p["rows"])
            assert all(pred[k] == pytest.approx(p[k], rel=1e-6) for k in synthfit.KINDS)


TARGET = np.array([1, 3, 1, 1, 2, 1, 3, 1, 3])


def _toy(cand) -> float:
    """A synthetic objective over the real space's menus (fast): best at TARGET."""
    return -float(np.abs(np.asarray(cand) - TARGET).sum())


@pytest.mark.parametrize("method", list(METHODS))
def test_each_search_improves_on_its_first_evaluation_and_repeats_for_a_seed(method):
    if method == "tpe":
        pytest.importorskip("optuna")
    sizes = Space().sizes
    budget = 40 if method != "confuciux" else 48
    a = METHODS[method](_toy, sizes, budget, seed=3)
    b = METHODS[method](_toy, sizes, budget, seed=3)
    assert len(a) == budget
    assert a == b
    assert max(y for _, y in a) > a[0][1]


def test_confuciux_on_the_real_objective_is_deterministic():
    runs = [METHODS["confuciux"](Evaluator(Space()), Space().sizes, 24, seed=1) for _ in range(2)]
    assert runs[0] == runs[1]


def test_a_rewarded_action_becomes_more_likely_and_a_punished_one_less():
    pol = Policy(Space().sizes, seed=0)
    acts = pol.sample()
    before = pol.log_prob(acts)
    pol.update([acts], [1.0])
    assert pol.log_prob(acts) > before
    pol2 = Policy(Space().sizes, seed=0)
    pol2.update([acts], [-1.0])
    assert pol2.log_prob(acts) < before


def test_the_policy_gradient_matches_finite_differences():
    pol = Policy(Space().sizes, seed=2, hidden=8, embed=8)
    acts = pol.sample()

    def loss():
        _, cc = pol.forward(acts)
        lp = sum(np.log(c["probs"][c["a"]]) for c in cc)
        ent = sum(-(c["probs"] * np.log(c["probs"])).sum() for c in cc)
        return -0.7 * lp - pol.beta * ent

    g = pol.grad(acts, 0.7)
    rng = np.random.default_rng(0)
    for name in ("We", "be", "Wx", "Wh", "bl", "Wo0", "bo5"):
        idx = tuple(int(rng.integers(s)) for s in pol.p[name].shape)
        old = pol.p[name][idx]
        pol.p[name][idx] = old + 1e-6
        up = loss()
        pol.p[name][idx] = old - 1e-6
        down = loss()
        pol.p[name][idx] = old
        assert g[name][idx] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("argv, msg", [(["--budget", "0"], "at least 1"), (["--methods", "ga,nope"], "nope"),
                                       (["bogus"], "invalid choice"), (["--methods", "ga"], "confuciux"),
                                       (["show", "--rows", "12"], "not on its menu")])
def test_bad_arguments_are_one_line_errors_with_exit_2(argv, msg, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and msg in err and err.count("\n") == 1


def test_the_shape_table_finds_a_faster_shape_once_the_budget_holds_it(monkeypatch):
    """study.shapes: the default shape fits at 1 x its own IPS; with every
    budget ten times larger a shape at GOAL x the default's IPS or more
    fits too and the table says so."""
    from fixar.explore import study
    real = study.shapes(64)
    assert real["table"]["2x16x16"]["status"] == "ok" and real["table"]["2x16x16"]["ips_ratio"] == 1.0
    budget = resources.budget()
    monkeypatch.setattr(resources, "budget", lambda: {k: 10 * v for k, v in budget.items()})
    roomy = study.shapes(64)
    assert "1x32x32" in roomy["faster_feasible"] and roomy["least_over"][1]["overuse"] < 0


def test_the_design_to_verify_is_the_winner_unless_it_has_the_defaults_shape():
    from fixar.explore import study
    space, ev = Space(), Evaluator(Space())
    small = space.index(FITS | {"rows": 8, "uram_min_rows": 32768})
    assert study.verify_target(ev, small) == (small, "ConfuciuX's best at B = 64")
    other, why = study.verify_target(ev, space.index(FITS))
    v = space.values(other)
    assert (v["cores"], v["rows"]) != (2, 16) and ev.evaluate(other).ok and "another shape" in why
