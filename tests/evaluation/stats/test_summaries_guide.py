import math

import numpy as np
import pandas as pd
import pytest

from evaluation.stats.guide_trial import (
    angular_noninferiority,
    newcombe_paired_ci,
    simulate_guide_trial,
    success_paired,
    time_equivalence,
)
from evaluation.stats.ratings import prepare_ratings
from evaluation.stats.simulate import simulate_reader_study
from evaluation.stats.summaries import likert_summary, metric_summary


def test_likert_summary_counts_and_shares():
    df = prepare_ratings(simulate_reader_study(n_raters=4, n_cases=10, seed=0))
    df.loc[0, "score"] = np.nan
    out = likert_summary(df).set_index("source")
    assert out.loc["CT", "n"] == 39 and out.loc["XRAY", "n"] == 40
    shares = out[[f"share_{v}" for v in range(1, 6)]].sum(axis=1)
    assert np.allclose(shares, 1.0)
    ct = df[df["source"] == "CT"]["score"].dropna()
    assert out.loc["CT", "mean"] == pytest.approx(ct.mean())


def test_metric_summary_t_and_bootstrap_intervals():
    rng = np.random.default_rng(0)
    rows = [
        (f"K{i}", bone, metric, rng.normal(mu, 0.1))
        for i in range(30)
        for bone in ("femur", "tibia")
        for metric, mu in (("ASSD", 0.5), ("HD95", 1.5))
    ]
    df = pd.DataFrame(rows, columns=["case", "bone", "metric", "value"])
    df.loc[0, "value"] = np.nan
    t = metric_summary(df).set_index(["bone", "metric"])
    b = metric_summary(df, ci="bootstrap", n_boot=1000).set_index(["bone", "metric"])
    assert t.loc[("femur", "ASSD"), "n_missing"] == 1 and t.loc[("femur", "ASSD"), "n"] == 29
    for key in t.index:
        assert t.loc[key, "ci_low"] < t.loc[key, "mean"] < t.loc[key, "ci_high"]
        width_t = t.loc[key, "ci_high"] - t.loc[key, "ci_low"]
        width_b = b.loc[key, "ci_high"] - b.loc[key, "ci_low"]
        assert width_b == pytest.approx(width_t, rel=0.3)
    with pytest.raises(ValueError, match="non-numeric"):
        metric_summary(df.assign(value="x"))


def test_angular_noninferiority_detects_a_worse_guide():
    good = angular_noninferiority(simulate_guide_trial(seed=3), margin=1.0)
    bad = angular_noninferiority(simulate_guide_trial(deviation_shift=2.5, seed=3), margin=1.0)
    assert good["noninferior"] and good["upper_bound"] < 1.0
    assert not bad["noninferior"] and bad["estimate"] > 1.0
    assert good["df"] == 79


def test_time_equivalence_on_log_scale():
    same = time_equivalence(simulate_guide_trial(time_ratio=1.0, seed=4))
    slower = time_equivalence(simulate_guide_trial(time_ratio=1.5, seed=4))
    assert same["equivalent"]
    assert same["ratio"] == pytest.approx(1.0, abs=0.08)
    assert not slower["equivalent"] and slower["ratio"] == pytest.approx(1.5, rel=0.1)
    with pytest.raises(ValueError, match="ratio bounds"):
        time_equivalence(simulate_guide_trial(seed=4), ratio_bounds=(1.2, 1.5))


def test_newcombe_interval_properties_and_coverage():
    diff, lo, hi = newcombe_paired_ci(30, 5, 5, 10)
    assert diff == 0 and lo == pytest.approx(-hi)  # symmetric table -> symmetric CI
    diff, lo, hi = newcombe_paired_ci(0, 0, 0, 20)
    assert diff == 0 and lo < 0 < hi
    rng = np.random.default_rng(0)
    probs = np.array([0.5, 0.2, 0.1, 0.2])  # true difference 0.1
    hits = 0
    for _ in range(2000):
        _, lo, hi = newcombe_paired_ci(*rng.multinomial(60, probs))
        hits += lo <= 0.1 <= hi
    assert hits / 2000 == pytest.approx(0.95, abs=0.02)


def test_success_paired_counts_pairs():
    trial = simulate_guide_trial(seed=5)
    out = success_paired(trial)
    assert out["n_pairs"] == 80
    assert out["both"] + out["test_only"] + out["reference_only"] + out["neither"] == 80
    assert out["ci_low"] <= out["difference"] <= out["ci_high"]
    assert out["difference"] == pytest.approx(out["success_test"] - out["success_reference"])
    assert not math.isnan(out["ci_low"])


def test_guide_trial_input_errors():
    trial = simulate_guide_trial(seed=6)
    with pytest.raises(ValueError, match="lacks column"):
        angular_noninferiority(trial.drop(columns="period"))
    with pytest.raises(ValueError, match="needs arms"):
        angular_noninferiority(trial[trial["arm"] == "CT"])
