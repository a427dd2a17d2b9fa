"""Power and sample size for paired TOST, exact and by simulation.

Exact power integrates the joint distribution of the mean difference
(normal) and the sample SD (scaled chi) over the rejection region of both
one-sided t tests; this is what Owen's Q function computes. The paired TOST
ignores reader variance, so its sample sizes are a lower bound for the full
crossed design: :func:`simulate_crossed_power` simulates that design.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import integrate, special, stats

from evaluation.stats.equivalence import equivalence_test
from evaluation.stats.simulate import VarianceComponents, simulate_reader_study


def power_tost_paired(
    n: int,
    sd: float,
    *,
    lower: float = -0.5,
    upper: float = 0.5,
    true_diff: float = 0.0,
    alpha: float = 0.05,
) -> float:
    """Exact power of the paired (one-sample) TOST with n pairs.

    ``sd`` is the SD of the paired differences, ``alpha`` is per side.
    ``lower``/``upper`` may be infinite, which reduces to a one-sided t test.
    """
    if n < 2 or sd <= 0:
        raise ValueError("need n >= 2 and sd > 0")
    if not lower < upper:
        raise ValueError("need lower < upper")
    df = n - 1
    t_crit = stats.t.ppf(1 - alpha, df)
    se_unit = sd / math.sqrt(n)  # SE of the mean difference when s == sd

    log_norm = -special.gammaln(df / 2) - (df / 2) * math.log(2)

    def chi2_pdf(w: float) -> float:  # scipy.stats.chi2.pdf without per-call overhead
        return math.exp(log_norm + special.xlogy(df / 2 - 1, w) - w / 2) if w > 0 else 0.0

    def conditional(w: float) -> float:
        # Given s = sd * sqrt(w / df): P(lower + t s/sqrt(n) < mean < upper - t s/sqrt(n)).
        half = t_crit * se_unit * math.sqrt(w / df)
        hi = special.ndtr((upper - half - true_diff) / se_unit) if math.isfinite(upper) else 1.0
        lo = special.ndtr((lower + half - true_diff) / se_unit) if math.isfinite(lower) else 0.0
        return max(hi - lo, 0.0) * chi2_pdf(w)

    # The region is empty once t * s / sqrt(n) exceeds half the margin width.
    width = upper - lower
    w_max = df * (width / (2 * t_crit * se_unit)) ** 2 if math.isfinite(width) else np.inf
    if math.isfinite(w_max):
        w_max = min(w_max, stats.chi2.ppf(1 - 1e-15, df))
    else:
        w_max = stats.chi2.ppf(1 - 1e-15, df)
    mode = max(df - 2, 0)
    points = [mode] if 0 < mode < w_max else None
    value, _ = integrate.quad(conditional, 0, w_max, points=points, limit=200, epsabs=1e-10)
    return float(min(max(value, 0.0), 1.0))


def sample_size_tost_paired(
    sd: float,
    *,
    margin: float = 0.5,
    power: float = 0.8,
    true_diff: float = 0.0,
    alpha: float = 0.05,
    n_max: int = 100_000,
) -> int:
    """Smallest number of pairs reaching ``power`` for symmetric margins +/-margin."""
    if not 0 < power < 1:
        raise ValueError("power must be in (0, 1)")
    if abs(true_diff) >= margin:
        raise ValueError("the true difference must lie inside the margins")

    def pw(n: int) -> float:
        return power_tost_paired(
            n, sd, lower=-margin, upper=margin, true_diff=true_diff, alpha=alpha
        )

    hi = 2
    while pw(hi) < power:
        hi *= 2
        if hi > n_max:
            raise ValueError(f"more than {n_max} pairs needed")
    lo = max(hi // 2, 2)
    while lo < hi:  # power is increasing in n: bisection on integers
        mid = (lo + hi) // 2
        if pw(mid) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def simulate_power_tost_paired(
    n: int,
    sd: float,
    *,
    margin: float = 0.5,
    true_diff: float = 0.0,
    alpha: float = 0.05,
    n_sim: int = 20_000,
    seed: int = 0,
) -> float:
    """Monte-Carlo power of the paired TOST (checks :func:`power_tost_paired`)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(true_diff, sd, size=(n_sim, n))
    mean, se = d.mean(axis=1), d.std(axis=1, ddof=1) / math.sqrt(n)
    t_crit = stats.t.ppf(1 - alpha, n - 1)
    reject = ((mean + margin) / se > t_crit) & ((mean - margin) / se < -t_crit)
    return float(reject.mean())


def power_table(
    sds: tuple[float, ...] = (0.6, 0.8, 1.0),
    powers: tuple[float, ...] = (0.8, 0.9),
    *,
    margin: float = 0.5,
    alpha: float = 0.05,
    true_diff: float = 0.0,
) -> pd.DataFrame:
    """Cases needed for paired TOST, one row per (sd, power)."""
    rows = [
        {
            "sd": sd,
            "target_power": p,
            "n_cases": (
                n := sample_size_tost_paired(
                    sd, margin=margin, power=p, alpha=alpha, true_diff=true_diff
                )
            ),
            "achieved_power": power_tost_paired(
                n, sd, lower=-margin, upper=margin, true_diff=true_diff, alpha=alpha
            ),
            "margin": margin,
            "alpha": alpha,
            "true_diff": true_diff,
        }
        for sd in sds
        for p in powers
    ]
    return pd.DataFrame(rows)


def components_from_fit(variance_components: dict[str, float]) -> VarianceComponents:
    """SDs for :func:`simulate_reader_study` from ``EquivalenceResult.variance_components``."""
    try:
        return VarianceComponents(
            rater=math.sqrt(max(variance_components["var_rater"], 0.0)),
            case=math.sqrt(max(variance_components["var_case"], 0.0)),
            rater_source=math.sqrt(max(variance_components["var_rater_source"], 0.0)),
            case_source=math.sqrt(max(variance_components["var_case_source"], 0.0)),
            residual=math.sqrt(max(variance_components["var_residual"], 0.0)),
        )
    except KeyError as exc:
        raise ValueError(f"variance component {exc} missing; fit with fit_mixed=True") from exc


def simulate_crossed_power(
    *,
    n_raters: int,
    n_cases: int,
    components: VarianceComponents,
    true_diff: float = 0.0,
    margin: float = 0.5,
    n_rounds: int = 1,
    likert: bool = True,
    ci_method: str = "satterthwaite",
    n_sim: int = 200,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """Probability of an equivalence verdict for the full crossed design, by simulation.

    Each simulated study is analysed exactly as the real one (same estimator and
    CI method, no MixedLM refit). Returns the rate with a binomial Monte-Carlo SE.
    """
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(n_sim):
        study = simulate_reader_study(
            n_raters=n_raters,
            n_cases=n_cases,
            difference=true_diff,
            components=components,
            n_rounds=n_rounds,
            likert=likert,
            seed=rng,
        )
        res = equivalence_test(
            study,
            margin=margin,
            n_boot=n_boot if ci_method == "bootstrap" else 0,
            seed=seed + i,
            ci_method=ci_method,  # type: ignore[arg-type]
            fit_mixed=False,
        )
        hits += res.equivalent
    rate = hits / n_sim
    return {
        "power": rate,
        "mc_se": math.sqrt(rate * (1 - rate) / n_sim),
        "n_sim": n_sim,
        "n_raters": n_raters,
        "n_cases": n_cases,
        "true_diff": true_diff,
        "margin": margin,
        "ci_method": ci_method,
    }
