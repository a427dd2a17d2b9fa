"""The codebook: every variable of every exported table, with label, type, unit, allowed
values, missing code and derivation. `check_coverage` fails an export whose tables carry a
column the codebook does not describe (or miss one it does)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from . import exports

MISSING_NA = "NA in CSV/XLSX; null in Parquet; system-missing (.) in SPSS/Stata"
MISSING_TEXT = "NA in CSV/XLSX; null in Parquet; empty string in SPSS/Stata"
NEVER_MISSING = "never missing"


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    type: str
    unit: str = ""
    allowed: str = ""
    missing: str = NEVER_MISSING
    derivation: str = ""


def _v(name, label, type_, unit="", allowed="", missing=NEVER_MISSING, derivation=""):
    return Variable(name, label, type_, unit, allowed, missing, derivation)


_STUDY = _v("study", "Study name", "string", derivation="cases.Study.name")
_READER_STUDY = _v("reader_study", "Reader study title", "string", derivation="ReaderStudy.title")
_RATER = _v(
    "rater",
    "Rater (pseudonymous)",
    "categorical (ordered)",
    allowed="R01..Rnn",
    derivation="Readers of the reader study numbered by ascending user id; stable per study. "
    "SPSS/Stata: integer code with value labels.",
)
_CASE = _v("case", "Case (knee) code", "string", derivation="cases.Case.code (pseudonym)")
_SIDE = _v("side", "Knee side", "categorical (ordered)", allowed="L, R", derivation="Case.side")
_SOURCE = _v(
    "source",
    "Source of the model (arm)",
    "categorical (ordered)",
    allowed="CT, XRAY, EXPERT",
    derivation="Reconstruction.source via the unblinding table (item -> reconstruction)",
)
_METHOD = _v("method", "Reconstruction method", "string", derivation="Reconstruction.method")
_ROUND = _v("round", "Reading round", "integer", allowed=">= 1", derivation="Assignment.round")
_SESSION = _v(
    "session",
    "Reading session",
    "integer",
    allowed=">= 0 (0 = training)",
    derivation="Stored reading order (Assignment.session)",
)
_POSITION = _v(
    "position",
    "Position within the session",
    "integer",
    allowed=">= 1",
    derivation="Assignment.position",
)
_TRAINING = _v(
    "is_training",
    "Training (calibration) read",
    "boolean",
    allowed="true, false",
    derivation="Assignment.is_training",
)
_SHOWN = _v(
    "shown_at",
    "First shown to the rater",
    "datetime (UTC, ISO 8601)",
    missing=MISSING_NA + " (never opened)",
    derivation="Server time the rater first opened the item (Assignment.opened_at), ms precision",
)
_SUBMITTED = _v(
    "submitted_at",
    "Submitted",
    "datetime (UTC, ISO 8601)",
    missing=MISSING_NA + " (not submitted)",
    derivation="Server time of the first submission (Assignment.submitted_at), ms precision",
)
_READING = _v(
    "reading_time_s",
    "Active reading time",
    "float",
    unit="s",
    allowed=">= 0",
    missing=MISSING_NA + " (not submitted)",
    derivation="Client-reported active time, clamped server-side to submitted_at - shown_at",
)

ANSWERS: tuple[Variable, ...] = (
    _STUDY,
    _READER_STUDY,
    _v(
        "answer_id",
        "Answer id",
        "integer",
        missing=MISSING_NA + " (no answer: see status)",
        derivation="reading.Answer primary key",
    ),
    _v("assignment_id", "Assignment id", "integer", derivation="reading.Assignment primary key"),
    _RATER,
    _v(
        "experience",
        "Rater experience",
        "string",
        missing=MISSING_TEXT + " (not recorded by the platform yet: always missing)",
        derivation="Not stored in the platform; kept so that the column set is stable",
    ),
    _v("item_code", "Blinded item code", "string", derivation="reading.Item.code (random)"),
    _CASE,
    _SIDE,
    _SOURCE,
    _METHOD,
    _v("question_id", "Question id", "integer", derivation="reading.Question primary key"),
    _v("question_order", "Question order", "integer", derivation="Question.order"),
    _v(
        "question",
        "Question (item of the questionnaire)",
        "categorical (ordered)",
        allowed="The question texts, in questionnaire order",
        derivation="Question.text",
    ),
    _v(
        "question_kind",
        "Question type",
        "categorical (ordered)",
        allowed=", ".join(exports.QUESTION_KINDS),
        derivation="Question.kind",
    ),
    _v(
        "score",
        "Score",
        "float",
        unit="Likert points (likert); option number (choice); the number (number)",
        allowed="likert: 1..5; choice: 1..number of options",
        missing=MISSING_NA + " (reason in status; free text has no score)",
        derivation="Answer.value; choice: 1-based position of the chosen option",
    ),
    _v(
        "label",
        "Score label",
        "string",
        allowed="Likert anchor text, option label or free text",
        missing=MISSING_TEXT + " (no answer, or a number question)",
        derivation="Question.options[score - 1] for Likert, the option for choice, the text for text",
    ),
    _ROUND,
    _SESSION,
    _POSITION,
    _TRAINING,
    _SHOWN,
    _SUBMITTED,
    _READING,
    _v(
        "elapsed_s",
        "Wall time from first shown to submitted",
        "float",
        unit="s",
        missing=MISSING_NA + " (not submitted)",
        derivation="submitted_at - shown_at",
    ),
    _v(
        "edited",
        "Answer changed after first submission",
        "boolean",
        allowed="true, false",
        derivation="Any 'change' event for this rater, item, question and round in the audit log",
    ),
    _v(
        "excluded",
        "Excluded from the analysis",
        "boolean",
        allowed="true, false",
        derivation="true for training (calibration) reads",
    ),
    _v(
        "exclusion_reason",
        "Reason for exclusion",
        "string",
        allowed=exports.TRAINING_REASON,
        missing=MISSING_TEXT + " (not excluded)",
        derivation="Set whenever excluded is true",
    ),
    _v(
        "status",
        "Read status (missing-data code)",
        "categorical (ordered)",
        allowed="complete (1), skipped (2: submitted without this optional question), "
        "not_submitted (3: opened, not submitted), not_opened (4)",
        derivation="From Answer presence, Assignment.submitted_at and opened_at. "
        "SPSS/Stata: integer code with value labels.",
    ),
    _v(
        "app_version",
        "Platform version",
        "string",
        derivation="kneestudy package version + git commit",
    ),
    _v("protocol_version", "Protocol version", "string", derivation="Study.protocol_version"),
)

ASSIGNMENTS: tuple[Variable, ...] = (
    _STUDY,
    _READER_STUDY,
    _v("assignment_id", "Assignment id", "integer", derivation="reading.Assignment primary key"),
    _RATER,
    _v("item_code", "Blinded item code", "string", derivation="reading.Item.code (random)"),
    _CASE,
    _SIDE,
    _SOURCE,
    _ROUND,
    _SESSION,
    _POSITION,
    _TRAINING,
    _v(
        "available_from",
        "Earliest opening of the session",
        "datetime (UTC, ISO 8601)",
        derivation="Launch time + washout days x periods before (randomisation step 5)",
    ),
    _SHOWN,
    _SUBMITTED,
    _READING,
    _v(
        "status",
        "Slot status",
        "categorical (ordered)",
        allowed="submitted (1), not_submitted (2: opened), not_opened (3)",
        derivation="From Assignment.submitted_at and opened_at",
    ),
)

SURFACE: tuple[Variable, ...] = (
    _STUDY,
    _v(
        "evaluation_id",
        "Surface evaluation id",
        "integer",
        derivation="cases.SurfaceEvaluation primary key",
    ),
    _CASE,
    _SIDE,
    _SOURCE,
    _METHOD,
    _v(
        "reference_source",
        "Source of the reference reconstruction",
        "categorical (ordered)",
        allowed="CT, XRAY, EXPERT",
        derivation="SurfaceEvaluation.reference.source",
    ),
    _v(
        "bone",
        "Bone",
        "categorical (ordered)",
        allowed="femur, tibia, fibula, patella",
        derivation="SurfaceMetric.bone",
    ),
    _v(
        "metric",
        "Surface metric",
        "categorical",
        allowed="e.g. ASSD, MASD, RMS, HD, HD95, NSD, Chamfer, signed distance, Dice, IoU",
        derivation="SurfaceMetric.metric (evaluation.surface)",
    ),
    _v(
        "variant",
        "Metric variant",
        "string",
        derivation="SurfaceMetric.variant (e.g. pooled, max of directed)",
    ),
    _v(
        "value",
        "Metric value",
        "float",
        unit="see unit",
        missing=MISSING_NA,
        derivation="SurfaceMetric.value",
    ),
    _v(
        "unit",
        "Unit of the value",
        "string",
        allowed="mm, mm^2, 1, ...",
        derivation="SurfaceMetric.unit",
    ),
    _v(
        "parameters",
        "Metric parameters (JSON)",
        "string (JSON)",
        derivation="SurfaceEvaluation.parameters: sampling density, seed, tolerance, crop, alignment",
    ),
)

ALIGNMENT: tuple[Variable, ...] = (
    _STUDY,
    _CASE,
    _SIDE,
    _SOURCE,
    _METHOD,
    _v(
        "angle",
        "Alignment angle",
        "categorical (ordered)",
        allowed="e.g. MPTA, LDFA, aHKA, JLO",
        derivation="not stored yet",
    ),
    _v("value", "Angle", "float", unit="degree", missing=MISSING_NA, derivation="not stored yet"),
    _v("unit", "Unit", "string", allowed="degree", derivation="not stored yet"),
    _v("parameters", "Measurement parameters (JSON)", "string (JSON)", derivation="not stored yet"),
)

GUIDE_TRIAL: tuple[Variable, ...] = (
    _STUDY,
    _v("trial", "Guide trial", "string", derivation="trials.GuideTrial.title"),
    _v(
        "surgeon",
        "Surgeon (pseudonymous)",
        "string",
        derivation="S01.. by user name within the export",
    ),
    _CASE,
    _v(
        "arm",
        "Guide arm (model the guide was designed on)",
        "categorical (ordered)",
        allowed="CT, XRAY",
        derivation="Placement.source",
    ),
    _v(
        "period",
        "Period (order of use for the surgeon)",
        "integer",
        allowed=">= 1",
        derivation="randomised, counterbalanced order",
    ),
    _v("placement_time_s", "Time to place the guide", "float", unit="s", missing=MISSING_NA),
    _v("fit_score", "Fit (Likert)", "integer", allowed="1..5", missing=MISSING_NA),
    _v("stability_score", "Stability (Likert)", "integer", allowed="1..5", missing=MISSING_NA),
    _v("accuracy_score", "Accuracy (Likert)", "integer", allowed="1..5", missing=MISSING_NA),
    _v("planned_correction_deg", "Planned correction", "float", unit="degree", missing=MISSING_NA),
    _v(
        "achieved_correction_deg", "Achieved correction", "float", unit="degree", missing=MISSING_NA
    ),
    _v(
        "angular_deviation_deg",
        "Correction error",
        "float",
        unit="degree",
        missing=MISSING_NA,
        derivation="|achieved - planned|",
    ),
    _v(
        "success_within_2deg",
        "Success (correction error <= 2 degrees)",
        "boolean",
        missing=MISSING_NA,
        derivation="angular_deviation_deg <= 2",
    ),
    _v(
        "cut_plane_deviation_deg",
        "Cut-plane deviation (angle)",
        "float",
        unit="degree",
        missing=MISSING_NA,
    ),
    _v(
        "cut_plane_deviation_mm",
        "Cut-plane deviation (offset)",
        "float",
        unit="mm",
        missing=MISSING_NA,
    ),
)

CODEBOOK: dict[str, tuple[Variable, ...]] = {
    "answers": ANSWERS,
    "assignments": ASSIGNMENTS,
    "surface_metrics": SURFACE,
    "alignment_angles": ALIGNMENT,
    "guide_trial": GUIDE_TRIAL,
}
TABLE_NOTES: dict[str, str] = {
    "answers": "Long format, one row per assignment x question (read); unanswered reads kept "
    "with score NA and their status. Wide matrices are derived, never primary.",
    "assignments": "The stored reading order (allocation list) generated once at launch.",
    "surface_metrics": "Surface metrics long: one row per evaluation, bone, metric and variant.",
    **exports.NOT_YET_STORED,
}


class CodebookError(ValueError):
    """An exported table and the codebook disagree."""


def variables(table: str) -> dict[str, Variable]:
    return {v.name: v for v in CODEBOOK[table]}


def check_coverage(frames: dict[str, pd.DataFrame]) -> None:
    """Every column of every table is in the codebook, and nothing else is."""
    problems = []
    for table, frame in frames.items():
        described = [v.name for v in CODEBOOK.get(table, ())]
        if list(frame.columns) != described:
            extra = sorted(set(frame.columns) - set(described))
            absent = sorted(set(described) - set(frame.columns))
            problems.append(f"{table}: undocumented {extra}, documented but absent {absent}")
    if problems:
        raise CodebookError("; ".join(problems))


def codebook_frame(frames: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per table x variable; the categories actually present are listed too."""
    rows = []
    for table, specs in CODEBOOK.items():
        frame = (frames or {}).get(table)
        for spec in specs:
            row = {"table": table, **asdict(spec)}
            if frame is not None and isinstance(frame[spec.name].dtype, pd.CategoricalDtype):
                categories = list(frame[spec.name].cat.categories)
                row["allowed"] = (
                    "; ".join(f"{n}={c}" for n, c in enumerate(categories, start=1)) or spec.allowed
                )
            row["table_note"] = TABLE_NOTES.get(table, "")
            rows.append(row)
    return pd.DataFrame(rows, dtype="string")
