"""Error maps: the result surface coloured by its signed distance to the reference.

Fixed colour scale, the same in every file and figure so that maps compare across cases:
diverging ``RdBu_r`` from -3 mm (dark blue: the result lies inside the reference, too small)
through 0 (white) to +3 mm (dark red: the result lies outside, too large), values beyond
+-3 mm clipped to the end colours.

Views assume patient coordinates in mm, LPS (x to the patient's left, y posterior, z
superior), as everywhere in the project: *front* looks from anterior (patient's left on the
right of the picture), *side* looks from the patient's right (anterior on the right).
The rendering is a flat-shaded projection of the triangles, painted back to front.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

COLORMAP = "RdBu_r"
LIMIT_MM = 3.0
BONES = ("femur", "tibia", "fibula", "patella")
VIEWS = {
    # name: (screen right, screen up, direction towards the camera)
    "front": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])),
    "side": (np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0]), np.array([-1.0, 0.0, 0.0])),
}
COLORBAR_LABEL = (
    "signed distance result - reference (mm)\nblue: inside (smaller), red: outside (larger)"
)


def colours(signed_distance: np.ndarray) -> np.ndarray:
    """RGBA uint8 (n, 4) on the fixed scale (-3..+3 mm, clipped)."""
    norm = Normalize(vmin=-LIMIT_MM, vmax=LIMIT_MM, clip=True)
    rgba = matplotlib.colormaps[COLORMAP](norm(np.asarray(signed_distance, dtype=float)))
    return np.round(rgba * 255).astype(np.uint8)


def write_error_map(
    mesh: trimesh.Trimesh, vertex_signed_distance: np.ndarray, path: str | Path
) -> Path:
    """The mesh with vertex colours on the fixed scale, as GLB (or any trimesh format by suffix)."""
    path = Path(path)
    coloured = trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices),
        faces=np.asarray(mesh.faces),
        vertex_colors=colours(vertex_signed_distance),
        process=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    coloured.export(path)
    return path


def _add_colorbar(fig, cax) -> None:
    mappable = plt.cm.ScalarMappable(norm=Normalize(-LIMIT_MM, LIMIT_MM), cmap=COLORMAP)
    bar = fig.colorbar(mappable, cax=cax, extend="both")
    bar.set_label(COLORBAR_LABEL)
    bar.set_ticks(np.arange(-LIMIT_MM, LIMIT_MM + 0.5, 1.0))


def write_colorbar(path: str | Path) -> Path:
    """The colour bar of the fixed scale as a PNG."""
    path = Path(path)
    fig = plt.figure(figsize=(2.0, 5.0), dpi=150)
    cax = fig.add_axes((0.2, 0.05, 0.15, 0.9))
    _add_colorbar(fig, cax)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_view(ax, mesh: trimesh.Trimesh, vertex_signed_distance: np.ndarray, view: str) -> None:
    """Flat-shaded projection of the triangles, coloured by face-mean signed distance.

    All triangles are painted back to front (no back-face culling, so a mesh with flipped
    faces still renders); shading uses |normal . view|.
    """
    right, up, towards = VIEWS[view]
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    normals = np.asarray(mesh.face_normals)
    facing = np.abs(normals @ towards)
    visible = np.argsort(vertices[faces].mean(axis=1) @ towards)  # farthest first
    tri = vertices[faces[visible]]
    polygons = np.stack([tri @ right, tri @ up], axis=-1)
    rgba = colours(np.asarray(vertex_signed_distance)[faces[visible]].mean(axis=1)) / 255.0
    shade = 0.45 + 0.55 * facing[visible]
    rgba[:, :3] *= shade[:, None]
    ax.add_collection(
        PolyCollection(polygons, facecolors=rgba, edgecolors="none", antialiased=False)
    )
    lo, hi = polygons.reshape(-1, 2).min(axis=0), polygons.reshape(-1, 2).max(axis=0)
    pad = 0.03 * float(max(hi - lo))
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def summary_figure(pairs: dict, path: str | Path, title: str = "") -> Path:
    """Per-case figure: femur, tibia, fibula, patella (columns) x front, side (rows), colour bar.

    ``pairs`` maps bone names to :class:`~evaluation.surface.metrics.PairResult` (measured
    with the signed distance on); a bone that is missing gets an empty panel saying so.
    """
    path = Path(path)
    bones = list(BONES) + [b for b in pairs if b not in BONES]
    fig, axes = plt.subplots(
        2, len(bones), figsize=(3.6 * len(bones) + 1.2, 8.2), dpi=120, squeeze=False
    )
    fig.subplots_adjust(left=0.04, right=0.88, top=0.86, bottom=0.03, wspace=0.08, hspace=0.12)
    for col, bone in enumerate(bones):
        pair = pairs.get(bone)
        for row, view in enumerate(VIEWS):
            ax = axes[row, col]
            if pair is None or pair.vertex_signed_distance is None:
                ax.text(
                    0.5,
                    0.5,
                    "not measured",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    color="0.4",
                )
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                draw_view(ax, pair.result_mesh, pair.vertex_signed_distance, view)
            if col == 0:
                ax.set_ylabel(view, fontsize=12)
        heading = bone
        if pair is not None:
            m = pair.metrics
            heading += f"\nASSD {m['assd']:.2f}  HD95 {m['hd95']:.2f} mm"
            if "signed_mean" in m:
                heading += f"\nsigned mean {m['signed_mean']:+.2f} mm"
        axes[0, col].set_title(heading, fontsize=11)
    if title:
        fig.suptitle(title, fontsize=14)
    _add_colorbar(fig, fig.add_axes((0.91, 0.12, 0.018, 0.7)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
