"""The demo's phantom cases: built once, complete, and not rebuilt on a second run."""

from __future__ import annotations

import pytest

from studyapp.cases import demo
from studyapp.cases.models import Case, GroundTruth, Reconstruction, XRayPair
from studyapp.demo.services import DemoReport
from studyapp.jobs.models import Job
from tests.studyapp.factories import StudyFactory


# transaction=True: the demo runs outside any transaction, so every inline job (which
# runs on commit) finishes before the next step looks for its result; a test wrapped in
# one transaction would defer them and see a half-built case.
@pytest.mark.django_db(transaction=True)
def test_phantom_cases_are_complete_and_idempotent(monkeypatch):
    monkeypatch.setattr(demo, "PHANTOM_SEEDS", (1001,))
    monkeypatch.setattr(demo, "DEMO_CT_SPACING_MM", (2.0, 2.0, 2.0))
    study = StudyFactory()
    demo.add_phantom_cases(study, DemoReport(password="x"))
    case = Case.objects.get(study=study)
    assert case.is_phantom and case.phantom_seed == 1001
    assert case.ct.spacing_mm == pytest.approx([2.0, 2.0, 2.0])
    kinds = set(case.ground_truths.values_list("kind", flat=True))
    assert kinds == {GroundTruth.Kind.LABEL_MAP, GroundTruth.Kind.MESHES}
    truth = case.ground_truths.get(kind=GroundTruth.Kind.MESHES).reconstruction
    assert sorted(truth.bones.values_list("bone", flat=True)) == [
        "femur",
        "fibula",
        "patella",
        "tibia",
    ]
    assert all(truth.bones.values_list("watertight", flat=True))
    assert XRayPair.objects.get(case=case).origin == XRayPair.Origin.SIMULATED
    ct_reconstruction = case.reconstructions.get(source=Reconstruction.Source.CT)
    assert ct_reconstruction.status == Reconstruction.Status.DONE, ct_reconstruction.error
    # The shipped student checkpoint is committed, so the demo reconstructs the X-ray pair too.
    xray_reconstruction = case.reconstructions.get(source=Reconstruction.Source.XRAY)
    assert xray_reconstruction.status == Reconstruction.Status.DONE, xray_reconstruction.error
    jobs_before = Job.objects.count()
    demo.add_phantom_cases(study, DemoReport(password="x"))
    assert Case.objects.filter(study=study).count() == 1
    assert Job.objects.count() == jobs_before
    assert case.ground_truths.count() == 2
