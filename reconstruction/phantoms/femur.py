"""Distal femur shape variations (training-time domain randomisation): a popliteal hollow
behind the metaphysis (`vary_femur`), squarer distal condyles (`vary_condyles`), a lower
trochlea with condyles that reach further forward (`vary_trochlea`) and the shaft further in
front of the posterior condyles (`build_offset_anatomy`).

Behind its metaphysis the generator's femur is convex: the intercondylar notch is one
ellipsoid, and above it the metaphysis bulges back between the condyles. A real femur is
concave there: the notch runs higher, and above it lies the flat-to-hollow popliteal surface
between the supracondylar lines. On the real knee's sections the posterior-most point of an
axial section lies 4-16 mm behind the section's mid-line posterior surface from 14 to 46 mm
above the distal end; on the phantoms that difference falls to 0 by about 40 mm (model card,
2026-12-06). The student, which has only seen the convex femur, filled the real concavity.
None of it shows on a silhouette, so the network has to learn it from what the radiographs
show inside the bone, over a family of shapes. `vary_femur` gives each case, seeded, a
popliteal hollow: an ellipsoid centred on the posterior mid-line between 0.45 and 0.65
bicondylar widths above the knee centre, cut up to 14 * share mm deep into the bone behind
the metaphysis, blended smoothly.

Version 1 also widened and heightened the intercondylar notch. A student trained with it
shrank the distal condyles of the real knee by about 2 mm (stop 20, model card): the
radiographs barely show the notch, so the model learnt a smaller condyle everywhere.
Version 2 (`FEMUR_VERSION`, named in cache keys) keeps the generator's notch.

The hollow only removes material, so every other bone, the patella's cartilage gap and the
knee's landmarks (condyles, epicondyles, centres) stay as they are; the femur's label, mesh
and CT follow the new shape. The squarer condyles and the lower trochlea only add bone, with
the same poles (see `vary_condyles` and `vary_trochlea`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from reconstruction.phantoms.anatomy import (
    KneeAnatomy,
    KneeParams,
    build_anatomy,
    distal_condyles,
    femur_joint_pose,
    femur_notch,
)
from reconstruction.phantoms.sdf import Ellipsoid, Shape, Subtract, Transformed, Union
from reconstruction.phantoms.variation import posterior_surface_y, seeded_share, with_bone_shape

FEMUR_STREAM = 16  # rng stream [seed, 16]: independent of the other variations'
MAX_FEMUR_VARIATION = 3.0
FEMUR_VERSION = 2  # 2: the popliteal hollow only (1 also enlarged the notch)
MAX_HOLLOW_DEPTH_MM = 14.0
HOLLOW_HEIGHT_B = (0.45, 0.65)  # hollow centre above the knee centre, bicondylar widths
HOLLOW_RADII_B = (0.15, 0.12, 0.25)  # across, front-back, height; bicondylar widths
BLEND_MM = 3.0
CONDYLE_STREAM = 18  # rng stream [seed, 18] of vary_condyles
MAX_CONDYLE_VARIATION = 3.0
MAX_EXTRA_CONDYLE_EXPONENT = 2.0  # at share 1, the condyles' exponent up to 2 + this
TROCHLEA_STREAM = 19  # rng stream [seed, 19] of vary_trochlea
MAX_TROCHLEA_VARIATION = 3.0
MAX_ANTERIOR_REACH_B = 0.08  # at share 1, each condyle up to 2 x this longer forward
FLOOR_LOWEST_B = (0.17, 0.07)  # the bridge's lowest point: plain trochlea -> at share 1
FLOOR_CENTRE_Y_B = -0.22  # the bridge: centre front-back, joint-line frame
FLOOR_RADII_B = (0.28, 0.18, 0.14)  # across, front-back, height; bicondylar widths
TROCHLEA_BLEND_MM = 4.0
OFFSET_STREAM = 22  # rng stream [seed, 22] of the condylar offset
MAX_CONDYLAR_OFFSET_VARIATION = 3.0
MAX_CONDYLAR_OFFSET_B = 0.24  # at share 1: the shaft this many bicondylar widths forward
NOTCH_BLEND_MM = 2.0  # as the generator cuts the notch


def vary_femur(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The anatomy with a seeded popliteal hollow; strength 0 returns it unchanged. Each case
    draws share = min(1, u * strength), u ~ U(0, 1), and the depth uniformly up to what that
    share allows."""
    seeded = seeded_share(
        anatomy.params, strength, MAX_FEMUR_VARIATION, FEMUR_STREAM, "femur variation"
    )
    if seeded is None:
        return anatomy
    rng, share = seeded
    b = anatomy.params.bicondylar_width
    depth = MAX_HOLLOW_DEPTH_MM * share * float(rng.uniform())
    height = b * float(rng.uniform(*HOLLOW_HEIGHT_B))
    femur = anatomy.bones["femur"]
    shape: Shape = femur.local_shape
    hollow = _hollow(shape, b, height, depth)
    if hollow is not None:
        shape = Subtract(shape, hollow, BLEND_MM)
    draws = {"share": share, "hollow_depth_mm": depth, "hollow_height_mm": height}
    return with_bone_shape(anatomy, "femur", shape, draws)


def _hollow(femur: Shape, b: float, height: float, depth: float) -> Shape | None:
    """An ellipsoid reaching `depth` mm into the femur's posterior mid-line surface at
    `height` (femur frame), or None for a depth under 0.1 mm."""
    if depth < 0.1:
        return None
    radii = np.array(HOLLOW_RADII_B) * b
    surface_y = posterior_surface_y(femur, height)
    return Ellipsoid((0.0, surface_y + radii[1] - depth, height), radii)


def vary_condyles(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The anatomy with seeded squarer distal condyles; strength 0 returns it unchanged.

    The generator's two distal-posterior condyles are ellipsoids, so a section a few mm above
    the joint is small: on the training phantoms 54-63 mm wide and 28-31 mm deep 5 mm above
    the distal end, against 68 and 44 mm on the real knee (model card, 2026-12-06), whose
    distal and posterior condylar faces are broad and flat. Each case draws share =
    min(1, u * strength), u ~ U(0, 1), and the exponent p uniformly in [2, 2 + 2 * share]:
    the condyles become superellipsoids |x/a|^p + |y/b|^p + |z/c|^p = 1 with the same extreme
    points (distal and posterior condyle landmarks stay on the surface). The squarer
    condyles, less the generator's notch, are united with the femur, so bone is only added;
    the notch, trochlea, metaphysis and every other bone are kept."""
    seeded = seeded_share(
        anatomy.params, strength, MAX_CONDYLE_VARIATION, CONDYLE_STREAM, "condyle variation"
    )
    if seeded is None:
        return anatomy
    rng, share = seeded
    exponent = 2.0 + MAX_EXTRA_CONDYLE_EXPONENT * share * float(rng.uniform())
    params = anatomy.params
    squarer = Transformed(distal_condyles(params, exponent), femur_joint_pose(params))
    notched = Subtract(squarer, femur_notch(params), NOTCH_BLEND_MM)
    shape = Union().add(anatomy.bones["femur"].local_shape).add(notched)
    return with_bone_shape(
        anatomy, "femur", shape, {"share": share, "exponent": exponent}, extras_key="condyles"
    )


def vary_trochlea(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The anatomy with a seeded lower trochlea; strength 0 returns it unchanged.

    The generator's condyles are separate ellipsoids of one sagittal radius up to the
    trochlear facets, 0.17 bicondylar widths above the distal end. On 8 plain validation
    phantoms an axial section 15 mm up is mostly two separate condyles (joined in front in
    2), and 8 mm up each condyle is 33-46 mm deep from the posterior condylar line. On the
    real knee the condyles are joined in front by the trochlear floor 15 mm up (the notch
    only behind), and 8 mm up they are 50-52 mm deep: the distal condylar face is longer
    and flatter, running forward into the trochlea (model card, 2026-12-06). The student
    trained on the generator drew a deep groove there and the real condyles' front 2-4 mm
    short. Each case draws share = min(1, u * strength), u ~ U(0, 1), and independently up
    to what it allows:
    - each condyle longer forward: an ellipsoid with the same distal and posterior poles and
      half-width whose sagittal front-back radius grows by `reach` (up to 0.08 b), centred
      `reach` further forward, so its front moves 2 x reach;
    - a trochlear floor joining the condyles in front of the notch, its lowest point from the
      plain trochlea's height (0.17 b) down to 0.07 b above the distal end.
    Both only add bone, in front of the condyle centres; the distal and posterior condyle
    landmarks stay on the surface and the other bones are untouched."""
    seeded = seeded_share(
        anatomy.params, strength, MAX_TROCHLEA_VARIATION, TROCHLEA_STREAM, "trochlea variation"
    )
    if seeded is None:
        return anatomy
    rng, share = seeded
    params = anatomy.params
    b = params.bicondylar_width
    reach = MAX_ANTERIOR_REACH_B * b * share * float(rng.uniform())
    top, bottom = FLOOR_LOWEST_B
    lowest = b * (top - (top - bottom) * share * float(rng.uniform()))
    added = Union()
    for condyle, _ in distal_condyles(params).parts:
        centre, radii = np.asarray(condyle.centre), np.asarray(condyle.radii)
        added.add(
            Ellipsoid(centre + (0.0, -reach, 0.0), radii + (0.0, reach, 0.0)), TROCHLEA_BLEND_MM
        )
    floor_radii = np.multiply(FLOOR_RADII_B, b)
    floor_centre = (0.0, FLOOR_CENTRE_Y_B * b, lowest + floor_radii[2])
    added.add(Ellipsoid(floor_centre, floor_radii), TROCHLEA_BLEND_MM)
    # a hard union: a blend would grow the distal poles, where old and new condyles touch
    shape = Union().add(anatomy.bones["femur"].local_shape)
    shape.add(Transformed(added, femur_joint_pose(params)))
    draws = {"share": share, "anterior_reach_mm": reach, "floor_lowest_mm": lowest}
    return with_bone_shape(anatomy, "femur", shape, draws, extras_key="trochlea")


def draw_condylar_offset(params: KneeParams, strength: float) -> dict[str, float] | None:
    """This case's posterior condylar offset draw: None for strength 0, else share =
    min(1, u * strength), u ~ U(0, 1), and the offset share * 0.24 bicondylar widths (mm).

    The posterior condylar offset is how far the posterior condyles stand behind the
    femoral shaft's posterior cortex. The generator's shaft and metaphysis sit close behind
    the condyles: on 8 plain validation phantoms the back of the femur 45-62 mm above its
    distal end lies 2-7 mm in front of the posterior condylar line, the shaft's own back
    about 11 mm. The real knee's lies 21 / 24 / 26 mm in front of it at 45 / 55 / 62 mm up
    (axial sections there 38-31 mm deep against 44-67 mm on those phantoms; model card,
    2026-12-07). A student trained on the generator drew the real femur's back 45-70 mm up
    as the phantoms' (up to 20 mm behind the real posterior cortex, though the lateral view
    shows it). At share 1 the offset moves the shaft 0.24 b (about 17-19 mm) forward."""
    seeded = seeded_share(
        params, strength, MAX_CONDYLAR_OFFSET_VARIATION, OFFSET_STREAM, "condylar offset variation"
    )
    if seeded is None:
        return None
    _, share = seeded
    return {"share": share, "offset_mm": MAX_CONDYLAR_OFFSET_B * params.bicondylar_width * share}


def build_offset_anatomy(params: KneeParams, strength: float) -> KneeAnatomy:
    """The anatomy with a seeded posterior condylar offset (draw_condylar_offset); strength 0
    gives build_anatomy's. The distal shaft moves forward by the offset (the shaft turns
    about its proximal end, and the medullary canal and the thigh follow it) and so does the
    metaphysis's posterior face, its front face kept; the condyles, trochlea, epicondyles,
    the knee's landmarks and every other bone are the plain knee's (the neck-shaft junction
    moves with the shaft). It builds the femur anew, so it
    comes before every other variation."""
    drawn = draw_condylar_offset(params, strength)
    if drawn is None:
        return build_anatomy(params)
    anatomy = build_anatomy(params, drawn["offset_mm"])
    return dataclasses.replace(anatomy, extras={**anatomy.extras, "condylar_offset": drawn})
