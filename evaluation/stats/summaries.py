"""Descriptive summaries: Likert scores by source, surface metrics by bone."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.stats.ratings import LIKERT_MAX, LIKERT_MIN, complete_ratings

CiKind = Literal["t", "bootstrap"]


def likert_summary(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per question x source: n, mean, SD, median [IQR], counts and shares of 1..5."""
    df = complete_ratings(ratings)
    rows = []
    for (question, source), part in df.groupby(["question", "source"], sort=True):
        s = part["score"].to_numpy()
        row: dict[str, object] = {
            "question": question,
            "source": source,
            "n": len(s),
            "mean": float(s.mean()),
            "sd": float(s.std(ddof=1)) if len(s) > 1 else float("nan"),
            "median": float(np.median(s)),
            "q1": float(np.quantile(s, 0.25)),
            "q3": float(np.quantile(s, 0.75)),
        }
        for value in range(LIKERT_MIN, LIKERT_MAX + 1):
            count = int(np.sum(s == value))
            row[f"n_{value}"] = count
            row[f"share_{value}"] = count / len(s)
        rows.append(row)
    return pd.DataFrame(rows)


def _ci(values: np.ndarray, kind: CiKind, level: float, n_boot: int, rng: np.random.Generator):
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    if kind == "t":
        half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
        return float(values.mean() - half), float(values.mean() + half)
    if kind == "bootstrap":
        means = values[rng.integers(0, n, (n_boot, n))].mean(axis=1)
        lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
        return float(lo), float(hi)
    raise ValueError(f"ci must be 't' or 'bootstrap', got {kind!r}")


def metric_summary(
    metrics: pd.DataFrame,
    *,
    ci: CiKind = "t",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per bone x metric: mean +/- SD, median [IQR], min/max and a CI of the mean.

    ``metrics`` is long: case, bone, metric, value (optional variant and unit
    columns are kept as grouping keys so e.g. ASSD and MASD never mix). Missing
    values are counted, not silently dropped.
    """
    needed = {"case", "bone", "metric", "value"}
    if missing := needed - set(metrics.columns):
        raise ValueError(f"metrics table lacks column(s): {sorted(missing)}")
    values = pd.to_numeric(metrics["value"], errors="coerce")
    bad = values.isna() & metrics["value"].notna()
    if bad.any():
        raise ValueError(f"non-numeric metric value(s), e.g. {metrics.loc[bad, 'value'].iloc[0]!r}")
    df = metrics.assign(value=values)
    keys = ["bone", "metric"] + [k for k in ("variant", "unit") if k in df.columns]
    rng = np.random.default_rng(seed)
    rows = []
    for key, part in df.groupby(keys, sort=True, dropna=False):
        v = part["value"].dropna().to_numpy(dtype=float)
        lo, hi = _ci(v, ci, level, n_boot, rng)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "n": len(v),
                "n_missing": int(part["value"].isna().sum()),
                "mean": float(v.mean()) if len(v) else float("nan"),
                "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                "median": float(np.median(v)) if len(v) else float("nan"),
                "q1": float(np.quantile(v, 0.25)) if len(v) else float("nan"),
                "q3": float(np.quantile(v, 0.75)) if len(v) else float("nan"),
                "min": float(v.min()) if len(v) else float("nan"),
                "max": float(v.max()) if len(v) else float("nan"),
                "ci_low": lo,
                "ci_high": hi,
                "ci_method": ci,
                "ci_level": level,
            }
        )
    return pd.DataFrame(rows)
