"""Demo content for cases: phantom knees with CT, exact ground truth and a simulated X-ray pair."""

from __future__ import annotations

from django.db import transaction

from . import services
from .models import Case, GroundTruth, Reconstruction, Study, XRayPair

# Fixed seeds: the demo shows the same knees on every machine.
PHANTOM_SEEDS = (1001, 1002, 1003, 1005)  # three right knees and one left
DEMO_CT_SPACING_MM = (1.0, 1.0, 1.0)
GENERATOR = "phantom generator (exact)"


def add_phantom_cases(study: Study, report) -> None:
    """phantom knees: CT, exact ground truth, simulated X-ray pair, CT and X-ray reconstructions"""
    for index, seed in enumerate(PHANTOM_SEEDS, start=1):
        case = _phantom_case(study, f"PH-{index:03d}", seed)
        if not case.xray_pairs.filter(origin=XRayPair.Origin.SIMULATED).exists():
            with transaction.atomic():
                services.request_drr_simulation(
                    case,
                    separation_deg=90.0,
                    dose_photons=1e5,
                    size_px=256,
                    seed=seed,
                    inline=True,
                )
        if not case.reconstructions.filter(source=Reconstruction.Source.CT).exists():
            # Inline: the reading study built after this step needs finished models.
            with transaction.atomic():
                services.request_ct_reconstruction(case, "classical", inline=True)
        xray_note = _add_xray_reconstruction(case)
        report.notes.append(
            f"{case.code}: phantom seed {seed}, {case.get_side_display()} knee{xray_note}"
        )


def _phantom_case(study: Study, code: str, seed: int) -> Case:
    """The case with its CT and exact ground truth; the phantom is generated only when needed."""
    case = Case.objects.filter(study=study, code=code).first()
    if case is not None and hasattr(case, "ct") and case.ground_truths.count() >= 2:
        return case
    # Imported here: the generator pulls in torch, which the web workers never need.
    from reconstruction.phantoms.generator import generate_case

    phantom = generate_case(seed, fov="knee", spacing=DEMO_CT_SPACING_MM)
    with transaction.atomic():
        if case is None:
            case = services.create_case(
                study,
                code,
                phantom.params.side,
                is_phantom=True,
                phantom_seed=seed,
                split=Case.Split.TEST,
                site="phantom",
            )
        if not hasattr(case, "ct"):
            services.store_ct_volume(case, phantom.ct, "phantom")
    if not case.ground_truths.filter(kind=GroundTruth.Kind.LABEL_MAP).exists():
        services.store_label_map(case, phantom.labels, made_by=GENERATOR)
    if not case.ground_truths.filter(kind=GroundTruth.Kind.MESHES).exists():
        services.store_ground_truth_meshes(case, phantom.meshes, GENERATOR, method="phantom-exact")
    return case


def _add_xray_reconstruction(case: Case) -> str:
    """Reconstruct the simulated pair with the shipped student, when there is one."""
    from reconstruction.reconstruct_xray import DEFAULT_CHECKPOINT

    if case.reconstructions.filter(source=Reconstruction.Source.XRAY).exists():
        return ""
    pair = case.xray_pairs.filter(origin=XRayPair.Origin.SIMULATED).first()
    if pair is None:
        return "; no X-ray pair yet"
    if not DEFAULT_CHECKPOINT.is_file():
        return "; no shipped X-ray checkpoint, so no X-ray reconstruction"
    with transaction.atomic():
        services.request_xray_reconstruction(case, pair, inline=True)
    return ""
