"""Reconstruct from CT as a job: four bones stored, failures recorded, earlier results kept."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms.generator import generate_case
from reconstruction.volume import Volume
from studyapp.cases import services
from studyapp.cases.models import BoneModel, Reconstruction
from studyapp.jobs.models import Job
from tests.studyapp.factories import CaseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def phantom_case():
    return generate_case(1001, fov="knee", spacing=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def phantom_ct(phantom_case):
    return phantom_case.ct


def test_ct_reconstruction_stores_four_watertight_bones(
    phantom_ct, isolated_media, django_capture_on_commit_callbacks
):
    case = CaseFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.store_ct_volume(case, phantom_ct, "phantom")
        reconstruction, job = services.request_ct_reconstruction(case, "classical")
    job.refresh_from_db()
    reconstruction.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert reconstruction.status == Reconstruction.Status.DONE
    bones = BoneModel.objects.filter(reconstruction=reconstruction)
    assert sorted(bones.values_list("bone", flat=True)) == ["femur", "fibula", "patella", "tibia"]
    assert all(bone.watertight and bone.volume_mm3 > 0 for bone in bones)
    femur = bones.get(bone="femur")
    assert (isolated_media / femur.mesh.name).stat().st_size > 1000
    assert reconstruction.summary["method"] == "classical" and reconstruction.timings


def test_a_ct_without_a_knee_fails_clearly_and_keeps_earlier_results(
    isolated_media, django_capture_on_commit_callbacks
):
    case = CaseFactory()
    earlier = Reconstruction.objects.create(
        case=case, source="ct", method="ct-classical", status="done"
    )
    ii, jj, kk = np.mgrid[:48, :48, :40]
    cylinder = np.where((ii - 24) ** 2 + (jj - 24) ** 2 < 15**2, 1200.0, -1000.0).astype(np.float32)
    cylinder += np.random.default_rng(0).normal(0, 10, cylinder.shape).astype(np.float32)
    with django_capture_on_commit_callbacks(execute=True):
        services.store_ct_volume(
            case, Volume(cylinder, np.diag([1.0, 1.0, 1.0, 1.0]), "CT"), "nifti"
        )
        reconstruction, job = services.request_ct_reconstruction(case)
    job.refresh_from_db()
    reconstruction.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert reconstruction.status == Reconstruction.Status.FAILED
    assert "knee" in reconstruction.error.lower()
    assert not reconstruction.bones.exists()
    earlier.refresh_from_db()
    assert earlier.status == Reconstruction.Status.DONE


def test_reconstruction_needs_a_ct_and_a_known_method():
    case = CaseFactory()
    with pytest.raises(services.UploadRejected, match="no CT"):
        services.request_ct_reconstruction(case)
    with pytest.raises(services.UploadRejected, match="Unknown CT method"):
        services.request_ct_reconstruction(case, "magic")
    assert not Reconstruction.objects.exists()


def test_finished_reconstructions_are_measured_against_the_ground_truth(
    phantom_case, isolated_media, django_capture_on_commit_callbacks, client, coordinator
):
    from studyapp.cases.models import SurfaceEvaluation

    case = CaseFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.store_ct_volume(case, phantom_case.ct, "phantom")
        services.store_ground_truth_meshes(
            case, phantom_case.meshes, "generator", method="phantom-exact"
        )
        reconstruction, _ = services.request_ct_reconstruction(case, "classical")
    with django_capture_on_commit_callbacks(execute=True):
        pass  # the evaluation queued on finishing has run by now
    evaluation = SurfaceEvaluation.objects.get(reconstruction=reconstruction)
    job = Job.objects.get(kind="cases.evaluate_surfaces")
    assert job.state == Job.State.SUCCEEDED, job.error
    assd = {m.bone: m.value for m in evaluation.metrics.filter(metric="assd")}
    assert set(assd) == {"femur", "tibia", "fibula", "patella"}
    # Classical segmentation of a 1 mm phantom CT: sub-millimetre, but not zero (an honest check).
    assert all(0.0 < value < 1.0 for value in assd.values()), assd
    dice = {m.bone: m.value for m in evaluation.metrics.filter(metric="dice")}
    assert all(value > 0.85 for value in dice.values()), dice
    assert (isolated_media / evaluation.figure.name).read_bytes().startswith(b"\x89PNG")
    client.force_login(coordinator)
    page = client.get(f"/cases/{case.pk}/").content.decode()
    assert "Accuracy against the ground truth" in page and "assd" in page


def test_finished_reconstructions_get_alignment_angles_with_honest_flags(
    phantom_case, isolated_media, django_capture_on_commit_callbacks, client, coordinator
):
    from studyapp.cases.models import AlignmentResult

    case = CaseFactory(side="R" if phantom_case.params.side == "R" else "L")
    with django_capture_on_commit_callbacks(execute=True):
        truth = services.store_ground_truth_meshes(
            case, phantom_case.meshes, "generator", method="phantom-exact"
        )
        services.request_alignment_analysis(truth.reconstruction)
    result = AlignmentResult.objects.get(reconstruction=truth.reconstruction)
    # Knee-only field of view: the hip and ankle are reported missing, never invented.
    assert "hip_centre" in result.missing and "ankle_centre" in result.missing
    assert "mhka" in result.approximate
    # The plateau is in view, so MPTA (approximate: shaft axis) stays close to the truth.
    assert abs(result.angles["mpta"] - phantom_case.angles["MPTA"]) < 2.0
    assert (isolated_media / result.overlay.name).read_bytes().startswith(b"\x89PNG")
    client.force_login(coordinator)
    page = client.get(f"/cases/{case.pk}/").content.decode()
    assert "Alignment and HTO plan" in page
    assert "Missing hip_centre" in page


def test_xray_reconstruction_of_a_pair_from_another_case_is_refused():
    from studyapp.cases.models import XRayPair

    case, other = CaseFactory(), CaseFactory()
    pair = XRayPair(case=other)
    pair.pk = 12345
    with pytest.raises(services.UploadRejected, match="another case"):
        services.request_xray_reconstruction(case, pair)
    assert not Reconstruction.objects.exists()


@pytest.mark.slow
def test_xray_reconstruction_job_stores_bones_from_a_simulated_pair(
    phantom_case, isolated_media, django_capture_on_commit_callbacks
):
    from reconstruction.reconstruct_xray import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"no shipped student checkpoint at {DEFAULT_CHECKPOINT}")
    from studyapp.cases.models import XRayPair

    case = CaseFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.store_ct_volume(case, phantom_case.ct, "phantom")
        services.request_drr_simulation(case, separation_deg=90, dose_photons=1e5, size_px=256)
    pair = XRayPair.objects.get(case=case)
    with django_capture_on_commit_callbacks(execute=True):
        reconstruction, job = services.request_xray_reconstruction(case, pair)
    job.refresh_from_db()
    reconstruction.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert reconstruction.status == Reconstruction.Status.DONE
    assert {"femur", "tibia"} <= set(reconstruction.bones.values_list("bone", flat=True))
    assert reconstruction.summary["fraction_of_dense_256"] < 0.05


def test_teacher_method_through_the_api_runs_the_shipped_teacher(
    phantom_ct, isolated_media, django_capture_on_commit_callbacks, client, coordinator
):
    case = CaseFactory()
    client.force_login(coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        services.store_ct_volume(case, phantom_ct, "phantom")
        response = client.post(
            f"/api/cases/{case.pk}/reconstruct-ct/",
            {"method": "teacher"},
            content_type="application/json",
        )
    assert response.status_code in (200, 201, 202), response.content
    reconstruction = Reconstruction.objects.get(case=case)
    assert reconstruction.method == "ct-teacher"
    assert reconstruction.status == Reconstruction.Status.DONE, reconstruction.error
    assert reconstruction.summary["method"] == "teacher"
    assert "teacher" in reconstruction.summary["timings_s"]
    bones = BoneModel.objects.filter(reconstruction=reconstruction)
    assert sorted(bones.values_list("bone", flat=True)) == ["femur", "fibula", "patella", "tibia"]
    assert all(bone.watertight for bone in bones)
    rejected = client.post(
        f"/api/cases/{case.pk}/reconstruct-ct/",
        {"method": "magic"},
        content_type="application/json",
    )
    assert rejected.status_code == 400
