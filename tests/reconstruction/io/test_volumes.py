"""Volume readers/writers: round trips (ours, pydicom, SimpleITK) and specific errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from reconstruction.errors import CorruptFileError, GeometryError, ModalityError, SeriesError
from reconstruction.io import read_volume, write_dicom_series, write_nifti, write_nrrd
from reconstruction.pseudoct import real_knee_labels_path
from reconstruction.volume import Volume

REAL_KNEE = real_knee_labels_path()


def oblique_ct(shape: tuple[int, int, int] = (12, 10, 7), spacing=(0.7, 0.9, 2.5)) -> Volume:
    angle = np.deg2rad(20.0)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    tilt = np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ tilt @ np.diag(spacing)
    affine[:3, 3] = [10.5, -20.25, 30.0]
    array = np.random.default_rng(0).integers(-1024, 2500, size=shape).astype(np.float32)
    return Volume(array, affine)


def sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_dicom_series_round_trip_with_ours_pydicom_and_simpleitk(tmp_path: Path) -> None:
    ct = oblique_ct()
    paths = write_dicom_series(ct, tmp_path / "series", series_description="knee")
    assert len(paths) == ct.shape[2]
    back = read_volume(tmp_path / "series", require_ct=True)
    assert np.array_equal(back.array, ct.array)
    assert np.allclose(back.affine, ct.affine, atol=1e-6)
    first = pydicom.dcmread(paths[0])
    assert first.Modality == "CT" and (first.Rows, first.Columns) == (ct.shape[1], ct.shape[0])
    assert np.array_equal(
        first.pixel_array.T * float(first.RescaleSlope) + float(first.RescaleIntercept),
        ct.array[:, :, 0],
    )
    image = sitk_series(tmp_path / "series")
    assert np.array_equal(sitk.GetArrayFromImage(image).transpose(2, 1, 0), ct.array)
    assert np.allclose(image.GetSpacing(), ct.spacing, atol=1e-6)
    assert np.allclose(image.GetOrigin(), ct.origin, atol=1e-6)
    assert np.allclose(np.reshape(image.GetDirection(), (3, 3)), ct.direction, atol=1e-6)


def test_non_integer_values_are_quantised_within_half_a_step(tmp_path: Path) -> None:
    ct = oblique_ct()
    noisy = Volume(ct.array + np.float32(0.37), ct.affine)
    write_dicom_series(noisy, tmp_path / "series")
    back = read_volume(tmp_path / "series")
    slope = float(pydicom.dcmread(next((tmp_path / "series").iterdir())).RescaleSlope)
    assert np.abs(back.array - noisy.array).max() <= slope / 2 + 1e-3


def test_nifti_is_converted_from_ras_to_lps(tmp_path: Path) -> None:
    ct = oblique_ct()
    write_nifti(ct, tmp_path / "ct.nii.gz")
    back = read_volume(tmp_path / "ct.nii.gz")
    assert np.array_equal(back.array, ct.array) and np.allclose(back.affine, ct.affine)
    # nibabel sees RAS: x and y negated relative to our LPS affine
    ras = nib.load(tmp_path / "ct.nii.gz").affine
    assert np.allclose(ras[:2], -ct.affine[:2]) and np.allclose(ras[2], ct.affine[2])
    # SimpleITK reads NIfTI into LPS as well
    assert np.allclose(
        sitk.ReadImage(str(tmp_path / "ct.nii.gz")).GetOrigin(), ct.origin, atol=1e-4
    )


def test_nrrd_round_trip(tmp_path: Path) -> None:
    ct = oblique_ct()
    write_nrrd(ct, tmp_path / "ct.nrrd")
    back = read_volume(tmp_path / "ct.nrrd", require_ct=True)
    assert np.array_equal(back.array, ct.array) and np.allclose(back.affine, ct.affine)
    assert np.allclose(sitk.ReadImage(str(tmp_path / "ct.nrrd")).GetOrigin(), ct.origin, atol=1e-4)


@pytest.mark.skipif(not REAL_KNEE.exists(), reason=f"shared real knee not found at {REAL_KNEE}")
def test_real_knee_nrrd_geometry_matches_simpleitk() -> None:
    labels = read_volume(REAL_KNEE)
    image = sitk.ReadImage(str(REAL_KNEE))
    assert labels.shape == image.GetSize() and labels.array.dtype == np.uint8
    assert np.allclose(labels.spacing, image.GetSpacing(), atol=1e-4)
    assert np.allclose(labels.direction, np.reshape(image.GetDirection(), (3, 3)), atol=1e-4)
    assert np.allclose(labels.origin, image.GetOrigin(), atol=1e-4)
    with pytest.raises(ModalityError, match="label map"):
        read_volume(REAL_KNEE, require_ct=True)


# --------------------------------------------------------------------------- errors


def _series(tmp_path: Path, positions_k: list[float] | None = None) -> list[Path]:
    """A written axial series; optionally move slices to the given z positions."""
    ct = Volume(np.zeros((6, 5, 6), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    paths = write_dicom_series(ct, tmp_path / "series")
    if positions_k is not None:
        for path, z in zip(paths, positions_k, strict=True):
            ds = pydicom.dcmread(path)
            ds.ImagePositionPatient = [0.0, 0.0, z]
            ds.save_as(path)
    return paths


def test_missing_slice(tmp_path: Path) -> None:
    paths = _series(tmp_path)
    paths[3].unlink()
    with pytest.raises(SeriesError, match="missing slice: 1 slice"):
        read_volume(tmp_path / "series")


def test_duplicate_slice(tmp_path: Path) -> None:
    paths = _series(tmp_path)
    (tmp_path / "series" / "copy.dcm").write_bytes(paths[2].read_bytes())
    with pytest.raises(SeriesError, match="duplicate slice"):
        read_volume(tmp_path / "series")


def test_uneven_spacing(tmp_path: Path) -> None:
    _series(tmp_path, [0.0, 2.0, 4.0, 6.9, 8.0, 10.0])
    with pytest.raises(SeriesError, match="uneven slice spacing"):
        read_volume(tmp_path / "series")


def test_mixed_series(tmp_path: Path) -> None:
    paths = _series(tmp_path)
    ds = pydicom.dcmread(paths[0])
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesDescription = "scout"
    ds.save_as(paths[0])
    with pytest.raises(SeriesError, match="mixed series: the input holds 2 series"):
        read_volume(tmp_path / "series")


def test_mr_where_ct_is_required(tmp_path: Path) -> None:
    mr = Volume(
        np.random.default_rng(1).random((6, 5, 4)).astype(np.float32) * 900,
        np.eye(4),
        modality="MR",
    )
    write_dicom_series(mr, tmp_path / "mr")
    assert read_volume(tmp_path / "mr").modality == "MR"
    with pytest.raises(ModalityError, match="modality is MR, a CT is required"):
        read_volume(tmp_path / "mr", require_ct=True)
    write_nifti(mr, tmp_path / "mr.nii.gz")
    with pytest.raises(ModalityError, match="modality is MR"):
        read_volume(tmp_path / "mr.nii.gz", require_ct=True)


def test_two_dimensional_inputs(tmp_path: Path) -> None:
    paths = _series(tmp_path)
    with pytest.raises(ModalityError, match="single 2D image"):
        read_volume(paths[0])
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.float32), np.eye(4)), tmp_path / "flat.nii")
    with pytest.raises(ModalityError, match="expected a 3D volume, got 2D"):
        read_volume(tmp_path / "flat.nii")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 1), np.float32), np.eye(4)), tmp_path / "slab.nii")
    with pytest.raises(ModalityError, match="single-voxel axis"):
        read_volume(tmp_path / "slab.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), tmp_path / "time.nii")
    with pytest.raises(ModalityError, match="got 4D"):
        read_volume(tmp_path / "time.nii")


def test_nan_and_inf(tmp_path: Path) -> None:
    array = np.zeros((4, 4, 4), np.float32)
    array[1, 2, 3] = np.nan
    array[0, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(CorruptFileError, match="2 voxels are NaN or infinite"):
        read_volume(tmp_path / "nan.nii.gz")


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    (tmp_path / "garbage.nii.gz").write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(CorruptFileError, match="garbage.nii.gz: truncated or corrupt NIfTI"):
        read_volume(tmp_path / "garbage.nii.gz")
    write_nifti(oblique_ct(), tmp_path / "ct.nii.gz")
    data = (tmp_path / "ct.nii.gz").read_bytes()
    (tmp_path / "ct.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="truncated or corrupt NIfTI"):
        read_volume(tmp_path / "ct.nii.gz")
    write_nrrd(oblique_ct(), tmp_path / "ct.nrrd")
    data = (tmp_path / "ct.nrrd").read_bytes()
    (tmp_path / "ct.nrrd").write_bytes(data[: len(data) - 200])
    with pytest.raises(CorruptFileError, match="truncated or corrupt NRRD"):
        read_volume(tmp_path / "ct.nrrd")
    (tmp_path / "scan.xyz").write_bytes(gzip.compress(b"abc"))
    with pytest.raises(CorruptFileError, match="unrecognised volume format"):
        read_volume(tmp_path / "scan.xyz")


def test_truncated_and_foreign_dicom_slices(tmp_path: Path) -> None:
    paths = _series(tmp_path)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 20])
    with pytest.raises(CorruptFileError, match="truncated"):
        read_volume(tmp_path / "series")
    paths[2].write_bytes(data[:300])
    with pytest.raises(CorruptFileError):
        read_volume(tmp_path / "series")
    paths[2].write_bytes(b"not dicom")
    with pytest.raises(CorruptFileError, match="slice_0003.dcm: not a DICOM file"):
        read_volume(tmp_path / "series")


def test_writers_refuse_bad_volumes(tmp_path: Path) -> None:
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    with pytest.raises(GeometryError, match="orthogonal in-plane axes"):
        write_dicom_series(Volume(np.zeros((4, 4, 4), np.float32), sheared), tmp_path / "s")
    with pytest.raises(CorruptFileError, match="NaN"):
        write_nifti(
            Volume(np.full((4, 4, 4), np.nan, np.float32), np.eye(4)), tmp_path / "n.nii.gz"
        )
    write_dicom_series(oblique_ct(), tmp_path / "full")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dicom_series(oblique_ct(), tmp_path / "full")
