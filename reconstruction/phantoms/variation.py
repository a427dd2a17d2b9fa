"""Shape and pose variation beyond the parametric family (training-time domain randomisation).

The parametric bones are smooth unions of ellipsoids and tubes, and every limb stands with
its femoral mechanical axis exactly along z. Real knees are neither: their condyles, patella
and fibular head differ from these primitives by millimetres, and on a radiograph (or in a
scanner) the limb is tilted by a few degrees. `vary_anatomy` widens the family, seeded per
case, with
- a smooth random displacement field applied to the whole knee at once (bones, canals and
  skin move together, so joint gaps stay open): a sum of a few plane waves of 35-110 mm
  wavelength whose total gradient is bounded, so every warped field stays a valid
  1-Lipschitz under-estimate of the distance (the narrow-band sampler relies on that);
- independent size changes of the patella along each of its axes;
- a tilt of the whole limb about the two horizontal axes through the femoral knee centre.

Labels, meshes and CT all come from the same warped fields, so they stay exact. Landmarks
are carried along (the displacement is inverted by fixed-point iteration), but the
constructed alignment angles describe the unwarped limb: use variation for reconstruction
training, not for alignment ground truth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from reconstruction.phantoms.anatomy import Bone, KneeAnatomy
from reconstruction.phantoms.params import KneeParams
from reconstruction.phantoms.sdf import (
    Array,
    Ellipsoid,
    Shape,
    Transformed,
    apply,
    rotation_about_point,
)

WAVES = 4
WAVELENGTH_MM = (35.0, 110.0)
GRADIENT_BUDGET = 0.3  # total |grad d| at strength 1: warped fields are scaled by 1/(1 + it)
TILT_DEG = 8.0  # at strength 1, uniform in +- this about each horizontal axis
PATELLA_SCALE = 0.12  # at strength 1, each patella radius scaled by 1 +- up to this
MAX_STRENGTH = 3.0  # keeps the warp's gradient below 1: invertible, and landmarks converge
VARIATION_STREAM = 13  # rng stream [seed, 13]: independent of the CT's and the findings'
LIMB_TILT_DEG = 10.0  # tilt-only variation at share 1: uniform in +- this about each axis
MAX_TILT_VARIATION = 3.0
TILT_STREAM = 23  # rng stream [seed, 23] of vary_tilt


@dataclass(frozen=True)
class SmoothWarp:
    """Displacement d(x) = sum_k a_k u_k sin(w_k . x + phi_k) in patient mm."""

    amplitudes: Array  # (K,) mm
    directions: Array  # (K, 3) unit displacement directions
    wave_vectors: Array  # (K, 3) rad/mm
    phases: Array  # (K,)

    def displacement(self, points: Array) -> Array:
        waves = np.sin(points @ self.wave_vectors.T + self.phases) * self.amplitudes
        return waves @ self.directions

    @property
    def lipschitz(self) -> float:
        """Upper bound of |grad d| (operator norm), hence of the warp's stretch minus one."""
        return float(np.sum(np.abs(self.amplitudes) * np.linalg.norm(self.wave_vectors, axis=1)))

    @property
    def max_displacement(self) -> float:
        return float(np.sum(np.abs(self.amplitudes)))

    def pull_back(self, points: Array) -> Array:
        """Where a point of the warped knee came from: x - d(x)."""
        return points - self.displacement(points)

    def push_forward(self, points: Array, iterations: int = 60) -> Array:
        """The warped position y of original points x: solves y - d(y) = x (a contraction,
        since |grad d| < 1)."""
        y = np.array(points, dtype=float)
        for _ in range(iterations):
            y = points + self.displacement(y)
        return y


@dataclass
class Warped(Shape):
    """A shape given in a local frame, seen through a warp defined in the world frame.

    g(q) = f(L^-1 (W(L q))) / (1 + lip), with L = world_from_local (rigid) and W the warp's
    pull-back; dividing by the bound on W's stretch keeps g 1-Lipschitz and below the true
    distance to the warped surface.
    """

    shape: Shape
    warp: SmoothWarp
    world_from_local: Array

    def __post_init__(self) -> None:
        self._local_from_world = np.linalg.inv(self.world_from_local)
        self._scale = 1.0 / (1.0 + self.warp.lipschitz)

    def _source(self, points: Array) -> Array:
        world = apply(self.world_from_local, points)
        return apply(self._local_from_world, self.warp.pull_back(world))

    def __call__(self, points: Array) -> Array:
        return self.shape(self._source(points)) * self._scale

    def lower_bound(self, points: Array) -> Array:
        return self.shape.lower_bound(self._source(points)) * self._scale

    def prune(self, centre: Array, radius: float) -> Shape:
        # |source(x) - source(c)| <= (1 + lip) |x - c|
        source = self._source(np.asarray(centre, dtype=float)[None, :])[0]
        pruned = self.shape.prune(source, radius * (1.0 + self.warp.lipschitz))
        return Warped(pruned, self.warp, self.world_from_local)


def random_warp(rng: np.random.Generator, strength: float) -> SmoothWarp:
    """WAVES plane waves; each spends an equal share (times U(0.5, 1)) of the gradient budget."""
    wavelengths = rng.uniform(*WAVELENGTH_MM, WAVES)
    wave_dirs = _unit_vectors(rng, WAVES)
    wave_vectors = wave_dirs * (2.0 * np.pi / wavelengths)[:, None]
    share = GRADIENT_BUDGET * strength / WAVES * rng.uniform(0.5, 1.0, WAVES)
    amplitudes = share * wavelengths / (2.0 * np.pi)
    return SmoothWarp(
        amplitudes, _unit_vectors(rng, WAVES), wave_vectors, rng.uniform(0, 6.3, WAVES)
    )


def _unit_vectors(rng: np.random.Generator, count: int) -> Array:
    v = rng.normal(size=(count, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def seeded_share(
    params: KneeParams, strength: float, maximum: float, stream: int, what: str
) -> tuple[np.random.Generator, float] | None:
    """Check a variation strength and draw this case's share of it (the soft-tissue,
    patella, femur, tibia and condylar offset variations): None for strength 0, else the case's generator
    (stream [seed, stream]) and share = min(1, u * strength), u ~ U(0, 1)."""
    if not 0.0 <= strength <= maximum:
        raise ValueError(f"{what} strength must be between 0 and {maximum}, got {strength}")
    if strength == 0:
        return None
    rng = np.random.default_rng([params.seed, stream])
    return rng, min(1.0, strength * float(rng.uniform(0.0, 1.0)))


def with_bone_shape(
    anatomy: KneeAnatomy,
    name: str,
    local_shape: Shape,
    drawn: dict[str, float],
    extras_key: str | None = None,
) -> KneeAnatomy:
    """The anatomy with bone `name` given a new local shape and what its variation drew
    recorded in `extras` under `extras_key` (default: the bone's name); the femur, condyle
    and tibia variations."""
    bones = dict(anatomy.bones)
    bones[name] = dataclasses.replace(anatomy.bones[name], local_shape=local_shape)
    extras = dict(anatomy.extras)
    extras[extras_key or name] = drawn
    return dataclasses.replace(anatomy, bones=bones, extras=extras)


def posterior_surface_y(bone: Shape, height: float, start_y: float = 150.0) -> float:
    """Where a ray along -y at x = 0, z = `height` (a bone's local frame, +y posterior)
    meets the bone, found by sphere tracing from behind (the bones' SDFs are 1-Lipschitz
    lower bounds). The femur and tibia variations place their cuts by it."""
    point = np.array([[0.0, start_y, height]])
    for _ in range(400):
        step = float(bone(point)[0])
        if step < 1e-3:
            return float(point[0, 1])
        point[0, 1] -= step
    raise RuntimeError(f"no bone surface behind the mid-line at {height:.1f} mm")


def vary_anatomy(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The anatomy with seeded shape and pose variation; strength 0 returns it unchanged.

    Each case draws its own share of `strength` (uniform in [0, 1] times it), so a training
    set spans the plain parametric knees and the strongly varied ones."""
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise ValueError(
            f"shape variation strength must be between 0 and {MAX_STRENGTH}, got {strength}"
        )
    if strength == 0:
        return anatomy
    rng = np.random.default_rng([anatomy.params.seed, VARIATION_STREAM])
    case_strength = strength * float(rng.uniform(0.0, 1.0))
    warp = random_warp(rng, case_strength)
    patella_scale = 1.0 + PATELLA_SCALE * case_strength * rng.uniform(-1.0, 1.0, 3)
    knee = np.asarray(anatomy.landmarks["femoral_knee_centre"], dtype=float)
    tilt_x, tilt_y = TILT_DEG * case_strength * rng.uniform(-1.0, 1.0, 2)
    tilt = rotation_about_point((1.0, 0.0, 0.0), tilt_x, knee) @ rotation_about_point(
        (0.0, 1.0, 0.0), tilt_y, knee
    )
    bones = {
        name: _vary_bone(bone, warp, patella_scale if name == "patella" else None)
        for name, bone in anatomy.bones.items()
    }
    landmarks = {
        name: warp.push_forward(np.asarray(point, dtype=float)[None, :])[0]
        for name, point in anatomy.landmarks.items()
    }
    warped = dataclasses.replace(
        anatomy, bones=bones, body=Warped(anatomy.body, warp, np.eye(4)), landmarks=landmarks
    )
    drawn = {
        "strength": case_strength,
        "tilt_deg": [float(tilt_x), float(tilt_y)],
        "max_displacement_mm": warp.max_displacement,
        "patella_scale": patella_scale.tolist(),
    }
    return turned(warped, tilt, "variation", drawn)


def turned(anatomy: KneeAnatomy, pose: Array, extras_key: str, drawn: dict) -> KneeAnatomy:
    """The whole limb moved rigidly by `pose` (4 x 4, patient mm): bones, body, landmarks and
    the patient frames together, so labels, meshes and CT stay exact; what the variation
    drew is recorded in `extras` under `extras_key`."""
    bones = {
        name: dataclasses.replace(bone, patient_from_local=pose @ bone.patient_from_local)
        for name, bone in anatomy.bones.items()
    }
    landmarks = {
        name: apply(pose, np.asarray(point, dtype=float)[None, :])[0]
        for name, point in anatomy.landmarks.items()
    }
    transforms = {
        name: (pose @ matrix if name.startswith("patient_from") else matrix)
        for name, matrix in anatomy.transforms.items()
    }
    return dataclasses.replace(
        anatomy,
        bones=bones,
        body=Transformed(anatomy.body, pose),
        landmarks=landmarks,
        transforms=transforms,
        extras={**anatomy.extras, extras_key: drawn},
    )


def draw_limb_tilt(params: KneeParams, strength: float) -> dict | None:
    """This case's tilt-only draw: None for strength 0, else share = min(1, u * strength),
    u ~ U(0, 1), and a turn of share * U(-1, 1) * LIMB_TILT_DEG about each horizontal axis.

    Radiographs and scanners do not hold the limb with its femoral axis exactly along z: the
    real knee's shafts lean about 6 deg from its scanner's axis in both planes, and a student
    trained on upright phantoms moved its real-knee femur error by up to 0.6 mm when that
    knee was turned 6 deg (model card, 2026-12-07). The shape warp's tilt comes only with the
    warps, which cost the femur; this one turns the plain limb."""
    seeded = seeded_share(params, strength, MAX_TILT_VARIATION, TILT_STREAM, "tilt variation")
    if seeded is None:
        return None
    rng, share = seeded
    about_x, about_y = LIMB_TILT_DEG * share * rng.uniform(-1.0, 1.0, 2)
    return {"share": share, "about_x_deg": float(about_x), "about_y_deg": float(about_y)}


def vary_tilt(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The limb turned about the two horizontal axes through the femoral knee centre
    (draw_limb_tilt), first about y, then about x; strength 0 returns it unchanged."""
    drawn = draw_limb_tilt(anatomy.params, strength)
    if drawn is None:
        return anatomy
    knee = np.asarray(anatomy.landmarks["femoral_knee_centre"], dtype=float)
    pose = rotation_about_point((1.0, 0.0, 0.0), drawn["about_x_deg"], knee) @ (
        rotation_about_point((0.0, 1.0, 0.0), drawn["about_y_deg"], knee)
    )
    return turned(anatomy, pose, "tilt", drawn)


def _vary_bone(bone: Bone, warp: SmoothWarp, scale: Array | None) -> Bone:
    local_shape = bone.local_shape
    lo, hi = (np.asarray(b, dtype=float) for b in bone.local_bounds)
    if scale is not None:
        local_shape = _scaled_ellipsoid(local_shape, scale)
        lo, hi = lo * scale.max(), hi * scale.max()
    margin = warp.max_displacement + 1.0
    frame = bone.patient_from_local
    canal = None if bone.canal is None else Warped(bone.canal, warp, frame)
    return Bone(
        name=bone.name,
        label=bone.label,
        local_shape=Warped(local_shape, warp, frame),
        patient_from_local=frame,
        cortex=bone.cortex,
        canal=canal,
        local_bounds=(lo - margin, hi + margin),
    )


def _scaled_ellipsoid(shape: Shape, scale: Array) -> Shape:
    if not isinstance(shape, Ellipsoid):
        raise TypeError("patella size variation expects the generator's ellipsoid patella")
    return dataclasses.replace(shape, radii=np.asarray(shape.radii, dtype=float) * scale)
