"""Biplanar X-ray pairs on disk: images plus their cone-beam geometry.

Layout of a pair directory (written by `write_xray_pair`, read by `read_xray_pair`):
- view1.npy, view2.npy: float32 images, array[row, column]; `image_kind` in geometry.json
  says whether they hold line integrals (-log(I/I0), bone bright) or intensity I/I0.
- view1.png, view2.png: 16-bit previews (min..max of each image), never read back when
  an .npy is present.
- geometry.json: per view the 3x4 projection matrix (patient mm of the CT's affine space
  -> pixel (column, row), pixel centres at integers), source-isocentre and
  source-detector distances, pixel spacing, detector size (W, H), view angle, isocentre;
  conventions in reconstruction/drr/geometry.py.
Images may instead be view1/view2 .png/.tif/.tiff (read as raw values) or DICOM DX/CR
(.dcm, rescale applied). A DICOM pair needs no geometry.json when its geometry tags
(DistanceSourceToDetector, DistanceSourceToPatient, ImagerPixelSpacing,
PositionerPrimaryAngle) are present; the isocentre is then the patient origin.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from reconstruction.drr.geometry import (
    SOURCE_DISTANCE_TOLERANCE_MM,
    ViewGeometry,
    check_projection_matrix,
    check_separation,
    separation_deg,
)
from reconstruction.errors import CorruptFileError, GeometryError, ModalityError
from reconstruction.io._atomic import write_atomic, write_bytes_atomic

GEOMETRY_FILE = "geometry.json"
FORMAT_ID = "kneestudy-xray-pair/1"
VIEW_NAMES = ("view1", "view2")
IMAGE_KINDS = ("line_integral", "intensity")
IMAGE_SUFFIXES = (".npy", ".dcm", ".tif", ".tiff", ".png")
XRAY_MODALITIES = ("DX", "CR", "RF", "XA", "RG")


@dataclass(frozen=True)
class XrayView:
    image: np.ndarray  # (H, W) float32, array[row, column]
    geometry: ViewGeometry

    @property
    def projection_matrix(self) -> np.ndarray:
        return self.geometry.projection_matrix()


@dataclass(frozen=True)
class XrayPair:
    views: tuple[XrayView, XrayView]
    image_kind: str = "line_integral"
    metadata: dict = field(default_factory=dict)

    @property
    def separation_deg(self) -> float:
        return separation_deg(self.views[0].geometry, self.views[1].geometry)


# ----------------------------------------------------------------------------- write


def write_xray_pair(
    out_dir: str | os.PathLike[str],
    images: Sequence[np.ndarray],
    geometries: Sequence[ViewGeometry],
    *,
    image_kind: str = "line_integral",
    metadata: dict | None = None,
) -> Path:
    """Write view1/view2 .npy + 16-bit .png previews + geometry.json (each file atomic;
    geometry.json last, so a complete json means complete images)."""
    if len(images) != 2 or len(geometries) != 2:
        raise GeometryError("an X-ray pair needs exactly two images and two geometries")
    if image_kind not in IMAGE_KINDS:
        raise ValueError(f"image_kind must be one of {IMAGE_KINDS}, got {image_kind!r}")
    check_separation(separation_deg(*geometries))
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    views = []
    for name, image, geometry in zip(VIEW_NAMES, images, geometries, strict=True):
        image = _validated_image(np.asarray(image, dtype=np.float32), geometry, name)
        write_atomic(target / f"{name}.npy", lambda temp, data=image: _save_npy(temp, data))
        write_atomic(target / f"{name}.png", lambda temp, data=image: _save_preview(temp, data))
        views.append({"name": name, "image": f"{name}.npy", **geometry.to_dict()})
    document = {
        "format": FORMAT_ID,
        "convention": (
            "P maps patient mm (the CT affine space, LPS) to pixel: [u*w, v*w, w] = P @ [x, y, z, 1]; "
            "u = column, v = row, pixel centres at integer coordinates, images stored [row, column]"
        ),
        "image_kind": image_kind,
        "separation_deg": separation_deg(*geometries),
        "views": views,
        "metadata": metadata or {},
    }
    write_bytes_atomic(target / GEOMETRY_FILE, json.dumps(document, indent=2).encode())
    return target


def _save_npy(path: Path, image: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, image, allow_pickle=False)


def _save_preview(path: Path, image: np.ndarray) -> None:
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    pixels = np.round(scaled * 65535).astype(np.uint16)
    Image.fromarray(pixels).save(path, format="PNG")


def write_dicom_xray(
    image: np.ndarray, geometry: ViewGeometry, path: str | os.PathLike[str], *, modality: str = "DX"
) -> Path:
    """Write one view as DICOM DX/CR with its geometry tags (values linearly quantised)."""
    image = np.asarray(image, dtype=np.float64)
    low, high = float(image.min()), float(image.max())
    intercept = float(format_number_as_ds(low))
    slope = float(format_number_as_ds(max(high - intercept, 1e-9) / 65000.0))
    ds = Dataset()
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = ds.PatientID = "ANONYMOUS"
    ds.DistanceSourceToDetector = format_number_as_ds(geometry.source_detector_mm)
    ds.DistanceSourceToPatient = format_number_as_ds(geometry.source_isocentre_mm)
    ds.ImagerPixelSpacing = [format_number_as_ds(v) for v in geometry.pixel_spacing_mm[::-1]]
    ds.PositionerPrimaryAngle = format_number_as_ds(geometry.angle_deg)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = format_number_as_ds(slope)
    ds.RescaleIntercept = format_number_as_ds(intercept)
    stored = np.clip(np.round((image - intercept) / slope), 0, 65535).astype(np.uint16)
    ds.PixelData = stored.tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return write_atomic(path, lambda temp: ds.save_as(temp, enforce_file_format=True))


# ----------------------------------------------------------------------------- read


def read_xray_pair(directory: str | os.PathLike[str]) -> XrayPair:
    """Read and validate a pair directory; GeometryError/CorruptFileError name the problem."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"no such X-ray pair directory: {root}")
    document = _read_geometry_document(root)
    views = []
    for index, name in enumerate(VIEW_NAMES):
        entry = _view_entry(document, index, name)
        image_path = _find_image(root, name, entry)
        image, dicom_geometry = _read_image(image_path)
        geometry = _view_geometry(entry, dicom_geometry, name, image_path)
        if entry is not None and "projection_matrix" in entry:
            check_projection_matrix(np.asarray(entry["projection_matrix"], dtype=float), geometry)
        views.append(
            XrayView(image=_validated_image(image, geometry, image_path.name), geometry=geometry)
        )
    check_separation(separation_deg(views[0].geometry, views[1].geometry))
    kind = str(document.get("image_kind", "line_integral")) if document else "intensity"
    if kind not in IMAGE_KINDS:
        raise CorruptFileError(f"{GEOMETRY_FILE}: unknown image_kind {kind!r}")
    metadata = document.get("metadata", {}) if document else {}
    return XrayPair(views=(views[0], views[1]), image_kind=kind, metadata=metadata)


def _read_geometry_document(root: Path) -> dict | None:
    path = root / GEOMETRY_FILE
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{GEOMETRY_FILE}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("views"), list):
        raise GeometryError(f"{GEOMETRY_FILE}: expected an object with a 'views' list")
    if len(document["views"]) != 2:
        raise GeometryError(f"{GEOMETRY_FILE}: expected 2 views, found {len(document['views'])}")
    return document


def _view_entry(document: dict | None, index: int, name: str) -> dict | None:
    if document is None:
        return None
    entry = document["views"][index]
    if not isinstance(entry, dict):
        raise GeometryError(f"{GEOMETRY_FILE}: view {index + 1} is not an object")
    if "projection_matrix" not in entry:
        raise GeometryError(f"{GEOMETRY_FILE}: {name} has no projection_matrix")
    return entry


def _find_image(root: Path, name: str, entry: dict | None) -> Path:
    if entry is not None and entry.get("image"):
        candidate = root / Path(str(entry["image"])).name  # never follow a path out of root
        if not candidate.is_file():
            raise CorruptFileError(f"{name}: image file {candidate.name} is missing")
        return candidate
    for suffix in IMAGE_SUFFIXES:
        candidate = root / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise CorruptFileError(f"{name}: no image found ({', '.join(IMAGE_SUFFIXES)}) in {root.name}")


def _read_image(path: Path) -> tuple[np.ndarray, ViewGeometry | None]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if suffix == ".dcm":
            return _read_dicom_xray(path)
        with Image.open(path) as picture:
            return np.asarray(picture), None
    except (CorruptFileError, ModalityError, GeometryError):
        raise
    except Exception as exc:  # numpy/PIL/pydicom raise ValueError, OSError, EOFError, ...
        raise CorruptFileError(f"{path.name}: truncated or corrupt image ({exc})") from exc


def _read_dicom_xray(path: Path) -> tuple[np.ndarray, ViewGeometry | None]:
    ds = pydicom.dcmread(path)
    modality = str(getattr(ds, "Modality", ""))
    if modality not in XRAY_MODALITIES:
        raise ModalityError(f"{path.name}: modality {modality or 'missing'}, expected DX or CR")
    pixels = ds.pixel_array.astype(np.float32)
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    image = pixels * np.float32(slope) + np.float32(intercept)
    return image, _dicom_geometry(ds, path.stem, image.shape)


def _dicom_geometry(ds: Dataset, name: str, shape: tuple[int, ...]) -> ViewGeometry | None:
    tags = ("DistanceSourceToDetector", "DistanceSourceToPatient", "ImagerPixelSpacing")
    if not all(tag in ds for tag in tags) or len(shape) != 2:
        return None
    row_spacing, column_spacing = (float(v) for v in ds.ImagerPixelSpacing)
    return ViewGeometry(
        angle_deg=float(getattr(ds, "PositionerPrimaryAngle", 0.0) or 0.0),
        source_isocentre_mm=float(ds.DistanceSourceToPatient),
        source_detector_mm=float(ds.DistanceSourceToDetector),
        detector_size_px=(int(shape[1]), int(shape[0])),
        pixel_spacing_mm=(column_spacing, row_spacing),
        name=name,
    )


def _view_geometry(
    entry: dict | None, dicom_geometry: ViewGeometry | None, name: str, image_path: Path
) -> ViewGeometry:
    if entry is None:
        if dicom_geometry is None:
            raise GeometryError(
                f"{name}: no {GEOMETRY_FILE} and {image_path.name} carries no DICOM geometry tags"
            )
        return dicom_geometry
    geometry = ViewGeometry.from_dict(entry, name=name)
    if dicom_geometry is not None:
        for label in ("source_detector_mm", "source_isocentre_mm"):
            stated, tagged = getattr(geometry, label), getattr(dicom_geometry, label)
            if abs(stated - tagged) > SOURCE_DISTANCE_TOLERANCE_MM:
                raise GeometryError(
                    f"{name}: {label} is {stated} mm in {GEOMETRY_FILE} but {tagged} mm in the DICOM tags"
                )
    return geometry


def _validated_image(image: np.ndarray, geometry: ViewGeometry, source: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ModalityError(f"{source}: an X-ray view must be a 2D image, got shape {image.shape}")
    if image.dtype.kind not in "biuf":
        raise CorruptFileError(f"{source}: unsupported pixel type {image.dtype}")
    width, height = geometry.detector_size_px
    if image.shape != (height, width):
        raise GeometryError(
            f"{source}: image is {image.shape[1]} x {image.shape[0]} pixels, "
            f"the geometry says {width} x {height}"
        )
    image = image.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if bad:
        raise CorruptFileError(f"{source}: {bad} pixels are NaN or infinite")
    return image
