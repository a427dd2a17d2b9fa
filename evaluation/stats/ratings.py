"""Validation and reshaping of long-format reader-study ratings.

One row per rating: rater, case, source, question, score (optional round).
Everything downstream receives a frame that passed :func:`prepare_ratings`, so
bad input fails here with a specific message instead of producing a number.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

REQUIRED_COLUMNS: tuple[str, ...] = ("rater", "case", "source", "question", "score")
CT = "CT"
XRAY = "XRAY"
LIKERT_MIN = 1
LIKERT_MAX = 5

_SOURCE_ALIASES = {"ct": CT, "xray": XRAY, "x-ray": XRAY, "x_ray": XRAY, "x ray": XRAY}


class RatingsError(ValueError):
    """The ratings table cannot be analysed as given."""


def normalise_source(values: pd.Series) -> pd.Series:
    """Map case-insensitive spellings ("ct", "x-ray", "Xray") to "CT" / "XRAY"."""
    keys = values.astype(str).str.strip().str.lower()
    mapped = keys.map(_SOURCE_ALIASES)
    unknown = sorted(values[mapped.isna()].astype(str).unique())
    if unknown:
        raise RatingsError(f"unknown source value(s) {unknown}; expected CT or XRAY")
    return mapped


def prepare_ratings(
    ratings: pd.DataFrame,
    *,
    likert: bool = True,
    sources: Iterable[str] = (CT, XRAY),
    normalise_sources: bool = True,
) -> pd.DataFrame:
    """Validate a long ratings table and return a clean copy.

    - required columns present; ``round`` defaults to 1;
    - ``source`` normalised to CT/XRAY (unless ``normalise_sources`` is False,
      e.g. for guide-trial arms) and both ``sources`` present;
    - scores numeric; empty cells (NA) are kept as missing and reported by
      :func:`missing_report`, but text such as "high" is an error;
    - with ``likert``: scores are integers in 1..5;
    - no duplicate (rater, case, source, question, round).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in ratings.columns]
    if missing:
        raise RatingsError(f"missing required column(s): {', '.join(missing)}")
    df = ratings.copy()
    if "round" not in df.columns:
        df["round"] = 1
    df["score"] = _numeric_scores(df["score"])
    df["round"] = _numeric_rounds(df["round"])
    if normalise_sources:
        df["source"] = normalise_source(df["source"])
    else:
        df["source"] = df["source"].astype(str)
    wanted = list(sources)
    present = set(df["source"].unique())
    absent = [s for s in wanted if s not in present]
    if absent:
        raise RatingsError(
            f"source(s) {absent} have no ratings; both {wanted} are needed for a comparison"
        )
    for col in ("rater", "case", "question"):
        if df[col].isna().any():
            raise RatingsError(f"column '{col}' has empty values")
        df[col] = df[col].astype(str)
    if likert:
        _check_likert(df["score"])
    keys = ["rater", "case", "source", "question", "round"]
    dup = df.duplicated(keys, keep=False)
    if dup.any():
        first = df.loc[dup, keys].iloc[0].to_dict()
        raise RatingsError(f"{int(dup.sum())} duplicated ratings, e.g. {first}")
    return df.reset_index(drop=True)


def _numeric_scores(score: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(score, errors="coerce")
    bad = numeric.isna() & score.notna() & (score.astype(str).str.strip() != "")
    if bad.any():
        examples = sorted(score[bad].astype(str).unique())[:3]
        raise RatingsError(f"non-numeric score value(s) {examples}")
    return numeric.astype(float)


def _numeric_rounds(rounds: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(rounds, errors="coerce")
    if numeric.isna().any():
        raise RatingsError("column 'round' must be an integer for every rating")
    if not np.all(np.equal(np.mod(numeric, 1), 0)):
        raise RatingsError("column 'round' must hold whole numbers")
    return numeric.astype(int)


def _check_likert(score: pd.Series) -> None:
    observed = score.dropna()
    out = observed[(observed < LIKERT_MIN) | (observed > LIKERT_MAX)]
    if len(out):
        raise RatingsError(
            f"{len(out)} score(s) outside {LIKERT_MIN}..{LIKERT_MAX}, e.g. {out.iloc[0]:g}"
        )
    frac = observed[np.mod(observed, 1) != 0]
    if len(frac):
        raise RatingsError(f"Likert scores must be whole numbers, got e.g. {frac.iloc[0]:g}")


def missing_report(ratings: pd.DataFrame) -> pd.DataFrame:
    """Count expected vs observed ratings per rater, source, question and round.

    The expected design is fully crossed: every rater rates every case of every
    source for each question in each round that appears in the data. A rating is
    missing when its row is absent or its score is NA.
    """
    levels = {k: sorted(ratings[k].unique()) for k in ("rater", "case", "source", "question")}
    rounds = sorted(ratings["round"].unique())
    full = pd.MultiIndex.from_product(
        [levels["rater"], levels["case"], levels["source"], levels["question"], rounds],
        names=["rater", "case", "source", "question", "round"],
    )
    observed = ratings.set_index(list(full.names))["score"].reindex(full)
    frame = observed.notna().rename("observed").reset_index()
    out = (
        frame.groupby(["rater", "source", "question", "round"])["observed"]
        .agg(expected="size", observed="sum")
        .reset_index()
    )
    out["observed"] = out["observed"].astype(int)
    out["missing"] = out["expected"] - out["observed"]
    return out


def complete_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """Rows with an observed score (the analyses use all available data)."""
    return ratings[ratings["score"].notna()].copy()


def cell_means(ratings: pd.DataFrame) -> pd.DataFrame:
    """Mean score per (rater, case, source), averaging repeated rounds."""
    return (
        complete_ratings(ratings)
        .groupby(["rater", "case", "source"], as_index=False)["score"]
        .mean()
    )


def paired_difference_matrix(
    ratings: pd.DataFrame, test: str = XRAY, reference: str = CT
) -> pd.DataFrame:
    """Rater x case matrix of (test - reference) cell means; NaN where unpaired."""
    cells = cell_means(ratings)
    wide = cells.pivot_table(index=["rater", "case"], columns="source", values="score")
    diff = (wide[test] - wide[reference]).rename("diff").reset_index()
    return diff.pivot(index="rater", columns="case", values="diff")
