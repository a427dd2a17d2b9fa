"""Osteotomy-guide trial: non-inferiority of angular deviation, time, success.

The trial table is long, one row per guide placement: surgeon, bone, arm,
period (order), planned, achieved (degrees) and optionally time (seconds).
``test`` and ``reference`` name the arms (e.g. "XRAY" and "CT" guides).

Mixed models use the profiled REML of :mod:`evaluation.stats.mixed`
(tested equal to statsmodels MixedLM). Small-sample reference distribution:
Wald SEs with a t
quantile with df = (number of bones with both arms) - 1, the pairing unit,
which is conservative relative to z and to residual df.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.stats.mixed import fit_crossed_reml

REQUIRED = ("surgeon", "bone", "arm", "period", "planned", "achieved")


def _check(
    trial: pd.DataFrame, test: str, reference: str, extra: tuple[str, ...] = ()
) -> pd.DataFrame:
    missing = [c for c in (*REQUIRED, *extra) if c not in trial.columns]
    if missing:
        raise ValueError(f"trial table lacks column(s): {missing}")
    arms = set(trial["arm"].astype(str))
    if not {test, reference} <= arms:
        raise ValueError(f"trial needs arms {test!r} and {reference!r}, found {sorted(arms)}")
    df = trial.copy()
    df["arm"] = df["arm"].astype(str)
    df = df[df["arm"].isin([test, reference])]
    for col in ("planned", "achieved", *extra):
        df[col] = pd.to_numeric(df[col], errors="raise")
    df["surgeon"], df["bone"] = df["surgeon"].astype(str), df["bone"].astype(str)
    df["is_test"] = (df["arm"] == test).astype(float)
    return df


def _n_paired_bones(df: pd.DataFrame) -> int:
    return int((df.groupby("bone")["arm"].nunique() == 2).sum())


def _fit_arm_effect(df: pd.DataFrame, outcome: str) -> dict[str, float]:
    """outcome ~ arm + period + (1|surgeon) + (1|bone), REML (profiled, crossed)."""
    periods = pd.get_dummies(df["period"].astype(str), drop_first=True, dtype=float)
    x = np.column_stack([np.ones(len(df)), df["is_test"].to_numpy(), periods.to_numpy()])
    factors = {"surgeon": df["surgeon"].to_numpy(), "bone": df["bone"].to_numpy()}
    fit = fit_crossed_reml(df[outcome].to_numpy(dtype=float), x, factors)
    return {
        "estimate": float(fit.coef[1]),
        "se": float(fit.se[1]),
        "converged": fit.converged,
        "var_surgeon": fit.variances["surgeon"],
        "var_bone": fit.variances["bone"],
        "var_residual": fit.variances["residual"],
    }


def angular_noninferiority(
    trial: pd.DataFrame,
    *,
    test: str = "XRAY",
    reference: str = "CT",
    margin: float = 2.0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Non-inferiority of |achieved - planned| (test - reference < margin degrees).

    One-sided: non-inferior if the upper (1 - alpha) bound of the mean
    difference in absolute deviation is below ``margin``.
    """
    if margin <= 0:
        raise ValueError("margin must be positive")
    df = _check(trial, test, reference)
    df["deviation"] = (df["achieved"] - df["planned"]).abs()
    fit = _fit_arm_effect(df, "deviation")
    dof = max(_n_paired_bones(df) - 1, 1)
    upper = fit["estimate"] + stats.t.ppf(1 - alpha, dof) * fit["se"]
    p = float(stats.t.cdf((fit["estimate"] - margin) / fit["se"], dof))
    means = df.groupby("arm")["deviation"].mean()
    return {
        **fit,
        "mean_deviation_test": float(means[test]),
        "mean_deviation_reference": float(means[reference]),
        "upper_bound": float(upper),
        "df": float(dof),
        "margin": margin,
        "alpha": alpha,
        "p_noninferiority": p,
        "noninferior": bool(upper < margin),
        "n_placements": len(df),
    }


def time_equivalence(
    trial: pd.DataFrame,
    *,
    test: str = "XRAY",
    reference: str = "CT",
    ratio_bounds: tuple[float, float] = (0.8, 1.25),
    level: float = 0.90,
    time_column: str = "time",
) -> dict[str, float]:
    """TOST on log time: the geometric-mean ratio test / reference within bounds."""
    lo_b, hi_b = ratio_bounds
    if not 0 < lo_b < 1 < hi_b:
        raise ValueError("ratio bounds must satisfy 0 < low < 1 < high")
    df = _check(trial, test, reference, extra=(time_column,))
    if (df[time_column] <= 0).any():
        raise ValueError("times must be positive to take logs")
    df["log_time"] = np.log(df[time_column])
    fit = _fit_arm_effect(df, "log_time")
    dof = max(_n_paired_bones(df) - 1, 1)
    est, se = fit["estimate"], fit["se"]
    q = stats.t.ppf(0.5 + level / 2, dof)
    p_low = stats.t.sf((est - math.log(lo_b)) / se, dof)
    p_high = stats.t.cdf((est - math.log(hi_b)) / se, dof)
    ci = (math.exp(est - q * se), math.exp(est + q * se))
    return {
        "ratio": math.exp(est),
        "ci_low": ci[0],
        "ci_high": ci[1],
        "p_tost": float(max(p_low, p_high)),
        "equivalent": bool(lo_b < ci[0] and ci[1] < hi_b),
        "df": float(dof),
        "ratio_low": lo_b,
        "ratio_high": hi_b,
        "converged": fit["converged"],
    }


def _wilson(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def newcombe_paired_ci(
    both: int, test_only: int, reference_only: int, neither: int, level: float = 0.95
):
    """Newcombe (1998) method 10 CI for p_test - p_reference from a paired 2x2 table."""
    a, b, c, d = both, test_only, reference_only, neither
    n = a + b + c + d
    if n == 0 or min(a, b, c, d) < 0:
        raise ValueError("paired counts must be non-negative with a positive total")
    z = stats.norm.ppf(0.5 + level / 2)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, z)
    l2, u2 = _wilson(a + c, n, z)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    # Newcombe's corrected phi: shrink positive association by n/2.
    corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = corrected / math.sqrt(denom) if denom > 0 else 0.0
    diff = p1 - p2
    delta = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    eps = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return diff, max(diff - delta, -1.0), min(diff + eps, 1.0)


def success_paired(
    trial: pd.DataFrame,
    *,
    test: str = "XRAY",
    reference: str = "CT",
    tolerance: float = 2.0,
    level: float = 0.95,
    pair_on: tuple[str, ...] = ("surgeon", "bone"),
) -> dict[str, float]:
    """Share of placements within +/-tolerance degrees; paired difference (Newcombe CI)."""
    df = _check(trial, test, reference)
    df["success"] = (df["achieved"] - df["planned"]).abs() <= tolerance
    wide = df.pivot_table(index=list(pair_on), columns="arm", values="success", aggfunc="first")
    paired = wide[[test, reference]].dropna().astype(bool)
    t, r = paired[test].to_numpy(), paired[reference].to_numpy()
    counts = (int(np.sum(t & r)), int(np.sum(t & ~r)), int(np.sum(~t & r)), int(np.sum(~t & ~r)))
    diff, lo, hi = newcombe_paired_ci(*counts, level=level)
    return {
        "success_test": float(t.mean()),
        "success_reference": float(r.mean()),
        "difference": diff,
        "ci_low": lo,
        "ci_high": hi,
        "ci_method": "newcombe-10",
        "n_pairs": len(paired),
        "n_unpaired": int(len(wide) - len(paired)),
        "both": counts[0],
        "test_only": counts[1],
        "reference_only": counts[2],
        "neither": counts[3],
        "tolerance": tolerance,
    }


def simulate_guide_trial(
    *,
    n_surgeons: int = 4,
    n_bones: int = 20,
    deviation_shift: float = 0.0,
    time_ratio: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Crossover trial: each surgeon places both guides on each of their bones, order alternating."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_surgeons):
        skill = rng.normal(0, 0.5)
        speed = rng.normal(0, 0.15)
        for b in range(n_bones):
            planned = rng.uniform(6, 12)
            bone_eff = rng.normal(0, 0.5)
            bone_time = rng.normal(0, 0.1)
            order = ("CT", "XRAY") if (s + b) % 2 == 0 else ("XRAY", "CT")
            for period, arm in enumerate(order, start=1):
                spread = abs(1.2 + skill + bone_eff + (deviation_shift if arm == "XRAY" else 0.0))
                error = rng.normal(0, max(spread, 0.1))
                log_t = math.log(300) + speed + bone_time + rng.normal(0, 0.15)
                log_t += math.log(time_ratio) if arm == "XRAY" else 0.0
                rows.append(
                    {
                        "surgeon": f"S{s}",
                        "bone": f"S{s}B{b:02d}",
                        "arm": arm,
                        "period": period,
                        "planned": planned,
                        "achieved": planned + error,
                        "time": math.exp(log_t),
                    }
                )
    return pd.DataFrame(rows)
