import math

import numpy as np
import pytest
from statsmodels.stats.power import TTestPower

from evaluation.stats.power import (
    components_from_fit,
    power_table,
    power_tost_paired,
    sample_size_tost_paired,
    simulate_crossed_power,
    simulate_power_tost_paired,
)
from evaluation.stats.simulate import VarianceComponents

# Shared notes: margin 0.5, alpha 0.05 a side, true difference 0.
PUBLISHED_N = {
    (0.6, 0.8): 14,
    (0.6, 0.9): 18,
    (0.8, 0.8): 24,
    (0.8, 0.9): 30,
    (1.0, 0.8): 36,
    (1.0, 0.9): 45,
}


def test_sample_sizes_reproduce_shared_table():
    table = power_table()
    got = {(r.sd, r.target_power): r.n_cases for r in table.itertuples()}
    assert got == PUBLISHED_N
    # Minimal: one pair fewer falls short of the target.
    for (sd, target), n in PUBLISHED_N.items():
        assert power_tost_paired(n - 1, sd) < target <= power_tost_paired(n, sd)


@pytest.mark.parametrize(("n", "sd", "diff"), [(10, 0.6, 0.0), (25, 1.0, 0.3), (60, 0.8, -0.2)])
def test_one_sided_limit_matches_statsmodels_noncentral_t(n, sd, diff):
    ours_upper = power_tost_paired(n, sd, lower=-0.5, upper=math.inf, true_diff=diff)
    theirs_upper = TTestPower().power((diff + 0.5) / sd, n, 0.05, alternative="larger")
    ours_lower = power_tost_paired(n, sd, lower=-math.inf, upper=0.5, true_diff=diff)
    theirs_lower = TTestPower().power((diff - 0.5) / sd, n, 0.05, alternative="smaller")
    assert ours_upper == pytest.approx(theirs_upper, abs=1e-8)
    assert ours_lower == pytest.approx(theirs_lower, abs=1e-8)
    # TOST power sits between the Bonferroni bound and the weaker one-sided power.
    both = power_tost_paired(n, sd, true_diff=diff)
    assert theirs_upper + theirs_lower - 1 - 1e-9 <= both <= min(theirs_upper, theirs_lower) + 1e-9


@pytest.mark.parametrize(("n", "sd", "diff"), [(14, 0.6, 0.0), (30, 0.8, 0.2), (8, 1.0, 0.1)])
def test_exact_power_agrees_with_simulation(n, sd, diff):
    exact = power_tost_paired(n, sd, true_diff=diff)
    sim = simulate_power_tost_paired(n, sd, true_diff=diff, n_sim=40_000, seed=1)
    assert sim == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 40_000) + 1e-3)


def test_size_at_margin_is_at_most_alpha():
    assert power_tost_paired(200, 0.8, true_diff=0.5) <= 0.05 + 1e-9
    assert power_tost_paired(200, 0.8, true_diff=0.5) > 0.04


def test_invalid_inputs():
    with pytest.raises(ValueError, match="inside the margins"):
        sample_size_tost_paired(0.8, true_diff=0.6)
    with pytest.raises(ValueError):
        power_tost_paired(1, 0.8)


def test_components_from_fit_round_trip():
    vc = components_from_fit(
        {
            "var_rater": 0.16,
            "var_case": 0.36,
            "var_rater_source": 0.01,
            "var_case_source": 0.09,
            "var_residual": 0.25,
        }
    )
    assert vc == VarianceComponents(
        rater=0.4, case=0.6, rater_source=0.1, case_source=0.3, residual=0.5
    )
    with pytest.raises(ValueError, match="fit_mixed"):
        components_from_fit({})


def test_crossed_power_below_paired_lower_bound_when_readers_vary():
    vc = VarianceComponents(rater_source=0.35, case_source=0.3, residual=0.6)
    out = simulate_crossed_power(
        n_raters=5, n_cases=20, components=vc, n_sim=120, likert=False, seed=3
    )
    # Paired-TOST SD of case-mean differences under this model ignores rater:source.
    sd_case = math.sqrt(2 * 0.3**2 + 2 * 0.6**2 / 5)
    assert out["power"] < power_tost_paired(20, sd_case) - 3 * out["mc_se"]
    assert 0 <= out["power"] <= 1 and out["n_sim"] == 120
    assert np.isfinite(out["mc_se"])
