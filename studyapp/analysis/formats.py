"""Writers of the export tables: CSV, Parquet, XLSX, SPSS .sav, Stata .dta and iMRMC.

Each writer converts the typed frames of `exports` to what its format holds:
- CSV: UTF-8, explicit "NA", timestamps ISO 8601 UTC ("...Z"), booleans true/false;
- Parquet: the typed frame as is (ordered categoricals, nullable ints, UTC timestamps);
- XLSX: one sheet per table plus the codebook, "NA" for missing, ISO timestamps;
- SPSS/Stata: categoricals and booleans as integer codes with value labels, variable labels
  from the codebook, timestamps as UTC datetimes, missing numbers system-missing, missing
  text empty;
- iMRMC: per Likert question, `reader,case,modality,score` rows after "BEGIN DATA:".
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import codebook as codebook_module

NA = "NA"
BOOL_LABELS = {0: "false", 1: "true"}


def iso_utc(series: pd.Series) -> pd.Series:
    """UTC timestamps as ISO 8601 with milliseconds and a Z; NA stays NA."""
    text = series.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str.slice(0, 23) + "Z"
    return text.astype("string").where(series.notna(), pd.NA)


def _is_datetime(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
        series.dtype
    )


def _is_bool(series: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(series.dtype)


def for_text(frame: pd.DataFrame) -> pd.DataFrame:
    """CSV/XLSX view: ISO timestamps, true/false booleans, categories as text."""
    out = {}
    for name, series in frame.items():
        if _is_datetime(series):
            out[name] = iso_utc(series)
        elif _is_bool(series):
            out[name] = series.map({True: "true", False: "false"}).astype("string")
        elif isinstance(series.dtype, pd.CategoricalDtype):
            out[name] = series.astype("string")
        else:
            out[name] = series
    return pd.DataFrame(out, index=frame.index)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    for_text(frame).to_csv(path, index=False, na_rep=NA, encoding="utf-8", lineterminator="\n")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False, engine="pyarrow")


def write_xlsx(frames: dict[str, pd.DataFrame], codebook: pd.DataFrame, path: Path) -> None:
    """One sheet per table and the codebook; openpyxl's write-only mode (streams rows)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for table, frame in frames.items():
        _xlsx_sheet(book, table[:31], for_text(frame), NA)
    _xlsx_sheet(book, "codebook", codebook, "")
    book.save(path)


def _xlsx_sheet(book, title: str, frame: pd.DataFrame, na: str) -> None:
    sheet = book.create_sheet(title)
    sheet.append([str(c) for c in frame.columns])
    columns = []
    for _, series in frame.items():
        values = series.astype(object).to_numpy()
        missing = series.isna().to_numpy()
        columns.append([na if m else _cell(v) for v, m in zip(values, missing, strict=True)])
    for row in zip(*columns, strict=True):
        sheet.append(row)


def _cell(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def for_stats_package(
    frame: pd.DataFrame, table: str
) -> tuple[pd.DataFrame, list[str], dict[str, dict[int, str]]]:
    """SPSS/Stata view: integer codes with value labels, naive UTC datetimes, '' for NA text."""
    specs = codebook_module.variables(table)
    columns: dict[str, pd.Series] = {}
    value_labels: dict[str, dict[int, str]] = {}
    for name, series in frame.items():
        if isinstance(series.dtype, pd.CategoricalDtype):
            codes = series.cat.codes.to_numpy().astype("float64") + 1
            codes[series.isna().to_numpy()] = np.nan
            columns[name] = _int_if_complete(codes)
            value_labels[name] = {n: str(c) for n, c in enumerate(series.cat.categories, start=1)}
        elif _is_bool(series):
            values = series.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
            columns[name] = _int_if_complete(values)
            value_labels[name] = dict(BOOL_LABELS)
        elif _is_datetime(series):
            columns[name] = (
                series.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
            )
        elif pd.api.types.is_integer_dtype(series.dtype):
            values = series.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
            columns[name] = _int_if_complete(values)
        elif pd.api.types.is_float_dtype(series.dtype):
            columns[name] = pd.Series(series.to_numpy(dtype="float64", na_value=np.nan))
        else:
            columns[name] = pd.Series(
                series.astype("string").fillna("").to_numpy(dtype=object), dtype=object
            )
    out = pd.DataFrame(columns)
    labels = [specs[name].label for name in out.columns]
    return out, labels, value_labels


def _int_if_complete(values: np.ndarray) -> pd.Series:
    if len(values) and not np.isnan(values).any():
        return pd.Series(values.astype("int64"))
    return pd.Series(values, dtype="float64")


def write_sav(frame: pd.DataFrame, table: str, path: Path) -> None:
    import pyreadstat

    data, labels, value_labels = for_stats_package(frame, table)
    pyreadstat.write_sav(
        data,
        str(path),
        column_labels=labels,
        variable_value_labels=value_labels,
        file_label=f"{table} (see codebook)",
    )


def write_dta(frame: pd.DataFrame, table: str, path: Path) -> None:
    import pyreadstat

    data, labels, value_labels = for_stats_package(frame, table)
    pyreadstat.write_dta(
        data,
        str(path),
        column_labels=labels,
        variable_value_labels=value_labels,
        file_label=f"{table} (see codebook)"[:80],
        version=15,
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "question"


def imrmc_files(answers: pd.DataFrame, study_title: str) -> dict[str, str]:
    """One iMRMC file per Likert question: complete, non-excluded round-1 reads of CT/X-ray.

    No truth rows: Likert scores have no reference standard. iMRMC's ROC analysis needs
    `-1,case,0,truth` rows added by the analyst; the MRMC variance of mean scores does not.
    """
    files: dict[str, str] = {}
    keep = (
        (answers["question_kind"] == "likert")
        & ~answers["excluded"].astype(bool)
        & (answers["status"] == "complete")
        & (answers["round"] == 1)
        & answers["source"].isin(["CT", "XRAY"])
    )
    part = answers[keep]
    questions = list(answers["question"].cat.categories) if len(answers) else []
    for number, question in enumerate(questions, start=1):
        rows = part[part["question"] == question]
        if rows.empty:
            continue
        lines = [
            f"iMRMC input: {study_title}",
            f"Question {number}: {question}",
            "Scores: Likert 1-5, round 1, training reads excluded; no truth rows (no reference",
            "standard for Likert scores). Columns: readerID, caseID, modalityID, score.",
            f"NR: {rows['rater'].nunique()}",
            f"NC: {rows['case'].nunique()}",
            f"NM: {rows['source'].nunique()}",
            "BEGIN DATA:",
        ]
        lines += [
            f"{r},{c},{m},{int(s)}"
            for r, c, m, s in zip(
                rows["rater"].astype(str),
                rows["case"].astype(str),
                rows["source"].astype(str),
                rows["score"],
                strict=True,
            )
        ]
        files[f"{number:02d}-{_slug(str(question))}.imrmc"] = "\n".join(lines) + "\n"
    return files


def read_imrmc(text: str) -> pd.DataFrame:
    body = text.split("BEGIN DATA:\n", 1)[1]
    rows = [line.split(",") for line in body.splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=["reader", "case", "modality", "score"]).astype(
        {"score": int}
    )


README = """Export of {reader_study} ({study})
Generated {generated_at} by {app_version}.

Tables (one file per table and format): {tables}
Row counts: {row_counts}

Folders: {folders}
- codebook.csv: every variable (label, type, unit, allowed values, missing code, derivation).
- provenance.json: randomisation algorithm, seed, blinding-key hash, git commit, package
  versions, SHA-256 of every mesh, metric parameters, SHA-256 of every file in this bundle.
- unblinding_key.csv: item code -> case, side, arm (source), method. The answers table carries
  the source already; the key is here for verification against the blinding-key hash.

Missing data: CSV/XLSX "NA"; Parquet null; SPSS/Stata system-missing (numbers) or empty
(text). Unanswered reads are rows with score NA and a status (not_opened, not_submitted,
skipped). Training reads are rows with excluded=true.
{notes}
"""

WRITERS_PER_TABLE: dict[str, tuple[str, Callable[[pd.DataFrame, str, Path], None]]] = {
    "csv": ("csv", lambda f, t, p: write_csv(f, p)),
    "parquet": ("parquet", lambda f, t, p: write_parquet(f, p)),
    "sav": ("sav", write_sav),
    "dta": ("dta", write_dta),
}
FOLDERS = {
    "csv": "csv",
    "parquet": "parquet",
    "xlsx": "xlsx",
    "sav": "spss",
    "dta": "stata",
    "imrmc": "imrmc",
}


def write_bundle(
    target: Path,
    *,
    frames: dict[str, pd.DataFrame],
    formats: Iterable[str],
    root_name: str,
    extra_files: dict[str, bytes],
    provenance: dict[str, Any],
    readme_fields: dict[str, Any],
    progress: Callable[[float, str], None] = lambda p, m: None,
) -> dict[str, str]:
    """Write every table in every format and the extra files into one zip at `target`.

    The zip is built in a temporary folder and moved into place by the caller (atomic).
    Returns the SHA-256 of every member (also written into provenance.json).
    """
    from .provenance import sha256_bytes

    formats = list(formats)
    codebook = codebook_module.codebook_frame(frames)
    members: dict[str, bytes] = {"codebook.csv": _codebook_csv(codebook), **extra_files}
    steps = max(1, len(formats))
    with tempfile.TemporaryDirectory(prefix="export-") as scratch:
        folder = Path(scratch)
        for done, fmt in enumerate(formats):
            progress(20 + 70 * done / steps, f"writing {fmt}")
            members.update(_write_format(fmt, frames, codebook, folder, readme_fields))
    hashes = {name: sha256_bytes(data) for name, data in sorted(members.items())}
    provenance = {**provenance, "files": hashes}
    readme = README.format(
        tables=", ".join(frames),
        row_counts=json.dumps({t: len(f) for t, f in frames.items()}),
        folders=", ".join(FOLDERS[f] + "/" for f in formats),
        **readme_fields,
    )
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as bundle:
        bundle.writestr(f"{root_name}/README.txt", readme)
        bundle.writestr(
            f"{root_name}/provenance.json", json.dumps(provenance, indent=2, default=str)
        )
        for name, data in sorted(members.items()):
            bundle.writestr(f"{root_name}/{name}", data)
    return hashes


def _codebook_csv(codebook: pd.DataFrame) -> bytes:
    return codebook.to_csv(index=False, na_rep="", lineterminator="\n").encode("utf-8")


def _write_format(
    fmt: str,
    frames: dict[str, pd.DataFrame],
    codebook: pd.DataFrame,
    folder: Path,
    readme_fields: dict[str, Any],
) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    sub = FOLDERS[fmt]
    if fmt in WRITERS_PER_TABLE:
        suffix, writer = WRITERS_PER_TABLE[fmt]
        for table, frame in frames.items():
            path = folder / f"{table}.{suffix}"
            writer(frame, table, path)
            out[f"{sub}/{table}.{suffix}"] = path.read_bytes()
    elif fmt == "xlsx":
        path = folder / "export.xlsx"
        write_xlsx(frames, codebook, path)
        out[f"{sub}/export.xlsx"] = path.read_bytes()
    elif fmt == "imrmc":
        for name, text in imrmc_files(frames["answers"], readme_fields["reader_study"]).items():
            out[f"{sub}/{name}"] = text.encode("utf-8")
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    return out
