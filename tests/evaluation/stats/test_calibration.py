"""Error rates of the equivalence verdict over many simulated crossed studies."""

import math

import numpy as np
import pytest

from evaluation.stats.equivalence import equivalence_test
from evaluation.stats.simulate import VarianceComponents, simulate_reader_study

# Realistic components with a sizeable rater:source term, where 10 raters matter.
COMPONENTS = VarianceComponents(
    rater=0.4, case=0.6, rater_source=0.25, case_source=0.25, residual=0.6
)


def _verdict_rates(diff: float, n_sim: int, seed: int, likert: bool = False) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hits = {"satterthwaite": 0, "bootstrap": 0}
    for i in range(n_sim):
        study = simulate_reader_study(
            n_raters=10, n_cases=50, difference=diff, components=COMPONENTS, likert=likert, seed=rng
        )
        res = equivalence_test(study, margin=0.5, n_boot=400, seed=i, fit_mixed=False)
        for interval in res.intervals:
            hits[interval.method] += -0.5 < interval.ci_low and interval.ci_high < 0.5
    return {k: v / n_sim for k, v in hits.items()}


@pytest.mark.slow
def test_equivalence_error_rates_match_design():
    n_sim = 500
    mc = 3 * math.sqrt(0.05 * 0.95 / n_sim)  # ~0.03
    at_margin = _verdict_rates(0.5, n_sim, seed=1)
    # Type I error (declaring equivalence when the true difference is on the margin).
    assert at_margin["satterthwaite"] <= 0.05 + mc
    assert at_margin["satterthwaite"] >= 0.01  # not degenerate-conservative
    # The pigeonhole bootstrap is only approximately calibrated with 10 raters.
    assert at_margin["bootstrap"] <= 0.10
    far = _verdict_rates(0.8, 200, seed=2)
    assert far["satterthwaite"] == 0.0 and far["bootstrap"] == 0.0
    null = _verdict_rates(0.0, 200, seed=3)
    assert null["satterthwaite"] >= 0.9 and null["bootstrap"] >= 0.9
    print(f"\nrates at margin {at_margin}, at 0.8 {far}, at 0 {null}")


@pytest.mark.slow
def test_likert_scores_keep_verdicts_sensible():
    # Rounding to 1..5 shrinks the realised difference a little; verdicts still separate.
    assert _verdict_rates(0.0, 100, seed=4, likert=True)["satterthwaite"] >= 0.9
    assert _verdict_rates(0.8, 100, seed=5, likert=True)["satterthwaite"] <= 0.05
