"""Reads for studies, cases and their data."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from django.db.models import Count, Prefetch, QuerySet

from .models import BoneModel, Case, Reconstruction, Study


def studies_with_counts() -> QuerySet[Study]:
    return Study.objects.annotate(case_count=Count("cases"))


def cases_of_study(study_id: int) -> QuerySet[Case]:
    return (
        Case.objects.filter(study_id=study_id)
        .select_related("ct")
        .annotate(reconstruction_count=Count("reconstructions"))
    )


def all_cases() -> QuerySet[Case]:
    return Case.objects.select_related("study", "ct")


def case_detail(case_id: int) -> Case:
    """One case with everything its page shows, in a fixed number of queries."""
    return (
        Case.objects.select_related("study", "ct")
        .prefetch_related(
            "xray_pairs",
            "ground_truths",
            Prefetch(
                "reconstructions",
                queryset=Reconstruction.objects.prefetch_related(
                    Prefetch("bones", queryset=BoneModel.objects.order_by("bone"))
                ),
            ),
        )
        .get(pk=case_id)
    )


def finished_reconstructions(study_id: int) -> QuerySet[Reconstruction]:
    return Reconstruction.objects.filter(
        case__study_id=study_id, status=Reconstruction.Status.DONE
    ).select_related("case")


def reconstruction_viewers(case: Case) -> list[dict]:
    """What the staff mesh viewer needs per reconstruction: a label and the bone mesh URLs."""
    from django.urls import reverse

    viewers = []
    for reconstruction in case.reconstructions.all():
        meshes = [
            {"bone": bone.bone, "url": reverse("protected-media", args=[bone.mesh.name])}
            for bone in reconstruction.bones.all()
        ]
        if meshes:
            viewers.append(
                {
                    "label": f"{reconstruction.get_source_display()} · {reconstruction.method}",
                    "meshes_json": json.dumps(meshes),
                }
            )
    return viewers


def xray_previews(case: Case) -> list[dict]:
    """The two 16-bit PNG previews stored beside each pair's images."""
    from django.urls import reverse

    previews = []
    for pair in case.xray_pairs.all():
        folder = PurePosixPath(pair.view1.name).parent
        previews.append(
            {
                "pair": pair,
                "urls": [
                    reverse("protected-media", args=[str(folder / f"{name}.png")])
                    for name in ("view1", "view2")
                ],
            }
        )
    return previews


TABLE_METRICS = ("assd", "masd", "hd95", "hd", "nsd", "dice", "signed_mean")


def evaluation_tables(case: Case) -> list[dict]:
    """Per evaluated reconstruction: a bone x metric table (pooled variants) and the figure."""
    from django.urls import reverse

    from .models import SurfaceEvaluation

    tables = []
    evaluations = (
        SurfaceEvaluation.objects.filter(reconstruction__case=case)
        .select_related("reconstruction", "reference")
        .prefetch_related("metrics")
    )
    for evaluation in evaluations:
        values: dict[tuple[str, str], float] = {}
        for row in sorted(evaluation.metrics.all(), key=lambda r: r.pk):
            values.setdefault((row.bone, row.metric), row.value)  # pooled rows come first
        bones = sorted({bone for bone, _ in values})
        tables.append(
            {
                "label": f"{evaluation.reconstruction.get_source_display()} "
                f"#{evaluation.reconstruction.pk} vs {evaluation.reference.get_source_display()}",
                "metrics": TABLE_METRICS,
                "rows": [
                    {"bone": bone, "values": [values.get((bone, m)) for m in TABLE_METRICS]}
                    for bone in bones
                ],
                "figure_url": reverse("protected-media", args=[evaluation.figure.name])
                if evaluation.figure
                else "",
            }
        )
    return tables


ALIGNMENT_ANGLES = (
    ("mhka", "mHKA"),
    ("ldfa", "mLDFA"),
    ("mpta", "MPTA"),
    ("ahka", "aHKA"),
    ("jlo", "JLO"),
    ("jlca", "JLCA"),
    ("slope", "Posterior slope"),
)


def alignment_panels(case: Case) -> list[dict]:
    """Per reconstruction: the angles (approximate ones flagged), CPAK, HTO plan and overlay."""
    from django.urls import reverse

    from .models import AlignmentResult

    panels = []
    results = AlignmentResult.objects.filter(reconstruction__case=case).select_related(
        "reconstruction"
    )
    for result in results:
        angles = result.angles
        panels.append(
            {
                "label": f"{result.reconstruction.get_source_display()} #{result.reconstruction.pk}",
                "fov": result.report.get("fov", ""),
                "rows": [
                    {
                        "name": label,
                        "value": angles.get(key),
                        "approximate": key in result.approximate,
                        "missing": result.missing.get(key, ""),
                    }
                    for key, label in ALIGNMENT_ANGLES
                ],
                "cpak": result.report.get("cpak") or {},
                "plan": result.report.get("hto_plan") or {},
                "plan_error": result.report.get("hto_plan_error") or "",
                "missing_landmarks": result.missing,
                "overlay_url": reverse("protected-media", args=[result.overlay.name])
                if result.overlay
                else "",
            }
        )
    return panels
