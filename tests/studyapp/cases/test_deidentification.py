"""A DICOM series full of patient data is uploaded; none of it is stored anywhere."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from reconstruction import io as imaging_io
from studyapp.cases import services
from tests.studyapp.factories import CaseFactory

from .imaging_factories import ct_volume

PHI = {
    "PatientName": "Doe^Johnathan",
    "PatientID": "MRN-99887766",
    "PatientBirthDate": "19520314",
    "PatientAddress": "12 Elm Street, Springfield",
    "InstitutionName": "Springfield General Hospital",
    "ReferringPhysicianName": "House^Gregory",
    "AccessionNumber": "ACC-5551234",
    "ImageComments": "patient Johnathan complains of knee pain",
    "StudyDescription": "Knee CT for Johnathan Doe",
}
PRIVATE_TEXT = "PRIVATE-SECRET-Johnathan"


def _phi_series_zip(tmp_path: Path) -> bytes:
    folder = tmp_path / "series"
    imaging_io.write_dicom_series(ct_volume(), folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, path in enumerate(sorted(folder.glob("*.dcm"))):
            dataset = pydicom.dcmread(path)
            for keyword, value in PHI.items():
                setattr(dataset, keyword, value)
            block = dataset.private_block(0x0011, "ACME HOSPITAL", create=True)
            block.add_new(0x01, "LO", PRIVATE_TEXT)
            out = io.BytesIO()
            dataset.save_as(out, enforce_file_format=True)
            # The file name itself carries PHI, as exported series often do.
            archive.writestr(f"Doe_Johnathan/slice_{index:03d}.dcm", out.getvalue())
    return buffer.getvalue()


@pytest.mark.django_db
def test_no_patient_data_is_stored_from_a_dicom_upload(
    tmp_path, isolated_media, django_capture_on_commit_callbacks, capsys
):
    case = CaseFactory()
    upload = SimpleUploadedFile("Doe_Johnathan_CT.zip", _phi_series_zip(tmp_path))
    with django_capture_on_commit_callbacks(execute=True):
        ct = services.upload_ct(case, upload)
    assert ct.original_format == "dicom"
    assert ct.shape == [24, 20, 16]
    needles = [value.encode() for value in PHI.values()] + [
        PRIVATE_TEXT.encode(),
        b"Johnathan",
        b"19520314",
    ]
    files = [p for p in isolated_media.rglob("*") if p.is_file()]
    assert files, "the upload stored nothing"
    for path in files:
        content = path.read_bytes()
        if path.suffix == ".gz":
            import gzip

            content += gzip.decompress(content)
        for needle in needles:
            assert needle not in content, f"{needle!r} found in {path}"
        assert b"Johnathan" not in str(path).encode()
    call_command("dumpdata", "cases", "jobs", stdout=(dump := io.StringIO()))
    for needle in needles:
        assert needle.decode() not in dump.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "members, message",
    [
        ({"../../etc/evil.dcm": b"x"}, "traversal|outside|\\.\\."),
        ({}, "no DICOM|empty|no files"),
    ],
    ids=["path-traversal", "empty-zip"],
)
def test_hostile_or_empty_archives_are_rejected(members, message, isolated_media):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(services.UploadRejected, match=message):
        services.upload_ct(CaseFactory(), SimpleUploadedFile("series.zip", buffer.getvalue()))
    assert [p for p in isolated_media.rglob("*") if p.is_file()] == []
