"""Job kinds of the guide trial: the virtual (printer-free) CT-vs-X-ray trial."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import trimesh
from django.conf import settings

from studyapp.cases.models import Reconstruction
from studyapp.jobs.registry import JobContext, register

from .models import GuideTrial, Source, VirtualRun
from .services import guide_folder, store_guide

SIMULATED_NOTE = (
    "No X-ray reconstruction of this knee: its X-ray guide was designed on a SIMULATED X-ray "
    "model (the CT model with a smooth random surface error, seeded by the case id)."
)


def _tibia_and_femur(case, source: str) -> tuple[dict, Reconstruction] | None:
    reconstruction = (
        case.reconstructions.filter(source=source, status=Reconstruction.Status.DONE)
        .order_by("-created_at")
        .first()
    )
    if reconstruction is None:
        return None
    meshes = {}
    for bone in reconstruction.bones.all():
        path = Path(settings.MEDIA_ROOT) / bone.mesh.name
        meshes[bone.bone] = trimesh.load(path, force="mesh", process=True)
    if "tibia" not in meshes or "femur" not in meshes:
        return None
    return meshes, reconstruction


def _plan(meshes: dict, side: str):
    from evaluation.alignment.pipeline import analyse_knee

    side_name = {"r": "right", "l": "left", "right": "right", "left": "left"}.get(str(side).lower())
    result = analyse_knee(
        meshes["femur"],
        meshes["tibia"],
        meshes.get("fibula"),
        meshes.get("patella"),
        side=side_name,
    )
    if result.plan is None:
        raise ValueError(f"no HTO plan: {result.plan_error}")
    return result.plan


def _write_bundle(case, source, model_label, design, tibia, plan) -> None:
    from evaluation.guide.bundle import guide_report
    from evaluation.guide.design import print_tibia
    from evaluation.guide.export import atomic_write, write_3mf, write_stl

    folder, relative = guide_folder(case.pk, source, uuid.uuid4().hex[:8])
    write_stl(design.mesh, folder / "guide.stl", design.label)
    write_3mf(design.mesh, folder / "guide.3mf", design.label)
    write_stl(print_tibia(tibia, plan), folder / "tibia_print.stl", f"tibia {design.label}")
    report = guide_report(design, tibia, plan)
    atomic_write(folder / "report.json", json.dumps(report, indent=2).encode())
    store_guide(case, source, model_label, plan.to_dict(), report, relative)


def _clean_row(row: dict) -> dict:
    from evaluation.guide.bundle import clean

    return clean({k: v for k, v in row.items() if k != "designs"})


@register("trials.virtual_trial")
def virtual_trial(context: JobContext, trial_id: int, grid_mm: float = 0.5) -> dict:
    """For every knee with a CT tibia: CT and X-ray guides, seated on the CT bone."""
    from evaluation.guide.design import GuideParams
    from evaluation.guide.virtual_trial import (
        SIMULATED_XRAY_LABEL,
        KneeInput,
        run_knee,
        simulated_xray_model,
        summarise,
    )

    trial = GuideTrial.objects.get(pk=trial_id)
    params = GuideParams(grid_mm=grid_mm)
    knees = list(trial.knees.select_related("case"))
    rows, notes = [], []
    for number, knee in enumerate(knees):
        case = knee.case
        context.report(100 * number / max(len(knees), 1), f"knee {case.code}")
        ct = _tibia_and_femur(case, Reconstruction.Source.CT)
        if ct is None:
            notes.append(f"{case.code}: skipped, no finished CT reconstruction with a tibia")
            continue
        ct_meshes, ct_rec = ct
        try:
            ct_plan = _plan(ct_meshes, case.side)
            xray = _tibia_and_femur(case, Reconstruction.Source.XRAY)
            if xray is not None:
                x_meshes, x_rec = xray
                x_tibia, x_plan, x_label = (
                    x_meshes["tibia"],
                    _plan(x_meshes, case.side),
                    (f"X-ray reconstruction {x_rec.pk} ({x_rec.method})"),
                )
            else:
                x_tibia = simulated_xray_model(ct_meshes["tibia"], seed=case.pk)
                x_plan, x_label = None, SIMULATED_XRAY_LABEL
                notes.append(f"{case.code}: {SIMULATED_NOTE}")
            row = run_knee(
                KneeInput(case.code, ct_meshes["tibia"], x_tibia, ct_plan, x_plan, x_label), params
            )
        except ValueError as exc:
            notes.append(f"{case.code}: skipped, {exc}")
            continue
        if ct_plan.approximate:
            notes.append(
                f"{case.code}: knee-only field of view, so the HTO plan is APPROXIMATE (hip and "
                "ankle extrapolated); the slot plane and hinge do not depend on them"
            )
        designs = row["designs"]
        _write_bundle(
            case,
            Source.CT,
            f"CT reconstruction {ct_rec.pk}",
            designs["ct"],
            ct_meshes["tibia"],
            ct_plan,
        )
        _write_bundle(case, Source.XRAY, x_label, designs["xray"], x_tibia, x_plan or ct_plan)
        rows.append(_clean_row(row))
    summary = summarise(rows) if rows else {}
    run = VirtualRun.objects.create(
        trial=trial, job_id=context.job_id, rows=rows, summary=summary, notes=notes
    )
    context.report(100, "done")
    return {"virtual_run": run.pk, "knees": len(rows), "summary": summary, "notes": notes}
