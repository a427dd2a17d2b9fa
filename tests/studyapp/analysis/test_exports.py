"""Exports: the long table keeps every read, every format reads back to the same values,
the codebook covers every column, and the provenance can be checked against the bundle."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from django.conf import settings

from studyapp.analysis import codebook, exports, formats, services
from studyapp.analysis.models import FORMATS, Export, Status
from studyapp.jobs.models import Job
from studyapp.reading.models import Answer, AuditEvent


@pytest.fixture(scope="module")
def built(django_db_setup, django_db_blocker, tmp_path_factory):
    """One export of the shared study, built through the job (module scope: built once)."""
    from django.test import override_settings

    from tests.studyapp.analysis.conftest import build_study
    from tests.studyapp.factories import UserFactory

    media = tmp_path_factory.mktemp("export-media")
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media):
        from django.db import transaction

        with transaction.atomic():
            reader_study = build_study()
            user = UserFactory(roles=["statistician"])
            tables = exports.build_tables(reader_study)
            # Inside the transaction the queued job never starts (rolled back): build here.
            export = services.request_export(reader_study, user)
            services.build_export(export.pk)
            export.refresh_from_db()
            data = (media / export.file.name).read_bytes()
            key_events = AuditEvent.objects.filter(
                reader_study=reader_study, action=AuditEvent.Action.KEY_EXPORT
            ).count()
            answers_in_db = Answer.objects.filter(assignment__reader_study=reader_study).count()
            transaction.set_rollback(True)
    bundle = zipfile.ZipFile(io.BytesIO(data))
    root = bundle.namelist()[0].split("/")[0]
    return {
        "export": export,
        "tables": tables,
        "data": data,
        "zip": bundle,
        "root": root,
        "key_events": key_events,
        "answers_in_db": answers_in_db,
    }


def member(built, name: str) -> bytes:
    return built["zip"].read(f"{built['root']}/{name}")


def _same_text(expected: pd.Series, actual: pd.Series) -> None:
    left = [None if pd.isna(v) else str(v) for v in expected]
    right = [None if pd.isna(v) or v == "" else str(v) for v in actual]
    left = [None if v == "" else v for v in left]
    assert left == right, expected.name


def _same_numbers(expected: pd.Series, actual: pd.Series) -> None:
    a = pd.to_numeric(expected.astype("Float64"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    b = pd.to_numeric(pd.Series(actual), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True, err_msg=str(expected.name))


def _compare_text_format(frame: pd.DataFrame, back: pd.DataFrame) -> None:
    """CSV/XLSX: numbers numerically, everything else as its text (ISO timestamps, true/false)."""
    assert list(back.columns) == list(frame.columns)
    assert len(back) == len(frame)
    text = formats.for_text(frame)
    for name in frame.columns:
        series = frame[name]
        numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
            series.dtype
        )
        if numeric:
            _same_numbers(series, back[name])
        else:
            _same_text(text[name], back[name])


# --- the long table ------------------------------------------------------------------------


def test_long_table_keeps_every_read_and_says_why_one_is_missing(built):
    answers = built["tables"]["answers"]
    assignments = built["tables"]["assignments"]
    # one row per assignment x question (4 questions), answered or not
    assert len(answers) == 4 * len(assignments)
    assert answers["answer_id"].notna().sum() == built["answers_in_db"]
    counts = answers["status"].value_counts()
    assert counts["not_opened"] == 4 and counts["not_submitted"] == 4
    missing = answers[answers["status"] != "complete"]
    assert missing["score"].isna().all() and missing["answer_id"].isna().all()
    likert_missing = answers[(answers["question_kind"] == "likert") & answers["score"].isna()]
    assert set(likert_missing["status"]) == {"not_opened", "not_submitted"}


def test_long_table_values(built):
    answers = built["tables"]["answers"]
    assert list(answers.columns) == list(exports.ANSWER_COLUMNS)
    assert set(answers["rater"].astype(str)) == {"R01", "R02"}
    assert answers["source"].cat.ordered and list(answers["source"].cat.categories)[:2] == [
        "CT",
        "XRAY",
    ]
    likert = answers[(answers["question"] == "Overall shape") & answers["score"].notna()]
    anchors = [
        "Unrecognisable",
        "Poor",
        "Acceptable",
        "Good",
        "Indistinguishable from real anatomy",
    ]
    assert all(
        anchors[int(s) - 1] == label
        for s, label in zip(likert["score"], likert["label"], strict=False)
    )
    training = answers[answers["is_training"]]
    assert (
        training["excluded"].all()
        and (training["exclusion_reason"] == exports.TRAINING_REASON).all()
    )
    assert answers.loc[~answers["is_training"], "exclusion_reason"].isna().all()
    # R01 changed the answers of their first read: flagged as edited, from the audit log
    edited = answers[answers["edited"]]
    assert set(edited["rater"].astype(str)) == {"R01"} and edited["assignment_id"].nunique() == 1
    complete = answers[answers["status"] == "complete"]
    assert (complete["elapsed_s"] == 40).all()
    assert (complete["reading_time_s"] <= complete["elapsed_s"] + 1e-9).all()
    assert str(answers["shown_at"].dtype) == "datetime64[ms, UTC]"


def test_ratings_for_analysis_drop_training_and_keep_missing(built):
    answers = built["tables"]["answers"]
    ratings = exports.ratings_for_analysis(answers)
    assert set(ratings.columns) == {"rater", "case", "source", "question", "round", "score"}
    assert not ratings["case"].str.startswith("T").any()
    assert ratings["score"].isna().sum() == 2 * 3  # two unanswered reads x 3 Likert questions


# --- the bundle ----------------------------------------------------------------------------


def test_export_is_a_zip_with_its_hash_and_every_format(built):
    export: Export = built["export"]
    assert export.status == Status.DONE
    assert export.sha256 == hashlib.sha256(built["data"]).hexdigest()
    assert export.size_bytes == len(built["data"])
    names = {n.split("/", 1)[1] for n in built["zip"].namelist()}
    for table in exports.TABLE_COLUMNS:
        for folder, suffix in (
            ("csv", "csv"),
            ("parquet", "parquet"),
            ("spss", "sav"),
            ("stata", "dta"),
        ):
            assert f"{folder}/{table}.{suffix}" in names
    assert {
        "README.txt",
        "codebook.csv",
        "provenance.json",
        "unblinding_key.csv",
        "xlsx/export.xlsx",
    } <= names
    assert sum(n.startswith("imrmc/") for n in names) == 3  # one per Likert question
    assert export.row_counts["alignment_angles"] == 0 and export.row_counts["guide_trial"] == 0
    # building an export de-blinds: it is logged like an unblinding-key download
    assert built["key_events"] == 1


@pytest.mark.parametrize("table", list(exports.TABLE_COLUMNS))
def test_csv_round_trip(built, table):
    raw = member(built, f"csv/{table}.csv")
    assert raw.decode("utf-8")  # UTF-8
    back = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, na_values=["NA"])
    _compare_text_format(built["tables"][table], back)


def test_csv_missing_is_explicit(built):
    text = member(built, "csv/answers.csv").decode()
    assert ",NA," in text and "Ünïcode" in text


@pytest.mark.parametrize("table", list(exports.TABLE_COLUMNS))
def test_parquet_round_trip_is_typed(built, table):
    back = pd.read_parquet(io.BytesIO(member(built, f"parquet/{table}.parquet")))
    frame = built["tables"][table]
    if frame.empty:  # Parquet keeps no dictionary (categories) without rows: compare kinds
        assert list(back.columns) == list(frame.columns) and back.empty
        for name in frame.columns:
            assert isinstance(back[name].dtype, pd.CategoricalDtype) == isinstance(
                frame[name].dtype, pd.CategoricalDtype
            ), name
        return
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    if table == "answers":
        assert back["rater"].cat.ordered and back["status"].cat.ordered


def test_xlsx_round_trip(built):
    data = io.BytesIO(member(built, "xlsx/export.xlsx"))
    sheets = pd.read_excel(
        data, sheet_name=None, dtype=str, keep_default_na=False, na_values=["NA"]
    )
    assert set(sheets) == set(exports.TABLE_COLUMNS) | {"codebook"}
    for table in exports.TABLE_COLUMNS:
        _compare_text_format(built["tables"][table], sheets[table])


@pytest.mark.parametrize(
    "suffix, folder, reader",
    [("sav", "spss", pyreadstat.read_sav), ("dta", "stata", pyreadstat.read_dta)],
)
@pytest.mark.parametrize("table", list(exports.TABLE_COLUMNS))
def test_spss_and_stata_round_trip_with_labels(built, tmp_path, suffix, folder, reader, table):
    path = tmp_path / f"{table}.{suffix}"
    path.write_bytes(member(built, f"{folder}/{table}.{suffix}"))
    frame = built["tables"][table]
    back, meta = reader(str(path), apply_value_formats=True, formats_as_category=False)
    assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
    labels = codebook.variables(table)
    assert meta.column_labels == [labels[c].label for c in frame.columns]
    text = formats.for_text(frame)
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.CategoricalDtype):
            assert meta.variable_value_labels[name] == {
                n: str(c) for n, c in enumerate(series.cat.categories, start=1)
            }
            _same_text(text[name], back[name])
        elif pd.api.types.is_bool_dtype(series.dtype):
            _same_text(text[name], back[name])
        elif isinstance(series.dtype, pd.DatetimeTZDtype):
            expected = series.dt.tz_localize(None)
            actual = pd.to_datetime(back[name])
            assert len(expected) == len(actual)
            both = expected.notna()
            assert (actual.isna() == ~both).all(), name
            deltas = (
                actual[both].astype("datetime64[ns]") - expected[both].astype("datetime64[ns]")
            ).abs()
            assert (deltas <= pd.Timedelta(milliseconds=1)).all(), name
        elif pd.api.types.is_numeric_dtype(series.dtype):
            _same_numbers(series, back[name])
        else:
            _same_text(series, back[name])


def test_imrmc_files_hold_reader_case_modality_score(built):
    answers = built["tables"]["answers"]
    names = sorted(n for n in built["zip"].namelist() if "/imrmc/" in n)
    first = formats.read_imrmc(built["zip"].read(names[0]).decode())
    assert list(first.columns) == ["reader", "case", "modality", "score"]
    expected = answers[
        (answers["question"] == "Overall shape")
        & (answers["status"] == "complete")
        & ~answers["excluded"]
        & (answers["round"] == 1)
    ]
    assert len(first) == len(expected)
    assert set(first["modality"]) == {"CT", "XRAY"}
    assert first["score"].between(1, 5).all()


def test_codebook_covers_every_column_of_every_file(built):
    book = pd.read_csv(io.BytesIO(member(built, "codebook.csv")), dtype=str, keep_default_na=False)
    for table in exports.TABLE_COLUMNS:
        header = pd.read_csv(io.BytesIO(member(built, f"csv/{table}.csv")), nrows=0).columns
        described = book[book["table"] == table]
        assert list(described["name"]) == list(header)
        for field in ("label", "type", "missing", "derivation"):
            assert (described[field].str.len() > 0).all() or field == "derivation"
    notes = book[book["table"] == "alignment_angles"]["table_note"].iloc[0]
    assert "when none are stored" in notes


def test_codebook_refuses_an_undocumented_column(built):
    frames = dict(built["tables"].frames)
    frames["answers"] = frames["answers"].assign(secret=1)
    with pytest.raises(codebook.CodebookError, match="secret"):
        codebook.check_coverage(frames)


def test_provenance_matches_the_bundle(built):
    record = json.loads(member(built, "provenance.json"))
    key = member(built, "unblinding_key.csv")
    assert record["blinding_key"]["sha256"] == hashlib.sha256(key).hexdigest()
    assert record["randomisation"]["seed"] == 1234
    assert "Latin square" in record["randomisation"]["algorithm"]
    assert len(record["git_commit"]) == 40 or record["git_commit"] == "unknown"
    assert record["packages"]["pandas"] == pd.__version__
    for name, digest in record["files"].items():
        assert hashlib.sha256(member(built, name)).hexdigest() == digest, name
    allocation = formats.for_text(built["tables"]["assignments"]).to_csv(index=False).encode()
    assert (
        record["randomisation"]["allocation_list_sha256"] == hashlib.sha256(allocation).hexdigest()
    )


def test_provenance_hashes_every_mesh(db, isolated_media):
    from studyapp.analysis import provenance
    from tests.studyapp.factories import BoneModelFactory, ItemFactory, ReconstructionFactory

    reconstruction = ReconstructionFactory()
    bone = BoneModelFactory(reconstruction=reconstruction, bone="femur")
    real = hashlib.sha256((Path(settings.MEDIA_ROOT) / bone.mesh.name).read_bytes()).hexdigest()
    bone.sha256 = real
    bone.save()
    BoneModelFactory(reconstruction=reconstruction, bone="tibia")  # stored hash is wrong
    item = ItemFactory(reconstruction=reconstruction)
    item.reader_study.study = reconstruction.case.study
    item.reader_study.save()
    rows = {r["bone"]: r for r in provenance.mesh_hashes(item.reader_study)}
    assert rows["femur"]["matches"] is True and rows["femur"]["sha256_file"] == real
    assert rows["tibia"]["matches"] is False


def test_export_job_runs_through_the_job_system(
    reader_study, statistician, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        export = services.request_export(reader_study, statistician, ["csv", "parquet"])
    export.refresh_from_db()
    job = Job.objects.get(pk=export.job_id)
    assert job.kind == "analysis.export" and job.state == Job.State.SUCCEEDED
    assert job.result["sha256"] == export.sha256 and export.status == Status.DONE
    assert (Path(settings.MEDIA_ROOT) / export.file.name).is_file()
    leftovers = [
        p for p in (Path(settings.MEDIA_ROOT) / "exports").iterdir() if p.name.startswith(".")
    ]
    assert not leftovers


def test_export_refuses_unknown_formats_and_raters(reader_study, statistician, rater):
    from django.core.exceptions import PermissionDenied, ValidationError

    with pytest.raises(ValidationError):
        services.request_export(reader_study, statistician, ["csv", "exe"])
    with pytest.raises(PermissionDenied):
        services.request_export(reader_study, rater, ["csv"])
    assert set(FORMATS) == {"csv", "parquet", "xlsx", "sav", "dta", "imrmc"}


def test_empty_reader_study_exports_columns_and_no_rows(db):
    from tests.studyapp.factories import ReaderStudyFactory

    tables = exports.build_tables(ReaderStudyFactory())
    codebook.check_coverage(tables.frames)
    assert all(len(frame) == 0 for frame in tables.frames.values())
