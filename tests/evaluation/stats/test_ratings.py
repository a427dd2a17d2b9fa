import numpy as np
import pandas as pd
import pytest

from evaluation.stats.ratings import (
    RatingsError,
    missing_report,
    paired_difference_matrix,
    prepare_ratings,
)
from evaluation.stats.simulate import simulate_reader_study


def _ratings(**overrides) -> pd.DataFrame:
    df = simulate_reader_study(n_raters=3, n_cases=4, seed=0)
    for col, values in overrides.items():
        df[col] = values
    return df


def test_sources_are_normalised_case_insensitively():
    df = _ratings()
    df["source"] = df["source"].map({"CT": "ct", "XRAY": "X-ray"})
    out = prepare_ratings(df)
    assert set(out["source"]) == {"CT", "XRAY"}
    assert (out["round"] == 1).all()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns="score"), "missing required column"),
        (
            lambda d: d.assign(score=d["score"].replace(5.0, 6.0).where(d.index != 0, 6)),
            "outside 1..5",
        ),
        (lambda d: d.assign(score=d["score"].where(d.index != 0, 0)), "outside 1..5"),
        (lambda d: d.assign(score=d["score"].where(d.index != 0, 2.5)), "whole numbers"),
        (
            lambda d: d.assign(score=d["score"].astype(object).where(d.index != 0, "good")),
            "non-numeric",
        ),
        (lambda d: d.assign(source="CT"), "have no ratings"),
        (lambda d: d.assign(source="MRI"), "unknown source"),
        (lambda d: pd.concat([d, d.iloc[:1]]), "duplicated"),
    ],
)
def test_bad_input_raises_specific_error(mutate, message):
    with pytest.raises(RatingsError, match=message):
        prepare_ratings(mutate(_ratings()))


def test_na_scores_are_kept_and_reported_as_missing():
    df = _ratings()
    df.loc[(df["rater"] == "R01") & (df["source"] == "XRAY"), "score"] = np.nan
    df = df.drop(index=df.index[(df["rater"] == "R02") & (df["case"] == "K000")])
    out = prepare_ratings(df)
    report = missing_report(out).set_index(["rater", "source"])["missing"]
    assert report.loc[("R01", "XRAY")].item() == 4
    assert report.loc[("R02", "CT")].item() == 1
    assert report.loc[("R02", "XRAY")].item() == 1
    assert report.loc[("R00", "CT")].item() == 0


def test_paired_difference_matrix_averages_rounds():
    df = pd.DataFrame(
        {
            "rater": ["a"] * 4,
            "case": ["k"] * 4,
            "source": ["CT", "CT", "XRAY", "XRAY"],
            "question": "q",
            "round": [1, 2, 1, 2],
            "score": [2, 4, 5, 5],
        }
    )
    mat = paired_difference_matrix(prepare_ratings(df))
    assert mat.loc["a", "k"] == pytest.approx(2.0)
