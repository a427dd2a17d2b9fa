"""De-identification: no PHI byte survives, UIDs re-mapped consistently, geometry kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from reconstruction.errors import ImagingError
from reconstruction.io import deidentify_dataset, deidentify_series, read_volume
from reconstruction.io.deid import PROFILE_ACTIONS

KEY = b"0123456789abcdef-test-key"
STUDY_UID = "1.2.826.0.1.3680043.2.1125.778899.1"
SERIES_UID = "1.2.826.0.1.3680043.2.1125.778899.2"
PHI = [
    "DOE^JOHNATHAN",
    "JOHNATHAN",
    "PID-555-1234",
    "19610412",
    "42 Elm Street Springfield",
    "Saint Elsewhere Hospital",
    "HOUSE^GREGORY",
    "CUDDY^LISA",
    "knee pain since fall, call Mrs Doe",
    "PRIVATE-JOHN-DOE",
    "OTHER-ID-999",
    "ACC123456",
    "ELSEWHERE_AE",
    "STATION-ORTHO-7",
    "SN-99887766",
    "+1-555-0100",
    "PREAMBLE-PHI",
    "Mother^Maiden",
    STUDY_UID,
    SERIES_UID,
    "1.2.826.0.1.3680043.2.1125.778899.3",
]


def phi_slice(index: int, sop_uid: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.2.1125.778899.3"
    ds.Modality = "CT"
    ds.PatientName = "DOE^JOHNATHAN"
    ds.PatientID = "PID-555-1234"
    ds.PatientBirthDate = "19610412"
    ds.PatientAddress = "42 Elm Street Springfield"
    ds.PatientTelephoneNumbers = "+1-555-0100"
    ds.PatientMotherBirthName = "Mother^Maiden"
    ds.InstitutionName = "Saint Elsewhere Hospital"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.OperatorsName = "CUDDY^LISA"
    ds.ImageComments = "knee pain since fall, call Mrs Doe"
    ds.AccessionNumber = "ACC123456"
    ds.StationName = "STATION-ORTHO-7"
    ds.DeviceSerialNumber = "SN-99887766"
    ds.StudyDate = "20240105"
    other = Dataset()
    other.PatientID = "OTHER-ID-999"
    ds.OtherPatientIDsSequence = Sequence([other])
    nested = Dataset()
    nested.ReferencedSOPInstanceUID = STUDY_UID
    nested.PersonName = "DOE^JOHNATHAN"
    ds.ReferencedSeriesSequence = Sequence([nested])
    block = ds.private_block(0x0011, "ACME HOSPITAL", create=True)
    block.add_new(0x01, "LO", "PRIVATE-JOHN-DOE")
    ds.ImagePositionPatient = [0.0, 0.0, 2.5 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.8, 0.7]
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns = 6, 5
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (np.arange(30, dtype=np.int16).reshape(6, 5) + 100 * index).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "ELSEWHERE_AE"
    ds.file_meta = meta
    ds.preamble = b"PREAMBLE-PHI".ljust(128, b"\x00")
    return ds


@pytest.fixture
def phi_series(tmp_path: Path) -> Path:
    folder = tmp_path / "DOE_JOHNATHAN_series"
    folder.mkdir()
    for index in range(4):
        phi_slice(index, f"1.2.826.0.1.3680043.2.1125.778899.10{index}").save_as(
            folder / f"DOE^JOHNATHAN_{index}.dcm", enforce_file_format=True
        )
    return folder


def test_no_phi_string_survives_anywhere_in_the_output_bytes(
    phi_series: Path, tmp_path: Path
) -> None:
    original = b"".join(path.read_bytes() for path in sorted(phi_series.iterdir()))
    for text in PHI:
        assert text.encode() in original, f"test setup: {text} should be in the input"
    written = deidentify_series(phi_series, tmp_path / "clean", KEY)
    assert len(written) == 4
    output = b"".join(path.read_bytes() for path in written)
    for text in PHI:
        assert text.encode().lower() not in output.lower(), f"{text!r} leaked"
    assert all("DOE" not in path.name for path in written)


def test_uids_are_remapped_consistently_and_keyed(phi_series: Path, tmp_path: Path) -> None:
    first = [pydicom.dcmread(path) for path in deidentify_series(phi_series, tmp_path / "a", KEY)]
    again = [pydicom.dcmread(path) for path in deidentify_series(phi_series, tmp_path / "b", KEY)]
    other_key = pydicom.dcmread(
        deidentify_series(phi_series, tmp_path / "c", b"another-key-0123456789")[0]
    )
    assert len({ds.SeriesInstanceUID for ds in first}) == 1
    assert len({ds.SOPInstanceUID for ds in first}) == 4
    assert first[0].StudyInstanceUID == again[0].StudyInstanceUID
    assert first[0].StudyInstanceUID != other_key.StudyInstanceUID
    assert first[0].file_meta.MediaStorageSOPInstanceUID == first[0].SOPInstanceUID
    assert (
        first[0].ReferencedSeriesSequence[0].ReferencedSOPInstanceUID == first[0].StudyInstanceUID
    )
    assert first[0].SOPClassUID == CTImageStorage  # standard UIDs are kept
    assert all(
        len(ds.StudyInstanceUID) <= 64 and ds.StudyInstanceUID.startswith("2.25.") for ds in first
    )
    assert first[0].PatientName == first[0].PatientID == again[0].PatientID != other_key.PatientID
    assert first[0].PatientIdentityRemoved == "YES"


def test_geometry_and_pixels_survive(phi_series: Path, tmp_path: Path) -> None:
    before = read_volume(phi_series, require_ct=True)
    deidentify_series(phi_series, tmp_path / "clean", KEY)
    after = read_volume(tmp_path / "clean", require_ct=True)
    assert np.array_equal(before.array, after.array)
    assert np.allclose(before.affine, after.affine)


def test_dataset_input_is_not_modified_and_burned_in_is_refused() -> None:
    ds = phi_slice(0, "1.2.826.0.1.3680043.2.1125.778899.200")
    clean = deidentify_dataset(ds, KEY)
    assert ds.PatientName == "DOE^JOHNATHAN" and clean.PatientName != ds.PatientName
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(ImagingError, match="burned-in annotation"):
        deidentify_dataset(ds, KEY)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        deidentify_dataset(phi_slice(0, "1.2.3"), b"short")


def test_profile_table_covers_core_identifiers() -> None:
    keywords = {pydicom.datadict.keyword_for_tag(tag) for tag in PROFILE_ACTIONS}
    for keyword in (
        "PatientBirthDate",
        "InstitutionName",
        "PatientAddress",
        "ReferringPhysicianName",
        "AccessionNumber",
        "OtherPatientIDsSequence",
    ):
        assert keyword in keywords
    assert len(PROFILE_ACTIONS) > 180
