"""Background work for cases. Handlers take ids, load what they need, and write atomically."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from django.conf import settings

from reconstruction import io as imaging_io
from studyapp.files import atomic_write_bytes
from studyapp.jobs.registry import JobContext, register

from .models import CTVolume


@register("cases.ct_preview")
def ct_preview(context: JobContext) -> dict:
    """Three orthogonal mid-slices of the case's CT as one PNG for the case page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ct = CTVolume.objects.get(case_id=context.case_id)
    context.report(10, "reading CT")
    volume = imaging_io.read_volume(Path(settings.MEDIA_ROOT) / ct.file.name, require_ct=True)
    context.report(50, "rendering slices")
    array = np.clip(np.asarray(volume.array, dtype=np.float32), -400, 1500)
    spacing = volume.spacing
    centre = [n // 2 for n in array.shape]
    # Radiological display for an LPS volume: superior up, patient's right on the viewer's left.
    views = [
        (array[:, :, centre[2]].T, spacing[1] / spacing[0], "upper", "axial"),
        (array[:, centre[1], :].T, spacing[2] / spacing[0], "lower", "coronal"),
        (array[centre[0], :, :].T, spacing[2] / spacing[1], "lower", "sagittal"),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(9, 3.4), dpi=100)
    for axis, (image, aspect, origin, title) in zip(axes, views, strict=True):
        axis.imshow(image, cmap="gray", aspect=aspect, origin=origin, vmin=-400, vmax=1500)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    relative = f"ct-previews/{ct.sha256[:16]}-{ct.pk}.png"
    atomic_write_bytes(Path(settings.MEDIA_ROOT) / relative, buffer.getvalue())
    CTVolume.objects.filter(pk=ct.pk).update(preview=relative)
    context.report(100, "preview ready")
    return {"preview": relative}


@register("cases.simulate_drr")
def simulate_drr(
    context: JobContext,
    separation_deg: float,
    dose_photons: float | None,
    size_px: int,
    seed: int = 0,
) -> dict:
    """Biplanar DRRs from the case's CT, stored as a simulated X-ray pair."""
    from reconstruction.drr.simulate import DRRSettings, bone_centre, simulate_pair

    from .models import Case, XRayPair
    from .services import store_xray_pair

    case = Case.objects.select_related("ct").get(pk=context.case_id)
    context.report(5, "reading CT")
    ct = imaging_io.read_volume(Path(settings.MEDIA_ROOT) / case.ct.file.name, require_ct=True)
    drr_settings = DRRSettings(  # the beam centred on the knee, as a radiographer would
        separation_deg=separation_deg,
        dose_photons=dose_photons,
        size_px=size_px,
        seed=seed,
        isocentre_mm=bone_centre(ct),
    )
    total_rays = 2 * size_px * size_px
    done = [0]

    def on_rays(count: int) -> None:
        done[0] += count
        context.report(10 + 80 * done[0] / total_rays, "projecting")

    pair = simulate_pair(ct, drr_settings, progress=on_rays)
    context.report(92, "storing images")
    record = store_xray_pair(case, pair, XRayPair.Origin.SIMULATED, dose_photons=dose_photons)
    return {"xray_pair": record.pk, "separation_deg": record.separation_deg}


def _fill_reconstruction(context: JobContext, reconstruction_id: int, produce) -> dict:
    """Run `produce(reconstruction, progress) -> (meshes, summary)` into a pending
    Reconstruction: bones stored on success, the failure recorded on it otherwise."""
    from reconstruction.errors import ImagingError

    from . import services

    reconstruction = services.begin_reconstruction(reconstruction_id)
    try:
        meshes, summary = produce(
            reconstruction, lambda stage, fraction: context.report(5 + 85 * fraction, stage)
        )
        if not meshes:
            raise ImagingError("no bone was found")
        context.report(92, "storing meshes")
        services.finish_reconstruction(reconstruction, meshes, summary)
    except Exception as exc:
        services.fail_reconstruction(reconstruction_id, f"{type(exc).__name__}: {exc}")
        raise
    return {
        "reconstruction": reconstruction_id,
        "bones": sorted(meshes),
        "missing": summary["missing"],
    }


@register("cases.reconstruct_ct")
def reconstruct_ct(context: JobContext, reconstruction_id: int, method: str = "classical") -> dict:
    """Segment the case's CT and mesh the four bones into the pending Reconstruction."""

    def produce(reconstruction, progress):
        from reconstruction.segment_ct import reconstruct_from_ct

        context.report(2, "reading CT")
        ct_path = Path(settings.MEDIA_ROOT) / reconstruction.case.ct.file.name
        volume = imaging_io.read_volume(ct_path, require_ct=True)
        return reconstruct_from_ct(volume, method, progress=progress)

    return _fill_reconstruction(context, reconstruction_id, produce)


@register("cases.evaluate_surfaces")
def evaluate_surfaces(context: JobContext, reconstruction_id: int, reference_id: int) -> dict:
    """Exact surface metrics per bone and the error-map figure (see evaluation.surface)."""
    import tempfile

    from evaluation.surface.errormap import summary_figure
    from evaluation.surface.metrics import compare_pair, rows_for

    from . import services
    from .models import Reconstruction

    reconstruction = Reconstruction.objects.get(pk=reconstruction_id)
    reference = Reconstruction.objects.get(pk=reference_id)
    media = Path(settings.MEDIA_ROOT)
    result_meshes = {bone.bone: media / bone.mesh.name for bone in reconstruction.bones.all()}
    reference_meshes = {bone.bone: media / bone.mesh.name for bone in reference.bones.all()}
    bones = sorted(set(result_meshes) & set(reference_meshes))
    pairs, rows = {}, []
    for index, bone in enumerate(bones):
        context.report(5 + 80 * index / max(len(bones), 1), f"measuring {bone}")
        pairs[bone] = compare_pair(reference_meshes[bone], result_meshes[bone])
        rows.extend(rows_for(bone, pairs[bone]))
    context.report(88, "drawing the error map")
    with tempfile.TemporaryDirectory() as folder:
        figure = summary_figure(
            pairs, Path(folder) / "errors.png", title="Signed distance to the reference"
        )
        png = figure.read_bytes()
    parameters = next(iter(pairs.values())).parameters if pairs else {}
    parameters = {**parameters, "missing_bones": sorted(set(reference_meshes) ^ set(result_meshes))}
    evaluation = services.store_surface_evaluation(reconstruction, reference, rows, parameters, png)
    return {"evaluation": evaluation.pk, "bones": bones}


@register("cases.analyse_alignment")
def analyse_alignment(context: JobContext, reconstruction_id: int) -> dict:
    """Landmarks, angles, CPAK and the HTO plan (evaluation.alignment) with a frontal overlay."""
    import json
    import tempfile

    import trimesh

    from evaluation.alignment.overlay import render_frontal
    from evaluation.alignment.pipeline import analyse_knee

    from . import services
    from .models import Reconstruction

    reconstruction = Reconstruction.objects.select_related("case").get(pk=reconstruction_id)
    media = Path(settings.MEDIA_ROOT)
    meshes = {
        bone.bone: trimesh.load(media / bone.mesh.name, force="mesh")
        for bone in reconstruction.bones.all()
    }
    context.report(20, "landmarks and angles")
    side = {"L": "left", "R": "right"}[reconstruction.case.side]
    analysis = analyse_knee(
        meshes["femur"], meshes["tibia"], meshes.get("fibula"), meshes.get("patella"), side=side
    )
    context.report(70, "drawing the overlay")
    with tempfile.TemporaryDirectory() as folder:
        png = render_frontal(analysis, meshes, Path(folder) / "overlay.png").read_bytes()
    # A JSON round trip turns numpy scalars into plain numbers for the JSON field.
    report = json.loads(json.dumps(analysis.to_dict(), default=float))
    result = services.store_alignment(reconstruction, report, png)
    return {"alignment": result.pk, "cpak": (report.get("cpak") or {}).get("type")}


@register("cases.reconstruct_xray")
def reconstruct_xray(context: JobContext, reconstruction_id: int) -> dict:
    """The four bones from the reconstruction's X-ray pair with the shipped student network."""

    def produce(reconstruction, progress):
        from reconstruction.reconstruct_xray import reconstruct_from_xray

        context.report(2, "reading the X-ray pair")
        folder = Path(settings.MEDIA_ROOT) / Path(reconstruction.xray_pair.view1.name).parent
        return reconstruct_from_xray(imaging_io.read_xray_pair(folder), progress=progress)

    return _fill_reconstruction(context, reconstruction_id, produce)
