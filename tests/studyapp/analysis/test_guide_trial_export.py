"""The guide-trial table of the export is the trials app's outcomes, pseudonymised and derived."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studyapp.analysis import codebook, exports
from tests.studyapp.factories import StudyFactory


def _outcomes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial": ["T", "T", "T"],
            "knee": ["K1", "K1", "K2"],
            "surgeon": ["zed", "amy", "amy"],
            "period": [1, 2, 1],
            "source": ["ct", "xray", "ct"],
            "time_s": [95.0, 120.5, None],
            "fit": [4, 5, pd.NA],
            "stability": [4, 3, pd.NA],
            "accuracy": [5, 4, pd.NA],
            "planned_deg": [8.0, 8.0, 6.5],
            "achieved_deg": [9.5, 10.4, None],
            "deviation_deg": [0.8, 1.9, None],
            "deviation_mm": [0.6, 1.2, None],
        }
    ).astype({"fit": "Int64", "stability": "Int64", "accuracy": "Int64"})


@pytest.mark.django_db
def test_guide_trial_rows_come_from_the_trial_outcomes(monkeypatch):
    from studyapp.trials import selectors

    monkeypatch.setattr(selectors, "outcomes_frame", lambda study=None, **_: _outcomes())
    study = StudyFactory(name="S")
    frame = exports.guide_trial_frame(study)
    assert list(frame.columns) == list(exports.GUIDE_TRIAL_COLUMNS)
    assert set(codebook.variables("guide_trial")) == set(frame.columns)
    assert frame["surgeon"].tolist() == [
        "S02",
        "S01",
        "S01",
    ]  # sorted names -> S01.., no user names
    assert frame["arm"].tolist() == ["CT", "XRAY", "CT"]
    assert frame["angular_deviation_deg"].tolist()[:2] == pytest.approx([1.5, 2.4])
    assert frame["success_within_2deg"].tolist()[:2] == [True, False]
    assert frame["success_within_2deg"].isna().tolist()[2]  # missing outcome stays missing
    empty = exports._empty(exports.GUIDE_TRIAL_COLUMNS, exports.GUIDE_TRIAL_DTYPES)
    assert frame.dtypes.astype(str).tolist() == empty.dtypes.astype(str).tolist()


@pytest.mark.django_db
def test_a_study_without_a_trial_exports_the_columns_and_no_rows():
    frame = exports.guide_trial_frame(StudyFactory())
    assert frame.empty and list(frame.columns) == list(exports.GUIDE_TRIAL_COLUMNS)


def test_guide_trial_statistics_for_the_report():
    from studyapp.analysis.report import guide_trial_results

    rng = np.random.default_rng(4)
    rows = []
    for surgeon in ("S01", "S02", "S03"):
        for knee in range(8):
            for arm, period in (("CT", 1 + knee % 2), ("XRAY", 2 - knee % 2)):
                planned = 8.0 + knee * 0.3
                rows.append(
                    {
                        "surgeon": surgeon,
                        "case": f"K{knee}",
                        "arm": arm,
                        "period": period,
                        "planned_correction_deg": planned,
                        "achieved_correction_deg": planned + rng.normal(0, 0.8),
                        "placement_time_s": float(rng.lognormal(np.log(100), 0.2)),
                    }
                )
    rows.append({**rows[0], "achieved_correction_deg": np.nan})  # outcome not entered yet
    notes: list[str] = []
    results = guide_trial_results(pd.DataFrame(rows), notes)
    titles = [result["title"] for result in results]
    assert len(results) == 3, notes
    assert titles[0].startswith("Correction error") and titles[1].startswith("Time to place")
    assert any("1 placement(s) without an achieved correction" in note for note in notes)
    # Both arms drawn from the same distribution: the difference in error is small.
    assert abs(results[0]["values"]["estimate"]) < 1.0
