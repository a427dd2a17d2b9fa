import math

import numpy as np
import pandas as pd
import pytest

from evaluation.stats.agreement import (
    CPAK_ORDER,
    angle_agreement,
    bland_altman,
    cohen_kappa,
    cpak_agreement,
    cpak_classify,
)


def test_bland_altman_point_values_and_approximate_ci_by_hand():
    x = np.array([10.0, 12.0, 11.0, 13.0, 9.0])
    y = np.array([9.0, 12.5, 10.0, 12.0, 9.5])
    out = bland_altman(x, y, loa_ci="approximate")
    d = x - y
    s = d.std(ddof=1)
    assert out["bias"] == pytest.approx(d.mean())
    assert out["loa_high"] == pytest.approx(d.mean() + 1.959964 * s, rel=1e-6)
    # Bland & Altman 1999: SE(LoA) = sqrt(3 s^2 / n), t with n-1 df (2.776 for 4 df).
    half = 2.776445 * math.sqrt(3 * s**2 / 5)
    assert out["loa_high_ci_high"] - out["loa_high"] == pytest.approx(half, rel=1e-5)
    assert out["bias_ci_high"] - out["bias"] == pytest.approx(2.776445 * s / math.sqrt(5), rel=1e-5)


def test_exact_loa_interval_has_nominal_coverage():
    rng = np.random.default_rng(0)
    n, sims = 15, 1500
    true_high = 0.3 + 1.959964 * 1.0
    hits_exact = hits_approx = 0
    for _ in range(sims):
        y = rng.normal(0, 2, n)
        x = y + rng.normal(0.3, 1.0, n)
        ex = bland_altman(x, y, loa_ci="exact")
        ap = bland_altman(x, y, loa_ci="approximate")
        hits_exact += ex["loa_high_ci_low"] <= true_high <= ex["loa_high_ci_high"]
        hits_approx += ap["loa_high_ci_low"] <= true_high <= ap["loa_high_ci_high"]
    assert hits_exact / sims == pytest.approx(0.95, abs=0.017)
    assert abs(hits_exact / sims - 0.95) <= abs(hits_approx / sims - 0.95) + 0.01


def test_bland_altman_rejects_bad_input():
    with pytest.raises(ValueError, match="missing pairs"):
        bland_altman(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="loa_ci"):
        bland_altman(np.arange(5.0), np.arange(5.0) + 1, loa_ci="magic")


def test_angle_agreement_per_angle_with_icc():
    rng = np.random.default_rng(2)
    truth = rng.normal(87, 2.5, 40)
    rows = []
    for angle, noise in (("MPTA", 0.4), ("LDFA", 1.5)):
        for i, t in enumerate(truth):
            rows.append((f"K{i}", angle, "CT", t))
            rows.append((f"K{i}", angle, "XRAY", t + 0.5 + rng.normal(0, noise)))
    rows.append(("K99", "MPTA", "CT", 88.0))  # unpaired
    out = angle_agreement(pd.DataFrame(rows, columns=["case", "angle", "source", "value"]))
    out = out.set_index("angle")
    assert out.loc["MPTA", "n_unpaired"] == 1 and out.loc["MPTA", "n"] == 40
    assert out.loc["MPTA", "bias"] == pytest.approx(0.5, abs=0.2)
    assert out.loc["MPTA", "ICC_A1"] > out.loc["LDFA", "ICC_A1"]
    # Absolute agreement is penalised by the bias, consistency is not.
    assert out.loc["MPTA", "ICC_A1"] < out.loc["MPTA", "ICC_C1"]


def test_cpak_classification_follows_macdessi_grid_with_neutral_boundaries():
    cases = pd.DataFrame(
        {
            "mpta": [85.0, 86.5, 90.0, 90.0, 88.0, 92.0],
            "ldfa": [88.0, 87.5, 86.0, 90.0, 90.0, 93.0],
        }
    )
    out = cpak_classify(cases["mpta"], cases["ldfa"])
    # aHKA -3 JLO 173 -> I; -1/174 -> II; 4/176 -> III; 0/180 -> V; -2/178 -> V (boundary);
    # -1/185 -> VIII.
    assert list(out["cpak"]) == ["I", "II", "III", "V", "V", "VIII"]
    assert out["boundary_distance"].iloc[4] == pytest.approx(0.0)
    assert out["boundary_distance"].iloc[3] == pytest.approx(2.0)


def test_cohen_kappa_matches_sklearn_when_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    a = rng.choice(CPAK_ORDER[:6], 60)
    b = np.where(rng.random(60) < 0.7, a, rng.choice(CPAK_ORDER[:6], 60))
    assert cohen_kappa(a, b, CPAK_ORDER) == pytest.approx(
        metrics.cohen_kappa_score(a, b), abs=1e-12
    )


def test_cohen_kappa_hand_example():
    # 2x2: agree 3 of 4; marginals a (I:2, II:2), b (I:1, II:3): pe = 0.5; (0.75-0.5)/0.5.
    assert cohen_kappa(
        ["I", "I", "II", "II"], ["I", "II", "II", "II"], CPAK_ORDER
    ) == pytest.approx(0.5)


def test_cpak_agreement_reports_kappa_ci_and_confusion():
    rng = np.random.default_rng(1)
    mpta, ldfa = rng.normal(86.5, 2.5, 80), rng.normal(87.5, 2.5, 80)
    rows = []
    for i in range(80):
        rows.append((f"K{i}", "CT", mpta[i], ldfa[i]))
        rows.append((f"K{i}", "XRAY", mpta[i] + rng.normal(0, 0.4), ldfa[i] + rng.normal(0, 0.7)))
    out = cpak_agreement(pd.DataFrame(rows, columns=["case", "source", "mpta", "ldfa"]), n_boot=300)
    assert out["n_cases"] == 80
    assert out["kappa_ci_low"] < out["kappa"] < out["kappa_ci_high"]
    assert out["confusion"].to_numpy().sum() == 80
    assert np.trace(out["confusion"].to_numpy()) == round(out["percent_agreement"] * 0.8)
    per_case = out["per_case"]
    # Disagreements sit closer to a CPAK boundary than agreements.
    assert (
        per_case.loc[~per_case["agree"], "reference_boundary_distance"].mean()
        < per_case.loc[per_case["agree"], "reference_boundary_distance"].mean()
    )
