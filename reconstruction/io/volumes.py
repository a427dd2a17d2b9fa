"""Read and write 3D images (DICOM series, NIfTI, NRRD) as the canonical `Volume`.

Conventions (all readers return the same thing):
- `Volume.affine` maps voxel index (i, j, k) to patient millimetres in LPS (DICOM).
  NIfTI stores RAS, so its affine is flipped on x and y on the way in and out.
- DICOM: i runs along a row (the column index, direction ImageOrientationPatient[0:3]),
  j along a column (the row index, ImageOrientationPatient[3:6]), k across slices in
  increasing order along the slice normal (row x column). This is the ITK convention,
  so `sitk.GetArrayFromImage(img).transpose(2, 1, 0)` equals `Volume.array`.
- Pixel values are rescaled (slope/intercept) to float32; HU for CT.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from reconstruction.errors import (
    CorruptFileError,
    GeometryError,
    ImagingError,
    ModalityError,
    SeriesError,
)
from reconstruction.io._atomic import atomic_directory, write_atomic
from reconstruction.volume import Volume

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
# Relative tolerance on slice steps: steps within 1 % (or 0.01 mm) of the median are even.
SLICE_STEP_RTOL = 0.01
SLICE_STEP_ATOL_MM = 0.01
# Integer volumes with at most this many distinct non-negative values look like label maps.
MAX_LABELS = 32


# ----------------------------------------------------------------------------- validation


def validate_volume_array(array: np.ndarray, source: str) -> np.ndarray:
    """Reject 2D/4D data, degenerate axes and non-finite values with a specific message."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise ModalityError(
            f"{source}: expected a 3D volume, got {array.ndim}D data of shape {array.shape}"
        )
    if min(array.shape) < 2:
        raise ModalityError(
            f"{source}: shape {array.shape} has a single-voxel axis; this is 2D data, not a volume"
        )
    if array.dtype.kind not in "biuf":
        raise CorruptFileError(f"{source}: unsupported voxel type {array.dtype}")
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise CorruptFileError(f"{source}: {bad} voxels are NaN or infinite")
    return array


def validate_affine(affine: np.ndarray, source: str) -> np.ndarray:
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise GeometryError(f"{source}: the voxel-to-patient transform is missing or not finite")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise GeometryError(f"{source}: the voxel-to-patient transform is singular")
    return affine


def looks_like_label_map(array: np.ndarray) -> bool:
    if array.dtype.kind not in "biu" and not np.all(np.mod(array, 1) == 0):
        return False
    values = np.unique(array)
    return values.size <= MAX_LABELS and values.min() >= 0


def require_ct_volume(volume: Volume, source: str) -> None:
    if volume.modality not in ("CT", "PSEUDO_CT"):
        raise ModalityError(f"{source}: modality is {volume.modality}, a CT is required")
    if looks_like_label_map(volume.array):
        raise ModalityError(
            f"{source}: holds only {np.unique(volume.array).size} distinct non-negative integer "
            "values; this is a label map, not a CT in Hounsfield units"
        )


# ----------------------------------------------------------------------------- dispatch


def read_volume(path: str | os.PathLike[str], *, require_ct: bool = False) -> Volume:
    """Read a DICOM series directory, a NIfTI file or an NRRD file into a `Volume` (LPS mm).

    With `require_ct`, anything that is not a CT (DICOM Modality, a modality recorded in
    the NIfTI/NRRD header by our writers, or an obvious label map) raises ModalityError.
    """
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"no such file or directory: {source}")
    name = source.name.lower()
    if source.is_dir():
        volume = read_dicom_series(source)
    elif name.endswith(NIFTI_SUFFIXES):
        volume = read_nifti(source)
    elif name.endswith(NRRD_SUFFIXES):
        volume = read_nrrd(source)
    elif _is_dicom_file(source):
        volume = read_dicom_series([source])
    else:
        raise CorruptFileError(
            f"{source.name}: unrecognised volume format (use a DICOM folder, .nii(.gz) or .nrrd)"
        )
    if require_ct:
        require_ct_volume(volume, source.name)
    return volume


def _is_dicom_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


# ----------------------------------------------------------------------------- NIfTI


def read_nifti(path: str | os.PathLike[str]) -> Volume:
    source = Path(path)
    try:
        image = nib.load(str(source))
        array = np.asanyarray(image.dataobj)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise CorruptFileError(f"{source.name}: truncated or corrupt NIfTI ({exc})") from exc
    array = validate_volume_array(array, source.name)
    affine = validate_affine(LPS_FROM_RAS @ image.affine, source.name)
    description = _nifti_description(image)
    modality = description.get("modality", "CT")
    return Volume(
        array=_as_working_dtype(array),
        affine=affine,
        modality=modality,
        metadata={"source_format": "nifti", "source_name": source.name},
    )


def _nifti_description(image: nib.Nifti1Image) -> dict[str, str]:
    """Parse the `key=value;...` description our writer stores in the NIfTI header."""
    raw = image.header.get("descrip")
    text = raw.tobytes().decode("ascii", "ignore").strip("\x00 ") if raw is not None else ""
    pairs = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def write_nifti(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write a Volume as NIfTI-1 (RAS affine in qform and sform); atomic."""
    target = Path(path)
    if not target.name.lower().endswith(NIFTI_SUFFIXES):
        raise ValueError(f"{target.name}: a NIfTI file name must end in .nii or .nii.gz")
    validate_volume_array(volume.array, target.name)
    affine_ras = LPS_FROM_RAS @ validate_affine(volume.affine, target.name)
    image = nib.Nifti1Image(np.asarray(volume.array), affine_ras)
    image.set_qform(affine_ras, code=1)
    image.set_sform(affine_ras, code=1)
    image.header["descrip"] = f"modality={volume.modality}".encode("ascii")[:79]
    image.header.set_xyzt_units("mm")
    return write_atomic(target, lambda temp: nib.save(image, str(temp)))


# ----------------------------------------------------------------------------- NRRD

_NRRD_SPACE_TO_LPS = {
    "left-posterior-superior": np.diag([1.0, 1.0, 1.0]),
    "lps": np.diag([1.0, 1.0, 1.0]),
    "right-anterior-superior": np.diag([-1.0, -1.0, 1.0]),
    "ras": np.diag([-1.0, -1.0, 1.0]),
    "left-anterior-superior": np.diag([1.0, -1.0, 1.0]),
    "las": np.diag([1.0, -1.0, 1.0]),
}


def read_nrrd(path: str | os.PathLike[str]) -> Volume:
    source = Path(path)
    try:
        array, header = nrrd.read(str(source))
    except Exception as exc:  # pynrrd raises NRRDError, zlib.error, ValueError, ...
        raise CorruptFileError(f"{source.name}: truncated or corrupt NRRD ({exc})") from exc
    array = validate_volume_array(array, source.name)
    affine = validate_affine(_nrrd_affine(header, source.name), source.name)
    return Volume(
        array=_as_working_dtype(array),
        affine=affine,
        modality=str(header.get("modality", "CT")),
        metadata={"source_format": "nrrd", "source_name": source.name},
    )


def _nrrd_affine(header: dict, source: str) -> np.ndarray:
    if "space directions" not in header:
        raise GeometryError(f"{source}: NRRD header has no 'space directions'")
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space not in _NRRD_SPACE_TO_LPS:
        raise GeometryError(f"{source}: unsupported NRRD space '{space}'")
    directions = np.asarray(header["space directions"], dtype=float)
    if directions.shape != (3, 3):
        raise GeometryError(f"{source}: expected 3 spatial axes, got {directions.shape}")
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    to_lps = _NRRD_SPACE_TO_LPS[space]
    affine = np.eye(4)
    affine[:3, :3] = to_lps @ directions.T  # NRRD rows are the axis vectors
    affine[:3, 3] = to_lps @ origin
    return affine


def write_nrrd(volume: Volume, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    validate_volume_array(volume.array, target.name)
    affine = validate_affine(volume.affine, target.name)
    header = {
        "space": "left-posterior-superior",
        "space directions": affine[:3, :3].T,
        "space origin": affine[:3, 3],
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
        "modality": volume.modality,
    }
    return write_atomic(
        target, lambda temp: nrrd.write(str(temp), np.asarray(volume.array), header)
    )


def _as_working_dtype(array: np.ndarray) -> np.ndarray:
    """Labels keep their integer type; intensities become float32."""
    if array.dtype.kind in "biu" and looks_like_label_map(array):
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(array, dtype=np.float32)


# ----------------------------------------------------------------------------- DICOM read


def read_dicom_series(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Volume:
    """Read one DICOM series (a directory or a list of files) into a Volume."""
    files = _dicom_files(source)
    datasets = [_read_dicom_file(path) for path in files]
    datasets = _single_series(datasets)
    if len(datasets) == 1:
        frames = int(getattr(datasets[0], "NumberOfFrames", 1) or 1)
        kind = "a multi-frame image (not supported)" if frames > 1 else "a single 2D image"
        raise ModalityError(f"{files[0].name}: {kind}, not a 3D series of slices")
    orientation = _common_orientation(datasets)
    normal = np.cross(orientation[:3], orientation[3:])
    order, positions = _sorted_positions(datasets, normal)
    datasets = [datasets[index] for index in order]
    _check_slice_steps(positions[order] @ normal)
    array = np.stack([_slice_pixels(ds).T for ds in datasets], axis=2)
    affine = _dicom_affine(datasets, orientation, positions[order])
    first = datasets[0]
    return Volume(
        array=validate_volume_array(array, "DICOM series"),
        affine=validate_affine(affine, "DICOM series"),
        modality=str(getattr(first, "Modality", "OT")),
        metadata={
            "source_format": "dicom",
            "series_instance_uid": str(getattr(first, "SeriesInstanceUID", "")),
            "series_description": str(getattr(first, "SeriesDescription", "")),
            "n_slices": len(datasets),
        },
    )


def _dicom_files(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if root.is_dir():
            files = sorted(
                path
                for path in root.rglob("*")
                if path.is_file() and not path.name.startswith(".") and path.name != "DICOMDIR"
            )
        else:
            files = [root]
    else:
        files = [Path(item) for item in source]
    if not files:
        raise SeriesError(f"{source}: no DICOM files found")
    return files


def _read_dicom_file(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise CorruptFileError(f"{path.name}: not a DICOM file") from exc
    except Exception as exc:  # truncated headers raise EOFError, struct.error, ...
        raise CorruptFileError(f"{path.name}: truncated or corrupt DICOM ({exc})") from exc
    if "PixelData" not in ds:
        # pydicom stops quietly at a cut between elements: the image is gone.
        raise CorruptFileError(f"{path.name}: DICOM file has no pixel data (truncated?)")
    return ds


def _single_series(datasets: list[Dataset]) -> list[Dataset]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, ds in enumerate(datasets):
        groups[str(getattr(ds, "SeriesInstanceUID", ""))].append(index)
    if len(groups) > 1:
        summary = ", ".join(
            f"{len(items)} x {getattr(datasets[items[0]], 'Modality', '?')} "
            f"'{getattr(datasets[items[0]], 'SeriesDescription', '')}'"
            for items in groups.values()
        )
        raise SeriesError(f"mixed series: the input holds {len(groups)} series ({summary})")
    return datasets


def _common_orientation(datasets: list[Dataset]) -> np.ndarray:
    first = datasets[0]
    for tag in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
        missing = [ds for ds in datasets if tag not in ds]
        if missing:
            raise SeriesError(f"{len(missing)} slice(s) lack {tag}; cannot place them in space")
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    for ds in datasets[1:]:
        if not np.allclose(
            np.asarray(ds.ImageOrientationPatient, dtype=float), orientation, atol=1e-4
        ):
            raise SeriesError("mixed series: slices have different ImageOrientationPatient")
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns):
            raise SeriesError("mixed series: slices have different Rows x Columns")
        if not np.allclose(
            np.asarray(ds.PixelSpacing, float), np.asarray(first.PixelSpacing, float)
        ):
            raise SeriesError("mixed series: slices have different PixelSpacing")
    return orientation


def _sorted_positions(datasets: list[Dataset], normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positions = np.array([np.asarray(ds.ImagePositionPatient, dtype=float) for ds in datasets])
    order = np.argsort(positions @ normal, kind="stable")
    return order, positions


def _check_slice_steps(along_normal: np.ndarray) -> None:
    """Duplicate, missing and unevenly spaced slices each get their own message."""
    steps = np.diff(along_normal)
    duplicate = np.flatnonzero(steps < SLICE_STEP_ATOL_MM)
    if duplicate.size:
        where = along_normal[duplicate[0]]
        raise SeriesError(f"duplicate slice: two slices at {where:.3f} mm along the slice normal")
    nominal = float(np.median(steps))
    tolerance = max(SLICE_STEP_ATOL_MM, SLICE_STEP_RTOL * nominal)
    off = np.flatnonzero(np.abs(steps - nominal) > tolerance)
    if not off.size:
        return
    first = off[0]
    ratio = steps[first] / nominal
    if round(ratio) >= 2 and abs(steps[first] - round(ratio) * nominal) <= tolerance:
        raise SeriesError(
            f"missing slice: {round(ratio) - 1} slice(s) missing between "
            f"{along_normal[first]:.3f} and {along_normal[first + 1]:.3f} mm "
            f"(nominal step {nominal:.3f} mm)"
        )
    raise SeriesError(
        f"uneven slice spacing: steps range from {steps.min():.3f} to {steps.max():.3f} mm "
        f"(nominal {nominal:.3f} mm)"
    )


def _slice_pixels(ds: Dataset) -> np.ndarray:
    expected = int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if (syntax is None or not syntax.is_compressed) and len(ds.PixelData) < expected:
        raise CorruptFileError(
            f"slice {getattr(ds, 'InstanceNumber', '?')}: pixel data truncated "
            f"({len(ds.PixelData)} of {expected} bytes)"
        )
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # decoder errors for damaged or unsupported pixel data
        raise CorruptFileError(f"slice {getattr(ds, 'InstanceNumber', '?')}: {exc}") from exc
    if pixels.ndim != 2:
        raise ModalityError(f"expected single-frame greyscale slices, got shape {pixels.shape}")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _dicom_affine(
    datasets: list[Dataset], orientation: np.ndarray, positions: np.ndarray
) -> np.ndarray:
    row_spacing, column_spacing = (float(value) for value in datasets[0].PixelSpacing)
    affine = np.eye(4)
    affine[:3, 0] = orientation[:3] * column_spacing
    affine[:3, 1] = orientation[3:] * row_spacing
    affine[:3, 2] = (positions[-1] - positions[0]) / (len(datasets) - 1)
    affine[:3, 3] = positions[0]
    return affine


# ----------------------------------------------------------------------------- DICOM write

_SOP_CLASS = {"CT": CTImageStorage, "PSEUDO_CT": CTImageStorage, "MR": MRImageStorage}
_DICOM_MODALITY = {"CT": "CT", "PSEUDO_CT": "CT", "MR": "MR"}


def write_dicom_series(
    volume: Volume,
    out_dir: str | os.PathLike[str],
    *,
    series_description: str = "",
    patient_id: str = "ANONYMOUS",
    overwrite: bool = False,
) -> list[Path]:
    """Write a Volume as a single-frame DICOM series (one file per k slice); atomic.

    Integer volumes within int16 are stored exactly; other values are linearly
    quantised to uint16 (error at most RescaleSlope / 2). LABELS are written as CT
    Image Storage with ImageType DERIVED so that every ITK/GDCM reader places them.
    The in-plane axes (i, j) must be orthogonal. Readers return slices sorted along
    row x column; if k points the other way, the series reads back with k reversed
    (same geometry in patient space).
    """
    array = validate_volume_array(volume.array, "volume to write")
    affine = validate_affine(volume.affine, "volume to write")
    row_axis, column_axis = affine[:3, 0], affine[:3, 1]
    if abs(np.dot(row_axis, column_axis)) > 1e-6 * np.linalg.norm(row_axis) * np.linalg.norm(
        column_axis
    ):
        raise GeometryError(
            "DICOM needs orthogonal in-plane axes; the volume's i and j are sheared"
        )
    stored, slope, intercept, signed = _quantise(array)
    shared = _series_header(
        volume, affine, series_description, patient_id, slope, intercept, signed
    )
    paths: list[Path] = []
    with atomic_directory(out_dir, overwrite=overwrite) as temp_dir:
        for k in range(array.shape[2]):
            ds = _slice_dataset(shared, affine, k, stored[:, :, k])
            name = f"slice_{k + 1:04d}.dcm"
            ds.save_as(temp_dir / name, enforce_file_format=True)
            paths.append(Path(out_dir) / name)
    return paths


def _quantise(array: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
    if np.all(np.mod(array, 1) == 0) and array.min() >= -32768 and array.max() <= 32767:
        return array.astype(np.int16), 1.0, 0.0, True
    low, high = float(array.min()), float(array.max())
    intercept = float(format_number_as_ds(low))
    slope = float(format_number_as_ds(max(high - intercept, 1e-6) / 65000.0))
    stored = np.clip(np.round((array - intercept) / slope), 0, 65535).astype(np.uint16)
    return stored, slope, intercept, False


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _series_header(
    volume: Volume,
    affine: np.ndarray,
    description: str,
    patient_id: str,
    slope: float,
    intercept: float,
    signed: bool,
) -> Dataset:
    spacing = volume.spacing
    direction = volume.direction
    now = dt.datetime.now()
    ds = Dataset()
    ds.SOPClassUID = _SOP_CLASS.get(volume.modality, CTImageStorage)
    ds.Modality = _DICOM_MODALITY.get(volume.modality, "CT")
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = now.strftime("%H%M%S")
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.SeriesDescription = (description or volume.modality)[:64]
    ds.Manufacturer = "kneestudy"
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [_ds(v) for v in (*direction[:, 0], *direction[:, 1])]
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # row spacing (j), column spacing (i)
    ds.SliceThickness = _ds(abs(np.dot(affine[:3, 2], _unit_normal(direction))))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[0])
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope = _ds(slope)
    ds.RescaleIntercept = _ds(intercept)
    ds.RescaleType = "HU" if ds.Modality == "CT" and volume.modality != "LABELS" else "US"
    ds.AcquisitionNumber = 1
    return ds


def _unit_normal(direction: np.ndarray) -> np.ndarray:
    normal = np.cross(direction[:, 0], direction[:, 1])
    return normal / np.linalg.norm(normal)


def _slice_dataset(shared: Dataset, affine: np.ndarray, k: int, pixels: np.ndarray) -> Dataset:
    ds = copy.deepcopy(shared)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = k + 1
    position = affine[:3, 3] + k * affine[:3, 2]
    ds.ImagePositionPatient = [_ds(value) for value in position]
    normal = _unit_normal(affine[:3, :2] / np.linalg.norm(affine[:3, :2], axis=0))
    ds.SliceLocation = _ds(float(position @ normal))
    ds.PixelData = np.ascontiguousarray(pixels.T).tobytes()  # rows x columns = j x i
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def iter_dicom_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories into their (non-hidden) files, keep files as given."""
    expanded: list[Path] = []
    for item in paths:
        expanded.extend(_dicom_files(item))
    return expanded


__all__ = [
    "ImagingError",
    "read_dicom_series",
    "read_nifti",
    "read_nrrd",
    "read_volume",
    "require_ct_volume",
    "validate_volume_array",
    "write_dicom_series",
    "write_nifti",
    "write_nrrd",
]
