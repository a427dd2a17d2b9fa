"""Patella shape variation (training-time domain randomisation of the kneecap).

The generator's patella is an ellipsoid. On an AP radiograph its thickness falls smoothly to
zero towards the rim, so where it overlies the femur it leaves almost no outline. A real
patella is a flattened block: broad anterior and articular faces, a rim of nearly constant
thickness, a thicker cortex. Its rim shows as a sharp-edged disc through the femur on the AP
view. A network that has only seen the ellipsoid does not read that disc; on the real knee
it placed the patella 20 mm too far medially (model card, 2026-12-06). `vary_patella` gives
each case, seeded:
- a squarer kneecap: the ellipsoid becomes the superellipsoid |x/a|^p + |y/b|^p + |z/c|^p = 1
  (sdf.Ellipsoid's exponent) with p from 2 (the plain ellipsoid) up to 2 + 4 * share;
- a cortex from 1 mm (the generator's) up to 1 + 1.5 * share mm thick;
- a patellar height: the kneecap raised along its long axis by up to 12 * share mm (a
  high-riding patella, as on the real knee, whose patella tops out 7 mm above where the
  generator's fixed height put it) or lowered by up to 4 * share mm;
- the patella slid along its thickness axis back into contact with the femur, with the
  generator's cartilage gap: the squarer patella is fuller at its articular face, and a
  raised one rests on the femur's anterior metaphysis.

The outer dimensions (the parameters' width, thickness and height) are kept. The femur,
tibia and fibula are untouched; the patella's label, mesh and landmark follow the new shape.

The generator scales one patella (34 x 45 x 22 mm, height x width x thickness) by one
factor, so every phantom's height/width ratio is 0.76; the real knee's patella is 39 x 42 x
21 mm (0.93), and it sits 5.6 mm into the trochlear groove where the phantoms' sit -0.7 to
5.1 mm (model card, 2026-12-06). A student trained with a deeper trochlea gave the back of
that taller, slimmer, deeper-seated patella to the background. `vary_patella_form` gives each
case, seeded, other proportions and seating:
- taller by up to 30 % * share (or 5 % shorter), its lower pole kept where it was (the real
  lower pole is higher than the phantoms', not lower);
- up to 12 % * share narrower (or 5 % wider) and up to 18 % * share thinner (or 5 % thicker);
- turned about its transverse axis by up to +-10 * share degrees (sagittal tilt; negative
  turns its top towards the femur);
- a patello-femoral cartilage gap from the generator's 4 mm down to 4 - 2 * share mm;
- slid along its thickness axis back into contact with the femur at that gap.

Measured alike (`training.sections.patella_seating`), the real patella fills 39 % of its
bounding box and its posterior face lies 3.4 mm behind the femur's most anterior point in
the same axial slab: its articular face is a V with a median ridge that runs in the
trochlear groove. Every phantom patella, with or without the variations above, fills
0.54-0.76 and rests -3 to +1 mm in front of the femur (model card, 2026-12-06).
On the real patella's axial sections (the middle 16 mm) the ridge lies 8-11 mm behind the
rim, 22-27 mm from one edge of a 32-42 mm wide patella, and its facets fall away at 16-19
and 29-39 degrees from the coronal plane. `vary_patella_ridge` cuts the articular face into
two facets: two planes through the ridge line (the patella's posterior pole, moved sideways
by up to +-15 % of the width * share), each falling away from it at its own angle, drawn in
[10, 40] * share degrees, then slides the patella back to the femur at the cartilage gap it
had; the narrower ridge reaches into the groove.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from reconstruction.phantoms.anatomy import (
    PATELLA_GAP,
    Bone,
    CortexProfile,
    KneeAnatomy,
    ellipsoid_surface_samples,
    slide_to_contact,
)
from reconstruction.phantoms.sdf import (
    Array,
    Ellipsoid,
    HalfSpace,
    Intersect,
    Shape,
    rigid,
    rotation_about_axis,
)
from reconstruction.phantoms.variation import seeded_share

PATELLA_VERSION = 2  # 2: with the patellar height (cache keys name it)
PATELLA_STREAM = 15  # rng stream [seed, 15]: independent of the CT's, the warp's, the tissue's
MAX_PATELLA_VARIATION = 3.0
MAX_EXTRA_EXPONENT = 4.0  # at share 1, p up to 2 + this
MAX_EXTRA_CORTEX_MM = 1.5  # at share 1, cortex up to 1 mm + this
BASE_CORTEX_MM = 1.0
MAX_RISE_MM = 12.0  # at share 1, raised up to this
MAX_DROP_MM = 4.0  # at share 1, lowered up to this
SLIDE_START_MM = 60.0  # the search starts this far in front of the femur
FORM_STREAM = 20  # rng stream [seed, 20] of vary_patella_form
MAX_PATELLA_FORM_VARIATION = 3.0
TALLER = (-0.05, 0.30)  # height x 1 + share * U(these)
NARROWER = (-0.05, 0.12)  # width x 1 - share * U(these)
THINNER = (-0.05, 0.18)  # thickness x 1 - share * U(these)
MAX_SAGITTAL_TILT_DEG = 10.0  # at share 1, turned by U(-this, this) about local x
MAX_GAP_REDUCTION_MM = 2.0  # at share 1, the cartilage gap down to PATELLA_GAP - this
RIDGE_STREAM = 21  # rng stream [seed, 21] of vary_patella_ridge
MAX_PATELLA_RIDGE_VARIATION = 3.0
FACET_ANGLE_DEG = (10.0, 40.0)  # each facet's angle from the coronal plane: share x U(these)
MAX_RIDGE_SHIFT = 0.15  # at share 1, the ridge up to this x the width off the mid-line
SHELL_STEP_MM = 0.5  # the cut patella's surface samples: a grid shell this fine
SHELL_SAMPLES = 3000


def vary_patella(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The anatomy with a seeded patella shape; strength 0 returns it unchanged.

    Each case draws its own share = min(1, u * strength), u ~ U(0, 1); the exponent and the
    cortex are drawn uniformly up to what that share allows."""
    seeded = _seeded_patella(
        anatomy, strength, MAX_PATELLA_VARIATION, PATELLA_STREAM, "patella variation"
    )
    if seeded is None:
        return anatomy
    rng, share, patella = seeded
    exponent = 2.0 + MAX_EXTRA_EXPONENT * share * float(rng.uniform(0.0, 1.0))
    cortex_mm = BASE_CORTEX_MM + MAX_EXTRA_CORTEX_MM * share * float(rng.uniform(0.0, 1.0))
    # drawn after the shape, so a seed's exponent and cortex are those of the first version
    rise = share * float(rng.uniform(-MAX_DROP_MM, MAX_RISE_MM))
    shape = dataclasses.replace(patella.local_shape, exponent=exponent)
    pose = _in_contact(anatomy.bones["femur"], _samples(shape), patella.patient_from_local, rise)
    cortex = CortexProfile(cortex_mm, cortex_mm, 0.0, 0.0)
    moved = dataclasses.replace(patella, local_shape=shape, patient_from_local=pose, cortex=cortex)
    drawn = {"share": share, "exponent": exponent, "cortex_mm": cortex_mm, "rise_mm": rise}
    drawn["moved_mm"] = float(np.linalg.norm(pose[:3, 3] - patella.patient_from_local[:3, 3]))
    return _with_patella(anatomy, moved, "patella", drawn)


def vary_patella_form(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The anatomy with seeded patellar proportions, sagittal tilt and seating (see the
    module's docstring); strength 0 returns it unchanged.

    Each case draws share = min(1, u * strength), u ~ U(0, 1), then each change uniformly
    within what that share allows. It keeps the patella's superellipsoid exponent and cortex
    (phantoms.patella.vary_patella, when that ran first)."""
    seeded = _seeded_patella(
        anatomy, strength, MAX_PATELLA_FORM_VARIATION, FORM_STREAM, "patella form variation"
    )
    if seeded is None:
        return anatomy
    rng, share, patella = seeded
    factors = np.array(
        [
            1.0 - share * float(rng.uniform(*NARROWER)),
            1.0 - share * float(rng.uniform(*THINNER)),
            1.0 + share * float(rng.uniform(*TALLER)),
        ]
    )
    tilt_deg = share * float(rng.uniform(-MAX_SAGITTAL_TILT_DEG, MAX_SAGITTAL_TILT_DEG))
    gap = PATELLA_GAP - share * MAX_GAP_REDUCTION_MM * float(rng.uniform())
    radii = np.asarray(patella.local_shape.radii, dtype=float)
    new_radii = radii * factors
    shape = dataclasses.replace(patella.local_shape, radii=new_radii)
    # the lower pole stays: the centre moves up by the change of the half-height
    turned = patella.patient_from_local @ rigid(
        rotation_about_axis((1.0, 0.0, 0.0), tilt_deg), (0.0, 0.0, new_radii[2] - radii[2])
    )
    pose = _in_contact(anatomy.bones["femur"], _samples(shape), turned, 0.0, gap)
    moved = dataclasses.replace(
        patella,
        local_shape=shape,
        patient_from_local=pose,
        local_bounds=(-new_radii - 1.0, new_radii + 1.0),
    )
    drawn = {
        "share": share,
        "size_factors": factors.tolist(),  # width, thickness, height
        "sagittal_tilt_deg": tilt_deg,
        "gap_mm": gap,
        "moved_mm": float(np.linalg.norm(pose[:3, 3] - patella.patient_from_local[:3, 3])),
    }
    return _with_patella(anatomy, moved, "patella_form", drawn)


def _seeded_patella(
    anatomy: KneeAnatomy, strength: float, maximum: float, stream: int, what: str
) -> tuple[np.random.Generator, float, Bone] | None:
    """seeded_share for a patella variation, which needs the generator's (super)ellipsoid."""
    seeded = seeded_share(anatomy.params, strength, maximum, stream, what)
    if seeded is None:
        return None
    patella = anatomy.bones["patella"]
    if not isinstance(patella.local_shape, Ellipsoid):
        raise TypeError(f"{what} expects the generator's ellipsoid patella")
    return (*seeded, patella)


def _with_patella(anatomy: KneeAnatomy, patella: Bone, key: str, drawn: dict) -> KneeAnatomy:
    """The anatomy with this patella, its centre landmark and transform, and what its
    variation drew in `extras[key]`."""
    pose = patella.patient_from_local
    bones = dict(anatomy.bones)
    bones["patella"] = patella
    landmarks = dict(anatomy.landmarks)
    landmarks["patella_centre"] = pose[:3, 3].copy()
    transforms = dict(anatomy.transforms)
    transforms["patient_from_patella"] = pose
    extras = dict(anatomy.extras)
    extras[key] = drawn
    return dataclasses.replace(
        anatomy, bones=bones, landmarks=landmarks, transforms=transforms, extras=extras
    )


def _samples(shape: Ellipsoid) -> Array:
    return ellipsoid_surface_samples(np.asarray(shape.radii), 600, shape.exponent)


def _in_contact(
    femur: Bone, samples: Array, pose: Array, rise: float, gap: float = PATELLA_GAP
) -> Array:
    """The pose raised `rise` mm along the patella's long axis (local z), then moved along
    its thickness axis (local y, towards the femur) until the shape whose surface `samples`
    (local frame) are given lies `gap` from the femur."""
    towards_femur = pose[:3, :3] @ np.array([0.0, 1.0, 0.0])
    upwards = pose[:3, :3] @ np.array([0.0, 0.0, 1.0])
    far = rigid(None, rise * upwards - SLIDE_START_MM * towards_femur) @ pose
    travel = slide_to_contact(femur.shape, samples, far, towards_femur, gap)
    return rigid(None, travel * towards_femur) @ far


def vary_patella_ridge(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The anatomy with a seeded median ridge on the patella's articular face (see the
    module's docstring); strength 0 returns it unchanged. Run it after the other patella
    variations: it leaves the patella a cut superellipsoid, not an ellipsoid."""
    seeded = _seeded_patella(
        anatomy, strength, MAX_PATELLA_RIDGE_VARIATION, RIDGE_STREAM, "patella ridge variation"
    )
    if seeded is None:
        return anatomy
    rng, share, patella = seeded
    angles = share * rng.uniform(*FACET_ANGLE_DEG, 2)
    radii = np.asarray(patella.local_shape.radii, dtype=float)
    shift = share * MAX_RIDGE_SHIFT * 2.0 * radii[0] * float(rng.uniform(-1.0, 1.0))
    shape = ridged(patella.local_shape, (float(angles[0]), float(angles[1])), shift)
    gap = float(anatomy.extras.get("patella_form", {}).get("gap_mm", PATELLA_GAP))
    samples = surface_shell(shape, np.asarray(patella.local_shape.centre, dtype=float), radii)
    pose = _in_contact(anatomy.bones["femur"], samples, patella.patient_from_local, 0.0, gap)
    moved = dataclasses.replace(patella, local_shape=shape, patient_from_local=pose)
    towards_femur = patella.patient_from_local[:3, :3] @ np.array([0.0, 1.0, 0.0])
    drawn = {
        "share": share,
        "facet_angles_deg": angles.tolist(),  # the +x facet's, the -x facet's
        "ridge_shift_mm": shift,
        "gap_mm": gap,
        "sunk_mm": float((pose[:3, 3] - patella.patient_from_local[:3, 3]) @ towards_femur),
    }
    return _with_patella(anatomy, moved, "patella_ridge", drawn)


def ridged(patella: Ellipsoid, facet_angles_deg: tuple[float, float], ridge_x: float) -> Shape:
    """The patella (local frame: x across, +y towards the femur, z up) less two wedges: the
    facets are planes through the line x = ridge_x, y = the posterior pole, falling away
    towards the anterior face at `facet_angles_deg` (the +x facet's, the -x facet's) from
    the coronal plane."""
    pole_y = float(np.asarray(patella.radii)[1]) + float(np.asarray(patella.centre)[1])
    shape: Shape = patella
    for side, angle in zip((1.0, -1.0), facet_angles_deg, strict=True):
        t = np.radians(angle)  # inside: side * (x - ridge_x) sin t + y cos t <= pole_y cos t
        normal = (side * np.sin(t), np.cos(t), 0.0)
        offset = side * ridge_x * np.sin(t) + pole_y * np.cos(t)
        shape = Intersect(shape, HalfSpace(normal, offset))
    return shape


def surface_shell(shape: Shape, centre: Array, radii: Array) -> Array:
    """Up to SHELL_SAMPLES points on the surface of a shape that lies inside the box
    centre +- radii (local frame): grid points within SHELL_STEP_MM of it, evenly thinned,
    then projected onto it along the distance gradient. The contact samples of a cut
    patella, whose surface has no closed form."""
    axes = [
        np.arange(c - r - 1.0, c + r + 1.0 + 1e-9, SHELL_STEP_MM)
        for c, r in zip(centre, radii, strict=True)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    shell = grid[np.abs(shape(grid)) <= SHELL_STEP_MM]
    points = shell[:: max(1, len(shell) // SHELL_SAMPLES)]
    for _ in range(3):  # Newton steps onto the zero level set
        values = shape(points)
        gradient = np.stack(
            [(shape(points + step) - values) / 1e-4 for step in np.eye(3) * 1e-4], axis=1
        )
        norm2 = np.maximum(np.sum(gradient**2, axis=1, keepdims=True), 1e-12)
        points = points - values[:, None] * gradient / norm2
    return points
