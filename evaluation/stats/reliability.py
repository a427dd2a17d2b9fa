"""Inter- and intra-rater reliability: ICC, Krippendorff's alpha, weighted kappa.

ICC forms follow Shrout & Fleiss (1979) / McGraw & Wong (1996). Results carry
our own stable codes (``ICC_A1`` etc.) so callers never depend on another
library's row labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.stats.ratings import LIKERT_MAX, LIKERT_MIN, complete_ratings


@dataclass(frozen=True)
class IccResult:
    code: str  # ICC_1_1, ICC_A1, ICC_C1, ICC_1_k, ICC_Ak, ICC_Ck
    shrout_fleiss: str  # the 1979 name: ICC(1,1), ICC(2,1), ICC(3,1), ICC(1,k)...
    description: str
    value: float
    ci_low: float
    ci_high: float
    f_value: float
    df1: float
    df2: float
    p_value: float
    n_targets: int
    n_raters: int


@dataclass(frozen=True)
class _Anova:
    n: int
    k: int
    msr: float  # between targets
    msc: float  # between raters
    mse: float  # residual
    msw: float  # within targets (raters + residual)


def _two_way_anova(x: np.ndarray) -> _Anova:
    n, k = x.shape
    grand = x.mean()
    ssr = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ssc = n * np.sum((x.mean(axis=0) - grand) ** 2)
    sst = np.sum((x - grand) ** 2)
    sse = sst - ssr - ssc
    return _Anova(
        n=n,
        k=k,
        msr=ssr / (n - 1),
        msc=ssc / (k - 1),
        mse=sse / ((n - 1) * (k - 1)),
        msw=(ssc + sse) / (n * (k - 1)),
    )


def _as_matrix(matrix: np.ndarray | pd.DataFrame) -> np.ndarray:
    x = np.asarray(matrix, dtype=float)
    if x.ndim != 2:
        raise ValueError("ICC needs a 2-D targets x raters matrix")
    if np.isnan(x).any():
        raise ValueError("ICC needs a complete matrix; drop or impute incomplete targets first")
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"ICC needs at least 2 targets and 2 raters, got {x.shape}")
    return x


def icc_table(matrix: np.ndarray | pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """All six Shrout-Fleiss ICC forms with (1 - alpha) F-based CIs.

    ``matrix`` is targets (rows) x raters (columns), complete.
    """
    a = _two_way_anova(_as_matrix(matrix))
    rows = [
        _icc_oneway(a, alpha, average=False),
        _icc_agreement(a, alpha, average=False),
        _icc_consistency(a, alpha, average=False),
        _icc_oneway(a, alpha, average=True),
        _icc_agreement(a, alpha, average=True),
        _icc_consistency(a, alpha, average=True),
    ]
    return pd.DataFrame([asdict(r) for r in rows])


def icc(matrix: np.ndarray | pd.DataFrame, code: str = "ICC_A1", alpha: float = 0.05) -> IccResult:
    """One ICC form by stable code (see :class:`IccResult`)."""
    table = icc_table(matrix, alpha)
    match = table[table["code"] == code]
    if match.empty:
        raise ValueError(f"unknown ICC code {code!r}; choose from {list(table['code'])}")
    return IccResult(**match.iloc[0].to_dict())


def _f_bounds(f0: float, df1: float, df2: float, alpha: float) -> tuple[float, float]:
    fl = f0 / stats.f.ppf(1 - alpha / 2, df1, df2)
    fu = f0 * stats.f.ppf(1 - alpha / 2, df2, df1)
    return fl, fu


def _icc_oneway(a: _Anova, alpha: float, average: bool) -> IccResult:
    n, k = a.n, a.k
    f0 = a.msr / a.msw
    df1, df2 = n - 1, n * (k - 1)
    fl, fu = _f_bounds(f0, df1, df2, alpha)
    if average:
        value, lo, hi = (a.msr - a.msw) / a.msr, 1 - 1 / fl, 1 - 1 / fu
    else:
        value = (a.msr - a.msw) / (a.msr + (k - 1) * a.msw)
        lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    return IccResult(
        code="ICC_1_k" if average else "ICC_1_1",
        shrout_fleiss="ICC(1,k)" if average else "ICC(1,1)",
        description="one-way random, " + ("average of k raters" if average else "single rater"),
        value=value,
        ci_low=lo,
        ci_high=hi,
        f_value=f0,
        df1=df1,
        df2=df2,
        p_value=float(stats.f.sf(f0, df1, df2)),
        n_targets=n,
        n_raters=k,
    )


def _icc_consistency(a: _Anova, alpha: float, average: bool) -> IccResult:
    n, k = a.n, a.k
    f0 = a.msr / a.mse
    df1, df2 = n - 1, (n - 1) * (k - 1)
    fl, fu = _f_bounds(f0, df1, df2, alpha)
    if average:
        value, lo, hi = (a.msr - a.mse) / a.msr, 1 - 1 / fl, 1 - 1 / fu
    else:
        value = (a.msr - a.mse) / (a.msr + (k - 1) * a.mse)
        lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    return IccResult(
        code="ICC_Ck" if average else "ICC_C1",
        shrout_fleiss="ICC(3,k)" if average else "ICC(3,1)",
        description="two-way mixed, consistency, "
        + ("average of k raters" if average else "single rater"),
        value=value,
        ci_low=lo,
        ci_high=hi,
        f_value=f0,
        df1=df1,
        df2=df2,
        p_value=float(stats.f.sf(f0, df1, df2)),
        n_targets=n,
        n_raters=k,
    )


def _icc_agreement(a: _Anova, alpha: float, average: bool) -> IccResult:
    """ICC(A,1) / ICC(A,k), CI by McGraw & Wong (1996) Satterthwaite approximation."""
    n, k = a.n, a.k
    single = (a.msr - a.mse) / (a.msr + (k - 1) * a.mse + k * (a.msc - a.mse) / n)
    lo, hi = _agreement_ci(a, single, alpha)
    f0 = a.msr / a.mse
    df1, df2 = n - 1, (n - 1) * (k - 1)
    if average:
        value = (a.msr - a.mse) / (a.msr + (a.msc - a.mse) / n)
        # Spearman-Brown step-up of the single-rater bounds (McGraw & Wong, case 2A).
        lo, hi = (k * b / (1 + (k - 1) * b) for b in (lo, hi))
    else:
        value = single
    return IccResult(
        code="ICC_Ak" if average else "ICC_A1",
        shrout_fleiss="ICC(2,k)" if average else "ICC(2,1)",
        description="two-way random, absolute agreement, "
        + ("average of k raters" if average else "single rater"),
        value=value,
        ci_low=lo,
        ci_high=hi,
        f_value=f0,
        df1=df1,
        df2=df2,
        p_value=float(stats.f.sf(f0, df1, df2)),
        n_targets=n,
        n_raters=k,
    )


def _agreement_ci(a: _Anova, rho: float, alpha: float) -> tuple[float, float]:
    n, k = a.n, a.k
    aa = k * rho / (n * (1 - rho))
    bb = 1 + k * rho * (n - 1) / (n * (1 - rho))
    v = (aa * a.msc + bb * a.mse) ** 2 / (
        (aa * a.msc) ** 2 / (k - 1) + (bb * a.mse) ** 2 / ((n - 1) * (k - 1))
    )
    fl = stats.f.ppf(1 - alpha / 2, n - 1, v)
    fu = stats.f.ppf(1 - alpha / 2, v, n - 1)
    c = k * a.msc + (k * n - k - n) * a.mse
    lo = n * (a.msr - fl * a.mse) / (fl * c + n * a.msr)
    hi = n * (fu * a.msr - a.mse) / (c + n * fu * a.msr)
    return float(lo), float(hi)


# --------------------------------------------------------------------------- alpha


def _unit_coincidences(units: np.ndarray, n_values: int) -> np.ndarray:
    """Per-unit coincidence matrices (units x V x V) from a units x raters code matrix.

    ``units`` holds value indices 0..V-1, or -1 for missing. Units with fewer
    than two values are not pairable and contribute zero.
    """
    counts = np.zeros((units.shape[0], n_values))
    for v in range(n_values):
        counts[:, v] = (units == v).sum(axis=1)
    m = counts.sum(axis=1)
    outer = counts[:, :, None] * counts[:, None, :]
    outer -= counts[:, :, None] * np.eye(n_values)[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(m > 1, 1.0 / (m - 1), 0.0)
    return outer * scale[:, None, None]


def _ordinal_delta2(marginals: np.ndarray) -> np.ndarray:
    """Krippendorff's ordinal metric from value marginals n_g, batched over rows (B x V)."""
    v = marginals.shape[-1]
    cum = np.concatenate([np.zeros((marginals.shape[0], 1)), np.cumsum(marginals, axis=1)], axis=1)
    i, j = np.meshgrid(np.arange(v), np.arange(v), indexing="ij")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    between = cum[:, hi + 1] - cum[:, lo]
    return (between - (marginals[:, i] + marginals[:, j]) / 2) ** 2


def _alpha_from_coincidence(o: np.ndarray, level: str) -> np.ndarray:
    """Alpha for one (V x V) or a batch (B x V x V) of coincidence matrices."""
    v = o.shape[-1]
    batch = o.reshape(-1, v, v)
    marg = batch.sum(axis=2)
    total = marg.sum(axis=1)
    idx = np.arange(v)
    if level == "ordinal":
        d2 = _ordinal_delta2(marg)
    elif level == "interval":
        d2 = np.broadcast_to((idx[:, None] - idx[None, :]) ** 2.0, batch.shape)
    elif level == "nominal":
        d2 = np.broadcast_to(1.0 - np.eye(v), batch.shape)
    else:
        raise ValueError(f"unknown level of measurement {level!r}")
    d_obs = np.sum(batch * d2, axis=(1, 2))
    d_exp = np.einsum("bi,bj,bij->b", marg, marg, d2) / (total - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d_exp > 0, 1.0 - d_obs / d_exp, np.nan)


def _coded_units(matrix: np.ndarray, values: np.ndarray) -> np.ndarray:
    codes = np.full(matrix.shape, -1, dtype=int)
    for idx, val in enumerate(values):
        codes[matrix == val] = idx
    stray = ~np.isnan(matrix) & (codes < 0)
    if stray.any():
        raise ValueError(f"value {matrix[stray][0]:g} is outside the value domain {list(values)}")
    return codes


def krippendorff_alpha(
    matrix: np.ndarray | pd.DataFrame,
    *,
    level: str = "ordinal",
    values: np.ndarray | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """Krippendorff's alpha for a units x raters matrix (NaN = missing).

    ``values`` is the value domain (default 1..5, so the ordinal metric uses
    the Likert categories even when some are unused). The CI is a percentile
    bootstrap over units (cases), seeded; units are the natural resampling
    cluster here and the bootstrap reuses per-unit coincidence matrices.
    """
    x = np.asarray(matrix, dtype=float)
    dom = np.arange(LIKERT_MIN, LIKERT_MAX + 1, dtype=float) if values is None else values
    per_unit = _unit_coincidences(_coded_units(x, np.asarray(dom, dtype=float)), len(dom))
    pairable = int(np.sum(per_unit.sum(axis=(1, 2)) > 0))
    if pairable < 2:
        raise ValueError("Krippendorff's alpha needs at least two units rated by two raters")
    point = float(_alpha_from_coincidence(per_unit.sum(axis=0), level)[0])
    lo = hi = float("nan")
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        n_units = per_unit.shape[0]
        weights = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot)
        boot = weights @ per_unit.reshape(n_units, -1)
        draws = _alpha_from_coincidence(boot.reshape(n_boot, len(dom), len(dom)), level)
        lo, hi = np.nanquantile(draws, [alpha / 2, 1 - alpha / 2])
    return {
        "alpha": point,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n_units": pairable,
        "level": level,
        "n_boot": n_boot,
    }


# --------------------------------------------------------------------------- kappa


def weighted_kappa(
    a: np.ndarray,
    b: np.ndarray,
    *,
    categories: np.ndarray | None = None,
    weights: str = "quadratic",
) -> float:
    """Cohen's weighted kappa between two raters over fixed categories (default 1..5)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("weighted_kappa needs two equally long rating vectors")
    cats = np.arange(LIKERT_MIN, LIKERT_MAX + 1) if categories is None else np.asarray(categories)
    v = len(cats)
    ia, ib = np.searchsorted(cats, a), np.searchsorted(cats, b)
    if np.any(ia >= v) or np.any(cats[np.minimum(ia, v - 1)] != a) or np.any(cats[ib] != b):
        raise ValueError("ratings outside the category set")
    obs = np.zeros((v, v))
    np.add.at(obs, (ia, ib), 1.0)
    obs /= obs.sum()
    exp = np.outer(obs.sum(axis=1), obs.sum(axis=0))
    idx = np.arange(v)
    dist = np.abs(idx[:, None] - idx[None, :]) / (v - 1)
    if weights == "quadratic":
        w = dist**2
    elif weights == "linear":
        w = dist
    elif weights == "none":
        w = (dist > 0).astype(float)
    else:
        raise ValueError(f"unknown weights {weights!r}")
    denom = np.sum(w * exp)
    return float(1.0 - np.sum(w * obs) / denom) if denom > 0 else float("nan")


def mean_pairwise_kappa(matrix: pd.DataFrame, weights: str = "quadratic") -> dict[str, float]:
    """Weighted kappa averaged over all rater pairs (pairwise-complete units)."""
    values = []
    for r1, r2 in combinations(matrix.columns, 2):
        pair = matrix[[r1, r2]].dropna()
        if len(pair) >= 2:
            values.append(weighted_kappa(pair[r1].to_numpy(), pair[r2].to_numpy(), weights=weights))
    arr = np.asarray(values, dtype=float)
    return {
        "mean_kappa": float(np.nanmean(arr)) if len(arr) else float("nan"),
        "min_kappa": float(np.nanmin(arr)) if len(arr) else float("nan"),
        "max_kappa": float(np.nanmax(arr)) if len(arr) else float("nan"),
        "n_pairs": len(arr),
        "weights": weights,
    }


# --------------------------------------------------------------------------- per study


def rating_matrix(ratings: pd.DataFrame, round_: int | None = None) -> pd.DataFrame:
    """Case x rater matrix for one source/question (NaN where unrated).

    Uses the given round, or the first round each rating exists in, so that
    inter-rater reliability is not inflated by averaging repeated reads.
    """
    df = complete_ratings(ratings)
    if round_ is not None:
        df = df[df["round"] == round_]
    else:
        df = df.sort_values("round").drop_duplicates(["rater", "case"], keep="first")
    return df.pivot(index="case", columns="rater", values="score")


def source_reliability(
    ratings: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> pd.DataFrame:
    """ICC(A,1), ICC(A,k), Krippendorff alpha and mean weighted kappa per source x question.

    Input is a prepared ratings table. ICCs use complete cases (every rater
    rated the case); the number of cases dropped is reported. Alpha and kappa
    use all available ratings.
    """
    rows = []
    for (source, question), part in ratings.groupby(["source", "question"], sort=True):
        mat = rating_matrix(part)
        complete = mat.dropna()
        row: dict[str, object] = {
            "source": source,
            "question": question,
            "n_cases": int(mat.shape[0]),
            "n_raters": int(mat.shape[1]),
            "n_cases_incomplete": int(mat.shape[0] - complete.shape[0]),
        }
        if complete.shape[0] >= 2 and complete.shape[1] >= 2:
            table = icc_table(complete.to_numpy(), alpha).set_index("code")
            for code in ("ICC_A1", "ICC_Ak"):
                row[code] = table.loc[code, "value"]
                row[f"{code}_ci_low"] = table.loc[code, "ci_low"]
                row[f"{code}_ci_high"] = table.loc[code, "ci_high"]
        ka = krippendorff_alpha(mat.to_numpy(), n_boot=n_boot, seed=seed, alpha=alpha)
        row["kripp_alpha"] = ka["alpha"]
        row["kripp_alpha_ci_low"] = ka["ci_low"]
        row["kripp_alpha_ci_high"] = ka["ci_high"]
        row["weighted_kappa"] = mean_pairwise_kappa(mat)["mean_kappa"]
        rows.append(row)
    return pd.DataFrame(rows)


def intra_rater_agreement(ratings: pd.DataFrame, rounds: tuple[int, int] = (1, 2)) -> pd.DataFrame:
    """Per rater x question agreement between two reading rounds.

    Items are (case, source) pairs read in both rounds. Reports ICC(A,1) with
    the two rounds as "raters", quadratic-weighted kappa and exact agreement.
    """
    df = complete_ratings(ratings)
    df = df[df["round"].isin(rounds)]
    rows = []
    for (rater, question), part in df.groupby(["rater", "question"], sort=True):
        wide = part.pivot_table(
            index=["case", "source"], columns="round", values="score", aggfunc="first"
        )
        if not set(rounds) <= set(wide.columns):
            continue
        pair = wide[list(rounds)].dropna()
        row = {"rater": rater, "question": question, "n_items": len(pair)}
        if len(pair) >= 2:
            first, second = pair[rounds[0]].to_numpy(), pair[rounds[1]].to_numpy()
            row["icc_A1"] = (
                icc(pair.to_numpy(), "ICC_A1").value if np.ptp(pair.to_numpy()) else np.nan
            )
            row["weighted_kappa"] = weighted_kappa(first, second)
            row["exact_agreement"] = float(np.mean(first == second))
            row["mean_change"] = float(np.mean(second - first))
        rows.append(row)
    return pd.DataFrame(rows)
