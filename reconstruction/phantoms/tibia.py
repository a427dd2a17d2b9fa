"""Proximal tibia shape variation (training-time domain randomisation behind the metaphysis).

Seen from the side, a real tibial plateau overhangs the shaft behind: below the plateau's
posterior rim the bone's back face steps forward. On the real knee's label map the
posterior-most point of an axial section recedes by about 11 mm between 18 and 42 mm below
the tibia's top, and the section's front-to-back depth falls from 50 to 38 mm by 50 mm down.
The generator's metaphysis is a convex block blended into the shaft: on four plain phantoms
its back face recedes by only 0-6 mm over the same range (model card, 2026-12-06). The
student, which has only seen that block, overgrew the real tibia's posterior metaphysis by
1.3-1.7 mm (signed, 18 to 38 mm below the plateau's top). Little of it shows on a
silhouette: the lateral view sees the posterior outline, but the AP view does not.

`vary_tibia` gives each case, seeded, a posterior recess: at a height between 0.45 and 0.65
plateau widths below the knee centre, the posterior mid-line face is moved forward by a
draw up to share times what would put it 16 mm in front of the plateau's posterior rim
(the phantom's own face already lies 0-8 mm in front there). The cut is an ellipsoid long
along the limb, so the back face recedes gradually from under the rim, blended smoothly.

Only material is removed, so the plateau, every other bone (the fibula's gap to the tibia
only widens), the cartilage gap and the knee's landmarks stay as they are; the tibia's
label, mesh and CT follow the new shape.
"""

from __future__ import annotations

import numpy as np

from reconstruction.phantoms.anatomy import KneeAnatomy
from reconstruction.phantoms.sdf import Ellipsoid, Shape, Subtract
from reconstruction.phantoms.variation import posterior_surface_y, seeded_share, with_bone_shape

TIBIA_STREAM = 17  # rng stream [seed, 17]: independent of the other variations'
MAX_TIBIA_VARIATION = 3.0
MAX_RECESS_MM = 16.0  # at share 1, the face moved up to this far in front of the rim
RIM_HEIGHT_W = -0.05  # where the plateau's posterior rim is measured, plateau widths
RECESS_HEIGHT_W = (0.45, 0.65)  # recess centre below the knee centre, plateau widths
RECESS_RADII_W = (0.45, 0.15, 0.35)  # across, front-back, along the limb; plateau widths
BLEND_MM = 3.0


def vary_tibia(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The anatomy with a seeded posterior recess below the plateau; strength 0 returns it
    unchanged. Each case draws share = min(1, u * strength), u ~ U(0, 1), and the cut
    uniformly up to what that share allows."""
    seeded = seeded_share(
        anatomy.params, strength, MAX_TIBIA_VARIATION, TIBIA_STREAM, "tibia variation"
    )
    if seeded is None:
        return anatomy
    rng, share = seeded
    w = anatomy.params.plateau_width
    height = -w * float(rng.uniform(*RECESS_HEIGHT_W))
    tibia = anatomy.bones["tibia"]
    shape: Shape = tibia.local_shape
    face_y = posterior_surface_y(shape, height)
    own_recess = posterior_surface_y(shape, RIM_HEIGHT_W * w) - face_y
    cut = max(0.0, MAX_RECESS_MM - own_recess) * share * float(rng.uniform())
    if cut >= 0.1:
        radii = np.array(RECESS_RADII_W) * w
        centre = (0.0, face_y - cut + radii[1], height)
        shape = Subtract(shape, Ellipsoid(centre, radii), BLEND_MM)
    draws = {
        "share": share,
        "recess_height_mm": height,
        "own_recess_mm": own_recess,  # the plain face there, in front of the rim
        "cut_mm": cut,  # how far the face there moves forward
    }
    return with_bone_shape(anatomy, "tibia", shape, draws)
