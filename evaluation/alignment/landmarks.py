"""Knee landmarks from the four bone meshes (patient mm).

The pipeline alternates between axes and landmarks because each needs the other:
rough up/mediolateral/anterior directions -> hip sphere -> condyle spheres and the
flexion-extension cylinder -> femoral frame -> frontal-plane bitangent of the distal
condyles (femoral knee centre) -> tibial plateau plane and ankle centre -> tibial frame,
each refined twice. Nothing is guessed silently: a landmark that the field of view does not
contain is None with a reason in `missing`, and fallbacks are listed in `approximate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from .errors import AlignmentError, FitError, LandmarkError
from .fitting import (
    Cylinder,
    Plane,
    Sphere,
    fit_line,
    fit_plane,
    fit_revolution_axis,
    fit_sphere,
)
from .frames import Array, Frame, reject, unit

MIN_LIMB_FEMUR_MM = 250.0  # a femur shorter than this along its axis cannot hold the head
HEAD_RADIUS_RANGE = (15.0, 35.0)
HEAD_SEED_MM = 30.0  # head-cap seed: vertices this close to the most proximal point
DISTAL_BAND_MM = 45.0  # condylar region above the distal-most femoral point
FEMORAL_ANATOMIC_MECHANICAL_DEG = 6.0  # alignment.md: anatomical axis ~6 deg valgus
SPINE_CAP_MM = 3.0
MALLEOLUS_MIN_MM = 4.0  # a real plafond has the medial malleolus reaching below it
ANKLE_SECTION_MM = 15.0  # tibial section above the plafond whose centroid is the ankle
# (high enough to clear the medial malleolus, which would pull the centroid medially)


@dataclass
class MeshData:
    """Arrays of one mesh, computed once."""

    name: str
    mesh: trimesh.Trimesh
    vertices: Array
    centres: Array  # face centres
    normals: Array  # outward unit face normals
    areas: Array

    @classmethod
    def of(cls, mesh: trimesh.Trimesh | MeshData, name: str) -> MeshData:
        if isinstance(mesh, MeshData):
            return mesh
        if not isinstance(mesh, trimesh.Trimesh):
            raise AlignmentError(f"{name}: expected a triangle mesh, got {type(mesh).__name__}")
        if len(mesh.faces) < 20:
            raise AlignmentError(f"{name}: mesh has only {len(mesh.faces)} faces")
        vertices = np.asarray(mesh.vertices, dtype=float)
        if not np.isfinite(vertices).all():
            raise AlignmentError(f"{name}: mesh has NaN or infinite vertices")
        extent = float(np.ptp(vertices, axis=0).max())
        if extent < 10.0:
            raise AlignmentError(
                f"{name}: mesh is only {extent:.3g} units across; coordinates must be in mm"
            )
        if mesh.is_watertight and mesh.volume < 0:
            mesh = mesh.copy()
            mesh.invert()
        return cls(
            name,
            mesh,
            vertices,
            np.asarray(mesh.triangles_center),
            np.asarray(mesh.face_normals),
            np.asarray(mesh.area_faces),
        )

    def centroid(self) -> Array:
        return (self.centres * self.areas[:, None]).sum(axis=0) / self.areas.sum()


@dataclass
class KneeLandmarks:
    """Landmarks (patient mm), axes and frames of one knee; None = not measurable."""

    side: str
    side_source: str
    fov: str  # "limb" | "knee" (neither hip nor ankle) | "partial" (one of them)
    points: dict[str, Array | None]
    femur_frame: Frame
    tibia_frame: Frame
    flexion_axis: Cylinder
    plateau: Plane
    missing: dict[str, str] = field(default_factory=dict)
    approximate: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    fit_quality: dict[str, float] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)
    femoral_anatomical_axis: Array | None = None  # knee-only fallback (unit, upwards)

    def point(self, name: str) -> Array:
        value = self.points.get(name)
        if value is None:
            reason = self.missing.get(name, "not computed")
            raise LandmarkError(f"landmark {name} is not available: {reason}")
        return value

    def to_dict(self) -> dict[str, object]:
        return {
            "side": self.side,
            "side_source": self.side_source,
            "fov": self.fov,
            "points_mm": {k: None if v is None else v.tolist() for k, v in self.points.items()},
            "frames": {
                "femur": self.femur_frame.to_dict(),
                "tibia": self.tibia_frame.to_dict(),
                "note": "coronal angles use each bone's frontal plane: superior = mechanical "
                "axis; mediolateral reference = transepicondylar axis (femur) and the femoral "
                "flexion-extension axis (tibia, so flexion about it does not tilt the plane)",
            },
            "flexion_axis": {
                "point": self.flexion_axis.point.tolist(),
                "direction_lateral_to_medial": self.flexion_axis.direction.tolist(),
                "radius_mm": self.flexion_axis.radius,
            },
            "plateau_plane": {
                "point": self.plateau.point.tolist(),
                "normal": self.plateau.normal.tolist(),
            },
            "missing": dict(self.missing),
            "approximate": dict(self.approximate),
            "warnings": list(self.warnings),
            "fit_rms_mm": dict(self.fit_quality),
            "measures": dict(self.extras),
        }


# ---------------------------------------------------------------- generic helpers


def principal_axis(points: Array) -> Array:
    return fit_line(points).direction


def lower_hull(points: Array) -> Array:
    """Indices of the lower convex hull of 2D points (x, y), left to right."""
    from scipy.spatial import ConvexHull

    ring = ConvexHull(points).vertices  # counter-clockwise for 2D input
    start = int(np.argmin(points[ring, 0]))
    ring = np.roll(ring, -start)  # from the leftmost point, ccw runs along the bottom
    stop = int(np.argmax(points[ring, 0]))
    return ring[: stop + 1]


class Slicer:
    """Planar sections of one mesh perpendicular to one direction, at many levels.

    Vertex heights and per-face height ranges are computed once; each level then only
    touches the faces that straddle it (no segment connectivity is needed here)."""

    def __init__(self, mesh: trimesh.Trimesh, normal: Array) -> None:
        self.vertices = np.asarray(mesh.vertices)
        self.faces = np.asarray(mesh.faces)
        self.heights = self.vertices @ np.asarray(normal, float)
        fh = self.heights[self.faces]
        self.low, self.high = fh.min(axis=1), fh.max(axis=1)

    def points(self, level: float) -> Array:
        """Points where mesh edges cross the plane at `level` (the section's vertices)."""
        tri = self.faces[(self.low < level) & (self.high > level)]
        if len(tri) == 0:
            return np.empty((0, 3))
        h = self.heights - level
        points = []
        for a, b in ((0, 1), (1, 2), (2, 0)):
            ha, hb = h[tri[:, a]], h[tri[:, b]]
            cross = (ha < 0) != (hb < 0)
            t = ha[cross] / (ha[cross] - hb[cross])
            va, vb = self.vertices[tri[cross, a]], self.vertices[tri[cross, b]]
            points.append(va + t[:, None] * (vb - va))
        return np.vstack(points)


def section_points(mesh: trimesh.Trimesh, origin: Array, normal: Array) -> Array:
    """Points of the planar section of a mesh through `origin` with `normal`."""
    return Slicer(mesh, normal).points(float(np.asarray(origin, float) @ normal))


def polygon_centroid(points_2d: Array) -> Array:
    """Area centroid of the convex hull of 2D points (density-free, unlike a vertex mean)."""
    from scipy.spatial import ConvexHull

    hull = ConvexHull(points_2d)
    ring = points_2d[hull.vertices]
    x, y = ring[:, 0], ring[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2.0
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6.0 * area)


# ---------------------------------------------------------------- femoral head


def find_hip_centre(femur: MeshData, up: Array) -> tuple[Sphere | None, str]:
    """Sphere fit to the femoral head, iterated on radially-facing faces.

    Returns (sphere, "") or (None, reason) when the field of view holds no head.
    """
    heights = femur.vertices @ up
    length = float(np.ptp(heights))
    if length < MIN_LIMB_FEMUR_MM:
        return None, (
            f"femur mesh spans only {length:.0f} mm along its axis (knee-only field of view; "
            f"a femoral head needs >= {MIN_LIMB_FEMUR_MM:.0f} mm)"
        )
    top = femur.vertices[int(np.argmax(heights))]
    near_top = np.linalg.norm(femur.centres - top, axis=1) < 2.0 * HEAD_RADIUS_RANGE[1] + 10
    centres, normals, areas = (
        femur.centres[near_top],
        femur.normals[near_top],
        femur.areas[near_top],
    )
    seed = centres[np.linalg.norm(centres - top, axis=1) < HEAD_SEED_MM]
    keep = np.zeros(len(centres), dtype=bool)
    try:
        sphere = fit_sphere(seed)
        for _ in range(8):
            radial = centres - sphere.centre
            dist = np.linalg.norm(radial, axis=1)
            facing = np.einsum("ij,ij->i", radial, normals) / np.maximum(dist, 1e-9)
            keep = (np.abs(dist - sphere.radius) < max(1.0, 0.05 * sphere.radius)) & (facing > 0.95)
            previous = sphere
            sphere = fit_sphere(centres[keep])
            if np.linalg.norm(sphere.centre - previous.centre) < 1e-4:
                break
    except FitError as exc:
        return None, f"no spherical femoral head found ({exc})"
    coverage = float(areas[keep].sum() / (4 * np.pi * sphere.radius**2))
    low, high = HEAD_RADIUS_RANGE
    if not low <= sphere.radius <= high or sphere.rms > 0.05 * sphere.radius or coverage < 0.3:
        return None, (
            f"no spherical femoral head found (best sphere r={sphere.radius:.1f} mm, "
            f"rms={sphere.rms:.2f} mm, covers {100 * coverage:.0f}% of a sphere)"
        )
    return sphere, ""


# ---------------------------------------------------------------- distal femur


def distal_band(data: MeshData, up: Array, height: float) -> np.ndarray:
    """Mask of faces within `height` mm above the distal-most point."""
    h = data.centres @ up
    return h < h.min() + height


def mediolateral_guess(femur: MeshData, up: Array) -> Array:
    """Unsigned ML direction: long edges of the lower convex hull bridging the two condyles."""
    from scipy.spatial import ConvexHull

    pts = femur.vertices[femur.vertices @ up < (femur.vertices @ up).min() + 25.0]
    hull = ConvexHull(pts)
    best, best_len = None, 0.0
    for simplex, eq in zip(hull.simplices, hull.equations, strict=True):
        if eq[:3] @ up > -0.8:  # only facets facing down
            continue
        tri = pts[simplex]
        edges = tri - np.roll(tri, 1, axis=0)
        lengths = np.linalg.norm(edges, axis=1)
        i = int(np.argmax(lengths))
        if lengths[i] > best_len:
            best, best_len = edges[i], lengths[i]
    if best is None:
        return unit(reject(principal_axis(pts), up))
    return unit(reject(best, up))


def condyle_sphere(femur: MeshData, mask: np.ndarray) -> Sphere:
    """Sphere of one condyle, iterated on faces whose normal points away from the centre."""
    centres, normals = femur.centres[mask], femur.normals[mask]
    sphere = fit_sphere(centres)
    for _ in range(6):
        radial = centres - sphere.centre
        dist = np.linalg.norm(radial, axis=1)
        facing = np.einsum("ij,ij->i", radial, normals) / np.maximum(dist, 1e-9)
        keep = (np.abs(dist - sphere.radius) < 2.0) & (facing > 0.9)
        if keep.sum() < 30:
            break
        sphere = fit_sphere(centres[keep])
    return sphere


def flexion_axis(
    femur: MeshData, up: Array, medial: Array, anterior: Array
) -> tuple[Cylinder, Sphere, Sphere]:
    """Flexion-extension axis of the posterior condyles, started from two condyle spheres.

    The axis is the line all posterior-condylar normals meet (a generalised cylinder whose
    radius may differ between the condyles); `radius` is the median distance to it.

    Returns the cylinder (direction lateral -> medial) and the medial and lateral spheres.
    """
    band = distal_band(femur, up, DISTAL_BAND_MM)
    posterior_inferior = (femur.normals @ -anterior > 0.3) | (femur.normals @ -up > 0.5)
    ml = femur.centres @ medial
    mid = 0.5 * (ml[band].min() + ml[band].max())
    base = band & posterior_inferior
    med = condyle_sphere(femur, base & (ml > mid + 8.0))
    lat = condyle_sphere(femur, base & (ml < mid - 8.0))
    direction = unit(med.centre - lat.centre)
    # posterior condylar surface: posterior-facing, normal perpendicular to the axis,
    # and within a couple of mm of the sphere-based radius
    # posterior condylar surface, below the condyle centres: above them the condyles blend
    # into the popliteal surface, whose normals do not meet the flexion axis
    centre_height = 0.5 * (med.centre + lat.centre) @ up
    posterior = band & (femur.normals @ -anterior > 0.5) & (np.abs(femur.normals @ direction) < 0.5)
    posterior &= (np.abs(ml - mid) > 8.0) & (femur.normals @ up < -0.05)
    posterior &= femur.centres @ up < centre_height + 2.0
    axis = fit_revolution_axis(
        femur.centres[posterior],
        femur.normals[posterior],
        direction,
        0.5 * (med.centre + lat.centre),
    )
    centres, normals = femur.centres[posterior], femur.normals[posterior]
    keep = np.ones(len(centres), dtype=bool)
    for _ in range(3):
        cross = np.cross(axis.direction, normals)
        gap = np.abs(((centres - axis.point) * cross).sum(axis=1))
        gap /= np.maximum(np.linalg.norm(cross, axis=1), 1e-9)
        keep = gap < 1.5
        if keep.sum() < 50:
            break
        axis = fit_revolution_axis(centres[keep], normals[keep], axis.direction, axis.point)
    radial = np.linalg.norm(reject_rows(centres[keep] - axis.point, axis.direction), axis=1)
    radius = float(np.median(radial))
    cylinder = Cylinder(axis.point, axis.direction, radius, float(np.std(radial)))
    if cylinder.direction @ medial < 0:
        cylinder = Cylinder(cylinder.point, -cylinder.direction, cylinder.radius, cylinder.rms)
    return cylinder, med, lat


def reject_rows(vectors: Array, axis: Array) -> Array:
    return vectors - np.outer(vectors @ axis, axis)


def distal_bitangent(femur: MeshData, frame: Frame, split: float) -> tuple[Array, Array]:
    """3D points where the lower supporting line of the frontal projection touches the
    medial and lateral condyles (the distal femoral joint line).

    `split` is the frontal medial coordinate of the intercondylar notch.
    """
    v = femur.vertices
    sel = v[(v - frame.origin) @ frame.superior < ((v - frame.origin) @ frame.superior).min() + 30]
    flat = frame.frontal(sel)
    hull = lower_hull(flat)
    for a, b in zip(hull[:-1], hull[1:], strict=True):
        if flat[a, 0] <= split <= flat[b, 0]:
            lateral, medial = sel[a], sel[b]  # medial coordinate grows to the right
            return medial, lateral
    raise LandmarkError("femur: no distal bitangent spans both condyles")


# ---------------------------------------------------------------- tibia


def plateau_plane(tibia: MeshData, up: Array) -> tuple[Plane, np.ndarray]:
    """Robust plane through the up-facing plateau faces (spines and rim rejected)."""
    h = tibia.centres @ up
    mask = (h > h.max() - 25.0) & (tibia.normals @ up > 0.8)
    if mask.sum() < 30:
        raise LandmarkError("tibia: no up-facing plateau surface found")
    plane = fit_plane(tibia.centres[mask], tibia.areas[mask])
    normal = plane.normal if plane.normal @ up > 0 else -plane.normal
    keep = mask
    for tolerance in (3.0, 1.5, 0.8, 0.8):
        dist = (tibia.centres - plane.point) @ normal
        keep = mask & (np.abs(dist) < tolerance) & (tibia.normals @ normal > np.cos(np.radians(12)))
        if keep.sum() < 30:
            break
        plane = fit_plane(tibia.centres[keep], tibia.areas[keep])
        normal = plane.normal if plane.normal @ normal > 0 else -plane.normal
    return Plane(plane.point, normal, plane.rms), keep


def tibial_centre(tibia: MeshData, plane: Plane, frame: Frame, inliers: np.ndarray) -> Array:
    """Plateau centre: middle of the plateau's mediolateral and anteroposterior extents,
    on the plateau plane. The AP extent is taken on a section perpendicular to the axis just
    below the plateau, so the posterior slope does not shift it."""
    c = frame.coords(tibia.centres[inliers])
    ml_mid = 0.5 * (c[:, 0].min() + c[:, 0].max())
    low = float(c[:, 2].min()) - 2.0
    section = section_points(tibia.mesh, frame.to_world(0, 0, low), frame.superior)
    if len(section) < 10:
        raise LandmarkError("tibia: no section below the plateau")
    s = frame.coords(section)
    near = np.abs(s[:, 0] - ml_mid) < 10.0
    ap = s[near, 1] if near.sum() >= 2 else s[:, 1]
    ap_mid = 0.5 * (ap.min() + ap.max())
    guess = frame.to_world(ml_mid, ap_mid, 0.0)
    spines = spine_tips(tibia, plane, frame, ml_mid, float(c[:, 0].max() - c[:, 0].min()))
    if spines is not None:
        guess = 0.5 * (spines[0] + spines[1])
    # drop the point along the axis onto the plateau plane
    t = ((plane.point - guess) @ plane.normal) / (frame.superior @ plane.normal)
    return guess + t * frame.superior


def spine_tips(
    tibia: MeshData, plane: Plane, frame: Frame, ml_mid: float, width: float
) -> tuple[Array, Array] | None:
    """Apices of the medial and lateral intercondylar tubercles.

    Each apex is the area centroid of the tubercle's cap (faces within SPINE_CAP_MM below
    its highest point along the tibial axis), which is far less sensitive to the mesh
    resolution than the single highest vertex."""
    c = frame.coords(tibia.centres)
    above = (tibia.centres - plane.point) @ plane.normal > 2.0
    central = above & (np.abs(c[:, 0] - ml_mid) < 0.2 * width)
    tips = []
    for side_mask in (c[:, 0] > ml_mid, c[:, 0] < ml_mid):
        sel = central & side_mask
        if sel.sum() < 5:
            return None
        top = float(c[sel, 2].max())
        cap = sel & (c[:, 2] > top - SPINE_CAP_MM)
        centre = (tibia.centres[cap] * tibia.areas[cap, None]).sum(axis=0) / tibia.areas[cap].sum()
        tips.append(centre + (top - float(frame.coords(centre)[0, 2])) * frame.superior)
    return tips[0], tips[1]


def ankle_centre(tibia: MeshData, up: Array, medial: Array) -> tuple[Array, float]:
    """Centre of the tibial plafond: centroid of the distal section ANKLE_SECTION_MM above
    the plafond (below the medial malleolus's widest part), dropped onto the plafond level."""
    h = tibia.centres @ up
    down = (tibia.normals @ -up > 0.95) & (h < h.min() + 25.0)
    if down.sum() < 10:
        raise LandmarkError("tibia: no distal articular surface (plafond) found")
    bins = np.arange(h[down].min(), h[down].max() + 1.0, 0.5)
    if len(bins) < 2:
        level = float(np.median(h[down]))
    else:
        hist, edges = np.histogram(h[down], bins=bins, weights=tibia.areas[down])
        i = int(np.argmax(hist))
        near = down & (h >= edges[i] - 0.5) & (h <= edges[i + 1] + 0.5)
        level = float(np.average(h[near], weights=tibia.areas[near]))
    if level - float(h.min()) < MALLEOLUS_MIN_MM:
        raise LandmarkError(
            "distal tibia ends in a flat cut with no medial malleolus below it "
            "(cropped field of view; no plafond)"
        )
    anterior = np.cross(up, medial)
    origin = up * (level + ANKLE_SECTION_MM)
    section = section_points(tibia.mesh, origin, up)
    if len(section) < 10:
        raise LandmarkError("tibia: no section above the plafond")
    centroid = polygon_centroid(np.column_stack([section @ medial, section @ anterior]))
    return centroid[0] * medial + centroid[1] * anterior + level * up, level


def shaft_axis(data: MeshData, up: Array, low: float, high: float, step: float = 8.0) -> Array:
    """Anatomical axis: line through centroids of sections between heights low..high
    (measured along `up` from the origin). Returns a unit direction pointing up."""
    medial = unit(reject(np.array([1.0, 0.0, 0.0]), up))
    if np.linalg.norm(reject(np.array([1.0, 0.0, 0.0]), up)) < 0.3:
        medial = unit(reject(np.array([0.0, 1.0, 0.0]), up))
    anterior = np.cross(up, medial)
    centres = []
    slicer = Slicer(data.mesh, up)
    for height in np.arange(low, high + 1e-9, step):
        section = slicer.points(height)
        if len(section) < 10:
            continue
        c = polygon_centroid(np.column_stack([section @ medial, section @ anterior]))
        centres.append(c[0] * medial + c[1] * anterior + height * up)
    if len(centres) < 3:
        raise LandmarkError(f"{data.name}: too little shaft for an anatomical axis")
    direction = principal_axis(np.asarray(centres))
    return direction if direction @ up > 0 else -direction


# ---------------------------------------------------------------- orchestration


def _load(mesh: trimesh.Trimesh | MeshData | None, name: str) -> MeshData | None:
    return None if mesh is None else MeshData.of(mesh, name)


def _oriented(direction: Array, reference: Array) -> Array:
    return direction if direction @ reference >= 0 else -direction


def _anterior_hint(fem: MeshData, pat: MeshData | None, up: Array) -> tuple[Array, str]:
    """Anterior direction cue: the patella, else the trochlea/metaphysis, which sit in front
    of the distal condylar contact region."""
    h = fem.centres @ up
    distal = fem.centres[h < h.min() + 12.0].mean(axis=0)
    if pat is not None:
        return reject(pat.centroid() - distal, up), "patella"
    upper = fem.centres[(h > h.min() + 25.0) & (h < h.min() + 60.0)]
    return reject(upper.mean(axis=0) - distal, up), "trochlea"


def _medial_sign(
    ml: Array,
    up: Array,
    anterior: Array,
    side: str | None,
    fem: MeshData,
    tib: MeshData,
    fib: MeshData | None,
    hip: Array | None,
    warnings: list[str],
) -> tuple[Array, str, str]:
    """Orient the mediolateral axis medially and decide the side; returns (medial, side, how)."""
    cues: list[tuple[str, Array]] = []
    if fib is not None:  # the fibula is lateral
        cues.append(("fibula", -_oriented(ml, fib.centroid() - tib.centroid())))
    if hip is not None:  # the head is medial to the trochanter/upper shaft
        h = fem.vertices @ up
        upper = fem.vertices[h > h.min() + 0.7 * np.ptp(h)].mean(axis=0)
        cues.append(("femoral head", _oriented(ml, hip - upper)))
    lateral_if_right = np.cross(anterior, up)
    if side is not None:
        if side not in ("left", "right"):
            raise AlignmentError(f"side must be 'left' or 'right', got {side!r}")
        medial = _oriented(ml, -lateral_if_right if side == "right" else lateral_if_right)
        for name, cue in cues:
            if cue @ medial < 0:
                warnings.append(f"given side '{side}' disagrees with the {name} position")
        return medial, side, "given"
    if not cues:
        raise LandmarkError("cannot tell medial from lateral: give the side or the fibula")
    name, medial = cues[0]
    for other, cue in cues[1:]:
        if cue @ medial < 0:
            warnings.append(f"side cues disagree ({name} vs {other}); used the {name}")
    detected = "right" if medial @ lateral_if_right < 0 else "left"
    return medial, detected, f"detected from the {name}"


def stable_shaft_axis(data: MeshData, up: Array, low: float, high: float) -> Array:
    """Shaft axis from sections perpendicular to `up`, re-sliced once perpendicular to the
    result; the re-slice is kept only if it moved less than 5 deg (short shafts can drift)."""
    first = shaft_axis(data, up, low, high, step=3.0)
    try:
        second = shaft_axis(data, first, low, high, step=3.0)
    except LandmarkError:
        return first
    return second if np.degrees(np.arccos(np.clip(first @ second, -1, 1))) < 5.0 else first


def _approximate_femoral_axis(
    fem: MeshData, up: Array, medial: Array, knee: Array
) -> tuple[Array, Array]:
    """Knee-only FOV: femoral anatomical axis from the available shaft and the mechanical
    axis estimate (anatomical axis turned FEMORAL_ANATOMIC_MECHANICAL_DEG medially at the top).

    Sections start above the condyles and trochlea (35 mm above the knee centre)."""
    h = fem.vertices @ up
    base = float(knee @ up)
    top = float(h.max()) - 3.0
    low = base + min(35.0, max(15.0, 0.45 * (top - base)))
    anatomical = stable_shaft_axis(fem, up, low, top)
    med = unit(reject(medial, anatomical))
    angle = np.radians(FEMORAL_ANATOMIC_MECHANICAL_DEG)
    mechanical = np.cos(angle) * anatomical + np.sin(angle) * med
    return anatomical, mechanical


@dataclass
class _Notes:
    """What a detection step could not measure, estimated, or wants to tell the reader."""

    missing: dict[str, str] = field(default_factory=dict)
    approximate: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)


@dataclass
class _Orientation:
    up: Array  # rough femoral superior direction
    anterior: Array
    medial: Array
    side: str
    side_source: str


@dataclass
class _Femur:
    frame: Frame
    cylinder: Cylinder
    med_sphere: Sphere
    lat_sphere: Sphere
    distal: tuple[Array, Array]  # medial, lateral distal condylar points
    epicondyles: tuple[Array, Array]  # medial, lateral
    posterior: tuple[Array, Array]  # medial, lateral posterior condylar points
    anatomical_axis: Array | None


@dataclass
class _Tibia:
    frame: Frame
    plane: Plane
    ankle: Array | None
    margins: tuple[Array, Array]  # medial, lateral
    width: float


def _orientation(
    fem: MeshData,
    tib: MeshData,
    fib: MeshData | None,
    pat: MeshData | None,
    hip: Array | None,
    fem_axis: Array,
    side: str | None,
    notes: _Notes,
) -> _Orientation:
    """Rough superior, anterior and medial directions of the distal femur, and the side."""
    if hip is not None:
        distal = fem.centres[distal_band(fem, fem_axis, 35.0)].mean(axis=0)
        up = unit(hip - distal)
    else:
        up = fem_axis if np.ptp(fem.vertices @ fem_axis) > MIN_LIMB_FEMUR_MM else None
        up = unit(fem.centroid() - tib.centroid()) if up is None else up
    ml = mediolateral_guess(fem, up)
    ant_hint, _ = _anterior_hint(fem, pat, up)
    anterior = _oriented(unit(np.cross(up, ml)), ant_hint)
    medial, side_value, side_source = _medial_sign(
        ml, up, anterior, side, fem, tib, fib, hip, notes.warnings
    )
    return _Orientation(up, anterior, medial, side_value, side_source)


def _femoral_landmarks(
    fem: MeshData, hip: Array | None, orient: _Orientation, notes: _Notes
) -> _Femur:
    """Flexion axis, distal bitangent (knee centre), epicondyles and the femoral frame."""
    up, anterior, side = orient.up, orient.anterior, orient.side
    cylinder, med_sphere, lat_sphere = flexion_axis(fem, up, orient.medial, anterior)
    notes.quality["flexion_cylinder"] = cylinder.rms
    k = cylinder.direction
    notch = 0.5 * (med_sphere.centre + lat_sphere.centre)

    anatomical = None
    knee = cylinder.point
    slicing_up = up
    for _ in range(3):
        frame = Frame.from_axes(knee, up, k, anterior, side)
        med_d, lat_d = distal_bitangent(fem, frame, float(frame.frontal(notch)[0, 0]))
        knee = 0.5 * (med_d + lat_d)
        if hip is not None:
            up = unit(hip - knee)
        else:  # slice along the first estimate each time, so the estimate cannot drift
            anatomical, up = _approximate_femoral_axis(fem, slicing_up, k, knee)
    if hip is None:
        notes.approximate["femoral_knee_centre"] = (
            "distal condylar contact points depend on the estimated (not measured) femoral axis"
        )
        notes.approximate["femoral_mechanical_axis"] = (
            f"no hip centre: femoral anatomical axis from the available shaft, turned "
            f"{FEMORAL_ANATOMIC_MECHANICAL_DEG:g} deg (typical anatomic-mechanical angle)"
        )

    # epicondyles: the mediolateral extremes along the flexion axis, near that axis; this
    # needs no mechanical axis, so it is as good in a knee-only field of view
    near_axis = np.linalg.norm(reject_rows(fem.vertices - cylinder.point, k), axis=1)
    near = fem.vertices[near_axis < 1.6 * cylinder.radius]
    epi_med, epi_lat = near[int(np.argmax(near @ k))], near[int(np.argmin(near @ k))]
    # final femoral frame (transepicondylar reference) and its distal bitangent
    frame = Frame.from_axes(knee, up, epi_med - epi_lat, anterior, side)
    med_d, lat_d = distal_bitangent(fem, frame, float(frame.frontal(notch)[0, 0]))
    frame = Frame.from_axes(0.5 * (med_d + lat_d), up, epi_med - epi_lat, anterior, side)

    c = frame.coords(fem.vertices)
    low = (c[:, 2] < 2.0 * cylinder.radius) & (c[:, 2] > -5.0)
    split = float(frame.coords(notch)[0, 0])
    med_half, lat_half = low & (c[:, 0] > split), low & (c[:, 0] < split)
    post_med = fem.vertices[med_half][int(np.argmin(c[med_half, 1]))]
    post_lat = fem.vertices[lat_half][int(np.argmin(c[lat_half, 1]))]
    return _Femur(
        frame,
        cylinder,
        med_sphere,
        lat_sphere,
        (med_d, lat_d),
        (epi_med, epi_lat),
        (post_med, post_lat),
        anatomical,
    )


def _find_ankle(tib: MeshData, up: Array, k: Array, notes: _Notes) -> Array | None:
    length = float(np.ptp(tib.vertices @ up))
    if length < MIN_LIMB_FEMUR_MM * 0.8:
        notes.missing["ankle_centre"] = (
            f"tibia mesh spans only {length:.0f} mm (knee-only field of view; no plafond)"
        )
        return None
    try:
        return ankle_centre(tib, up, unit(reject(k, up)))[0]
    except LandmarkError as exc:
        notes.missing["ankle_centre"] = str(exc)
        return None


def _tibial_shaft(tib: MeshData, up: Array, knee: Array, notes: _Notes) -> Array:
    """Knee-only: sections from the distal cut up to just below the plateau flare, sliced
    along the femoral axis once (re-estimating in a loop lets a short shaft drift)."""
    low = float((tib.vertices @ up).min()) + 3.0
    high = max(low + 12.0, float(knee @ up) - 20.0)
    try:
        return stable_shaft_axis(tib, up, low, high)
    except LandmarkError:
        notes.warnings.append("tibial shaft too short for an axis: used the femoral axis")
        return up


def _plateau_margins(
    tib: MeshData, plane: Plane, knee: Array, frame: Frame
) -> tuple[Array, Array, float]:
    """Medial and lateral plateau margins on the tibial joint line (the plateau plane within
    the frontal plane), from the bone outline 2 mm under the plateau plane."""
    line = _oriented(unit(np.cross(plane.normal, frame.anterior)), frame.medial)
    rim = section_points(tib.mesh, plane.point - 2.0 * plane.normal, plane.normal)
    s = (rim - knee) @ line
    near_line = np.abs((rim - knee) @ frame.anterior) < 12.0
    s = s[near_line] if near_line.sum() >= 4 else s
    return knee + s.max() * line, knee + s.min() * line, float(s.max() - s.min())


def _tibial_landmarks(tib: MeshData, femur: _Femur, hip: Array | None, notes: _Notes) -> _Tibia:
    """Ankle centre, plateau plane, tibial knee centre and the tibial frame (refined)."""
    k, anterior, side = femur.cylinder.direction, femur.frame.anterior, femur.frame.side
    up_f = femur.frame.superior
    up = up_f if hip is None else _oriented(principal_axis(tib.vertices), up_f)
    ankle = _find_ankle(tib, up, k, notes)
    knee, shaft = None, None
    for _ in range(3):
        plane, inliers = plateau_plane(tib, up)
        frame = Frame.from_axes(knee if knee is not None else plane.point, up, k, anterior, side)
        knee = tibial_centre(tib, plane, frame, inliers)
        if ankle is not None:
            up = unit(knee - ankle)
            ankle = ankle_centre(tib, up, unit(reject(k, up)))[0]
            up = unit(knee - ankle)
        elif shaft is None:
            shaft = up = _tibial_shaft(tib, up_f, knee, notes)
    if ankle is None:
        notes.approximate["tibial_mechanical_axis"] = (
            "no ankle centre: tibial anatomical (shaft) axis from the available shaft"
        )
    notes.quality["plateau_plane"] = plane.rms
    frame = Frame.from_axes(knee, up, k, anterior, side)
    medial, lateral, width = _plateau_margins(tib, plane, knee, frame)
    return _Tibia(frame, plane, ankle, (medial, lateral), width)


def _condylar_twist(femur: _Femur) -> float:
    """Transverse-plane angle (deg) from the posterior condylar to the transepicondylar axis."""
    fr = femur.frame
    tea = femur.epicondyles[0] - femur.epicondyles[1]
    pca = femur.posterior[0] - femur.posterior[1]
    a = np.array([tea @ fr.medial, tea @ fr.anterior])
    b = np.array([pca @ fr.medial, pca @ fr.anterior])
    return float(np.degrees(np.arctan2(b[0] * a[1] - b[1] * a[0], b @ a)))


def detect_landmarks(
    femur: trimesh.Trimesh | MeshData,
    tibia: trimesh.Trimesh | MeshData,
    fibula: trimesh.Trimesh | MeshData | None = None,
    patella: trimesh.Trimesh | MeshData | None = None,
    side: str | None = None,
) -> KneeLandmarks:
    """All landmarks of one knee from its bone meshes (patient mm)."""
    fem, tib = MeshData.of(femur, "femur"), MeshData.of(tibia, "tibia")
    fib, pat = _load(fibula, "fibula"), _load(patella, "patella")
    notes = _Notes()

    fem_axis = _oriented(principal_axis(fem.vertices), unit(fem.centroid() - tib.centroid()))
    head, reason = find_hip_centre(fem, fem_axis)
    hip = None if head is None else head.centre
    if head is None:
        notes.missing["hip_centre"] = reason
    else:
        notes.quality["hip_sphere"] = head.rms
    orient = _orientation(fem, tib, fib, pat, hip, fem_axis, side, notes)
    f = _femoral_landmarks(fem, hip, orient, notes)
    t = _tibial_landmarks(tib, f, hip, notes)

    points: dict[str, Array | None] = {
        "hip_centre": hip,
        "femoral_knee_centre": f.frame.origin,
        "tibial_knee_centre": t.frame.origin,
        "ankle_centre": t.ankle,
        "medial_epicondyle": f.epicondyles[0],
        "lateral_epicondyle": f.epicondyles[1],
        "medial_posterior_condyle": f.posterior[0],
        "lateral_posterior_condyle": f.posterior[1],
        "medial_distal_condyle": f.distal[0],
        "lateral_distal_condyle": f.distal[1],
        "medial_condyle_centre": f.med_sphere.centre,
        "lateral_condyle_centre": f.lat_sphere.centre,
        "medial_plateau_margin": t.margins[0],
        "lateral_plateau_margin": t.margins[1],
        "patella_centre": None,
    }
    extras: dict[str, float] = {
        "condylar_twist_deg": _condylar_twist(f),
        "plateau_width_mm": t.width,
        "flexion_axis_radius_mm": f.cylinder.radius,
    }
    if head is not None:
        extras["femoral_head_diameter_mm"] = 2 * head.radius
    if pat is not None:
        points["patella_centre"] = (
            pat.mesh.center_mass if pat.mesh.is_watertight else pat.centroid()
        )
        extras["patella_tilt_deg"] = patella_tilt(pat, f.frame, *f.posterior)
    else:
        notes.missing["patella_centre"] = "no patella mesh given"
    if hip is not None and t.ankle is not None:
        fov = "limb"
    else:
        fov = "knee" if hip is None and t.ankle is None else "partial"
    return KneeLandmarks(
        side=orient.side,
        side_source=orient.side_source,
        fov=fov,
        points=points,
        femur_frame=f.frame,
        tibia_frame=t.frame,
        flexion_axis=f.cylinder,
        plateau=t.plane,
        missing=notes.missing,
        approximate=notes.approximate,
        warnings=notes.warnings,
        fit_quality=notes.quality,
        extras=extras,
        femoral_anatomical_axis=f.anatomical_axis,
    )


def patella_tilt(pat: MeshData, frame: Frame, post_med: Array, post_lat: Array) -> float:
    """Lateral patellar tilt (deg): angle in the transverse plane between the patella's
    widest axis and the posterior condylar axis; positive = lateral edge tilted posteriorly."""
    centred = pat.vertices - pat.vertices.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    width_axis = _oriented(vt[0], frame.medial)  # lateral -> medial
    pca = post_med - post_lat
    a = np.array([width_axis @ frame.medial, width_axis @ frame.anterior])
    b = np.array([pca @ frame.medial, pca @ frame.anterior])
    # lateral edge posterior <=> medial end anterior relative to the condylar line
    return float(np.degrees(np.arctan2(b[0] * a[1] - b[1] * a[0], b @ a)))
