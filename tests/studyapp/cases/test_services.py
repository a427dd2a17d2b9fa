"""Uploads: good files are stored canonically; bad files get a clear message and leave nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reconstruction import io as imaging_io
from studyapp.cases import services
from studyapp.cases.models import BoneModel, CTVolume, GroundTruth, Reconstruction, XRayPair
from studyapp.jobs.models import Job
from tests.studyapp.factories import CaseFactory, StudyFactory

from .imaging_factories import (
    ct_volume,
    label_volume,
    mesh_upload,
    nifti_upload,
    xray_pair_uploads,
)

pytestmark = pytest.mark.django_db


def stored_files(media_root: Path) -> list[Path]:
    return [p for p in media_root.rglob("*") if p.is_file()]


def test_case_codes_are_normalised_and_validated():
    study = StudyFactory()
    case = services.create_case(study, " k-001 ", "L")
    assert case.code == "K-001"
    with pytest.raises(Exception, match="case code"):
        services.create_case(study, "John Smith", "L")


def test_ct_upload_stores_canonical_nifti_and_queues_a_preview(
    tmp_path, isolated_media, django_capture_on_commit_callbacks
):
    case = CaseFactory()
    with django_capture_on_commit_callbacks(execute=True):
        ct = services.upload_ct(case, nifti_upload(tmp_path))
    assert ct.shape == [24, 20, 16]
    assert ct.spacing_mm == pytest.approx([0.8, 0.8, 1.0])
    assert ct.hu_max == pytest.approx(1200.0)
    stored = imaging_io.read_volume(isolated_media / ct.file.name, require_ct=True)
    np.testing.assert_allclose(stored.array, ct_volume().array, atol=0.5)
    np.testing.assert_allclose(stored.affine, ct_volume().affine, atol=1e-4)
    job = Job.objects.get(case=case, kind="cases.ct_preview")
    assert job.state == Job.State.SUCCEEDED, job.error
    ct.refresh_from_db()
    assert (isolated_media / ct.preview.name).read_bytes().startswith(b"\x89PNG")
    assert not any(".staging" in str(p) and p.is_file() for p in isolated_media.rglob("*"))


@pytest.mark.parametrize(
    "upload, message",
    [
        (SimpleUploadedFile("ct.nii.gz", b"\x1f\x8b\x08garbage"), "cannot|corrupt|truncated|not a"),
        (SimpleUploadedFile("ct.txt", b"hello"), "unsupported file type"),
        (SimpleUploadedFile("ct.nii.gz", b""), "empty"),
    ],
    ids=["corrupt-gzip", "wrong-type", "empty"],
)
def test_bad_ct_files_are_rejected_and_nothing_is_stored(upload, message, isolated_media):
    case = CaseFactory()
    with pytest.raises(services.UploadRejected, match=message):
        services.upload_ct(case, upload)
    assert not CTVolume.objects.exists()
    assert stored_files(isolated_media) == []


def test_a_label_map_is_not_accepted_as_ct(tmp_path, isolated_media):
    with pytest.raises(services.UploadRejected, match="CT is required|label map"):
        services.upload_ct(CaseFactory(), nifti_upload(tmp_path, label_volume()))
    assert stored_files(isolated_media) == []


def test_nan_volume_is_rejected(tmp_path, isolated_media):
    import nibabel

    array = ct_volume().array
    array[3, 3, 3] = np.nan
    nibabel.save(nibabel.Nifti1Image(array, np.eye(4)), tmp_path / "nan.nii.gz")
    upload = SimpleUploadedFile("nan.nii.gz", (tmp_path / "nan.nii.gz").read_bytes())
    with pytest.raises(services.UploadRejected, match="NaN"):
        services.upload_ct(CaseFactory(), upload)
    assert stored_files(isolated_media) == []


def test_a_bad_replacement_keeps_the_previous_ct(
    tmp_path, isolated_media, django_capture_on_commit_callbacks
):
    case = CaseFactory()
    with django_capture_on_commit_callbacks(execute=True):
        first = services.upload_ct(case, nifti_upload(tmp_path))
    with pytest.raises(services.UploadRejected):
        services.upload_ct(case, SimpleUploadedFile("ct.nrrd", b"NRRD0004\ntruncated"))
    first_after = CTVolume.objects.get(case=case)
    assert first_after.sha256 == first.sha256
    assert (isolated_media / first_after.file.name).exists()


def test_xray_pair_upload_is_stored_in_the_drr_layout(tmp_path, isolated_media):
    case = CaseFactory()
    pair = services.upload_xray_pair(case, **xray_pair_uploads(tmp_path, separation=60.0))
    assert pair.separation_deg == pytest.approx(60.0)
    assert np.asarray(pair.projection_matrix1).shape == (3, 4)
    folder = isolated_media / Path(pair.view1.name).parent
    reread = imaging_io.read_xray_pair(folder)
    assert reread.separation_deg == pytest.approx(60.0)


def _move_view_to_10_degrees(view: dict) -> None:
    from reconstruction.drr.geometry import ViewGeometry

    view["angle_deg"] = 10.0
    view["projection_matrix"] = ViewGeometry.from_dict(view).projection_matrix().tolist()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda view: view.update(angle_deg=10.0), "disagrees"),  # matrix no longer fits the angle
        (_move_view_to_10_degrees, "30"),
        (lambda view: view.pop("source_detector_mm"), "incomplete"),
    ],
    ids=["inconsistent-matrix", "views-too-close", "missing-distance"],
)
def test_xray_pair_with_bad_geometry_is_rejected(edit, message, tmp_path, isolated_media):
    import json

    uploads = xray_pair_uploads(tmp_path, separation=90.0)
    document = json.loads(uploads["geometry"].read())
    edit(document["views"][1])
    uploads["geometry"] = SimpleUploadedFile("geometry.json", json.dumps(document).encode())
    with pytest.raises(services.UploadRejected, match=message):
        services.upload_xray_pair(CaseFactory(), **uploads)
    assert not XRayPair.objects.exists()
    assert stored_files(isolated_media) == []


def test_xray_pair_of_wrong_image_size_is_rejected(tmp_path, isolated_media):
    uploads = xray_pair_uploads(tmp_path)
    small = tmp_path / "small.npy"
    np.save(small, np.zeros((16, 16), dtype=np.float32))
    uploads["view2"] = SimpleUploadedFile("view2.npy", small.read_bytes())
    with pytest.raises(services.UploadRejected, match="16"):
        services.upload_xray_pair(CaseFactory(), **uploads)
    assert stored_files(isolated_media) == []


def test_xray_pair_missing_geometry_is_rejected(tmp_path, isolated_media):
    uploads = xray_pair_uploads(tmp_path)
    uploads["geometry"] = SimpleUploadedFile("geometry.json", b"{not json")
    with pytest.raises(services.UploadRejected):
        services.upload_xray_pair(CaseFactory(), **uploads)
    assert stored_files(isolated_media) == []


def test_label_map_upload_checks_values(tmp_path, isolated_media):
    case = CaseFactory()
    truth = services.upload_label_map(
        case, nifti_upload(tmp_path, label_volume(), "labels.nii.gz"), "expert A"
    )
    assert truth.kind == GroundTruth.Kind.LABEL_MAP
    bad = label_volume()
    bad.array[0, 0, 0] = 7
    with pytest.raises(services.UploadRejected, match=r"labels \[7\]"):
        services.upload_label_map(case, nifti_upload(tmp_path, bad, "bad.nii.gz"), "expert A")
    assert GroundTruth.objects.count() == 1


def test_ground_truth_meshes_become_an_expert_reconstruction(isolated_media):
    case = CaseFactory()
    uploads = {
        bone: mesh_upload(bone, fmt="ply" if bone == "patella" else "stl")
        for bone in ("femur", "tibia", "fibula", "patella")
    }
    truth = services.upload_ground_truth_meshes(case, uploads, "expert B")
    reconstruction = truth.reconstruction
    assert reconstruction.source == Reconstruction.Source.EXPERT
    bones = BoneModel.objects.filter(reconstruction=reconstruction)
    assert sorted(bones.values_list("bone", flat=True)) == ["femur", "fibula", "patella", "tibia"]
    femur = bones.get(bone="femur")
    assert femur.watertight and femur.volume_mm3 == pytest.approx(4 / 3 * np.pi * 20**3, rel=0.03)
    assert len(femur.sha256) == 64


@pytest.mark.parametrize(
    "override, message",
    [
        ({"tibia": mesh_upload("tibia", broken=True)}, "not watertight"),
        ({"fibula": mesh_upload("fibula", radius_mm=0.02)}, "millimetres"),
        ({"patella": SimpleUploadedFile("patella.stl", b"solid x\nendsolid x\n")}, "patella"),
    ],
    ids=["hole", "metres", "empty"],
)
def test_bad_meshes_are_rejected_and_nothing_is_stored(override, message, isolated_media):
    uploads = {bone: mesh_upload(bone) for bone in ("femur", "tibia", "fibula", "patella")}
    uploads.update(override)
    with pytest.raises(services.UploadRejected, match=message):
        services.upload_ground_truth_meshes(CaseFactory(), uploads, "expert")
    assert not Reconstruction.objects.exists()
    assert stored_files(isolated_media) == []


def test_drr_simulation_job_stores_a_simulated_pair(
    tmp_path, isolated_media, django_capture_on_commit_callbacks
):
    case = CaseFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.upload_ct(case, nifti_upload(tmp_path))
        job = services.request_drr_simulation(
            case, separation_deg=60, dose_photons=1e4, size_px=64, seed=3
        )
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    pair = XRayPair.objects.get(case=case)
    assert pair.origin == XRayPair.Origin.SIMULATED
    assert pair.separation_deg == pytest.approx(60.0)
    assert pair.dose_photons == 1e4
    image = np.load(isolated_media / pair.view1.name)
    assert image.shape == (64, 64) and np.isfinite(image).all() and image.max() > 0
    assert (isolated_media / Path(pair.view1.name).parent / "view2.png").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"separation_deg": 20}, "separation"),
        ({"dose_photons": -5}, "dose"),
        ({"size_px": 4}, "pixels"),
    ],
)
def test_drr_simulation_settings_are_checked_before_queuing(
    overrides, message, tmp_path, django_capture_on_commit_callbacks
):
    case = CaseFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.upload_ct(case, nifti_upload(tmp_path))
    settings = {"separation_deg": 90, "dose_photons": 1e5, "size_px": 64} | overrides
    with pytest.raises(services.UploadRejected, match=message):
        services.request_drr_simulation(case, **settings)
    assert not Job.objects.filter(kind="cases.simulate_drr").exists()


def test_drr_simulation_needs_a_ct():
    with pytest.raises(services.UploadRejected, match="no CT"):
        services.request_drr_simulation(
            CaseFactory(), separation_deg=90, dose_photons=1e5, size_px=64
        )
