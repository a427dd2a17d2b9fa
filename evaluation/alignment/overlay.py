"""Pictures a surgeon reads at a glance (matplotlib, Agg, PNG).

* `render_frontal`: frontal (AP) rendering of the 3D bone models, viewer's left = patient's
  right as on a radiograph, full limb plus a knee close-up.
* `overlay_ap_image`: the same annotations on a 2D AP image (e.g. the AP DRR) given its
  3x4 projection matrix (patient mm -> pixel column, row).

Both draw through one `Projector` (3D patient mm -> 2D), so angle arcs are built in 3D in
the bone's frontal plane and projected like everything else.
"""

from __future__ import annotations

import math
import os
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

from .errors import AlignmentError  # noqa: E402
from .frames import Array, Frame, unit  # noqa: E402
from .hto import rotate_about  # noqa: E402
from .pipeline import KneeAnalysis  # noqa: E402

Projector = Callable[[Array], Array]  # (n, 3) -> (n, 2)

COLOURS = {
    "femur": "#1f77b4",
    "tibia": "#d62728",
    "wbl": "#2ca02c",
    "planned": "#ff7f0e",
    "joint": "#e6c200",
    "hto": "#9467bd",
}


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".png", dir=target.parent)
    os.close(fd)
    try:
        fig.savefig(temp, dpi=110, facecolor=fig.get_facecolor())
        os.replace(temp, target)
    finally:
        plt.close(fig)
        if os.path.exists(temp):
            os.unlink(temp)
    return target


def _patient_left(frame: Frame) -> Array:
    """Viewer's right on an AP view is the patient's left: medial for a right knee."""
    return frame.medial if frame.side == "right" else frame.lateral


def frontal_projector(frame: Frame) -> Projector:
    left = _patient_left(frame)

    def project(points: Array) -> Array:
        q = np.atleast_2d(points) - frame.origin
        return np.column_stack([q @ left, q @ frame.superior])

    return project


def matrix_projector(matrix: Array) -> Projector:
    p = np.asarray(matrix, dtype=float)
    if p.shape != (3, 4) or not np.isfinite(p).all():
        raise AlignmentError(f"projection matrix must be a finite 3x4 array, got {p.shape}")

    def project(points: Array) -> Array:
        q = np.atleast_2d(points)
        uvw = np.hstack([q, np.ones((len(q), 1))]) @ p.T
        if np.any(np.abs(uvw[:, 2]) < 1e-9):
            raise AlignmentError("a point projects to infinity (behind or at the source)")
        return uvw[:, :2] / uvw[:, 2:3]

    return project


def _arc(centre: Array, start: Array, end: Array, normal: Array, radius: float) -> Array:
    """3D arc from direction `start` to `end` about `normal` (the frontal-plane normal)."""
    a, b = unit(start), unit(end)
    angle = math.atan2(np.cross(a, b) @ normal, a @ b)
    ts = np.linspace(0.0, angle, 40)
    n = unit(normal)
    return np.array(
        [centre + radius * (a * math.cos(t) + np.cross(n, a) * math.sin(t)) for t in ts]
    )


def _line(ax, project: Projector, a: Array, b: Array, **style) -> None:
    pts = project(np.vstack([a, b]))
    ax.plot(pts[:, 0], pts[:, 1], **style)


def _label(ax, project: Projector, point: Array, text: str, colour: str, dx=0.0, dy=0.0):
    if not getattr(ax, "_alignment_labels", True):
        return
    p = project(point)[0]
    ax.annotate(
        text,
        p,
        xytext=(dx, dy),
        textcoords="offset points",
        color=colour,
        fontsize=9,
        fontweight="bold",
        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "alpha": 0.85},
    )


def _fmt(value: float, key: str, approx: dict[str, str]) -> str:
    return f"{value:.1f}°" + ("*" if key in approx else "")


def draw_annotations(
    ax, project: Projector, result: KneeAnalysis, scale: float = 1.0, labels: bool = True
) -> None:
    """Axes, joint lines, angle arcs with values, CPAK box and the HTO plan."""
    ax._alignment_labels = labels
    lm = result.landmarks
    pts = lm.points
    approx = {**lm.approximate, **result.approximate}
    a = result.angles
    ff, tf = lm.femur_frame, lm.tibia_frame
    knee_f, knee_t = pts["femoral_knee_centre"], pts["tibial_knee_centre"]
    hip, ankle = pts.get("hip_centre"), pts.get("ankle_centre")
    r = 22.0 * scale

    # mechanical axes (dashed when estimated)
    fem_top = hip if hip is not None else knee_f + 120.0 * ff.superior
    tib_bottom = ankle if ankle is not None else knee_t - 120.0 * tf.superior
    _line(
        ax,
        project,
        fem_top,
        knee_f,
        color=COLOURS["femur"],
        lw=2,
        ls="-" if hip is not None else "--",
    )
    _line(
        ax,
        project,
        knee_t,
        tib_bottom,
        color=COLOURS["tibia"],
        lw=2,
        ls="-" if ankle is not None else "--",
    )
    if hip is not None and ankle is not None:
        _line(ax, project, hip, ankle, color=COLOURS["wbl"], lw=1.2, ls=":")
    for p in (hip, ankle):
        if p is not None:
            q = project(p)[0]
            ax.plot(*q, "o", color="black", ms=5)

    # joint lines, extended a little beyond the condyles / plateau
    med_d, lat_d = pts["medial_distal_condyle"], pts["lateral_distal_condyle"]
    ext = 0.25 * (med_d - lat_d)
    _line(ax, project, lat_d - ext, med_d + ext, color=COLOURS["joint"], lw=2)
    med_m, lat_m = pts["medial_plateau_margin"], pts["lateral_plateau_margin"]
    _line(ax, project, lat_m, med_m, color=COLOURS["joint"], lw=2)

    # angle arcs with values
    ldfa_arc = _arc(knee_f, ff.superior, lat_d - med_d, ff.anterior, r)
    q = project(ldfa_arc)
    ax.plot(q[:, 0], q[:, 1], color=COLOURS["femur"], lw=1.5)
    _label(
        ax,
        project,
        ldfa_arc[len(ldfa_arc) // 2],
        "LDFA " + _fmt(a["ldfa"], "ldfa", approx),
        COLOURS["femur"],
        -70,
        8,
    )
    mpta_arc = _arc(knee_t, -tf.superior, med_m - lat_m, tf.anterior, r)
    q = project(mpta_arc)
    ax.plot(q[:, 0], q[:, 1], color=COLOURS["tibia"], lw=1.5)
    _label(
        ax,
        project,
        mpta_arc[len(mpta_arc) // 2],
        "MPTA " + _fmt(a["mpta"], "mpta", approx),
        COLOURS["tibia"],
        8,
        -18,
    )

    plan = result.plan
    if plan is not None:
        target, hinge = np.array(plan.target_point), np.array(plan.hinge_point)
        start = np.array(plan.osteotomy_start)
        ccw_axis = unit(np.cross(tf.medial, tf.superior))
        opened = rotate_about(start, hinge, ccw_axis, -plan.correction_angle_deg)
        wedge = project(np.vstack([hinge, start, opened]))
        ax.add_patch(
            Polygon(wedge, closed=True, fc=COLOURS["hto"], alpha=0.45, ec=COLOURS["hto"], lw=1.5)
        )
        _line(ax, project, start, hinge, color=COLOURS["hto"], lw=1.5)
        for p, marker in ((target, "X"), (hinge, "o")):
            q = project(p)[0]
            ax.plot(
                *q,
                marker,
                color=COLOURS["planned"] if marker == "X" else COLOURS["hto"],
                ms=9,
                mec="black",
            )
        _label(
            ax,
            project,
            target,
            f"target {100 * plan.target_fraction:.1f}%",
            COLOURS["planned"],
            6,
            12,
        )
        _label(ax, project, hinge, "hinge", COLOURS["hto"], -48, -4)
        if hip is not None:
            _line(
                ax,
                project,
                hip,
                np.array(plan.ankle_after),
                color=COLOURS["planned"],
                lw=1.2,
                ls="--",
            )


def _summary_text(result: KneeAnalysis) -> str:
    a = result.angles
    approx = {**result.landmarks.approximate, **result.approximate}
    varus = "varus" if a["mhka"] < 0 else "valgus"
    lines = [
        f"{result.landmarks.side.upper()} knee  ({result.landmarks.fov} field of view)",
        f"mHKA {_fmt(a['mhka'], 'mhka', approx)} ({varus})",
        f"LDFA {_fmt(a['ldfa'], 'ldfa', approx)}   MPTA {_fmt(a['mpta'], 'mpta', approx)}",
        f"aHKA {_fmt(a['ahka'], 'ahka', approx)}   JLO {_fmt(a['jlo'], 'jlo', approx)}",
        f"JLCA {a['jlca']:.1f}°   slope {_fmt(a['slope'], 'slope', approx)}",
        f"CPAK type {a['cpak']}{'*' if 'cpak' in approx else ''}  "
        f"({a['cpak_boundary_distance']:.1f}° from boundary)",
    ]
    plan = result.plan
    if plan is not None:
        lines += [
            "",
            f"HTO (medial opening): {plan.correction_angle_deg:.1f}° Miniaci",
            f"  Dugdale {plan.dugdale_angle_deg:.1f}°, gap {plan.gap_height_mm:.1f} mm",
            f"  over {plan.osteotomy_length_mm:.0f} mm; post MPTA {plan.post['mpta']:.1f}°",
        ]
        for warning in plan.warnings[:4]:
            lines += textwrap.wrap(warning, 46, initial_indent="  ! ", subsequent_indent="    ")
    if approx:
        lines += ["", "* approximate: hip/ankle not in the field of view"]
    lines += [
        "",
        "blue: femoral mechanical axis   red: tibial",
        "green dotted: weight-bearing line (pre-op)",
        "orange dashed: planned line through target",
        "yellow: joint lines   purple: osteotomy wedge",
        "dashed axes = estimated from the shaft",
    ]
    return "\n".join(lines)


def _shaded_mesh(ax, project: Projector, mesh: trimesh.Trimesh, view: Array, colour) -> None:
    tris = np.asarray(mesh.triangles)
    normals = np.asarray(mesh.face_normals)
    facing = normals @ view
    keep = facing > 0
    depth = tris[keep].mean(axis=1) @ view
    order = np.argsort(depth)
    flat = project(tris[keep].reshape(-1, 3)).reshape(-1, 3, 2)[order]
    shade = 0.35 + 0.65 * facing[keep][order]
    rgb = np.asarray(matplotlib.colors.to_rgb(colour))
    colours = np.clip(shade[:, None] * rgb[None, :], 0, 1)
    # edges in the face colour hide the anti-aliasing seams between triangles
    ax.add_collection(PolyCollection(flat, facecolors=colours, edgecolors=colours, linewidths=0.3))


def render_frontal(
    result: KneeAnalysis, meshes: dict[str, trimesh.Trimesh], path: str | os.PathLike[str]
) -> Path:
    """Frontal rendering of the bone models with all annotations (PNG)."""
    frame = result.landmarks.femur_frame
    project = frontal_projector(frame)
    bone_colour = {
        "femur": "#e8dcc8",
        "tibia": "#e8dcc8",
        "fibula": "#d8ccb8",
        "patella": "#f0e6d6",
    }
    full = result.landmarks.fov == "limb"
    fig = plt.figure(figsize=(13, 9), facecolor="white")
    grid = fig.add_gridspec(1, 3, width_ratios=[1.0, 1.6, 1.1] if full else [0.01, 1.8, 1.1])
    panels = []
    if full:
        panels.append((fig.add_subplot(grid[0, 0]), None, 0.8))
    panels.append((fig.add_subplot(grid[0, 1]), 75.0, 1.0))
    for ax, half, scale in panels:
        for name, mesh in meshes.items():
            if name != "patella":  # the patella hides the joint on an AP view
                _shaded_mesh(ax, project, mesh, frame.anterior, bone_colour.get(name, "#ddd"))
        draw_annotations(ax, project, result, scale, labels=half is not None)
        ax.set_aspect("equal")
        ax.set_facecolor("#202020")
        ax.set_xticks([])
        ax.set_yticks([])
        if half is not None:
            centre = project(
                0.5
                * (
                    result.landmarks.points["femoral_knee_centre"]
                    + result.landmarks.points["tibial_knee_centre"]
                )
            )[0]
            ax.set_xlim(centre[0] - half, centre[0] + half)
            ax.set_ylim(centre[1] - 1.15 * half, centre[1] + 0.85 * half)
            ax.set_title("knee close-up (AP view, viewer's left = patient's right)", fontsize=10)
        else:
            ax.autoscale_view()
            ax.set_title("full limb", fontsize=10)
    text_ax = fig.add_subplot(grid[0, 2])
    text_ax.axis("off")
    text_ax.text(0.0, 0.98, _summary_text(result), va="top", family="monospace", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def overlay_ap_image(
    image: Array,
    projection: Array,
    result: KneeAnalysis,
    path: str | os.PathLike[str],
) -> Path:
    """Annotations drawn on a 2D AP image given its 3x4 projection matrix (PNG)."""
    img = np.asarray(image, dtype=float)
    if img.ndim != 2 or min(img.shape) < 8 or not np.isfinite(img).all():
        raise AlignmentError(f"AP image must be a finite 2D array, got shape {img.shape}")
    project = matrix_projector(projection)
    pixel_mm = _pixel_size(project, result)
    knee = project(
        0.5
        * (
            result.landmarks.points["femoral_knee_centre"]
            + result.landmarks.points["tibial_knee_centre"]
        )
    )[0]
    half = 75.0 * pixel_mm  # knee close-up: +-75 mm
    zoom = max(img.shape) > 4 * half
    fig = plt.figure(figsize=(14 if zoom else 12, 9), facecolor="white")
    ratios = [0.8, 1.4, 1.0] if zoom else [1.6, 1.0]
    grid = fig.add_gridspec(1, len(ratios), width_ratios=ratios)
    low, high = np.percentile(img, [1, 99.5])
    views = [(fig.add_subplot(grid[0, 0]), False)]
    if zoom:
        views.append((fig.add_subplot(grid[0, 1]), True))
    else:
        views[0] = (views[0][0], True)
    for ax, close in views:
        ax.imshow(img, cmap="gray", vmin=low, vmax=high, origin="upper")
        draw_annotations(ax, project, result, scale=1.0, labels=close)
        if close and zoom:
            ax.set_xlim(knee[0] - half, knee[0] + half)
            ax.set_ylim(knee[1] + 1.15 * half, knee[1] - 0.85 * half)
            ax.set_title("knee close-up", fontsize=10)
        else:
            ax.set_xlim(0, img.shape[1])
            ax.set_ylim(img.shape[0], 0)
            ax.set_title(f"AP image ({pixel_mm:.2f} px/mm at the knee)", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    text_ax = fig.add_subplot(grid[0, len(ratios) - 1])
    text_ax.axis("off")
    text_ax.text(0.0, 0.98, _summary_text(result), va="top", family="monospace", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _pixel_size(project: Projector, result: KneeAnalysis) -> float:
    knee = result.landmarks.points["femoral_knee_centre"]
    step = project(np.vstack([knee, knee + 10.0 * result.landmarks.femur_frame.medial]))
    return float(np.linalg.norm(step[1] - step[0]) / 10.0)
