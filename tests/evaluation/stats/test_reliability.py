import numpy as np
import pandas as pd
import pytest

from evaluation.stats.ratings import prepare_ratings
from evaluation.stats.reliability import (
    icc,
    icc_table,
    intra_rater_agreement,
    krippendorff_alpha,
    mean_pairwise_kappa,
    source_reliability,
    weighted_kappa,
)
from evaluation.stats.simulate import VarianceComponents, simulate_reader_study

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges.
SHROUT_FLEISS = np.array(
    [(9, 2, 5, 8), (6, 1, 3, 2), (8, 4, 6, 8), (7, 1, 2, 6), (10, 5, 6, 9), (6, 2, 4, 7)],
    dtype=float,
)
PUBLISHED = {
    "ICC(1,1)": 0.17,
    "ICC(2,1)": 0.29,
    "ICC(3,1)": 0.71,
    "ICC(1,k)": 0.44,
    "ICC(2,k)": 0.62,
    "ICC(3,k)": 0.91,
}


def test_icc_matches_shrout_fleiss_published_values():
    table = icc_table(SHROUT_FLEISS).set_index("shrout_fleiss")
    assert set(table.index) == set(PUBLISHED)
    for form, value in PUBLISHED.items():
        assert table.loc[form, "value"] == pytest.approx(value, abs=0.01), form


def test_icc_codes_map_to_mcgraw_wong_forms():
    assert icc(SHROUT_FLEISS, "ICC_A1").shrout_fleiss == "ICC(2,1)"
    assert icc(SHROUT_FLEISS, "ICC_Ck").shrout_fleiss == "ICC(3,k)"
    with pytest.raises(ValueError, match="unknown ICC code"):
        icc(SHROUT_FLEISS, "ICC2")


def test_icc_confidence_intervals_match_pingouin():
    pg = pytest.importorskip("pingouin")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 1)) + rng.normal(scale=0.7, size=(30, 5)) + rng.normal(size=5)
    long = pd.DataFrame(
        [(i, j, x[i, j]) for i in range(30) for j in range(5)], columns=["t", "r", "s"]
    )
    theirs = pg.intraclass_corr(long, targets="t", raters="r", ratings="s")
    ours = icc_table(x)
    # Match rows by value, not by pingouin's row labels (renamed across versions).
    for _, row in ours.iterrows():
        match = theirs[np.isclose(theirs["ICC"], row["value"], atol=1e-10)]
        assert len(match) >= 1, row["code"]
        lo, hi = np.asarray(match.iloc[0, list(theirs.columns).index("CI95")], dtype=float)
        assert row["ci_low"] == pytest.approx(lo, abs=0.006)
        assert row["ci_high"] == pytest.approx(hi, abs=0.006)


def test_icc_rejects_incomplete_matrix():
    x = SHROUT_FLEISS.copy()
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="complete matrix"):
        icc_table(x)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("level", ["ordinal", "interval", "nominal"])
def test_krippendorff_alpha_matches_reference_package(seed, level):
    kr = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=(50, 1))
    noise = rng.integers(-1, 2, size=(50, 6)) * (rng.random((50, 6)) < 0.4)
    x = np.clip(truth + noise, 1, 5).astype(float)
    x[rng.random(x.shape) < 0.15] = np.nan
    ours = krippendorff_alpha(x, level=level, n_boot=0)["alpha"]
    theirs = kr.alpha(
        reliability_data=x.T, level_of_measurement=level, value_domain=[1, 2, 3, 4, 5]
    )
    assert ours == pytest.approx(theirs, abs=1e-10)


def test_krippendorff_bootstrap_ci_brackets_estimate_and_is_seeded():
    rng = np.random.default_rng(7)
    x = np.clip(rng.integers(2, 5, size=(60, 1)) + rng.integers(-1, 2, size=(60, 4)), 1, 5)
    a = krippendorff_alpha(x.astype(float), n_boot=500, seed=3)
    b = krippendorff_alpha(x.astype(float), n_boot=500, seed=3)
    assert a == b
    assert a["ci_low"] < a["alpha"] < a["ci_high"]


def test_krippendorff_rejects_values_outside_domain():
    with pytest.raises(ValueError, match="outside the value domain"):
        krippendorff_alpha(np.array([[1.0, 6.0], [2.0, 2.0]]), n_boot=0)


def test_weighted_kappa_hand_computed_example():
    # Observed disagreement 0.25 (one 1-vs-5 pair of weight 1 out of 4), expected
    # 0.5*0.75 + 0.5*0.25 = 0.5, so kappa = 1 - 0.25 / 0.5.
    assert weighted_kappa([1, 1, 5, 5], [1, 5, 5, 5]) == pytest.approx(0.5)
    assert weighted_kappa([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)


def test_weighted_kappa_matches_sklearn_when_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    a = rng.integers(1, 6, 80)
    b = np.clip(a + rng.integers(-2, 3, 80), 1, 5)
    for weights in ("quadratic", "linear"):
        ours = weighted_kappa(a, b, weights=weights)
        theirs = metrics.cohen_kappa_score(a, b, weights=weights, labels=[1, 2, 3, 4, 5])
        assert ours == pytest.approx(theirs, abs=1e-12)


def test_mean_pairwise_kappa_averages_all_pairs():
    m = pd.DataFrame({"a": [1, 2, 3, 4, 5], "b": [1, 2, 3, 4, 5], "c": [5, 4, 3, 2, 1]})
    out = mean_pairwise_kappa(m)
    ab = weighted_kappa(m["a"], m["b"])
    ac = weighted_kappa(m["a"], m["c"])
    assert out["n_pairs"] == 3
    assert out["mean_kappa"] == pytest.approx((ab + 2 * ac) / 3)


def test_source_reliability_reports_incomplete_cases():
    df = simulate_reader_study(n_raters=5, n_cases=20, seed=2)
    drop = (df["rater"] == "R00") & (df["case"].isin(["K000", "K001"])) & (df["source"] == "CT")
    df.loc[drop, "score"] = np.nan
    out = source_reliability(prepare_ratings(df), n_boot=100).set_index("source")
    assert out.loc["CT", "n_cases_incomplete"] == 2
    assert out.loc["XRAY", "n_cases_incomplete"] == 0
    assert 0 < out.loc["CT", "ICC_A1"] < out.loc["CT", "ICC_Ak"] < 1


def test_intra_rater_agreement_detects_reproducible_raters():
    quiet = VarianceComponents(residual=0.05)
    noisy = VarianceComponents(residual=1.5)
    high = intra_rater_agreement(simulate_reader_study(n_rounds=2, components=quiet, seed=1))
    low = intra_rater_agreement(simulate_reader_study(n_rounds=2, components=noisy, seed=1))
    assert len(high) == 10 and (high["n_items"] == 200).all()
    assert high["weighted_kappa"].min() > 0.9
    assert low["weighted_kappa"].max() < high["weighted_kappa"].min()
    assert high["exact_agreement"].mean() > low["exact_agreement"].mean()
