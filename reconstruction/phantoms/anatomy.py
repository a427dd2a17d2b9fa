"""Implicit (SDF) lower-limb anatomy whose alignment is exact by construction.

Frames (all right-handed, mm). Every bone is built for a RIGHT limb in LPS-like axes:
x = medial (patient left for a right leg), y = posterior, z = superior.

* femur frame: origin = femoral knee centre (midpoint of the two distal condylar contact
  points, i.e. the notch midpoint on the distal joint line), z = mechanical axis towards the
  hip centre at (0, 0, femur_length). The condyles are built in a "joint-line frame" whose x
  axis is the distal bitangent; it is rotated in the frontal (x-z) plane by LDFA - 90.
* tibia frame: origin = tibial knee centre (plateau centre on the plateau plane), z =
  mechanical axis from the ankle centre (plafond centre, (0, 0, -tibia_length)). The plateau
  plane contains the frontal line rotated by MPTA - 90 and slopes posteriorly by the slope.
* limb frame = femur frame. The tibia is rotated in the frontal plane by psi = JLCA - aHKA
  about its knee centre, placed `JOINT_GAP` below the femoral knee centre (so mHKA = aHKA -
  JLCA exactly), then flexed about the condylar axis. The patella follows 60 % of flexion.
* patient frame = mirror_x (left limbs) @ rotation about z (external rotation) @ limb frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reconstruction.phantoms.params import KneeParams, cpak_type
from reconstruction.phantoms.sdf import (
    Array,
    Ellipsoid,
    HalfSpace,
    Intersect,
    Offset,
    RoundCone,
    Shape,
    Sphere,
    Subtract,
    Transformed,
    Tube,
    Union,
    apply,
    rigid,
    rotation_about_axis,
    rotation_about_point,
)

BONE_LABELS: dict[str, int] = {"femur": 1, "tibia": 2, "fibula": 3, "patella": 4}
JOINT_GAP = 5.0  # femoral-tibial bone gap at the knee centre (two cartilage layers)
FIBULA_GAP = 1.5  # proximal/distal tibio-fibular joint space
PATELLA_GAP = 4.0  # patello-femoral cartilage
PATELLA_FLEXION_RATIO = 0.6
# intercondylar notch ellipsoid, joint-line frame, in bicondylar widths (phantoms.femur too)
NOTCH_CENTRE_B = (0.0, 0.2, 0.05)
NOTCH_RADII_B = (0.13, 0.42, 0.32)


def rot_xz(angle_deg: float) -> Array:
    """Rotation in the frontal plane taking +x towards +z by `angle_deg`."""
    return rotation_about_axis((0.0, -1.0, 0.0), angle_deg)


@dataclass
class CortexProfile:
    """Cortical thickness along the local z axis: thin at the ends, thick in the diaphysis."""

    epiphysis: float
    diaphysis: float
    z_low: float
    z_high: float
    ramp: float = 40.0

    def __call__(self, z: Array) -> Array:
        rise = np.clip((z - self.z_low) / self.ramp, 0.0, 1.0)
        fall = np.clip((self.z_high - z) / self.ramp, 0.0, 1.0)
        w = np.minimum(rise, fall)
        w = w * w * (3 - 2 * w)  # smoothstep
        return self.epiphysis + (self.diaphysis - self.epiphysis) * w


@dataclass
class Bone:
    name: str
    label: int
    local_shape: Shape
    patient_from_local: Array
    cortex: CortexProfile
    canal: Shape | None = None  # local frame, medullary (fatty marrow) cavity
    local_bounds: tuple[Array, Array] | None = None

    def __post_init__(self) -> None:
        self.shape = Transformed(self.local_shape, self.patient_from_local)
        self.canal_shape = (
            Transformed(self.canal, self.patient_from_local) if self.canal is not None else None
        )
        self._local_from_patient = np.linalg.inv(self.patient_from_local)

    def sdf(self, points: Array) -> Array:
        return self.shape(points)

    def local(self, points: Array) -> Array:
        return apply(self._local_from_patient, points)

    def cortical_thickness(self, points: Array) -> Array:
        return self.cortex(self.local(points)[:, 2])

    def canal_sdf(self, points: Array) -> Array:
        if self.canal is None:
            return np.full(len(points), 1e3, dtype=float)
        return self.canal(self.local(points))

    def patient_bounds(self, margin: float = 2.0) -> tuple[Array, Array]:
        lo, hi = self.local_bounds
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        pts = apply(self.patient_from_local, corners)
        return pts.min(axis=0) - margin, pts.max(axis=0) + margin


@dataclass
class KneeAnatomy:
    params: KneeParams
    bones: dict[str, Bone]
    body: Shape  # patient frame: skin surface
    landmarks: dict[str, Array]  # patient mm
    angles: dict[str, float | str]
    transforms: dict[str, Array]  # name -> 4x4
    extras: dict[str, object] = field(default_factory=dict)
    # patient frame: fat inside the muscle (phantoms.soft_tissue); None = uniform muscle
    fat_regions: Shape | None = None


# ---------------------------------------------------------------- femur


@dataclass
class FemurGeometry:
    shape: Shape
    joint_from_femur: Array  # rotation of the condylar block (3x3)
    landmarks: dict[str, Array]
    canal: Shape
    cortex: CortexProfile
    bounds: tuple[Array, Array]
    neck_shaft_angle: float
    anatomical_axis: Array


def _neck_junction(
    params: KneeParams, distal_shaft: Array, neck_length: float
) -> tuple[Array, Array, Array]:
    """Solve for the neck-shaft junction J so that the head centre sits at (0, 0, femur_length).

    Neck direction n makes (180 - neck_shaft_angle) with the shaft axis u = J - D and is
    rotated anteriorly by the anteversion; fixed-point iteration converges in a few steps.
    """
    hip = np.array([0.0, 0.0, params.femur_length])
    beta = np.radians(180.0 - params.neck_shaft_angle)
    av = np.radians(params.femoral_anteversion)
    junction = hip - neck_length * np.array([np.sin(beta), 0.0, np.cos(beta)])
    for _ in range(50):
        u = junction - distal_shaft
        u /= np.linalg.norm(u)
        medial = np.array([1.0, 0.0, 0.0]) - u[0] * u
        medial /= np.linalg.norm(medial)
        anterior = np.cross(u, medial)  # u x medial = -y for a vertical shaft
        if anterior[1] > 0:
            anterior = -anterior
        n = np.cos(beta) * u + np.sin(beta) * (np.cos(av) * medial + np.sin(av) * anterior)
        new_junction = hip - neck_length * n
        if np.linalg.norm(new_junction - junction) < 1e-10:
            break
        junction = new_junction
    return junction, u, n


def distal_condyles(p: KneeParams, exponent: float = 2.0) -> Union:
    """The two distal-posterior condyles (joint-line frame). `exponent` > 2 makes them
    superellipsoids with the same extreme points: broader distal and posterior faces
    (phantoms.femur.vary_condyles)."""
    b = p.bicondylar_width
    radius = 0.27 * b  # sagittal radius of the distal-posterior condyles
    half_width = 0.155 * b
    xc = 0.285 * b
    radii = (half_width, radius, radius)
    condyles = Union()
    condyles.add(Ellipsoid((xc, 0.0, radius), radii, exponent=exponent))
    condyles.add(Ellipsoid((-xc, 0.0, radius), radii, exponent=exponent), 3.0)
    return condyles


def femur_joint_pose(p: KneeParams) -> Array:
    """Joint-line frame -> femur frame (4x4)."""
    return rigid(rot_xz(p.ldfa - 90.0))


def femur_notch(p: KneeParams) -> Shape:
    """The intercondylar notch (femur frame)."""
    b = p.bicondylar_width
    return Transformed(
        Ellipsoid(np.multiply(NOTCH_CENTRE_B, b), np.multiply(NOTCH_RADII_B, b)),
        femur_joint_pose(p),
    )


def build_femur(p: KneeParams, condylar_offset_mm: float = 0.0) -> FemurGeometry:
    """The femur; `condylar_offset_mm` > 0 moves the distal shaft and the metaphysis's
    posterior face that much forward of the condyles (phantoms.femur.build_offset_anatomy)."""
    b = p.bicondylar_width
    radius = 0.27 * b  # sagittal radius of the distal-posterior condyles
    xc = 0.285 * b
    joint_rot = rot_xz(p.ldfa - 90.0)  # joint-line frame -> femur frame

    condyles = distal_condyles(p)
    condyles.add(
        Ellipsoid((0.20 * b, -0.30 * b, radius + 0.20 * b), (0.17 * b, 0.22 * b, 0.30 * b)), 6.0
    )
    condyles.add(
        Ellipsoid((-0.20 * b, -0.31 * b, radius + 0.22 * b), (0.17 * b, 0.23 * b, 0.30 * b)), 6.0
    )
    epi_med = (0.50 * b - 0.08 * b, 0.0, radius + 0.06 * b)
    epi_lat = (-0.50 * b + 0.07 * b, 0.0, radius + 0.08 * b)
    condyles.add(Ellipsoid(epi_med, (0.08 * b, 0.15 * b, 0.15 * b)), 3.0)
    condyles.add(Ellipsoid(epi_lat, (0.07 * b, 0.14 * b, 0.14 * b)), 3.0)
    joint_pose = femur_joint_pose(p)
    notch = femur_notch(p)

    head_r = p.head_diameter / 2.0
    neck_length = 1.1 * p.head_diameter
    distal_shaft = np.array([0.0, -0.08 * b - condylar_offset_mm, radius + 0.75 * b])
    junction, u, n = _neck_junction(p, distal_shaft, neck_length)
    hip = np.array([0.0, 0.0, p.femur_length])

    ts = np.linspace(0.0, 1.0, 9)
    anterior = np.array([0.0, -1.0, 0.0])
    anterior -= (anterior @ u) * u
    anterior /= np.linalg.norm(anterior)
    bow = 0.02 * np.linalg.norm(junction - distal_shaft)
    shaft_pts = (
        distal_shaft
        + ts[:, None] * (junction - distal_shaft)
        + (bow * 4 * ts * (1 - ts))[:, None] * anterior
    )
    shaft_r = np.interp(
        ts, [0.0, 0.15, 0.5, 0.85, 1.0], [0.21 * b, 0.175 * b, 0.165 * b, 0.18 * b, 0.20 * b]
    )

    medial = np.cross(u, anterior)  # u x (-y) = +x for a vertical shaft
    posterior = -anterior
    troch_rot = np.stack([medial, posterior, u], axis=1)
    greater = Ellipsoid(
        junction
        + 0.15 * neck_length * u
        - 0.55 * p.head_diameter * medial
        + 0.1 * p.head_diameter * posterior,
        (0.32 * p.head_diameter, 0.42 * p.head_diameter, 0.55 * p.head_diameter),
        troch_rot,
    )
    lesser = Ellipsoid(
        junction
        - 0.6 * p.head_diameter * u
        + 0.3 * p.head_diameter * medial
        + 0.25 * p.head_diameter * posterior,
        (0.17 * p.head_diameter, 0.17 * p.head_diameter, 0.22 * p.head_diameter),
        troch_rot,
    )

    femur = Union()
    femur.add(Transformed(condyles, joint_pose))
    # the metaphysis: its front face stays, its back face moves forward by the offset
    half_offset = 0.5 * condylar_offset_mm
    metaphysis_centre = (0.0, -0.06 * b - half_offset, radius + 0.42 * b)
    femur.add(Ellipsoid(metaphysis_centre, (0.37 * b, 0.30 * b - half_offset, 0.55 * b)), 8.0)
    femur.add(Tube(shaft_pts, shaft_r), 8.0)
    femur.add(RoundCone(junction, hip, 0.42 * p.head_diameter, 0.33 * p.head_diameter), 6.0)
    femur.add(Sphere(hip, head_r), 3.0)
    femur.add(greater, 8.0)
    femur.add(lesser, 4.0)
    shape = Subtract(femur, notch, 2.0)

    t_dia = 0.3 * 0.165 * b
    canal_sel = (ts >= 0.2) & (ts <= 0.8)
    canal = Tube(shaft_pts[canal_sel], shaft_r[canal_sel] - t_dia - 0.5)
    cortex = CortexProfile(1.2, t_dia, float(shaft_pts[2, 2]), float(shaft_pts[-3, 2]))

    landmarks = {
        "hip_centre": hip,
        "femoral_knee_centre": np.zeros(3),
        "medial_distal_condyle": joint_rot @ np.array([xc, 0.0, 0.0]),
        "lateral_distal_condyle": joint_rot @ np.array([-xc, 0.0, 0.0]),
        "medial_posterior_condyle": joint_rot @ np.array([xc, radius, radius]),
        "lateral_posterior_condyle": joint_rot @ np.array([-xc, radius, radius]),
        "medial_condyle_centre": joint_rot @ np.array([xc, 0.0, radius]),
        "lateral_condyle_centre": joint_rot @ np.array([-xc, 0.0, radius]),
        "medial_epicondyle": joint_rot @ (np.array(epi_med) + [0.08 * b, 0.0, 0.0]),
        "lateral_epicondyle": joint_rot @ (np.array(epi_lat) - [0.07 * b, 0.0, 0.0]),
        "neck_shaft_junction": junction,
    }
    lo = np.array([-0.55 * b + min(0.0, junction[0] - 0.9 * p.head_diameter), -0.6 * b - 15, -15.0])
    hi = np.array([0.55 * b + head_r, 0.45 * b + 15, p.femur_length + head_r + 15])
    lo[1] = min(lo[1], float(shaft_pts[:, 1].min() - shaft_r.max() - 10))
    nsa = float(np.degrees(np.arccos(np.clip(-(u @ n), -1, 1))))
    return FemurGeometry(shape, joint_rot, landmarks, canal, cortex, (lo, hi), nsa, u)


# ---------------------------------------------------------------- tibia and fibula


@dataclass
class TibiaGeometry:
    shape: Shape
    plateau_normal: Array
    landmarks: dict[str, Array]
    canal: Shape
    cortex: CortexProfile
    bounds: tuple[Array, Array]


def plateau_normal(mpta: float, slope: float) -> Array:
    """Upward normal of the plateau plane (tibia frame)."""
    u = rot_xz(mpta - 90.0) @ np.array([1.0, 0.0, 0.0])  # medial along the frontal line
    s = np.radians(slope)
    v = np.array([0.0, np.cos(s), -np.sin(s)])  # posterior and down
    n = np.cross(u, v)
    return n / np.linalg.norm(n)


def build_tibia(p: KneeParams) -> TibiaGeometry:
    w, depth, length = p.plateau_width, p.plateau_depth, p.tibia_length
    normal = plateau_normal(p.mpta, p.posterior_slope)
    block = Ellipsoid((0.0, 0.0, -0.14 * w), (w / 2, depth / 2, 0.4 * w))
    proximal = Intersect(block, HalfSpace(normal, 0.0), 2.0)

    tibia = Union()
    tibia.add(proximal)
    tibia.add(Ellipsoid((0.045 * w, -0.02 * w, 0.0), (0.035 * w, 0.09 * w, 0.10 * w)), 3.0)
    tibia.add(Ellipsoid((-0.04 * w, 0.01 * w, -0.005 * w), (0.035 * w, 0.09 * w, 0.09 * w)), 3.0)
    tibia.add(
        Ellipsoid((-0.06 * w, -depth / 2 + 0.02 * w, -0.50 * w), (0.12 * w, 0.10 * w, 0.18 * w)),
        6.0,
    )
    shaft_pts = np.array(
        [
            [0.0, -0.02 * w, -0.45 * w],
            [0.0, 0.0, -0.70 * w],
            [-0.01 * w, 0.0, -0.45 * length],
            [0.0, 0.0, -(length - 0.8 * w)],
            [0.0, 0.0, -(length - 0.3 * w)],
        ]
    )
    shaft_r = np.array([0.25 * w, 0.20 * w, 0.15 * w, 0.15 * w, 0.22 * w])
    tibia.add(Tube(shaft_pts, shaft_r), 10.0)
    distal = Ellipsoid((0.0, 0.0, -length + 0.12 * w), (0.30 * w, 0.24 * w, 0.22 * w))
    tibia.add(Intersect(distal, HalfSpace((0.0, 0.0, -1.0), length), 1.5), 8.0)
    # medial malleolus just medial of the flat plafond, so the plafond stays a clean ellipse
    med_mall = (0.315 * w, 0.0, -length - 0.01 * w)
    tibia.add(Ellipsoid(med_mall, (0.055 * w, 0.12 * w, 0.17 * w)), 3.0)

    t_dia = 0.3 * 0.15 * w
    # the medullary canal starts well below the cancellous metaphysis
    canal_pts = np.array([[0.0, 0.0, -1.4 * w], shaft_pts[2], shaft_pts[3]])
    canal = Tube(canal_pts, np.array([0.17 * w, 0.15 * w, 0.15 * w]) - t_dia - 0.5)
    cortex = CortexProfile(1.0, t_dia, -(length - 0.8 * w), -1.0 * w)
    medial_dir = rot_xz(p.mpta - 90.0) @ np.array([1.0, 0.0, 0.0])
    landmarks = {
        "tibial_knee_centre": np.zeros(3),
        "ankle_centre": np.array([0.0, 0.0, -length]),
        "medial_plateau": 0.3 * w * medial_dir,
        "lateral_plateau": -0.3 * w * medial_dir,
        "medial_malleolus": np.array(med_mall) - [0.0, 0.0, 0.17 * w],
        "tibial_tuberosity": np.array([-0.06 * w, -depth / 2 - 0.08 * w, -0.50 * w]),
    }
    lo = np.array([-0.55 * w, -depth / 2 - 0.12 * w, -length - 0.2 * w])
    hi = np.array([0.55 * w, depth / 2 + 5, 0.12 * w])
    return TibiaGeometry(tibia, normal, landmarks, canal, cortex, (lo, hi))


def ellipsoid_surface_samples(radii: Array, n: int = 400, exponent: float = 2.0) -> Array:
    """Deterministic, near-uniform directions (Fibonacci sphere) scaled to an ellipsoid
    (a superellipsoid of that `exponent` when it is above 2; see sdf.Ellipsoid)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    dirs = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)
    if exponent != 2.0:
        dirs = dirs / ((np.abs(dirs) ** exponent).sum(axis=1, keepdims=True) ** (1 / exponent))
    return dirs * np.asarray(radii)


def _ray_distance(obstacle: Shape, origins: Array, direction: Array, limit: float) -> Array:
    """Sphere-trace rays from `origins` along `direction`: distance to the obstacle surface.

    Valid for 1-Lipschitz (under-estimating) SDFs: steps never overshoot the surface.
    """
    centre = origins.mean(axis=0) + 0.5 * limit * direction
    radius = float(np.linalg.norm(origins - origins.mean(axis=0), axis=1).max()) + 0.5 * limit
    obstacle = obstacle.prune(centre, radius)  # exact inside the swept ball, much cheaper
    travelled = np.zeros(len(origins))
    active = np.ones(len(origins), dtype=bool)
    for _ in range(500):
        d = obstacle(origins[active] + travelled[active, None] * direction)
        step = np.where(d > 1e-3, np.maximum(d, 1e-3), 0.0)
        travelled[active] += step
        active[active] = (step > 0) & (travelled[active] < limit)
        if not active.any():
            break
    return np.minimum(travelled, limit)


def slide_to_contact(
    obstacle: Shape, samples_local: Array, pose_far: Array, direction: Array, gap: float
) -> float:
    """How far to translate a shape (posed at `pose_far`) along `direction` to leave `gap`."""
    origins = apply(pose_far, samples_local)
    if float(obstacle(origins).min()) < gap:
        raise RuntimeError("placement search failed: start position already touches the obstacle")
    distance = _ray_distance(obstacle, origins, direction, limit=250.0).min()
    return float(distance - gap)


def build_fibula(
    p: KneeParams, tibia: Shape
) -> tuple[Shape, dict[str, Array], tuple[Array, Array]]:
    w, length = p.plateau_width, p.tibia_length
    head_radii = np.array([0.12 * w, 0.12 * w, 0.15 * w])
    head_dir = np.array([-np.cos(np.radians(35)), np.sin(np.radians(35)), 0.0])
    head_far = np.array([0.0, 0.0, -0.25 * w]) + 1.5 * w * head_dir
    head_samples = ellipsoid_surface_samples(head_radii)
    head = head_far - head_dir * slide_to_contact(
        tibia, head_samples, rigid(None, head_far), -head_dir, FIBULA_GAP
    )
    mall_radii = np.array([0.085 * w, 0.12 * w, 0.24 * w])
    mall_dir = np.array([-np.cos(np.radians(15)), np.sin(np.radians(15)), 0.0])
    mall_far = np.array([0.0, 0.0, -length - 0.04 * w]) + 1.5 * w * mall_dir
    mall_samples = ellipsoid_surface_samples(mall_radii)
    mall = mall_far - mall_dir * slide_to_contact(
        tibia, mall_samples, rigid(None, mall_far), -mall_dir, FIBULA_GAP
    )
    axis = mall - head
    shaft_pts = np.array([head, head + 0.12 * axis, head + 0.5 * axis, head + 0.85 * axis, mall])
    shaft_r = np.array([0.085 * w, 0.075 * w, 0.07 * w, 0.075 * w, 0.085 * w])
    fibula = Union()
    fibula.add(Ellipsoid(head, head_radii))
    fibula.add(Tube(shaft_pts, shaft_r), 6.0)
    fibula.add(Ellipsoid(mall, mall_radii), 6.0)
    shape = Subtract(fibula, Offset(tibia, FIBULA_GAP * 0.5), 0.0)
    landmarks = {
        "fibular_head": head + [0.0, 0.0, head_radii[2]],
        "lateral_malleolus": mall - [0.0, 0.0, mall_radii[2]],
    }
    lo = np.minimum(head, mall) - 0.2 * w - 5
    hi = np.maximum(head, mall) + 0.2 * w + 5
    return shape, landmarks, (lo, hi)


# ---------------------------------------------------------------- assembly


def _patella_pose(p: KneeParams, femur: Shape, flex_pose: Array) -> tuple[Array, Array]:
    radii = np.array([p.patella_width / 2, p.patella_thickness / 2, p.patella_height / 2])
    b = p.bicondylar_width
    tilt = rotation_about_axis((1.0, 0.0, 0.0), p.patella_tilt)
    centre_height = 12.0 + radii[2]
    samples = ellipsoid_surface_samples(radii, 600)

    def pose_at(s: float) -> Array:
        centre = np.array([-0.03 * b, -s, centre_height])
        return flex_pose @ rigid(tilt, centre)

    far = 1.5 * b
    direction = flex_pose[:3, :3] @ np.array([0.0, 1.0, 0.0])
    s = far - slide_to_contact(femur, samples, pose_at(far), direction, PATELLA_GAP)
    return pose_at(s), radii


def _body_shape(
    p: KneeParams,
    femur_geo: FemurGeometry,
    patella_centre: Array,
    patella_radii: Array,
    flexion: Array,
) -> Shape:
    """Skin surface: thigh in the femoral frame, leg (knee down) flexed with the tibia."""
    b, w, f = p.bicondylar_width, p.plateau_width, p.fat_thickness
    junction = femur_geo.landmarks["neck_shaft_junction"]
    lf, lt = p.femur_length, p.tibia_length
    pts = np.array(
        [
            [1.1 * junction[0], 5.0, lf + 40.0],
            [0.5 * junction[0], 8.0, 0.5 * lf],
            [0.0, 0.0, 0.25 * b],
            [0.0, 8.0, -0.15 * lt],
            [0.0, 18.0, -0.35 * lt],
            [0.0, 0.0, -lt + 40.0],
            [0.0, 0.0, -lt - 45.0],
        ]
    )
    radii = np.array(
        [
            0.5 * b + 45 + 1.5 * f,
            0.5 * b + 38 + 1.3 * f,
            0.5 * b + 16 + f,
            0.45 * b + 22 + f,
            0.45 * b + 25 + f,
            0.35 * w + 12 + 0.3 * f,
            0.35 * w + 16 + 0.3 * f,
        ]
    )
    leg = slice(2, None)  # from the knee down the soft tissue follows the tibia
    pts[leg] = apply(flexion, pts[leg])
    body = Union().add(Tube(pts[:3], radii[:3]))
    body.add(Tube(pts[leg], radii[leg]), 10.0)
    body.add(Ellipsoid(patella_centre, patella_radii + np.array([9.0, 12.0, 12.0])), 12.0)
    return body


def build_anatomy(p: KneeParams, condylar_offset_mm: float = 0.0) -> KneeAnatomy:
    """Build all bones, landmarks and constructed angles for one parameter set
    (`condylar_offset_mm`: see build_femur)."""
    p.validate()
    fem = build_femur(p, condylar_offset_mm)
    tib = build_tibia(p)
    fib_shape, fib_landmarks, fib_bounds = build_fibula(p, tib.shape)

    psi = p.jlca - p.ahka  # frontal rotation of the tibia; mHKA = -psi = aHKA - JLCA
    limb_from_tibia_ext = rigid(rot_xz(psi), (0.0, 0.0, -JOINT_GAP))
    axis_point = 0.5 * (
        fem.landmarks["medial_condyle_centre"] + fem.landmarks["lateral_condyle_centre"]
    )
    axis_dir = fem.joint_from_femur @ np.array([1.0, 0.0, 0.0])
    flex = rotation_about_point(axis_dir, p.flexion, axis_point)
    limb_from_tibia = flex @ limb_from_tibia_ext
    patella_flex = rotation_about_point(axis_dir, PATELLA_FLEXION_RATIO * p.flexion, axis_point)
    limb_from_patella, pat_radii = _patella_pose(p, fem.shape, patella_flex)

    mirror = np.diag([-1.0 if p.side == "L" else 1.0, 1.0, 1.0, 1.0])
    # external rotation turns the anterior (-y) towards lateral (-x for a right limb)
    patient_from_limb = mirror @ rigid(rotation_about_axis((0.0, 0.0, 1.0), -p.axial_rotation))

    pat_shape = Ellipsoid((0.0, 0.0, 0.0), pat_radii)
    bones = {
        "femur": Bone("femur", 1, fem.shape, patient_from_limb, fem.cortex, fem.canal, fem.bounds),
        "tibia": Bone(
            "tibia",
            2,
            tib.shape,
            patient_from_limb @ limb_from_tibia,
            tib.cortex,
            tib.canal,
            tib.bounds,
        ),
        "fibula": Bone(
            "fibula",
            3,
            fib_shape,
            patient_from_limb @ limb_from_tibia,
            CortexProfile(1.0, 2.0, -0.6 * p.tibia_length, -0.4 * p.plateau_width),
            None,
            fib_bounds,
        ),
        "patella": Bone(
            "patella",
            4,
            pat_shape,
            patient_from_limb @ limb_from_patella,
            CortexProfile(1.0, 1.0, 0, 0),
            None,
            (-pat_radii - 1, pat_radii + 1),
        ),
    }
    pat_centre_limb = limb_from_patella[:3, 3]
    body = Transformed(_body_shape(p, fem, pat_centre_limb, pat_radii, flex), patient_from_limb)

    landmarks: dict[str, Array] = {}
    for name, point in fem.landmarks.items():
        landmarks[name] = apply(patient_from_limb, point)
    for name, point in {**tib.landmarks, **fib_landmarks}.items():
        landmarks[name] = apply(patient_from_limb @ limb_from_tibia, point)
    landmarks["patella_centre"] = apply(patient_from_limb @ limb_from_patella, np.zeros(3))

    angles: dict[str, float | str] = {
        "mHKA": p.mhka,
        "LDFA": p.ldfa,
        "MPTA": p.mpta,
        "aHKA": p.ahka,
        "JLO": p.jlo,
        "JLCA": p.jlca,
        "CPAK": cpak_type(p.ahka, p.jlo),
        "posterior_slope": p.posterior_slope,
        "neck_shaft_angle": fem.neck_shaft_angle,
        "flexion": p.flexion,
        "axial_rotation": p.axial_rotation,
        "anatomical_mechanical_femur": float(
            np.degrees(np.arctan2(-fem.anatomical_axis[0], fem.anatomical_axis[2]))
        ),
    }
    angles = {k: round(v, 6) if isinstance(v, float) else v for k, v in angles.items()}
    transforms = {
        "patient_from_limb": patient_from_limb,
        "patient_from_femur": patient_from_limb,
        "patient_from_tibia": patient_from_limb @ limb_from_tibia,
        "patient_from_fibula": patient_from_limb @ limb_from_tibia,
        "patient_from_patella": patient_from_limb @ limb_from_patella,
        "limb_from_tibia_extension": limb_from_tibia_ext,
        "flexion": flex,
    }
    return KneeAnatomy(p, bones, body, landmarks, angles, transforms)
