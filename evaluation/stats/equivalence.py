"""Equivalence of X-ray and CT derived models in a crossed reader study.

Primary analysis per question: the X-ray - CT difference in mean score, from the
crossed random-effects model

    score ~ source + (1|rater) + (1|case) + (1|rater:source) + (1|case:source)

with a 90% CI judged against a pre-specified margin (TOST, alpha 0.05 a side).

Three interval estimates are reported, named:

- ``bootstrap``: two-way (pigeonhole) cluster bootstrap, raters and cases
  resampled independently (seeded). Inside the bootstrap the difference is the
  mean over (rater, case) cells of the paired cell-mean difference
  XRAY - CT (rounds averaged). Rater and case main effects cancel within a
  cell, and for a balanced design this equals the REML fixed effect, so it is
  a fast and exact stand-in for refitting the mixed model 2,000 times.
- ``satterthwaite``: method-of-moments for the same model. The paired cell
  differences D[r, c] follow a two-way crossed random model whose grand-mean
  variance is (MS_rater + MS_case - MS_resid) / (R C), with Satterthwaite
  degrees of freedom: a t interval honest for 10 raters (the
  Dorfman-Berbaum-Metz idea for reader studies). Uses cases rated by every
  rater under both sources (complete cases, counted in the result).
- ``mixedlm_wald``: the REML fit of the full crossed model (our profiled
  REML, equal to statsmodels MixedLM with ``vc_formula`` in one dummy group;
  see :mod:`evaluation.stats.mixed`); z-based, too narrow with few raters,
  reported for reference and the source of the variance components.

The verdict uses ``ci_method`` (default ``satterthwaite``; see the simulation
tests for the calibration of both).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from evaluation.stats.mixed import fit_crossed_reml
from evaluation.stats.ratings import (
    CT,
    XRAY,
    cell_means,
    complete_ratings,
    normalise_source,
    paired_difference_matrix,
)

CiMethod = Literal["bootstrap", "satterthwaite", "mixedlm_wald"]
CI_METHODS: tuple[str, ...] = ("bootstrap", "satterthwaite", "mixedlm_wald")


@dataclass(frozen=True)
class Interval:
    method: str
    estimate: float
    ci_low: float
    ci_high: float
    p_tost: float
    se: float
    df: float


@dataclass(frozen=True)
class EquivalenceResult:
    question: str
    test: str
    reference: str
    margin: float
    ci_level: float
    ci_method: str
    estimate: float
    ci_low: float
    ci_high: float
    p_tost: float
    equivalent: bool
    mean_test: float
    mean_reference: float
    n_raters: int
    n_cases: int
    n_ratings: int
    n_cells_paired: int
    n_cases_complete: int
    intervals: tuple[Interval, ...]
    variance_components: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["intervals"] = {i.method: asdict(i) for i in self.intervals}
        return out


# --------------------------------------------------------------------------- TOST


def tost_t(estimate: float, se: float, df: float, margin: float) -> float:
    """TOST p-value for H0: |diff| >= margin with a t (or z if df=inf) pivot."""
    if se <= 0 or not np.isfinite(se):
        return float("nan")
    p_lower = stats.t.sf((estimate + margin) / se, df)
    p_upper = stats.t.cdf((estimate - margin) / se, df)
    return float(max(p_lower, p_upper))


def t_interval(estimate: float, se: float, df: float, level: float) -> tuple[float, float]:
    q = stats.t.ppf(0.5 + level / 2, df)
    return estimate - q * se, estimate + q * se


# --------------------------------------------------------------------------- estimators


def bootstrap_differences(
    diff_matrix: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Two-way cluster bootstrap of the mean paired cell difference.

    ``diff_matrix`` is raters x cases (NaN = unpaired). Raters and cases are
    resampled independently with replacement; each draw is the mean over the
    resampled cells that are paired.
    """
    d = np.asarray(diff_matrix, dtype=float)
    observed = ~np.isnan(d)
    d0 = np.where(observed, d, 0.0)
    n_r, n_c = d.shape
    w_r = rng.multinomial(n_r, np.full(n_r, 1.0 / n_r), size=n_boot).astype(float)
    w_c = rng.multinomial(n_c, np.full(n_c, 1.0 / n_c), size=n_boot).astype(float)
    num = np.einsum("br,rc,bc->b", w_r, d0, w_c)
    den = np.einsum("br,rc,bc->b", w_r, observed.astype(float), w_c)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def bootstrap_interval(
    diff_matrix: np.ndarray, margin: float, level: float, n_boot: int, seed: int
) -> Interval:
    d = np.asarray(diff_matrix, dtype=float)
    estimate = float(np.nanmean(d))
    draws = bootstrap_differences(d, n_boot, np.random.default_rng(seed))
    draws = draws[np.isfinite(draws)]
    lo, hi = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
    # p-value by inverting the percentile interval; +1 keeps it off zero.
    p_lower = (1 + np.sum(draws <= -margin)) / (len(draws) + 1)
    p_upper = (1 + np.sum(draws >= margin)) / (len(draws) + 1)
    return Interval(
        method="bootstrap",
        estimate=estimate,
        ci_low=float(lo),
        ci_high=float(hi),
        p_tost=float(max(p_lower, p_upper)),
        se=float(np.std(draws, ddof=1)),
        df=float("inf"),
    )


def crossed_anova(diff_matrix: np.ndarray) -> dict[str, float]:
    """Method-of-moments fit of D[r,c] = mu + a_r + b_c + e_rc on a complete matrix.

    Returns the grand mean, its variance (floored at the pure-residual value
    when the moment combination goes negative) and Satterthwaite df, plus the
    variance components of the paired differences.
    """
    d = np.asarray(diff_matrix, dtype=float)
    n_r, n_c = d.shape
    grand = d.mean()
    ms_r = n_c * np.sum((d.mean(axis=1) - grand) ** 2) / (n_r - 1)
    ms_c = n_r * np.sum((d.mean(axis=0) - grand) ** 2) / (n_c - 1)
    resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + grand
    df_e = (n_r - 1) * (n_c - 1)
    ms_e = np.sum(resid**2) / df_e
    combo = ms_r + ms_c - ms_e
    if combo > ms_e:
        df = combo**2 / (ms_r**2 / (n_r - 1) + ms_c**2 / (n_c - 1) + ms_e**2 / df_e)
    else:
        combo, df = ms_e, df_e
    return {
        "estimate": float(grand),
        "variance": float(combo / (n_r * n_c)),
        "df": float(df),
        "var_rater_x_source": float(max((ms_r - ms_e) / n_c, 0.0) / 2),
        "var_case_x_source": float(max((ms_c - ms_e) / n_r, 0.0) / 2),
        "var_cell_residual": float(ms_e / 2),
    }


def satterthwaite_interval(diff_matrix: pd.DataFrame, margin: float, level: float) -> Interval:
    complete = diff_matrix.dropna(axis=1, how="any")
    if complete.shape[0] < 2 or complete.shape[1] < 2:
        nan = float("nan")
        return Interval("satterthwaite", nan, nan, nan, nan, nan, nan)
    fit = crossed_anova(complete.to_numpy())
    se = float(np.sqrt(fit["variance"]))
    lo, hi = t_interval(fit["estimate"], se, fit["df"], level)
    return Interval(
        method="satterthwaite",
        estimate=fit["estimate"],
        ci_low=lo,
        ci_high=hi,
        p_tost=tost_t(fit["estimate"], se, fit["df"], margin),
        se=se,
        df=fit["df"],
    )


def fit_crossed_mixed_model(
    ratings: pd.DataFrame,
    test: str = XRAY,
    reference: str = CT,
    engine: Literal["reml", "statsmodels"] = "reml",
) -> dict[str, float]:
    """REML fit of the crossed model; fixed-effect difference (test - reference).

    ``engine='reml'`` is the profiled REML of :mod:`evaluation.stats.mixed`
    (seconds); ``'statsmodels'`` is MixedLM with ``vc_formula`` in one dummy
    group (the same model, tested equal, but minutes at the study size).
    Returns the estimate, its Wald SE and the variance components (rater,
    case, rater:source, case:source, residual).
    """
    df = complete_ratings(ratings)
    df = df[df["source"].isin([test, reference])].copy()
    df["is_test"] = (df["source"] == test).astype(float)
    factors = {
        "rater": df["rater"].to_numpy(),
        "case": df["case"].to_numpy(),
        "rater_source": (df["rater"] + "|" + df["source"]).to_numpy(),
        "case_source": (df["case"] + "|" + df["source"]).to_numpy(),
    }
    if engine == "reml":
        x = np.column_stack([np.ones(len(df)), df["is_test"].to_numpy()])
        fit = fit_crossed_reml(df["score"].to_numpy(), x, factors)
        estimate, se, converged = fit.coef[1], fit.se[1], fit.converged
        comps = fit.variances
    elif engine == "statsmodels":
        estimate, se, converged, comps = _fit_statsmodels(df, factors)
    else:
        raise ValueError(f"engine must be 'reml' or 'statsmodels', got {engine!r}")
    return {
        "estimate": float(estimate),
        "se": float(se),
        "converged": bool(converged),
        **{f"var_{k}": float(v) for k, v in comps.items()},
    }


def _fit_statsmodels(
    df: pd.DataFrame, factors: dict[str, np.ndarray]
) -> tuple[float, float, bool, dict[str, float]]:
    import statsmodels.formula.api as smf

    data = df.assign(one=1, **factors)
    vc = {name: f"0 + C({name})" for name in factors}
    model = smf.mixedlm("score ~ is_test", data, groups="one", vc_formula=vc, re_formula="0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; we report `converged`
        fit = model.fit(reml=True, method=["lbfgs"])
    comps = dict(zip(model.exog_vc.names, np.asarray(fit.vcomp, dtype=float), strict=True))
    comps["residual"] = float(fit.scale)
    return (
        float(fit.fe_params["is_test"]),
        float(fit.bse_fe["is_test"]),
        bool(fit.converged),
        comps,
    )


def mixedlm_interval(fit: dict[str, float], margin: float, level: float) -> Interval:
    est, se = fit["estimate"], fit["se"]
    lo, hi = t_interval(est, se, np.inf, level)
    return Interval("mixedlm_wald", est, lo, hi, tost_t(est, se, np.inf, margin), se, np.inf)


# --------------------------------------------------------------------------- primary


def equivalence_test(
    ratings: pd.DataFrame,
    *,
    margin: float = 0.5,
    level: float = 0.90,
    n_boot: int = 2000,
    seed: int = 0,
    ci_method: CiMethod = "satterthwaite",
    fit_mixed: bool = True,
    test: str = XRAY,
    reference: str = CT,
    question: str | None = None,
) -> EquivalenceResult:
    """Equivalence of test vs reference for one question of a prepared ratings table."""
    if ci_method not in CI_METHODS:
        raise ValueError(f"ci_method must be one of {CI_METHODS}, got {ci_method!r}")
    if ci_method == "mixedlm_wald" and not fit_mixed:
        raise ValueError("ci_method 'mixedlm_wald' needs fit_mixed=True")
    if margin <= 0:
        raise ValueError("the equivalence margin must be positive")
    questions = ratings["question"].unique()
    if question is None and len(questions) > 1:
        raise ValueError("equivalence_test takes one question; use reader_study_equivalence")
    data = complete_ratings(ratings)
    dmat = paired_difference_matrix(data, test, reference)
    if dmat.notna().sum().sum() < 2:
        raise ValueError("fewer than two (rater, case) cells rated under both sources")
    intervals = [
        bootstrap_interval(dmat.to_numpy(), margin, level, n_boot, seed) if n_boot > 0 else None,
        satterthwaite_interval(dmat, margin, level),
    ]
    components: dict[str, float] = {}
    if fit_mixed:
        fit = fit_crossed_mixed_model(data, test, reference)
        intervals.append(mixedlm_interval(fit, margin, level))
        components = {k: v for k, v in fit.items() if k.startswith("var_")}
        components["converged"] = float(fit["converged"])
    present = tuple(i for i in intervals if i is not None)
    chosen = next((i for i in present if i.method == ci_method), None)
    if chosen is None:
        raise ValueError(f"ci_method {ci_method!r} was not computed (n_boot=0?)")
    means = cell_means(data).groupby("source")["score"].mean()
    return EquivalenceResult(
        question=str(question if question is not None else questions[0]),
        test=test,
        reference=reference,
        margin=margin,
        ci_level=level,
        ci_method=ci_method,
        estimate=chosen.estimate,
        ci_low=chosen.ci_low,
        ci_high=chosen.ci_high,
        p_tost=chosen.p_tost,
        equivalent=bool(-margin < chosen.ci_low and chosen.ci_high < margin),
        mean_test=float(means.get(test, np.nan)),
        mean_reference=float(means.get(reference, np.nan)),
        n_raters=int(data["rater"].nunique()),
        n_cases=int(data["case"].nunique()),
        n_ratings=len(data),
        n_cells_paired=int(dmat.notna().sum().sum()),
        n_cases_complete=int(dmat.dropna(axis=1, how="any").shape[1]),
        intervals=present,
        variance_components=components,
    )


def reader_study_equivalence(
    ratings: pd.DataFrame, **kwargs: object
) -> tuple[pd.DataFrame, list[EquivalenceResult]]:
    """Run :func:`equivalence_test` per question; tidy table plus full results."""
    results = [
        equivalence_test(part, question=str(q), **kwargs)  # type: ignore[arg-type]
        for q, part in ratings.groupby("question", sort=True)
    ]
    table = pd.DataFrame(
        [
            {k: v for k, v in asdict(r).items() if k not in ("intervals", "variance_components")}
            for r in results
        ]
    )
    return table, results


def intervals_table(results: list[EquivalenceResult]) -> pd.DataFrame:
    """Long table of every interval method per question (for forest plots)."""
    rows = [
        {"question": r.question, "margin": r.margin, **asdict(i)}
        for r in results
        for i in r.intervals
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- sensitivity


def case_means(ratings: pd.DataFrame, test: str = XRAY, reference: str = CT) -> pd.DataFrame:
    """Per case mean over raters and rounds for each source; only cases with both."""
    cells = cell_means(ratings)
    wide = cells.groupby(["case", "source"])["score"].mean().unstack("source")
    return wide[[test, reference]].dropna()


def paired_tost_case_means(
    ratings: pd.DataFrame, margin: float = 0.5, test: str = XRAY, reference: str = CT
) -> dict[str, float]:
    """Paired TOST on case means (statsmodels ttost_paired); ignores rater variance."""
    wide = case_means(ratings, test, reference)
    x, y = wide[test].to_numpy(), wide[reference].to_numpy()
    p, lower, upper = ttost_paired(x, y, -margin, margin)
    diff = x - y
    n = len(diff)
    se = diff.std(ddof=1) / np.sqrt(n)
    lo, hi = t_interval(diff.mean(), se, n - 1, 0.90)
    return {
        "estimate": float(diff.mean()),
        "ci_low": lo,
        "ci_high": hi,
        "p_tost": float(p),
        "p_lower": float(lower[1]),
        "p_upper": float(upper[1]),
        "n_cases": n,
        "equivalent": bool(-margin < lo and hi < margin),
    }


def wilcoxon_case_means(
    ratings: pd.DataFrame,
    test: str = XRAY,
    reference: str = CT,
    zero_method: str = "pratt",
    method: str = "approx",
) -> dict[str, float]:
    """Wilcoxon signed-rank on case-mean differences (a difference test, not TOST).

    ``zero_method='pratt'`` keeps zero differences in the ranking, the usual
    choice with Likert ties. ``method='approx'`` is the normal approximation
    with tie correction (scipy's permutation fallback for ties is slow); pass
    ``'auto'`` for small samples. Both are returned with the result.
    """
    wide = case_means(ratings, test, reference)
    diff = (wide[test] - wide[reference]).to_numpy()
    res = stats.wilcoxon(diff, zero_method=zero_method, method=method)
    return {
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "median_difference": float(np.median(diff)),
        "n_cases": len(diff),
        "n_zero": int(np.sum(diff == 0)),
        "zero_method": zero_method,
        "method": method,
    }


def per_rater_differences(
    ratings: pd.DataFrame, test: str = XRAY, reference: str = CT, level: float = 0.90
) -> pd.DataFrame:
    """Per-rater mean paired difference over cases with a t CI (forest plot input)."""
    dmat = paired_difference_matrix(complete_ratings(ratings), test, reference)
    rows = []
    for rater, row in dmat.iterrows():
        d = row.dropna().to_numpy()
        n = len(d)
        est = float(d.mean()) if n else float("nan")
        lo = hi = float("nan")
        if n >= 2:
            lo, hi = t_interval(est, d.std(ddof=1) / np.sqrt(n), n - 1, level)
        rows.append({"rater": rater, "estimate": est, "ci_low": lo, "ci_high": hi, "n_cases": n})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- discrimination


def binomial_tost(
    successes: int, trials: int, *, p0: float = 0.5, margin: float = 0.1, level: float = 0.90
) -> dict[str, float]:
    """Exact binomial TOST that a proportion lies within p0 +/- margin.

    For "raters cannot tell the source": accuracy equivalent to 50%. Guesses
    are treated as independent (clustering by rater is ignored: a lower bound
    on uncertainty, stated).
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError("need 0 <= successes <= trials and trials > 0")
    lo_bound, hi_bound = p0 - margin, p0 + margin
    p_lower = stats.binom.sf(successes - 1, trials, lo_bound)  # P(X >= k | p = p0 - m)
    p_upper = stats.binom.cdf(successes, trials, hi_bound)  # P(X <= k | p = p0 + m)
    alpha = 1 - level
    ci_low = stats.beta.ppf(alpha / 2, successes, trials - successes + 1) if successes else 0.0
    ci_high = (
        stats.beta.ppf(1 - alpha / 2, successes + 1, trials - successes)
        if successes < trials
        else 1.0
    )
    p = float(max(p_lower, p_upper))
    return {
        "accuracy": successes / trials,
        "successes": successes,
        "trials": trials,
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "p_tost": p,
        "equivalent": bool(p < alpha / 2),
        "margin": margin,
        "p0": p0,
    }


def source_discrimination(
    guesses: pd.DataFrame, *, margin: float = 0.1, truth: str = "source", guess: str = "guess"
) -> dict[str, float]:
    """Accuracy of source guesses with a binomial TOST against 50%."""
    for col in (truth, guess):
        if col not in guesses.columns:
            raise ValueError(f"missing column {col!r}")
    data = guesses[[truth, guess]].dropna()
    correct = normalise_source(data[truth]) == normalise_source(data[guess])
    return binomial_tost(int(correct.sum()), len(correct), margin=margin)
