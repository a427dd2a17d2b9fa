"""The long tables as JSON rows for the API, cached per reader study and data version."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from django.core.cache import cache

from studyapp.reading.models import ReaderStudy

from . import exports, formats, selectors

CACHE_SECONDS = 120
BUILDERS = {
    "answers": lambda rs: exports.answers_frame(rs),
    "assignments": exports.assignments_frame,
    "surface_metrics": lambda rs: exports.surface_frame(rs.study),
    "alignment_angles": lambda rs: exports.alignment_frame(rs.study),
    "guide_trial": lambda rs: exports.guide_trial_frame(rs.study),
}


def _clean(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def json_rows(table: str, reader_study: ReaderStudy) -> list[dict[str, Any]]:
    """Rows of one table (typed: numbers as numbers, booleans, ISO timestamps, NA as null)."""
    stamp = selectors.answer_stamp(reader_study)
    key = f"analysis:rows:{table}:{reader_study.pk}:{stamp}"
    rows = cache.get(key)
    if rows is None:
        frame = BUILDERS[table](reader_study)
        view = formats.for_text(frame)
        for name, series in frame.items():
            if pd.api.types.is_bool_dtype(series.dtype):
                view[name] = series.astype(object)
        records = view.astype(object).to_dict(orient="records")
        rows = [{k: _clean(v) for k, v in r.items()} for r in records]
        cache.set(key, rows, CACHE_SECONDS)
    return rows
