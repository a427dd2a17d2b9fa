"""Soft-tissue variation (training-time domain randomisation of what surrounds the bones).

The parametric leg is a smooth tube of skin, fat and uniform muscle. On a real radiograph
the soft tissue has edges of its own: muscle bellies bulge the outline (vastus medialis,
the gastrocnemius heads, the hamstrings), and fat between the muscles, in the popliteal
fossa and behind the patellar tendon (Hoffa's pad) shows as darker regions inside the
leg. A network that has only seen the smooth tube reads any such edge as bone: on the
real knee's radiographs it put bone fragments on soft-tissue edges (model card,
2026-12-06). `vary_soft_tissue` adds, seeded per case,
- a slimmer leg: the skin moves inward by up to 25 mm (never closer than 6 mm to a
  bone), so the skin-air edge can lie inside the field next to the bones, as on a slim
  knee's radiograph;
- bulges: ellipsoids (radii 12-60 mm) smoothly united with the skin, each protruding up
  to 20 mm beyond it;
- fat regions: ellipsoids (radii 6-22 mm) inside the leg, painted with the fat value where
  they lie in muscle (`KneeAnatomy.fat_regions`; bone is painted over them).

Bones, labels, landmarks and meshes are untouched: only the CT (hence the radiographs)
changes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from reconstruction.phantoms.anatomy import KneeAnatomy
from reconstruction.phantoms.sdf import Array, Ellipsoid, Offset, Shape, Union
from reconstruction.phantoms.variation import seeded_share

SOFT_TISSUE_STREAM = 14  # rng stream [seed, 14]: independent of the CT's and the warp's
MAX_SOFT_TISSUE = 3.0
HEIGHT_RANGE_MM = 95.0  # structures are centred within +- this of the knee (CT field)
MAX_BULGES = 6
MAX_FAT_REGIONS = 8
BULGE_PROTRUSION_MM = (4.0, 20.0)
BULGE_RADII_MM = ((12.0, 25.0), (18.0, 35.0), (30.0, 60.0))  # radial, tangential, along
FAT_RADII_MM = (6.0, 22.0)
BULGE_BLEND_MM = 10.0  # smooth-union radius: muscle bellies merge into the outline
MAX_SLIMMING_MM = 25.0
MIN_COVER_MM = 6.0  # soft tissue left over every bone however slim the leg


def vary_soft_tissue(anatomy: KneeAnatomy, strength: float) -> KneeAnatomy:
    """The anatomy with seeded soft-tissue structure; strength 0 returns it unchanged.

    Each case draws its own share = min(1, u * strength), u ~ U(0, 1): the slimming, the
    bulges' protrusion and the most bulges and fat regions it may draw scale with it."""
    seeded = seeded_share(
        anatomy.params, strength, MAX_SOFT_TISSUE, SOFT_TISSUE_STREAM, "soft-tissue variation"
    )
    if seeded is None:
        return anatomy
    rng, share = seeded
    axis = LimbAxis.of(anatomy)
    slimming = share * float(rng.uniform(0.0, 1.0)) * MAX_SLIMMING_MM
    leg = _slimmed(anatomy, slimming)
    bulges = [
        _bulge(rng, axis, leg, share)
        for _ in range(int(rng.integers(0, round(MAX_BULGES * share) + 1)))
    ]
    fat = [
        _fat_region(rng, axis, leg)
        for _ in range(int(rng.integers(0, round(MAX_FAT_REGIONS * share) + 1)))
    ]
    body = Union([(leg, 0.0)] + [(bulge, BULGE_BLEND_MM) for bulge in bulges]) if bulges else leg
    fat_regions = Union([(region, 0.0) for region in fat]) if fat else anatomy.fat_regions
    extras = dict(anatomy.extras)
    extras["soft_tissue"] = {
        "share": share,
        "slimming_mm": slimming,
        "bulges": len(bulges),
        "fat_regions": len(fat),
    }
    return dataclasses.replace(anatomy, body=body, fat_regions=fat_regions, extras=extras)


@dataclasses.dataclass(frozen=True)
class LimbAxis:
    """Piecewise-straight limb axis: hip -> knee -> ankle centres (patient mm)."""

    hip: Array
    knee: Array
    ankle: Array

    @classmethod
    def of(cls, anatomy: KneeAnatomy) -> LimbAxis:
        lm = anatomy.landmarks
        return cls(
            *(
                np.asarray(lm[name], dtype=float)
                for name in ("hip_centre", "femoral_knee_centre", "ankle_centre")
            )
        )

    def point(self, height: float) -> Array:
        """The axis point `height` mm above (+) or below (-) the knee centre, along z."""
        end = self.hip if height >= 0 else self.ankle
        fraction = abs(height) / max(abs(end[2] - self.knee[2]), 1.0)
        return self.knee + fraction * (end - self.knee)


def skin_distance(body: Shape, origin: Array, direction: Array, far: float = 250.0) -> float:
    """Distance from `origin` (inside the leg) along `direction` to the skin, by bisection."""
    lo, hi = 0.0, far
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if body((origin + mid * direction)[None, :])[0] < 0:
            lo = mid
        else:
            hi = mid
    return lo


def _frame(rng: np.random.Generator, axis: LimbAxis, body: Shape) -> tuple[Array, Array, float]:
    """A random point on the limb axis, a random horizontal direction, the skin distance."""
    height = float(rng.uniform(-HEIGHT_RANGE_MM, HEIGHT_RANGE_MM))
    angle = float(rng.uniform(0.0, 2.0 * np.pi))
    radial = np.array([np.cos(angle), np.sin(angle), 0.0])
    origin = axis.point(height)
    return origin, radial, skin_distance(body, origin, radial)


def _rotation(radial: Array) -> Array:
    """Columns: radial, tangential, vertical (the ellipsoid's axes)."""
    tangential = np.cross([0.0, 0.0, 1.0], radial)
    return np.column_stack([radial, tangential, [0.0, 0.0, 1.0]])


def _bulge(rng: np.random.Generator, axis: LimbAxis, body: Shape, share: float) -> Ellipsoid:
    origin, radial, skin = _frame(rng, axis, body)
    radii = np.array([rng.uniform(*span) for span in BULGE_RADII_MM])
    protrusion = share * float(rng.uniform(*BULGE_PROTRUSION_MM))
    centre = origin + (skin + protrusion - radii[0]) * radial
    return Ellipsoid(centre, radii, _rotation(radial))


def _fat_region(rng: np.random.Generator, axis: LimbAxis, body: Shape) -> Ellipsoid:
    origin, radial, skin = _frame(rng, axis, body)
    radii = rng.uniform(*FAT_RADII_MM, 3)
    depth = float(rng.uniform(0.3, 0.9)) * skin
    return Ellipsoid(origin + depth * radial, radii, _rotation(radial))


def _slimmed(anatomy: KneeAnatomy, slimming: float) -> Shape:
    """The skin moved inward by `slimming` mm, but kept MIN_COVER_MM outside every bone."""
    if slimming <= 0:
        return anatomy.body
    cover = Union([(bone.shape, 0.0) for bone in anatomy.bones.values()])
    return Union([(Offset(anatomy.body, -slimming), 0.0), (Offset(cover, MIN_COVER_MM), 0.0)])
