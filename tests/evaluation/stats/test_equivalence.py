import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import binom_tost
from statsmodels.stats.weightstats import ttost_paired

from evaluation.stats.equivalence import (
    binomial_tost,
    bootstrap_differences,
    crossed_anova,
    equivalence_test,
    paired_tost_case_means,
    per_rater_differences,
    reader_study_equivalence,
    source_discrimination,
    tost_t,
    wilcoxon_case_means,
)
from evaluation.stats.ratings import prepare_ratings
from evaluation.stats.simulate import VarianceComponents, simulate_reader_study


@pytest.fixture(scope="module")
def balanced() -> pd.DataFrame:
    return prepare_ratings(
        simulate_reader_study(n_raters=8, n_cases=25, difference=0.3, n_rounds=2, seed=5)
    )


def test_tost_t_matches_statsmodels_ttost_paired():
    rng = np.random.default_rng(0)
    x, y = rng.normal(3.2, 1, 30), rng.normal(3.0, 1, 30)
    d = x - y
    ours = tost_t(d.mean(), d.std(ddof=1) / np.sqrt(30), 29, 0.5)
    theirs = ttost_paired(x, y, -0.5, 0.5)[0]
    assert ours == pytest.approx(theirs, rel=1e-10)


def test_fast_estimators_equal_reml_fixed_effect_on_balanced_data(balanced):
    res = equivalence_test(balanced, n_boot=200, seed=1)
    by = {i.method: i for i in res.intervals}
    grand = balanced.groupby("source")["score"].mean()
    assert by["satterthwaite"].estimate == pytest.approx(grand["XRAY"] - grand["CT"], abs=1e-12)
    assert by["bootstrap"].estimate == pytest.approx(by["satterthwaite"].estimate, abs=1e-12)
    assert by["mixedlm_wald"].estimate == pytest.approx(by["satterthwaite"].estimate, abs=1e-5)
    # Same model, two fits: the moment SE and the REML Wald SE agree closely here.
    assert by["satterthwaite"].se == pytest.approx(by["mixedlm_wald"].se, rel=0.15)
    assert by["satterthwaite"].df < 20  # few raters -> few df, wider than z
    assert set(res.variance_components) >= {"var_rater", "var_case_source", "var_residual"}


def test_crossed_anova_recovers_known_variance():
    rng = np.random.default_rng(3)
    sims = []
    for _ in range(300):
        d = rng.normal(0, 0.3, (10, 1)) + rng.normal(0, 0.2, (1, 40)) + rng.normal(0, 0.5, (10, 40))
        sims.append((d.mean(), crossed_anova(d)["variance"]))
    means, variances = np.array(sims).T
    true_var = 0.3**2 / 10 + 0.2**2 / 40 + 0.5**2 / 400
    assert np.mean(variances) == pytest.approx(true_var, rel=0.1)
    assert np.var(means) == pytest.approx(true_var, rel=0.25)


def test_bootstrap_is_seeded_and_resamples_both_ways(balanced):
    a = equivalence_test(balanced, n_boot=300, seed=9, fit_mixed=False, ci_method="bootstrap")
    b = equivalence_test(balanced, n_boot=300, seed=9, fit_mixed=False, ci_method="bootstrap")
    c = equivalence_test(balanced, n_boot=300, seed=10, fit_mixed=False, ci_method="bootstrap")
    assert a.ci_low == b.ci_low and a.ci_high == b.ci_high
    assert a.ci_low != c.ci_low
    assert a.ci_low < a.estimate < a.ci_high
    # A matrix varying only between raters: resampling cases alone would give zero spread.
    rater_only = np.repeat(np.arange(5.0)[:, None], 20, axis=1)
    draws = bootstrap_differences(rater_only, 500, np.random.default_rng(0))
    assert np.std(draws) > 0.3
    case_only = np.repeat(np.arange(20.0)[None, :], 5, axis=0)
    draws = bootstrap_differences(case_only, 500, np.random.default_rng(0))
    assert np.std(draws) > 0.8


def test_verdict_follows_interval_and_margin(balanced):
    wide = equivalence_test(balanced, margin=0.5, n_boot=0, fit_mixed=False)
    narrow = equivalence_test(balanced, margin=0.05, n_boot=0, fit_mixed=False)
    assert wide.equivalent == (wide.ci_low > -0.5 and wide.ci_high < 0.5)
    assert not narrow.equivalent and narrow.p_tost > 0.05


def test_all_data_used_when_ratings_missing(balanced):
    df = balanced.copy()
    df.loc[(df["rater"] == "R00") & (df["source"] == "XRAY") & (df["case"] < "K005"), "score"] = (
        np.nan
    )
    res = equivalence_test(df, n_boot=100, fit_mixed=False)
    assert res.n_cells_paired == 8 * 25 - 5
    assert res.n_cases_complete == 20
    assert res.n_ratings == int(df["score"].notna().sum())


def test_reader_study_equivalence_runs_per_question():
    df = prepare_ratings(
        simulate_reader_study(n_raters=5, n_cases=15, questions=("shape", "detail"), seed=1)
    )
    table, results = reader_study_equivalence(df, n_boot=100, fit_mixed=False)
    assert list(table["question"]) == ["detail", "shape"]
    assert len(results) == 2 and {"estimate", "ci_low", "p_tost", "equivalent"} <= set(table)
    with pytest.raises(ValueError, match="one question"):
        equivalence_test(df, n_boot=0, fit_mixed=False)


def test_sensitivity_analyses(balanced):
    tost = paired_tost_case_means(balanced, margin=0.5)
    wide = balanced.groupby(["case", "source"])["score"].mean().unstack()
    assert tost["estimate"] == pytest.approx((wide["XRAY"] - wide["CT"]).mean())
    assert tost["p_tost"] == pytest.approx(ttost_paired(wide["XRAY"], wide["CT"], -0.5, 0.5)[0])
    wil = wilcoxon_case_means(balanced)
    assert wil["zero_method"] == "pratt" and wil["n_cases"] == 25
    raters = per_rater_differences(balanced)
    assert len(raters) == 8
    assert raters["estimate"].mean() == pytest.approx(tost["estimate"])


def test_binomial_tost_matches_statsmodels():
    for k in (40, 50, 57, 70):
        ours = binomial_tost(k, 100, margin=0.1)["p_tost"]
        theirs = binom_tost(k, 100, 0.4, 0.6)[0]
        assert ours == pytest.approx(theirs, rel=1e-10)
    assert binomial_tost(100, 200)["equivalent"]
    assert not binomial_tost(70, 100)["equivalent"]


def test_source_discrimination_counts_correct_guesses():
    guesses = pd.DataFrame({"source": ["CT", "xray"] * 50, "guess": ["ct", "CT"] * 50})
    out = source_discrimination(guesses)
    assert out["accuracy"] == 0.5 and out["trials"] == 100


def test_wider_rater_variance_widens_satterthwaite_interval():
    calm = simulate_reader_study(
        components=VarianceComponents(rater_source=0.0), likert=False, seed=2
    )
    wild = simulate_reader_study(
        components=VarianceComponents(rater_source=0.5), likert=False, seed=2
    )
    a = equivalence_test(calm, n_boot=0, fit_mixed=False)
    b = equivalence_test(wild, n_boot=0, fit_mixed=False)
    assert (b.ci_high - b.ci_low) > 2 * (a.ci_high - a.ci_low)
