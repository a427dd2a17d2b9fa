"""Axial sections of the distal femur: the real knee's truth, its reconstruction and a family
of phantoms, each aligned at its own distal end and posterior condylar line; and sagittal
sections through the patella and the femur behind it.

This is the picture behind the phantom variations: where the real bone lies outside what the
generator draws, the student draws the generator's shape. Patient coordinates (LPS, mm):
+y posterior, +z superior.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402

from reconstruction.io._atomic import write_atomic  # noqa: E402
from reconstruction.volume import Volume  # noqa: E402

HEIGHTS_MM = (8.0, 15.0, 30.0)  # above the distal end
CONDYLE_BAND_MM = 30.0  # where the posterior condylar line and the centre are taken
PATELLA_OFFSETS_MM = (-10.0, 0.0, 10.0)  # sagittal planes, from the patella's centroid
DEPTH_HEIGHTS_MM = (10.0, 15.0)  # femur_depth_over_width; the first also gives the width


def aligned_femur(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """A copy moved so that its distal end is z = 0, its posterior-most condyle point y = 0
    and the middle of its condyles x = 0 (all within CONDYLE_BAND_MM of the distal end)."""
    vertices = np.asarray(mesh.vertices)
    distal = vertices[:, 2].min()
    band = vertices[vertices[:, 2] - distal < CONDYLE_BAND_MM]
    shift = (-(band[:, 0].min() + band[:, 0].max()) / 2.0, -band[:, 1].max(), -distal)
    return mesh.copy().apply_translation(shift)


def section_outlines(mesh: trimesh.Trimesh, height_mm: float) -> list[np.ndarray]:
    """The closed (x, y) outlines of the axial section at `height_mm`."""
    return _plane_outlines(mesh, axis=2, position_mm=height_mm)


def femur_depth_over_width(
    mesh: trimesh.Trimesh,
    heights_mm: Sequence[float] = DEPTH_HEIGHTS_MM,
    width_height_mm: float = DEPTH_HEIGHTS_MM[0],
) -> dict[float, float]:
    """How far forward the condyles and trochlea reach, free of the knee's size: at each
    height above the distal end (aligned_femur), the axial section's front-back extent over
    the section's side-to-side extent at `width_height_mm`. Left and right knees measure
    alike. A height the mesh does not reach is an error, not a silent gap."""
    aligned = aligned_femur(mesh)

    def extent(height: float, axis: int) -> float:
        outlines = section_outlines(aligned, height)
        if not outlines:
            raise ValueError(f"the femur has no section {height:g} mm above its distal end")
        return float(np.ptp(np.concatenate(outlines)[:, axis]))

    width = extent(width_height_mm, 0)
    return {float(h): extent(h, 1) / width for h in heights_mm}


def femur_sections_figure(
    truth: trimesh.Trimesh,
    out: Path,
    reconstructions: Sequence[tuple[str, trimesh.Trimesh]] = (),
    phantoms: Sequence[trimesh.Trimesh] = (),
    heights_mm: Sequence[float] = HEIGHTS_MM,
    title: str = "real knee femur: axial sections",
) -> Path:
    """Write a PNG: one panel per height; phantoms grey, the truth black, each reconstruction
    in its own colour. Written to a temporary name, then renamed."""
    colours = ("tab:red", "tab:blue", "tab:green", "tab:orange")
    layers = [(aligned_femur(m), "0.7", 0.7, None) for m in phantoms]
    layers.append((aligned_femur(truth), "black", 1.8, "truth"))
    for (label, mesh), colour in zip(reconstructions, colours, strict=False):
        layers.append((aligned_femur(mesh), colour, 1.2, label))
    fig, axes = plt.subplots(1, len(heights_mm), figsize=(5.0 * len(heights_mm), 5.0))
    for ax, height in zip(np.atleast_1d(axes), heights_mm, strict=True):
        for mesh, colour, width, label in layers:
            for index, outline in enumerate(section_outlines(mesh, height)):
                ax.plot(*outline.T, color=colour, lw=width, label=label if index == 0 else None)
        ax.set_title(f"{height:g} mm above the distal end")
        ax.set_xlabel("x (mm, patient left)")
        ax.set_ylabel("y (mm, posterior up)")
        ax.set_aspect("equal")
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=8)
    if phantoms:
        title += f" (grey: {len(phantoms)} phantoms)"
    fig.suptitle(title)
    return _save_png(fig, out)


def sagittal_outlines(mesh: trimesh.Trimesh, x_mm: float) -> list[np.ndarray]:
    """The closed (y, z) outlines of the sagittal section at patient x = `x_mm`."""
    return _plane_outlines(mesh, axis=0, position_mm=x_mm)


def _plane_outlines(mesh: trimesh.Trimesh, axis: int, position_mm: float) -> list[np.ndarray]:
    """Closed outlines where the plane normal to patient `axis` at `position_mm` cuts the
    mesh, in the two remaining coordinates (in axis order)."""
    normal = np.eye(3)[axis]
    section = mesh.section(plane_origin=normal * position_mm, plane_normal=normal)
    if section is None:
        return []
    kept = [i for i in range(3) if i != axis]
    return [np.asarray(line)[:, kept] for line in section.discrete]


def patellofemoral_figure(
    truth: dict[str, trimesh.Trimesh],
    out: Path,
    reconstructions: Sequence[tuple[str, dict[str, trimesh.Trimesh]]] = (),
    offsets_mm: Sequence[float] = PATELLA_OFFSETS_MM,
    title: str = "real knee: sagittal sections through the patella",
) -> Path:
    """Write a PNG of sagittal sections through the patella (its centroid's x plus each
    offset): the true femur and patella in black, each reconstruction's in its colour,
    patellae dashed. All in the same patient coordinates, so nothing is aligned."""
    colours = ("tab:red", "tab:blue", "tab:green", "tab:orange")
    layers = [(truth, "black", 1.8, "truth")]
    layers += [(m, c, 1.2, label) for (label, m), c in zip(reconstructions, colours, strict=False)]
    centre_x = float(truth["patella"].center_mass[0])
    fig, axes = plt.subplots(1, len(offsets_mm), figsize=(5.0 * len(offsets_mm), 6.0))
    for ax, offset in zip(np.atleast_1d(axes), offsets_mm, strict=True):
        for meshes, colour, width, label in layers:
            for bone, style in (("femur", "-"), ("patella", "--")):
                if bone not in meshes:
                    continue
                outlines = sagittal_outlines(meshes[bone], centre_x + offset)
                for index, outline in enumerate(outlines):
                    name = f"{label} {bone}" if index == 0 else None
                    ax.plot(*outline.T, color=colour, lw=width, ls=style, label=name)
        ax.set_title(f"x = patella centre {offset:+g} mm")
        ax.set_xlabel("y (mm, posterior right)")
        ax.set_ylabel("z (mm, superior up)")
        ax.set_aspect("equal")
    named: dict = {}  # one legend entry per layer and bone, from whichever panel has it
    for ax in np.atleast_1d(axes):
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            named.setdefault(name, handle)
    np.atleast_1d(axes)[0].legend(named.values(), named.keys(), loc="lower left", fontsize=7)
    fig.suptitle(title)
    return _save_png(fig, out)


def _save_png(fig: plt.Figure, out: Path) -> Path:
    """Written to a temporary name, then renamed: never a half-written figure."""
    try:
        return write_atomic(
            out, lambda temporary: fig.savefig(temporary, dpi=80, format="png", bbox_inches="tight")
        )
    finally:
        plt.close(fig)


def patella_seating(labels: Volume) -> dict[str, float]:
    """The patella's extent and how deep it sits, from a label map (1 femur, 4 patella) on
    any grid (the real knee's is oblique).

    Returns the voxel centres' extent along z (height), x (width) and y (thickness) in mm,
    the volume in cm^3, the lower pole's height above the femur's distal end, and `seat_mm`:
    over 1 mm axial slabs both bones cross, the largest distance by which the patella's
    posterior face lies behind the femur's most anterior point in the same slab (> 0: in
    the groove between the trochlear facets; < 0: in front of them). The real knee and the
    phantoms are measured alike."""
    array = np.asarray(labels.array)
    femur, patella = (labels.index_to_patient(np.argwhere(array == value)) for value in (1, 4))
    if not len(femur) or not len(patella):
        raise ValueError("the label map needs a femur (1) and a patella (4)")
    extent = patella.max(axis=0) - patella.min(axis=0)
    femur_slab, patella_slab = np.floor(femur[:, 2]), np.floor(patella[:, 2])
    depths = []
    for slab in np.unique(patella_slab):
        in_femur = femur_slab == slab
        if np.any(in_femur):
            back = patella[patella_slab == slab, 1].max()
            depths.append(back - femur[in_femur, 1].min())
    voxel_mm3 = float(np.prod(labels.spacing))
    return {
        "height_mm": float(extent[2]),
        "width_mm": float(extent[0]),
        "thickness_mm": float(extent[1]),
        "volume_cm3": len(patella) * voxel_mm3 / 1000.0,
        "lower_pole_mm": float(patella[:, 2].min() - femur[:, 2].min()),
        "seat_mm": float(max(depths)) if depths else float("nan"),
    }
