"""Reads of the guide trial, including the tidy outcome table for the analysis."""

from __future__ import annotations

import pandas as pd

from .models import GuideTrial, Placement

OUTCOME_COLUMNS = (
    "trial",
    "knee",
    "surgeon",
    "period",
    "source",
    "time_s",
    "fit",
    "stability",
    "accuracy",
    "planned_deg",
    "achieved_deg",
    "deviation_deg",
    "deviation_mm",
)
_DTYPES = {
    "trial": "string",
    "knee": "string",
    "surgeon": "string",
    "period": "Int64",
    "source": "string",
    "time_s": "Float64",
    "fit": "Int64",
    "stability": "Int64",
    "accuracy": "Int64",
    "planned_deg": "Float64",
    "achieved_deg": "Float64",
    "deviation_deg": "Float64",
    "deviation_mm": "Float64",
}


def outcomes_frame(
    trial: GuideTrial | None = None, study=None, entered_only: bool = True
) -> pd.DataFrame:
    """One row per placement (tidy, long): the columns of OUTCOME_COLUMNS, typed (NA = missing).

    `surgeon` is the username; source is 'ct' / 'xray'. Filter by trial or study."""
    qs = Placement.objects.select_related("trial", "knee__case", "surgeon")
    if trial is not None:
        qs = qs.filter(trial=trial)
    if study is not None:
        qs = qs.filter(trial__study=study)
    if entered_only:
        qs = qs.filter(entered_at__isnull=False)
    rows = [
        {
            "trial": p.trial.title,
            "knee": p.knee.case.code,
            "surgeon": p.surgeon.username,
            "period": p.period,
            "source": p.source,
            "time_s": p.time_s,
            "fit": p.fit,
            "stability": p.stability,
            "accuracy": p.accuracy,
            "planned_deg": p.planned_deg,
            "achieved_deg": p.achieved_deg,
            "deviation_deg": p.deviation_deg,
            "deviation_mm": p.deviation_mm,
        }
        for p in qs.order_by("trial_id", "surgeon__username", "position")
    ]
    frame = pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))
    return frame.astype(_DTYPES)


def trials_for(user) -> list[GuideTrial]:
    return list(GuideTrial.objects.select_related("study").order_by("-created_at"))


def assessor_placements(user):
    """Placements of trials where `user` assesses outcomes (no source in what is used)."""
    return (
        Placement.objects.filter(trial__members__user=user, trial__members__is_assessor=True)
        .select_related("trial", "knee__case")
        .order_by("trial_id", "printed_bone_id")
    )
