"""Writes for studies and cases: creation and validated, de-identified uploads.

Every upload goes through the same path: stream to a private staging folder,
parse and validate with the imaging core, convert to a canonical file without
any header (NIfTI for volumes, NPY for X-ray images), write it atomically, then
create the database rows in one transaction. A bad file raises UploadRejected
with a message naming the problem, and nothing of it remains.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import trimesh
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from reconstruction import io as imaging_io
from reconstruction.errors import ImagingError
from reconstruction.volume import Volume
from studyapp.files import atomic_write_bytes, sha256_of_file
from studyapp.jobs import services as job_services

from .models import (
    BONE_LABELS,
    AlignmentResult,
    Bone,
    BoneModel,
    Case,
    CTVolume,
    GroundTruth,
    Reconstruction,
    Study,
    SurfaceEvaluation,
    SurfaceMetric,
    XRayPair,
    normalise_case_code,
)

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".zip")
XRAY_IMAGE_SUFFIXES = (".npy", ".png", ".tif", ".tiff", ".dcm")
MESH_SUFFIXES = (".stl", ".ply", ".obj", ".glb")


class UploadRejected(ValueError):
    """The uploaded data cannot be used; the message says why, for the uploader."""


# --- studies and cases ------------------------------------------------------------------


def create_study(name: str, description: str = "", protocol_version: str = "1.0") -> Study:
    study = Study(name=name, description=description, protocol_version=protocol_version)
    study.full_clean()
    study.save()
    return study


def create_case(study: Study, code: str, side: str, **fields: object) -> Case:
    case = Case(study=study, code=normalise_case_code(code), side=side, **fields)
    case.full_clean()
    case.save()
    return case


# --- staging ---------------------------------------------------------------------------


@contextmanager
def staging_folder() -> Iterator[Path]:
    """A private folder for one upload, removed whatever happens."""
    root = Path(settings.MEDIA_ROOT) / ".staging"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _suffix(name: str) -> str:
    lowered = name.lower()
    return ".nii.gz" if lowered.endswith(".nii.gz") else Path(lowered).suffix


def _stage_upload(upload: UploadedFile, folder: Path, allowed: tuple[str, ...], stem: str) -> Path:
    suffix = _suffix(upload.name or "")
    if suffix not in allowed:
        raise UploadRejected(
            f"{upload.name!r}: unsupported file type {suffix or '(none)'}; expected one of "
            + ", ".join(allowed)
        )
    if upload.size is not None and upload.size > settings.MAX_UPLOAD_BYTES:
        raise UploadRejected(
            f"{upload.name!r} is larger than the {settings.MAX_UPLOAD_BYTES} byte limit."
        )
    if not upload.size:
        raise UploadRejected(f"{upload.name!r} is empty.")
    target = folder / f"{stem}{suffix}"
    with open(target, "wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return target


def _media_path(kind: str, suffix: str) -> tuple[Path, str]:
    """A fresh, non-guessable storage name (no case code, no source) and its media-relative name."""
    relative = f"{kind}/{uuid.uuid4().hex}{suffix}"
    return Path(settings.MEDIA_ROOT) / relative, relative


def _remove_quietly(*relative_names: str) -> None:
    for name in relative_names:
        if name:
            (Path(settings.MEDIA_ROOT) / name).unlink(missing_ok=True)


def _read_staged_volume(staged: Path, folder: Path, *, require_ct: bool) -> Volume:
    """Parse a staged NIfTI/NRRD file or a zipped, de-identified DICOM series."""
    try:
        if staged.suffix == ".zip":
            extracted = folder / "extracted"
            imaging_io.safe_extract_zip(staged, extracted)
            staged.unlink(missing_ok=True)  # the original with its PHI goes first
            clean = folder / "deidentified"
            imaging_io.deidentify_series(
                extracted, clean, key=settings.DEIDENTIFICATION_KEY.encode()
            )
            shutil.rmtree(extracted, ignore_errors=True)
            return imaging_io.read_volume(clean, require_ct=require_ct)
        return imaging_io.read_volume(staged, require_ct=require_ct)
    except ImagingError as exc:
        raise UploadRejected(str(exc)) from exc


def _write_canonical_volume(volume: Volume, kind: str, folder: Path) -> tuple[str, str]:
    scratch = folder / "canonical.nii.gz"
    imaging_io.write_nifti(volume, scratch)
    target, relative = _media_path(kind, ".nii.gz")
    atomic_write_bytes(target, scratch.read_bytes())
    return relative, sha256_of_file(target)


# --- CT --------------------------------------------------------------------------------


def upload_ct(case: Case, upload: UploadedFile, user_id: int | None = None) -> CTVolume:
    """Validate, de-identify and store a CT; replaces the case's CT only when the new one is good."""
    with staging_folder() as folder:
        staged = _stage_upload(upload, folder, VOLUME_SUFFIXES, "upload")
        volume = _read_staged_volume(staged, folder, require_ct=True)
    return store_ct_volume(case, volume, _volume_format(staged), user_id=user_id)


def _volume_format(path: Path) -> str:
    if path.suffix == ".zip":
        return "dicom"
    return "nrrd" if path.suffix in (".nrrd", ".nhdr") else "nifti"


def store_ct_volume(
    case: Case, volume: Volume, original_format: str, user_id: int | None = None
) -> CTVolume:
    """Store a parsed CT as canonical NIfTI and queue its preview (uploads, phantoms, demo)."""
    with staging_folder() as folder:
        relative, digest = _write_canonical_volume(volume, "ct", folder)
    low, high = volume.value_range
    fields = dict(
        file=relative,
        original_format=original_format,
        shape=list(volume.shape),
        spacing_mm=list(volume.spacing),
        affine=np.asarray(volume.affine).tolist(),
        hu_min=low,
        hu_max=high,
        sha256=digest,
        uploaded_by_id=user_id,
        preview="",
    )
    previous_file = ""
    try:
        with transaction.atomic():
            ct = CTVolume.objects.select_for_update().filter(case=case).first()
            if ct is None:
                ct = CTVolume(case=case)
            else:
                previous_file = ct.file.name
            for name, value in fields.items():
                setattr(ct, name, value)
            ct.full_clean(exclude=["file", "preview"])
            ct.save()
            job_services.start_job("cases.ct_preview", case_id=case.pk, user_id=user_id)
    except Exception:
        _remove_quietly(relative)
        raise
    transaction.on_commit(lambda: _remove_quietly(previous_file))
    return ct


# --- X-ray pair ------------------------------------------------------------------------


def upload_xray_pair(
    case: Case,
    view1: UploadedFile,
    view2: UploadedFile,
    geometry: UploadedFile,
    user_id: int | None = None,
) -> XRayPair:
    with staging_folder() as folder:
        _stage_upload(view1, folder, XRAY_IMAGE_SUFFIXES, "view1")
        _stage_upload(view2, folder, XRAY_IMAGE_SUFFIXES, "view2")
        _stage_upload(geometry, folder, (".json",), "geometry")
        try:
            pair = imaging_io.read_xray_pair(folder)
        except ImagingError as exc:
            raise UploadRejected(str(exc)) from exc
    return store_xray_pair(case, pair, XRayPair.Origin.UPLOADED)


def store_xray_pair(
    case: Case, pair: imaging_io.XrayPair, origin: str, dose_photons: float | None = None
) -> XRayPair:
    """Store a validated pair in the DRR folder layout (headerless NPY + geometry.json + previews).

    The folder is written in staging, then renamed into place in one step.
    """
    first, second = (view.geometry for view in pair.views)
    folder_name = f"xray/{uuid.uuid4().hex}"
    final = Path(settings.MEDIA_ROOT) / folder_name
    with staging_folder() as folder:
        try:
            imaging_io.write_xray_pair(
                folder / "pair",
                [view.image for view in pair.views],
                [first, second],
                image_kind=pair.image_kind,
            )
        except ImagingError as exc:
            raise UploadRejected(str(exc)) from exc
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder / "pair", final)
    try:
        record = XRayPair(
            case=case,
            origin=origin,
            view1=f"{folder_name}/view1.npy",
            view2=f"{folder_name}/view2.npy",
            geometry={
                "image_kind": pair.image_kind,
                "views": [first.to_dict(), second.to_dict()],
            },
            source_to_detector_mm=first.source_detector_mm,
            source_to_isocentre_mm=first.source_isocentre_mm,
            pixel_spacing_mm=list(first.pixel_spacing_mm),
            detector_size_px=list(first.detector_size_px),
            view1_angle_deg=first.angle_deg,
            view2_angle_deg=second.angle_deg,
            projection_matrix1=np.asarray(pair.views[0].projection_matrix).tolist(),
            projection_matrix2=np.asarray(pair.views[1].projection_matrix).tolist(),
            dose_photons=dose_photons,
        )
        record.full_clean(exclude=["view1", "view2"])
        record.save()
    except Exception:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return record


def request_drr_simulation(
    case: Case,
    *,
    separation_deg: float,
    dose_photons: float | None,
    size_px: int,
    seed: int = 0,
    user_id: int | None = None,
    inline: bool = False,
):
    """Queue DRRs of the case's CT; the settings are checked now, in the request."""
    if not CTVolume.objects.filter(case=case).exists():
        raise UploadRejected("This case has no CT to simulate X-rays from.")
    params = {
        "separation_deg": float(separation_deg),
        "dose_photons": None if dose_photons is None else float(dose_photons),
        "size_px": int(size_px),
        "seed": int(seed),
    }
    # Imported here: the DRR module pulls in torch, which the web workers never need.
    from reconstruction.drr.simulate import DRRSettings

    try:
        DRRSettings(**params)
    except ImagingError as exc:
        raise UploadRejected(str(exc)) from exc
    return job_services.start_job(
        "cases.simulate_drr", case_id=case.pk, user_id=user_id, params=params, inline=inline
    )


# --- reconstructions --------------------------------------------------------------------

CT_METHODS = {  # method -> the label shown on the case page
    "classical": "Classical (thresholds, watershed)",
    "teacher": "Teacher network (classical + learned correction; metal, low dose)",
}


def request_ct_reconstruction(
    case: Case, method: str = "classical", user_id: int | None = None, inline: bool = False
):
    """A pending CT Reconstruction and the job that fills it in."""
    if method not in CT_METHODS:
        raise UploadRejected(f"Unknown CT method {method!r}; available: {', '.join(CT_METHODS)}.")
    if not CTVolume.objects.filter(case=case).exists():
        raise UploadRejected("This case has no CT to reconstruct from.")
    with transaction.atomic():
        reconstruction = Reconstruction.objects.create(
            case=case,
            source=Reconstruction.Source.CT,
            method=f"ct-{method}",
            method_version=software_version(),
            parameters={"method": method},
        )
        job = job_services.start_job(
            "cases.reconstruct_ct",
            case_id=case.pk,
            user_id=user_id,
            params={"reconstruction_id": reconstruction.pk, "method": method},
            inline=inline,
        )
    return reconstruction, job


def request_xray_reconstruction(
    case: Case, xray_pair: XRayPair, user_id: int | None = None, inline: bool = False
):
    """A pending X-ray Reconstruction of one of the case's pairs and the job that fills it in."""
    if xray_pair.case_id != case.pk:
        raise UploadRejected("That X-ray pair belongs to another case.")
    with transaction.atomic():
        reconstruction = Reconstruction(
            case=case,
            source=Reconstruction.Source.XRAY,
            method="xray-student",
            method_version=software_version(),
            xray_pair=xray_pair,
            parameters={"xray_pair": xray_pair.pk},
        )
        reconstruction.full_clean()
        reconstruction.save()
        job = job_services.start_job(
            "cases.reconstruct_xray",
            case_id=case.pk,
            user_id=user_id,
            params={"reconstruction_id": reconstruction.pk},
            inline=inline,
        )
    return reconstruction, job


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kneestudy")
    except PackageNotFoundError:  # running from a checkout that was not installed
        return "unknown"


def begin_reconstruction(reconstruction_id: int) -> Reconstruction:
    """Mark running and drop any bones a previous, interrupted attempt stored."""
    from django.utils import timezone

    with transaction.atomic():
        reconstruction = Reconstruction.objects.select_for_update().get(pk=reconstruction_id)
        stale = list(reconstruction.bones.values_list("mesh", flat=True))
        reconstruction.bones.all().delete()
        reconstruction.status = Reconstruction.Status.RUNNING
        reconstruction.started_at = timezone.now()
        reconstruction.error = ""
        reconstruction.save(update_fields=["status", "started_at", "error"])
    transaction.on_commit(lambda: _remove_quietly(*stale))
    return reconstruction


def finish_reconstruction(
    reconstruction: Reconstruction, meshes: Mapping[str, trimesh.Trimesh], summary: dict
) -> Reconstruction:
    from django.utils import timezone

    with transaction.atomic():
        store_bone_models(reconstruction, meshes)
        reconstruction.status = Reconstruction.Status.DONE
        reconstruction.summary = summary
        reconstruction.timings = summary.get("timings_s", {})
        reconstruction.finished_at = timezone.now()
        reconstruction.save(update_fields=["status", "summary", "timings", "finished_at"])
        if mesh_ground_truth(reconstruction.case) is not None:
            request_surface_evaluation(reconstruction)
        if {"femur", "tibia"} <= set(meshes):
            request_alignment_analysis(reconstruction)
    return reconstruction


def mesh_ground_truth(case: Case) -> Reconstruction | None:
    """The newest finished expert mesh reconstruction of a case: the reference for metrics."""
    return (
        Reconstruction.objects.filter(
            case=case, source=Reconstruction.Source.EXPERT, status=Reconstruction.Status.DONE
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def request_surface_evaluation(
    reconstruction: Reconstruction,
    reference: Reconstruction | None = None,
    user_id: int | None = None,
    inline: bool = False,
):
    """Queue surface metrics of a finished reconstruction against the case's ground truth."""
    reference = reference or mesh_ground_truth(reconstruction.case)
    if reference is None:
        raise UploadRejected("This case has no ground-truth meshes to measure against.")
    if reconstruction.status != Reconstruction.Status.DONE:
        raise UploadRejected("Only a finished reconstruction can be measured.")
    if reference.pk == reconstruction.pk:
        raise UploadRejected("A reconstruction cannot be measured against itself.")
    return job_services.start_job(
        "cases.evaluate_surfaces",
        case_id=reconstruction.case_id,
        user_id=user_id,
        params={"reconstruction_id": reconstruction.pk, "reference_id": reference.pk},
        inline=inline,
    )


def store_surface_evaluation(
    reconstruction: Reconstruction,
    reference: Reconstruction,
    rows: list[dict],
    parameters: dict,
    figure_png: bytes,
) -> SurfaceEvaluation:
    """Replace any earlier evaluation of the same pair with this one, figure written first."""
    target, relative = _media_path("error-maps", ".png")
    atomic_write_bytes(target, figure_png)
    try:
        with transaction.atomic():
            previous = SurfaceEvaluation.objects.filter(
                reconstruction=reconstruction, reference=reference
            ).first()
            stale_figure = previous.figure.name if previous else ""
            if previous:
                previous.delete()
            evaluation = SurfaceEvaluation(
                reconstruction=reconstruction,
                reference=reference,
                parameters=parameters,
                figure=relative,
            )
            evaluation.full_clean(exclude=["figure"])
            evaluation.save()
            SurfaceMetric.objects.bulk_create(
                SurfaceMetric(
                    evaluation=evaluation,
                    bone=row["bone"],
                    metric=row["metric"],
                    variant=row["variant"],
                    value=row["value"],
                    unit=row["unit"],
                )
                for row in rows
            )
    except Exception:
        _remove_quietly(relative)
        raise
    transaction.on_commit(lambda: _remove_quietly(stale_figure))
    return evaluation


def request_alignment_analysis(
    reconstruction: Reconstruction, user_id: int | None = None, inline: bool = False
):
    """Queue landmarks, angles and the HTO plan for a finished reconstruction with a femur and tibia."""
    bones = set(reconstruction.bones.values_list("bone", flat=True))
    if reconstruction.status != Reconstruction.Status.DONE or not {"femur", "tibia"} <= bones:
        raise UploadRejected("Alignment needs a finished reconstruction with a femur and a tibia.")
    return job_services.start_job(
        "cases.analyse_alignment",
        case_id=reconstruction.case_id,
        user_id=user_id,
        params={"reconstruction_id": reconstruction.pk},
        inline=inline,
    )


def store_alignment(
    reconstruction: Reconstruction, report: dict, overlay_png: bytes
) -> AlignmentResult:
    target, relative = _media_path("alignment", ".png")
    atomic_write_bytes(target, overlay_png)
    try:
        with transaction.atomic():
            previous = AlignmentResult.objects.filter(reconstruction=reconstruction).first()
            stale = previous.overlay.name if previous else ""
            if previous:
                previous.delete()
            result = AlignmentResult.objects.create(
                reconstruction=reconstruction, report=report, overlay=relative
            )
    except Exception:
        _remove_quietly(relative)
        raise
    transaction.on_commit(lambda: _remove_quietly(stale))
    return result


def fail_reconstruction(reconstruction_id: int, error: str) -> None:
    from django.utils import timezone

    Reconstruction.objects.filter(pk=reconstruction_id).update(
        status=Reconstruction.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )


# --- ground truth ----------------------------------------------------------------------


def upload_label_map(
    case: Case, upload: UploadedFile, made_by: str, user_id: int | None = None
) -> GroundTruth:
    """A label map with values 0 (background), 1 femur, 2 tibia, 3 fibula, 4 patella."""
    with staging_folder() as folder:
        staged = _stage_upload(upload, folder, VOLUME_SUFFIXES, "labels")
        volume = _read_staged_volume(staged, folder, require_ct=False)
    return store_label_map(case, volume, made_by)


def store_label_map(case: Case, volume: Volume, made_by: str) -> GroundTruth:
    _check_label_values(volume.array)
    if hasattr(case, "ct") and tuple(case.ct.shape) != volume.shape:
        raise UploadRejected(
            f"The label map is {volume.shape} voxels but the case's CT is {tuple(case.ct.shape)}."
        )
    labels = Volume(
        array=np.asarray(volume.array).astype(np.uint8), affine=volume.affine, modality="LABELS"
    )
    with staging_folder() as folder:
        relative, _ = _write_canonical_volume(labels, "ground-truth", folder)
    try:
        truth = GroundTruth(
            case=case,
            kind=GroundTruth.Kind.LABEL_MAP,
            label_map=relative,
            made_by=made_by,
            label_values={bone.value: value for bone, value in BONE_LABELS.items()},
        )
        truth.full_clean(exclude=["label_map"])
        truth.save()
        return truth
    except Exception:
        _remove_quietly(relative)
        raise


def _check_label_values(array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        raise UploadRejected("The label map contains NaN or infinite values.")
    if not np.array_equal(array, np.round(array)):
        raise UploadRejected("The label map contains non-integer values; expected 0-4.")
    present = set(np.unique(array).astype(int).tolist())
    unexpected = present - {0, 1, 2, 3, 4}
    if unexpected:
        raise UploadRejected(
            f"The label map contains labels {sorted(unexpected)}; expected 0 background, "
            "1 femur, 2 tibia, 3 fibula, 4 patella."
        )
    if present <= {0}:
        raise UploadRejected("The label map contains no bone.")


def upload_ground_truth_meshes(
    case: Case, uploads: Mapping[str, UploadedFile], made_by: str
) -> GroundTruth:
    """Four expert meshes (femur, tibia, fibula, patella), in mm, in the CT's patient frame."""
    missing = [bone.value for bone in Bone if bone.value not in uploads]
    if missing:
        raise UploadRejected("Missing meshes for: " + ", ".join(missing))
    meshes: dict[str, trimesh.Trimesh] = {}
    with staging_folder() as folder:
        for bone, upload in uploads.items():
            staged = _stage_upload(upload, folder, MESH_SUFFIXES, bone)
            meshes[bone] = load_bone_mesh(staged, bone)
    return store_ground_truth_meshes(case, meshes, made_by, method="expert-upload")


def store_ground_truth_meshes(
    case: Case, meshes: Mapping[str, trimesh.Trimesh], made_by: str, method: str
) -> GroundTruth:
    with transaction.atomic():
        reconstruction = Reconstruction.objects.create(
            case=case,
            source=Reconstruction.Source.EXPERT,
            method=method,
            status=Reconstruction.Status.DONE,
        )
        store_bone_models(reconstruction, meshes)
        truth = GroundTruth(
            case=case, kind=GroundTruth.Kind.MESHES, reconstruction=reconstruction, made_by=made_by
        )
        truth.full_clean()
        truth.save()
    return truth


def load_bone_mesh(path: Path, bone: str) -> trimesh.Trimesh:
    try:
        loaded = trimesh.load(path, force="mesh", process=True)
    except Exception as exc:  # trimesh raises many types for corrupt files
        raise UploadRejected(f"{bone}: the mesh file cannot be read ({exc}).") from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise UploadRejected(f"{bone}: the mesh file holds no triangles.")
    if not np.all(np.isfinite(loaded.vertices)):
        raise UploadRejected(f"{bone}: the mesh has NaN or infinite coordinates.")
    extent = float(np.max(loaded.extents))
    if extent < 5.0:
        raise UploadRejected(
            f"{bone}: the mesh is {extent:.3g} units across; coordinates must be in millimetres "
            "(is it in metres?)."
        )
    if not loaded.is_watertight:
        raise UploadRejected(f"{bone}: the mesh is not watertight (it has holes or open edges).")
    return loaded


def store_bone_models(
    reconstruction: Reconstruction, meshes: Mapping[str, trimesh.Trimesh]
) -> list[BoneModel]:
    """Write one STL per bone atomically and record its counts and hash. Used by every source."""
    written: list[str] = []
    models: list[BoneModel] = []
    try:
        for bone, mesh in meshes.items():
            target, relative = _media_path("meshes", ".stl")
            atomic_write_bytes(target, mesh.export(file_type="stl"))
            written.append(relative)
            models.append(
                BoneModel.objects.create(
                    reconstruction=reconstruction,
                    bone=bone,
                    mesh=relative,
                    vertex_count=len(mesh.vertices),
                    face_count=len(mesh.faces),
                    volume_mm3=float(abs(mesh.volume)) if mesh.is_watertight else 0.0,
                    area_mm2=float(mesh.area),
                    watertight=bool(mesh.is_watertight),
                    sha256=sha256_of_file(target),
                )
            )
    except Exception:
        _remove_quietly(*written)
        raise
    return models
