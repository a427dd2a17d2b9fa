from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from reconstruction.phantoms.generator import generate_case
from studyapp.accounts.roles import Role
from studyapp.jobs.models import Job
from studyapp.jobs.services import start_job
from studyapp.trials import services
from studyapp.trials.models import GuideFile, VirtualRun
from tests.studyapp.factories import (
    BoneModelFactory,
    CaseFactory,
    ReconstructionFactory,
    UserFactory,
    _write_media,
)


@pytest.mark.django_db(transaction=True)
def test_virtual_trial_job_designs_both_guides_and_reports(client, isolated_media):
    phantom = generate_case(3, fov="knee", with_ct=False, mesh_spacing=1.0)
    case = CaseFactory(code="PH-001", side=phantom.params.side)
    reconstruction = ReconstructionFactory(case=case, source="ct")
    for bone in ("femur", "tibia"):
        name = _write_media(
            f"meshes/{uuid.uuid4().hex}.stl", phantom.meshes[bone].export(file_type="stl")
        )
        BoneModelFactory(reconstruction=reconstruction, bone=bone, mesh=name)
    trial = services.create_trial(case.study, "virtual")
    services.add_knee(trial, case)
    job = start_job(
        "trials.virtual_trial", params={"trial_id": trial.pk, "grid_mm": 0.8}, inline=True
    )
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    run = VirtualRun.objects.get(trial=trial)
    row = run.rows[0]
    assert row["knee"] == "PH-001" and "simulated" in row["xray_model"].lower()
    assert any("SIMULATED" in n for n in run.notes) and any("APPROXIMATE" in n for n in run.notes)
    assert run.summary["angle_deg"]["n"] == 1
    guides = GuideFile.objects.filter(case=case)
    assert {g.source for g in guides} == {"ct", "xray"}
    assert all(g.report["ok"] for g in guides)
    client.force_login(UserFactory(roles=[Role.COORDINATOR]))
    page = client.get(reverse("trials:case-guides", args=[case.pk]))
    assert page.status_code == 200 and b"data-mesh-viewer" in page.content
    ct = guides.get(source="ct")
    download = client.get(reverse("trials:guide-download", args=[ct.pk, "guide.3mf"]))
    assert download.status_code == 200
    assert ct.label in download["Content-Disposition"]
