"""Agreement of X-ray and CT derived alignment angles: Bland-Altman, ICC, CPAK kappa.

Angle conventions follow the shared alignment notes: degrees, aHKA = MPTA - LDFA
(negative = varus), JLO = MPTA + LDFA; CPAK boundary values count as neutral.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.stats.reliability import icc_table, weighted_kappa

LoaMethod = Literal["exact", "approximate"]

CPAK_AHKA_NEUTRAL = 2.0  # |aHKA| <= 2 is neutral
CPAK_JLO_LOW, CPAK_JLO_HIGH = 177.0, 183.0  # 177 <= JLO <= 183 is neutral
_CPAK_TYPES = np.array([["I", "II", "III"], ["IV", "V", "VI"], ["VII", "VIII", "IX"]])
CPAK_ORDER: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX")


def bland_altman(
    test: np.ndarray,
    reference: np.ndarray,
    *,
    level: float = 0.95,
    ci_level: float = 0.95,
    loa_ci: LoaMethod = "exact",
) -> dict[str, float]:
    """Bias and limits of agreement of test - reference, with CIs.

    LoA CIs: ``exact`` uses the noncentral t distribution of the sample
    quantile d + z s (as in Carkeet 2015); ``approximate`` is Bland & Altman
    (1999): SE(LoA) = sqrt(3 s^2 / n) with a t quantile. The slope of the
    difference on the mean tests proportional bias.
    """
    x, y = np.asarray(test, dtype=float), np.asarray(reference, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("bland_altman needs two equally long 1-D arrays")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("bland_altman: drop missing pairs first (count them in the report)")
    n = len(x)
    if n < 3:
        raise ValueError("bland_altman needs at least 3 pairs")
    d = x - y
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    z = stats.norm.ppf(0.5 + level / 2)
    tq = stats.t.ppf(0.5 + ci_level / 2, n - 1)
    half_bias = tq * sd / math.sqrt(n)
    loa_low, loa_high = bias - z * sd, bias + z * sd
    if loa_ci == "exact":
        q = stats.nct.ppf([0.5 - ci_level / 2, 0.5 + ci_level / 2], n - 1, z * math.sqrt(n))
        k_lo, k_hi = q / math.sqrt(n)
        high_ci = (bias + k_lo * sd, bias + k_hi * sd)
        low_ci = (bias - k_hi * sd, bias - k_lo * sd)
    elif loa_ci == "approximate":
        se_loa = math.sqrt(3 * sd**2 / n)
        high_ci = (loa_high - tq * se_loa, loa_high + tq * se_loa)
        low_ci = (loa_low - tq * se_loa, loa_low + tq * se_loa)
    else:
        raise ValueError(f"loa_ci must be 'exact' or 'approximate', got {loa_ci!r}")
    mean = (x + y) / 2
    slope = stats.linregress(mean, d) if np.ptp(mean) > 0 else None
    return {
        "n": n,
        "bias": bias,
        "bias_ci_low": bias - half_bias,
        "bias_ci_high": bias + half_bias,
        "sd_diff": sd,
        "loa_low": loa_low,
        "loa_low_ci_low": float(low_ci[0]),
        "loa_low_ci_high": float(low_ci[1]),
        "loa_high": loa_high,
        "loa_high_ci_low": float(high_ci[0]),
        "loa_high_ci_high": float(high_ci[1]),
        "loa_ci_method": loa_ci,
        "level": level,
        "ci_level": ci_level,
        "proportional_bias_slope": float(slope.slope) if slope else float("nan"),
        "proportional_bias_p": float(slope.pvalue) if slope else float("nan"),
    }


def angle_agreement(
    angles: pd.DataFrame,
    *,
    test: str = "XRAY",
    reference: str = "CT",
    loa_ci: LoaMethod = "exact",
) -> pd.DataFrame:
    """Per angle: Bland-Altman and ICC(A,1)/ICC(C,1) between test and reference.

    ``angles`` is long: case, angle (e.g. MPTA, LDFA, aHKA), source, value.
    Cases lacking either source are counted in ``n_unpaired`` and left out.
    """
    needed = {"case", "angle", "source", "value"}
    if missing := needed - set(angles.columns):
        raise ValueError(f"angles table lacks column(s): {sorted(missing)}")
    rows = []
    for angle, part in angles.groupby("angle", sort=True):
        wide = part.pivot_table(index="case", columns="source", values="value", aggfunc="mean")
        if test not in wide or reference not in wide:
            raise ValueError(f"angle {angle!r} needs both {test} and {reference} values")
        paired = wide[[test, reference]].dropna()
        row: dict[str, object] = {"angle": angle, "n_unpaired": int(len(wide) - len(paired))}
        row.update(
            bland_altman(paired[test].to_numpy(), paired[reference].to_numpy(), loa_ci=loa_ci)
        )
        table = icc_table(paired.to_numpy()).set_index("code")
        for code in ("ICC_A1", "ICC_C1"):
            row[code] = table.loc[code, "value"]
            row[f"{code}_ci_low"] = table.loc[code, "ci_low"]
            row[f"{code}_ci_high"] = table.loc[code, "ci_high"]
        rows.append(row)
    return pd.DataFrame(rows)


def cpak_classify(mpta: np.ndarray, ldfa: np.ndarray) -> pd.DataFrame:
    """CPAK type (MacDessi 2021) with aHKA, JLO and distance to the nearest boundary."""
    mpta, ldfa = np.asarray(mpta, dtype=float), np.asarray(ldfa, dtype=float)
    ahka, jlo = mpta - ldfa, mpta + ldfa
    col = np.where(ahka < -CPAK_AHKA_NEUTRAL, 0, np.where(ahka > CPAK_AHKA_NEUTRAL, 2, 1))
    row = np.where(jlo < CPAK_JLO_LOW, 0, np.where(jlo > CPAK_JLO_HIGH, 2, 1))
    dist_ahka = np.min(
        np.abs(ahka[:, None] - np.array([-CPAK_AHKA_NEUTRAL, CPAK_AHKA_NEUTRAL])), axis=1
    )
    dist_jlo = np.min(np.abs(jlo[:, None] - np.array([CPAK_JLO_LOW, CPAK_JLO_HIGH])), axis=1)
    return pd.DataFrame(
        {
            "ahka": ahka,
            "jlo": jlo,
            "ahka_class": np.array(["varus", "neutral", "valgus"])[col],
            "jlo_class": np.array(["apex distal", "neutral", "apex proximal"])[row],
            "cpak": _CPAK_TYPES[row, col],
            "boundary_distance": np.minimum(dist_ahka, dist_jlo),
        }
    )


def cohen_kappa(a: np.ndarray, b: np.ndarray, categories: tuple[str, ...]) -> float:
    """Unweighted Cohen's kappa over a fixed category set."""
    index = {c: i for i, c in enumerate(categories)}
    try:
        ia = np.array([index[v] for v in a])
        ib = np.array([index[v] for v in b])
    except KeyError as exc:
        raise ValueError(f"category {exc} not in {categories}") from exc
    return weighted_kappa(ia, ib, categories=np.arange(len(categories)), weights="none")


def cpak_agreement(
    alignment: pd.DataFrame,
    *,
    test: str = "XRAY",
    reference: str = "CT",
    n_boot: int = 2000,
    seed: int = 0,
    ci_level: float = 0.95,
) -> dict[str, object]:
    """Agreement of CPAK types between sources, with a case-bootstrap CI for kappa.

    ``alignment`` has columns case, source, mpta, ldfa. Returns kappa,
    percentage agreement, the 9 x 9 confusion table and per-case types with the
    reference boundary distance (disagreements cluster near boundaries).
    """
    needed = {"case", "source", "mpta", "ldfa"}
    if missing := needed - set(alignment.columns):
        raise ValueError(f"alignment table lacks column(s): {sorted(missing)}")
    typed = alignment.reset_index(drop=True).join(
        cpak_classify(alignment["mpta"].to_numpy(), alignment["ldfa"].to_numpy())
    )
    wide = typed.pivot_table(
        index="case", columns="source", values="cpak", aggfunc="first"
    ).dropna()
    dist = typed[typed["source"] == reference].set_index("case")["boundary_distance"]
    a, b = wide[test].to_numpy(), wide[reference].to_numpy()
    kappa = cohen_kappa(a, b, CPAK_ORDER)
    rng = np.random.default_rng(seed)
    draws = (
        np.array(
            [
                cohen_kappa(a[idx], b[idx], CPAK_ORDER)
                for idx in rng.integers(0, len(a), (n_boot, len(a)))
            ]
        )
        if n_boot
        else np.array([np.nan])
    )
    lo, hi = np.nanquantile(draws, [0.5 - ci_level / 2, 0.5 + ci_level / 2])
    per_case = pd.DataFrame(
        {
            "case": wide.index,
            test: a,
            reference: b,
            "agree": a == b,
            "reference_boundary_distance": dist.reindex(wide.index).to_numpy(),
        }
    )
    confusion = pd.crosstab(
        pd.Categorical(a, CPAK_ORDER), pd.Categorical(b, CPAK_ORDER), dropna=False
    )
    confusion.index.name, confusion.columns.name = test, reference
    return {
        "kappa": kappa,
        "kappa_ci_low": float(lo),
        "kappa_ci_high": float(hi),
        "percent_agreement": float(np.mean(a == b) * 100),
        "n_cases": len(a),
        "per_case": per_case,
        "confusion": confusion,
    }
