"""Tidy tables built from the ORM: the one place that knows the export's column set.

Each builder returns a pandas DataFrame with typed columns (ordered categoricals,
nullable integers, UTC timestamps at millisecond precision, booleans, strings with NA).
The writers in `formats` convert these types per file format; the codebook documents
every column named here (a test checks that they agree).

Long format: one row per (assignment x question). A row whose answer does not exist is
kept, with score NA and a `status` saying why (not opened, opened but not submitted,
submitted without this optional question): missing data is never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from studyapp.cases.models import BoneModel, Study, SurfaceMetric
from studyapp.reading.models import Answer, Assignment, AuditEvent, Question, ReaderStudy

SOURCES: tuple[str, ...] = ("CT", "XRAY", "EXPERT")
SOURCE_FROM_DB = {"ct": "CT", "xray": "XRAY", "expert": "EXPERT"}
SIDES: tuple[str, ...] = ("L", "R")
ANSWER_STATUSES: tuple[str, ...] = ("complete", "skipped", "not_submitted", "not_opened")
ASSIGNMENT_STATUSES: tuple[str, ...] = ("submitted", "not_submitted", "not_opened")
QUESTION_KINDS: tuple[str, ...] = tuple(Question.Kind.values)
BONES: tuple[str, ...] = ("femur", "tibia", "fibula", "patella")
TRAINING_REASON = "training case (calibration, not study data)"

# Column order of every table (the codebook documents each of them).
ANSWER_COLUMNS: tuple[str, ...] = (
    "study",
    "reader_study",
    "answer_id",
    "assignment_id",
    "rater",
    "experience",
    "item_code",
    "case",
    "side",
    "source",
    "method",
    "question_id",
    "question_order",
    "question",
    "question_kind",
    "score",
    "label",
    "round",
    "session",
    "position",
    "is_training",
    "shown_at",
    "submitted_at",
    "reading_time_s",
    "elapsed_s",
    "edited",
    "excluded",
    "exclusion_reason",
    "status",
    "app_version",
    "protocol_version",
)
ASSIGNMENT_COLUMNS: tuple[str, ...] = (
    "study",
    "reader_study",
    "assignment_id",
    "rater",
    "item_code",
    "case",
    "side",
    "source",
    "round",
    "session",
    "position",
    "is_training",
    "available_from",
    "shown_at",
    "submitted_at",
    "reading_time_s",
    "status",
)
SURFACE_COLUMNS: tuple[str, ...] = (
    "study",
    "evaluation_id",
    "case",
    "side",
    "source",
    "method",
    "reference_source",
    "bone",
    "metric",
    "variant",
    "value",
    "unit",
    "parameters",
)
ALIGNMENT_COLUMNS: tuple[str, ...] = (
    "study",
    "case",
    "side",
    "source",
    "method",
    "angle",
    "value",
    "unit",
    "parameters",
)
GUIDE_TRIAL_COLUMNS: tuple[str, ...] = (
    "study",
    "trial",
    "surgeon",
    "case",
    "arm",
    "period",
    "placement_time_s",
    "fit_score",
    "stability_score",
    "accuracy_score",
    "planned_correction_deg",
    "achieved_correction_deg",
    "angular_deviation_deg",
    "success_within_2deg",
    "cut_plane_deviation_deg",
    "cut_plane_deviation_mm",
)
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "answers": ANSWER_COLUMNS,
    "assignments": ASSIGNMENT_COLUMNS,
    "surface_metrics": SURFACE_COLUMNS,
    "alignment_angles": ALIGNMENT_COLUMNS,
    "guide_trial": GUIDE_TRIAL_COLUMNS,
}
# Tables the platform cannot fill yet: exported with their columns and zero rows.
NOT_YET_STORED: dict[str, str] = {
    "alignment_angles": (
        "Alignment angles come from stored alignment results (cases.AlignmentResult); when none "
        "are stored the table is exported with its columns and zero rows."
    ),
    "guide_trial": (
        "One row per guide placement with entered outcomes (trials app); placements without "
        "outcomes are not rows. Zero rows when the study has no guide trial."
    ),
}


@dataclass(frozen=True)
class Tables:
    """All tables of one export, in export order."""

    frames: dict[str, pd.DataFrame]

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.frames[name]

    def row_counts(self) -> dict[str, int]:
        return {name: int(len(frame)) for name, frame in self.frames.items()}


# --- helpers ---------------------------------------------------------------------------


def rater_pseudonyms(reader_study: ReaderStudy) -> dict[int, str]:
    """R01, R02, ... by ascending user id over the study's readers and assignments.

    Stable per reader study (readers are fixed at launch); usernames never leave the
    platform.
    """
    ids = set(reader_study.readers.values_list("pk", flat=True))
    ids |= set(reader_study.assignments.values_list("reader_id", flat=True).distinct())
    width = max(2, len(str(len(ids))))
    return {uid: f"R{n:0{width}d}" for n, uid in enumerate(sorted(ids), start=1)}


def app_version() -> str:
    from .provenance import app_version as _app_version

    return _app_version()


def _utc_ms(values: Iterable) -> pd.Series:
    series = pd.to_datetime(pd.Series(list(values), dtype="object"), utc=True)
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.astype("datetime64[ns, UTC]")
    return series.dt.floor("ms").astype("datetime64[ms, UTC]")


def _ordered(values: Iterable, categories: Iterable[str]) -> pd.Categorical:
    return pd.Categorical(list(values), categories=list(categories), ordered=True)


def _strings(values: Iterable) -> pd.Series:
    return pd.Series(list(values), dtype="string")


def _empty(
    columns: tuple[str, ...], dtypes: dict[str, str], status: tuple[str, ...] = ()
) -> pd.DataFrame:
    fixed = {**FIXED_CATEGORIES, "status": status} if status else FIXED_CATEGORIES

    def column(name: str) -> pd.Series:
        if name in fixed:
            return pd.Series(_ordered([], fixed[name]))
        if name in OPEN_CATEGORIES:
            no_categories = pd.Index([], dtype="str")
            return pd.Series(pd.Categorical([], categories=no_categories, ordered=name != "metric"))
        return pd.Series([], dtype=dtypes.get(name, "string"))

    return pd.DataFrame({c: column(c) for c in columns})


# --- answers (long format) -----------------------------------------------------------------


def _assignment_rows(reader_study: ReaderStudy) -> pd.DataFrame:
    rows = list(
        Assignment.objects.filter(reader_study=reader_study)
        .order_by("reader_id", "session", "position")
        .values_list(
            "pk",
            "reader_id",
            "item_id",
            "item__code",
            "item__reconstruction__case__code",
            "item__reconstruction__case__side",
            "item__reconstruction__source",
            "item__reconstruction__method",
            "round",
            "session",
            "position",
            "is_training",
            "available_from",
            "opened_at",
            "submitted_at",
            "active_seconds",
        )
    )
    names = [
        "assignment_id",
        "reader_id",
        "item_id",
        "item_code",
        "case",
        "side",
        "source_db",
        "method",
        "round",
        "session",
        "position",
        "is_training",
        "available_from",
        "opened_at",
        "submitted_at_raw",
        "active_seconds",
    ]
    return pd.DataFrame.from_records(rows, columns=names)


def _score_and_label(question: Question, value) -> tuple[float, str | None]:
    """Numeric score and its label: the Likert anchor, the option label or the free text."""
    if value is None:
        return np.nan, None
    if question.kind == Question.Kind.LIKERT:
        score = int(value)
        anchors = question.options or []
        label = anchors[score - 1] if 1 <= score <= len(anchors) else str(score)
        return float(score), label
    if question.kind == Question.Kind.CHOICE:
        options = question.options or []
        index = options.index(value) + 1 if value in options else np.nan
        return float(index), str(value)
    if question.kind == Question.Kind.NUMBER:
        return float(value), None
    return np.nan, str(value)


def _answer_status(submitted: bool, opened: bool, answered: bool) -> str:
    if answered:
        return "complete"
    if submitted:
        return "skipped"
    return "not_submitted" if opened else "not_opened"


def answers_frame(reader_study: ReaderStudy, *, version: str | None = None) -> pd.DataFrame:
    """One row per assignment x question, answered or not (see the module docstring)."""
    study = reader_study.study
    questions = list(reader_study.questions.order_by("order", "pk"))
    assignments = _assignment_rows(reader_study)
    if assignments.empty or not questions:
        return _empty(ANSWER_COLUMNS, ANSWER_DTYPES, ANSWER_STATUSES)
    by_pk = {q.pk: q for q in questions}
    qframe = pd.DataFrame({"question_id": [q.pk for q in questions]})
    grid = assignments.merge(qframe, how="cross")
    answers = pd.DataFrame.from_records(
        list(
            Answer.objects.filter(assignment__reader_study=reader_study).values_list(
                "pk", "assignment_id", "question_id", "value"
            )
        ),
        columns=["answer_id", "assignment_id", "question_id", "value"],
    )
    grid = grid.merge(answers, on=["assignment_id", "question_id"], how="left")
    edited = set(
        AuditEvent.objects.filter(
            reader_study=reader_study, action=AuditEvent.Action.CHANGE
        ).values_list("reader_id", "item_id", "question_id", "round")
    )
    pseudonyms = rater_pseudonyms(reader_study)
    question_text = [by_pk[q].text for q in grid["question_id"]]
    scored = [
        _score_and_label(by_pk[q], None if pd.isna(a) else v)
        for q, a, v in zip(grid["question_id"], grid["answer_id"], grid["value"], strict=True)
    ]
    answered = grid["answer_id"].notna().to_numpy()
    submitted = grid["submitted_at_raw"].notna().to_numpy()
    opened = grid["opened_at"].notna().to_numpy()
    shown = _utc_ms(grid["opened_at"])
    sent = _utc_ms(grid["submitted_at_raw"])
    training = grid["is_training"].astype(bool).to_numpy()
    frame = pd.DataFrame(
        {
            "study": _strings([study.name] * len(grid)),
            "reader_study": _strings([reader_study.title] * len(grid)),
            "answer_id": grid["answer_id"].astype("Int64"),
            "assignment_id": grid["assignment_id"].astype("Int64"),
            "rater": _ordered(
                (pseudonyms[r] for r in grid["reader_id"]), sorted(pseudonyms.values())
            ),
            "experience": pd.Series([pd.NA] * len(grid), dtype="string"),
            "item_code": _strings(grid["item_code"]),
            "case": _strings(grid["case"]),
            "side": _ordered(grid["side"], SIDES),
            "source": _ordered((SOURCE_FROM_DB[s] for s in grid["source_db"]), SOURCES),
            "method": _strings(grid["method"]),
            "question_id": grid["question_id"].astype("Int64"),
            "question_order": pd.Series(
                [by_pk[q].order for q in grid["question_id"]], dtype="Int64"
            ),
            "question": _ordered(question_text, _unique(q.text for q in questions)),
            "question_kind": _ordered((by_pk[q].kind for q in grid["question_id"]), QUESTION_KINDS),
            "score": pd.Series([s for s, _ in scored], dtype="float64"),
            "label": _strings(label for _, label in scored),
            "round": grid["round"].astype("Int64"),
            "session": grid["session"].astype("Int64"),
            "position": grid["position"].astype("Int64"),
            "is_training": pd.Series(training, dtype="boolean"),
            "shown_at": shown,
            "submitted_at": sent,
            "reading_time_s": pd.Series(
                np.where(submitted, grid["active_seconds"].astype(float), np.nan), dtype="float64"
            ),
            "elapsed_s": pd.Series((sent - shown).dt.total_seconds(), dtype="float64"),
            "edited": pd.Series(
                [
                    (r, i, q, n) in edited
                    for r, i, q, n in zip(
                        grid["reader_id"],
                        grid["item_id"],
                        grid["question_id"],
                        grid["round"],
                        strict=True,
                    )
                ],
                dtype="boolean",
            ),
            "excluded": pd.Series(training, dtype="boolean"),
            "exclusion_reason": _strings(TRAINING_REASON if t else pd.NA for t in training),
            "status": _ordered(
                (
                    _answer_status(s, o, a)
                    for s, o, a in zip(submitted, opened, answered, strict=True)
                ),
                ANSWER_STATUSES,
            ),
            "app_version": _strings([version or app_version()] * len(grid)),
            "protocol_version": _strings([study.protocol_version] * len(grid)),
        }
    )
    frame = frame.sort_values(
        ["rater", "round", "session", "position", "question_order"], kind="stable"
    )
    return frame.reset_index(drop=True)[list(ANSWER_COLUMNS)]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


# --- assignment table ----------------------------------------------------------------------


def assignments_frame(reader_study: ReaderStudy) -> pd.DataFrame:
    """The stored reading order (the allocation list), with each slot's state."""
    rows = _assignment_rows(reader_study)
    if rows.empty:
        return _empty(ASSIGNMENT_COLUMNS, ASSIGNMENT_DTYPES, ASSIGNMENT_STATUSES)
    pseudonyms = rater_pseudonyms(reader_study)
    submitted = rows["submitted_at_raw"].notna().to_numpy()
    opened = rows["opened_at"].notna().to_numpy()
    status = np.where(submitted, "submitted", np.where(opened, "not_submitted", "not_opened"))
    frame = pd.DataFrame(
        {
            "study": _strings([reader_study.study.name] * len(rows)),
            "reader_study": _strings([reader_study.title] * len(rows)),
            "assignment_id": rows["assignment_id"].astype("Int64"),
            "rater": _ordered(
                (pseudonyms[r] for r in rows["reader_id"]), sorted(pseudonyms.values())
            ),
            "item_code": _strings(rows["item_code"]),
            "case": _strings(rows["case"]),
            "side": _ordered(rows["side"], SIDES),
            "source": _ordered((SOURCE_FROM_DB[s] for s in rows["source_db"]), SOURCES),
            "round": rows["round"].astype("Int64"),
            "session": rows["session"].astype("Int64"),
            "position": rows["position"].astype("Int64"),
            "is_training": pd.Series(rows["is_training"].astype(bool), dtype="boolean"),
            "available_from": _utc_ms(rows["available_from"]),
            "shown_at": _utc_ms(rows["opened_at"]),
            "submitted_at": _utc_ms(rows["submitted_at_raw"]),
            "reading_time_s": pd.Series(
                np.where(submitted, rows["active_seconds"].astype(float), np.nan), dtype="float64"
            ),
            "status": _ordered(status, ASSIGNMENT_STATUSES),
        }
    )
    frame = frame.sort_values(["rater", "session", "position"], kind="stable")
    return frame.reset_index(drop=True)[list(ASSIGNMENT_COLUMNS)]


# --- surface metrics, alignment, guide trial --------------------------------------------------


def surface_frame(study: Study) -> pd.DataFrame:
    """Surface metrics long: one row per evaluation, bone, metric and variant."""
    rows = list(
        SurfaceMetric.objects.filter(evaluation__reconstruction__case__study=study)
        .order_by(
            "evaluation__reconstruction__case__code", "evaluation_id", "bone", "metric", "variant"
        )
        .values_list(
            "evaluation_id",
            "evaluation__reconstruction__case__code",
            "evaluation__reconstruction__case__side",
            "evaluation__reconstruction__source",
            "evaluation__reconstruction__method",
            "evaluation__reference__source",
            "bone",
            "metric",
            "variant",
            "value",
            "unit",
            "evaluation__parameters",
        )
    )
    if not rows:
        return _empty(SURFACE_COLUMNS, SURFACE_DTYPES)
    cols = list(zip(*rows, strict=True))
    metrics = sorted(set(cols[7]))
    return pd.DataFrame(
        {
            "study": _strings([study.name] * len(rows)),
            "evaluation_id": pd.Series(cols[0], dtype="Int64"),
            "case": _strings(cols[1]),
            "side": _ordered(cols[2], SIDES),
            "source": _ordered((SOURCE_FROM_DB[s] for s in cols[3]), SOURCES),
            "method": _strings(cols[4]),
            "reference_source": _ordered((SOURCE_FROM_DB[s] for s in cols[5]), SOURCES),
            "bone": _ordered(cols[6], BONES),
            "metric": pd.Categorical(cols[7], categories=metrics, ordered=False),
            "variant": _strings(cols[8]),
            "value": pd.Series(cols[9], dtype="float64"),
            "unit": _strings(cols[10]),
            "parameters": _strings(json.dumps(p or {}, sort_keys=True) for p in cols[11]),
        }
    )[list(SURFACE_COLUMNS)]


def _alignment_model():
    from django.apps import apps

    try:
        return apps.get_model("cases", "AlignmentResult")
    except LookupError:
        return None


def alignment_frame(study: Study) -> pd.DataFrame:
    """Alignment angles per source, one row per reconstruction and angle (degrees).

    Read from cases.AlignmentResult (evaluation.alignment reports) when that model exists;
    otherwise the table has its columns and zero rows. Missing angles (None) stay NA.
    """
    model = _alignment_model()
    if model is None:
        return _empty(ALIGNMENT_COLUMNS, ALIGNMENT_DTYPES)
    records = []
    results = (
        model.objects.filter(reconstruction__case__study=study)
        .select_related("reconstruction__case")
        .order_by("reconstruction__case__code", "reconstruction__source", "reconstruction_id")
    )
    for result in results:
        report = result.report or {}
        flags = report.get("flags") or {}
        for angle, value in sorted((report.get("angles") or {}).items()):
            number = (
                value if isinstance(value, int | float) and not isinstance(value, bool) else None
            )
            params = {
                "convention": report.get("convention"),
                "approximate": (flags.get("approximate") or {}).get(angle),
                "missing": (flags.get("missing") or {}).get(angle),
            }
            records.append(
                (
                    result.reconstruction.case.code,
                    result.reconstruction.case.side,
                    result.reconstruction.source,
                    result.reconstruction.method,
                    str(angle),
                    number,
                    json.dumps(params, sort_keys=True, default=str),
                )
            )
    if not records:
        return _empty(ALIGNMENT_COLUMNS, ALIGNMENT_DTYPES)
    cols = list(zip(*records, strict=True))
    return pd.DataFrame(
        {
            "study": _strings([study.name] * len(records)),
            "case": _strings(cols[0]),
            "side": _ordered(cols[1], SIDES),
            "source": _ordered((SOURCE_FROM_DB[s] for s in cols[2]), SOURCES),
            "method": _strings(cols[3]),
            "angle": _strings(cols[4]),
            "value": pd.Series(
                [np.nan if v is None else float(v) for v in cols[5]], dtype="float64"
            ),
            "unit": _strings(["degree"] * len(records)),
            "parameters": _strings(cols[6]),
        }
    )[list(ALIGNMENT_COLUMNS)]


def guide_trial_frame(study: Study) -> pd.DataFrame:
    """Osteotomy-guide trial outcomes, one row per placement, from the trials app's tidy table."""
    from studyapp.trials.selectors import outcomes_frame

    outcomes = outcomes_frame(study=study)
    if outcomes.empty:
        return _empty(GUIDE_TRIAL_COLUMNS, GUIDE_TRIAL_DTYPES)
    surgeons = {
        name: f"S{index:02d}" for index, name in enumerate(sorted(outcomes["surgeon"].unique()), 1)
    }
    deviation = (outcomes["achieved_deg"] - outcomes["planned_deg"]).abs()
    frame = pd.DataFrame(
        {
            "study": study.name,
            "trial": outcomes["trial"],
            "surgeon": outcomes["surgeon"].map(surgeons),
            "case": outcomes["knee"],
            "arm": outcomes["source"].map({"ct": "CT", "xray": "XRAY"}),
            "period": outcomes["period"],
            "placement_time_s": outcomes["time_s"],
            "fit_score": outcomes["fit"],
            "stability_score": outcomes["stability"],
            "accuracy_score": outcomes["accuracy"],
            "planned_correction_deg": outcomes["planned_deg"],
            "achieved_correction_deg": outcomes["achieved_deg"],
            "angular_deviation_deg": deviation,
            "success_within_2deg": (deviation <= 2).where(deviation.notna()),
            "cut_plane_deviation_deg": outcomes["deviation_deg"],
            "cut_plane_deviation_mm": outcomes["deviation_mm"],
        }
    )
    frame["arm"] = pd.Categorical(frame["arm"], categories=["CT", "XRAY"], ordered=True)
    text = {column: _TEXT for column in ("study", "trial", "surgeon", "case")}
    return frame.astype({**text, **GUIDE_TRIAL_DTYPES}).reset_index(drop=True)


def meshes_frame(study: Study) -> pd.DataFrame:
    """Every bone mesh of the study with its stored SHA-256 (for the provenance file)."""
    rows = list(
        BoneModel.objects.filter(reconstruction__case__study=study)
        .order_by(
            "reconstruction__case__code", "reconstruction__source", "reconstruction_id", "bone"
        )
        .values_list(
            "reconstruction__case__code",
            "reconstruction__source",
            "reconstruction_id",
            "bone",
            "mesh",
            "sha256",
        )
    )
    return pd.DataFrame.from_records(
        rows, columns=["case", "source", "reconstruction_id", "bone", "mesh", "sha256"]
    )


def build_tables(reader_study: ReaderStudy, *, version: str | None = None) -> Tables:
    study = reader_study.study
    return Tables(
        {
            "answers": answers_frame(reader_study, version=version),
            "assignments": assignments_frame(reader_study),
            "surface_metrics": surface_frame(study),
            "alignment_angles": alignment_frame(study),
            "guide_trial": guide_trial_frame(study),
        }
    )


def ratings_for_analysis(answers: pd.DataFrame) -> pd.DataFrame:
    """The evaluation.stats input: Likert study reads of CT and X-ray items, NA kept.

    Excluded (training) rows and other arms are left out; unanswered study reads stay
    as NA scores so that `missing_report` counts them.
    """
    keep = (
        (answers["question_kind"] == "likert")
        & ~answers["excluded"].astype(bool)
        & answers["source"].isin(["CT", "XRAY"])
    )
    part = answers.loc[keep, ["rater", "case", "source", "question", "round", "score"]]
    return pd.DataFrame(
        {
            "rater": part["rater"].astype(str),
            "case": part["case"].astype(str),
            "source": part["source"].astype(str),
            "question": part["question"].astype(str),
            "round": part["round"].astype(int),
            "score": part["score"].astype(float),
        }
    ).reset_index(drop=True)


FIXED_CATEGORIES: dict[str, tuple[str, ...]] = {
    "side": SIDES,
    "source": SOURCES,
    "reference_source": SOURCES,
    "bone": BONES,
    "question_kind": QUESTION_KINDS,
    "arm": ("CT", "XRAY"),
}
OPEN_CATEGORIES = frozenset({"rater", "question", "metric"})

# dtypes of the empty tables (same as the filled ones)
_TEXT = "string"
ANSWER_DTYPES: dict[str, str] = {
    "answer_id": "Int64",
    "assignment_id": "Int64",
    "question_id": "Int64",
    "question_order": "Int64",
    "score": "float64",
    "round": "Int64",
    "session": "Int64",
    "position": "Int64",
    "is_training": "boolean",
    "shown_at": "datetime64[ms, UTC]",
    "submitted_at": "datetime64[ms, UTC]",
    "reading_time_s": "float64",
    "elapsed_s": "float64",
    "edited": "boolean",
    "excluded": "boolean",
}
ASSIGNMENT_DTYPES: dict[str, str] = {
    "assignment_id": "Int64",
    "round": "Int64",
    "session": "Int64",
    "position": "Int64",
    "is_training": "boolean",
    "available_from": "datetime64[ms, UTC]",
    "shown_at": "datetime64[ms, UTC]",
    "submitted_at": "datetime64[ms, UTC]",
    "reading_time_s": "float64",
}
SURFACE_DTYPES: dict[str, str] = {"evaluation_id": "Int64", "value": "float64"}
ALIGNMENT_DTYPES: dict[str, str] = {"value": "float64"}
GUIDE_TRIAL_DTYPES: dict[str, str] = {
    "period": "Int64",
    "placement_time_s": "float64",
    "fit_score": "Int64",
    "stability_score": "Int64",
    "accuracy_score": "Int64",
    "planned_correction_deg": "float64",
    "achieved_correction_deg": "float64",
    "angular_deviation_deg": "float64",
    "success_within_2deg": "boolean",
    "cut_plane_deviation_deg": "float64",
    "cut_plane_deviation_mm": "float64",
}
