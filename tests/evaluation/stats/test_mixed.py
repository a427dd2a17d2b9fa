import numpy as np
import pytest

from evaluation.stats.equivalence import fit_crossed_mixed_model
from evaluation.stats.guide_trial import angular_noninferiority, simulate_guide_trial
from evaluation.stats.ratings import prepare_ratings
from evaluation.stats.simulate import VarianceComponents, simulate_reader_study


@pytest.fixture(scope="module")
def unbalanced():
    df = simulate_reader_study(
        n_raters=5,
        n_cases=14,
        difference=0.3,
        components=VarianceComponents(rater_source=0.3),
        likert=False,
        seed=8,
    )
    rng = np.random.default_rng(0)
    df.loc[rng.random(len(df)) < 0.15, "score"] = np.nan  # unbalanced: REML != cell means
    return prepare_ratings(df, likert=False)


def test_profiled_reml_matches_statsmodels_mixedlm(unbalanced):
    ours = fit_crossed_mixed_model(unbalanced, engine="reml")
    theirs = fit_crossed_mixed_model(unbalanced, engine="statsmodels")
    assert ours["converged"] and theirs["converged"]
    assert ours["estimate"] == pytest.approx(theirs["estimate"], abs=2e-4)
    assert ours["se"] == pytest.approx(theirs["se"], rel=2e-3)
    for key in ("var_rater", "var_case", "var_rater_source", "var_case_source", "var_residual"):
        assert ours[key] == pytest.approx(theirs[key], abs=2e-3), key


def test_reml_recovers_components_of_a_large_simulation():
    vc = VarianceComponents(rater=0.5, case=0.7, rater_source=0.3, case_source=0.4, residual=0.6)
    df = prepare_ratings(
        simulate_reader_study(n_raters=30, n_cases=150, components=vc, likert=False, seed=1),
        likert=False,
    )
    fit = fit_crossed_mixed_model(df)
    assert fit["var_residual"] == pytest.approx(0.36, rel=0.05)
    assert fit["var_case_source"] == pytest.approx(0.16, rel=0.3)
    assert fit["var_rater_source"] == pytest.approx(0.09, rel=0.6)


def test_guide_trial_model_matches_statsmodels():
    import statsmodels.formula.api as smf

    trial = simulate_guide_trial(n_surgeons=3, n_bones=8, seed=2)
    ours = angular_noninferiority(trial)
    data = trial.assign(
        deviation=(trial["achieved"] - trial["planned"]).abs(),
        is_test=(trial["arm"] == "XRAY").astype(float),
        one=1,
    )
    vc = {"surgeon": "0 + C(surgeon)", "bone": "0 + C(bone)"}
    model = smf.mixedlm(
        "deviation ~ is_test + C(period)", data, groups="one", vc_formula=vc, re_formula="0"
    )
    # statsmodels' default lbfgs stops at a worse REML optimum on this data
    # (llf -59.96 vs -59.89); Powell reaches the optimum our fit finds.
    fit = model.fit(reml=True, method=["powell"])
    assert ours["estimate"] == pytest.approx(fit.fe_params["is_test"], abs=1e-4)
    assert ours["se"] == pytest.approx(fit.bse_fe["is_test"], rel=5e-3)
