"""Name the separated bone bodies of a knee CT: femur, tibia, fibula, patella.

Orientation-free: everything is measured along the principal axes of the bone mass, so
either knee side and any reasonable scanner orientation work.
- limb axis u = first principal axis of all bone voxels (the knee is long);
- femur and tibia = the two largest bodies, lying on either side of a joint gap along u;
- fibula = a long thin body (elongation >= 2.2, axis within 35 degrees of u) beside one of
  them -> that one is the tibia; patella = a small compact body at the level of the
  other -> that one is the femur. The two votes must agree when both are present;
  with neither, the patient head direction (LPS +z) breaks the tie and says so;
- side: lateral = the fibula's side, anterior = the patella's side; with
  proximal p and anterior a, patient left is p x a (LPS), so a fibula on the left of the
  tibia means a left knee.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reconstruction.segmentation.errors import NotAKneeError

MIN_MAJOR_MM3 = 10_000.0  # femur and tibia in even a tight knee field of view
MAX_AXIAL_OVERLAP = 0.25  # of the shorter bone's extent along the limb axis
FIBULA_MIN_ELONGATION = 2.2
FIBULA_MAX_ANGLE_DEG = 35.0
PATELLA_MAX_ELONGATION = 2.2
PATELLA_VOLUME_MM3 = (2_000.0, 80_000.0)
SAMPLE_POINTS = 20_000


@dataclass
class BodyShape:
    """Shape summary of one bone body in patient mm."""

    volume_mm3: float
    centroid: np.ndarray
    axes: np.ndarray  # 3x3, rows = principal directions, largest variance first
    sd: np.ndarray  # standard deviation along each principal direction
    points: np.ndarray  # a random sample of voxel centres

    @property
    def elongation(self) -> float:
        return float(self.sd[0] / max(self.sd[1], 1e-6))


@dataclass
class Identification:
    names: dict[str, int]  # bone name -> index into the list of bodies
    side: str | None  # "L", "R", or None when fibula or patella is missing
    limb_axis: np.ndarray  # unit vector, distal -> proximal (patient mm)
    notes: list[str] = field(default_factory=list)


def body_shape(points: np.ndarray, volume_mm3: float) -> BodyShape:
    centroid = points.mean(axis=0)
    centred = points - centroid
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred / len(points))
    order = np.argsort(eigenvalues)[::-1]
    sd = np.sqrt(np.maximum(eigenvalues[order], 0.0))
    return BodyShape(volume_mm3, centroid, vectors[:, order].T, sd, points)


def identify(bodies: list[BodyShape]) -> Identification:
    """Map femur/tibia/fibula/patella to bodies, or raise NotAKneeError saying why not."""
    if not bodies:
        raise NotAKneeError("no bone found in the volume")
    order = sorted(range(len(bodies)), key=lambda i: bodies[i].volume_mm3, reverse=True)
    major = [i for i in order if bodies[i].volume_mm3 >= MIN_MAJOR_MM3]
    if len(major) < 2:
        raise NotAKneeError(
            f"found {len(major)} bone(s) of at least {MIN_MAJOR_MM3 / 1000:g} cm3; "
            "a knee CT shows a femur and a tibia"
        )
    a, b = major[:2]
    axis = _limb_axis(bodies)
    _require_joint_gap(bodies[a], bodies[b], axis)
    rest = [i for i in order if i not in (a, b)]
    fibula = _best(rest, bodies, lambda s: _fibula_like(s, axis))
    patella = _best(rest, bodies, lambda s: _patella_like(s))
    femur, tibia, notes = _femur_and_tibia(bodies, a, b, fibula, patella, axis)
    # proximal = towards the femur
    if np.dot(bodies[femur].centroid - bodies[tibia].centroid, axis) < 0:
        axis = -axis
    names = {"femur": femur, "tibia": tibia}
    if fibula is not None and _beside(bodies[fibula], bodies[tibia], axis):
        names["fibula"] = fibula
    else:
        notes.append("no fibula found beside the tibia")
    if patella is not None and patella != names.get("fibula"):
        names["patella"] = patella
    else:
        notes.append("no patella found")
    side = _side(bodies, names, axis)
    return Identification(names, side, axis, notes)


def _limb_axis(bodies: list[BodyShape]) -> np.ndarray:
    """First principal axis of all bone voxels, each body weighted by its volume."""
    total = sum(b.volume_mm3 for b in bodies)
    samples = []
    for body in bodies:
        count = max(10, int(SAMPLE_POINTS * body.volume_mm3 / total))
        samples.append(body.points[:count])
    return body_shape(np.concatenate(samples), total).axes[0]


def _extent(shape: BodyShape, axis: np.ndarray) -> tuple[float, float]:
    projection = shape.points @ axis
    return float(np.percentile(projection, 1)), float(np.percentile(projection, 99))


def _require_joint_gap(first: BodyShape, second: BodyShape, axis: np.ndarray) -> None:
    lo1, hi1 = _extent(first, axis)
    lo2, hi2 = _extent(second, axis)
    overlap = max(0.0, min(hi1, hi2) - max(lo1, lo2))
    shorter = min(hi1 - lo1, hi2 - lo2)
    if overlap > MAX_AXIAL_OVERLAP * shorter:
        raise NotAKneeError(
            "the two largest bones lie side by side along the long axis "
            f"({overlap:.0f} mm overlap), not end to end across a joint: not a knee"
        )


def _fibula_like(shape: BodyShape, axis: np.ndarray) -> bool:
    angle = np.degrees(np.arccos(min(1.0, abs(float(np.dot(shape.axes[0], axis))))))
    return shape.elongation >= FIBULA_MIN_ELONGATION and angle <= FIBULA_MAX_ANGLE_DEG


def _patella_like(shape: BodyShape) -> bool:
    low, high = PATELLA_VOLUME_MM3
    return shape.elongation < PATELLA_MAX_ELONGATION and low <= shape.volume_mm3 <= high


def _best(candidates: list[int], bodies: list[BodyShape], accept) -> int | None:
    """The largest body passing `accept` (candidates are sorted by volume)."""
    for index in candidates:
        if accept(bodies[index]):
            return index
    return None


def _axial_distance(shape: BodyShape, other: BodyShape, axis: np.ndarray) -> float:
    """Distance along the axis from `shape`'s centroid to `other`'s extent (0 if inside)."""
    lo, hi = _extent(other, axis)
    level = float(shape.centroid @ axis)
    return max(lo - level, 0.0, level - hi)


def _femur_and_tibia(
    bodies: list[BodyShape],
    a: int,
    b: int,
    fibula: int | None,
    patella: int | None,
    axis: np.ndarray,
) -> tuple[int, int, list[str]]:
    votes = []  # each vote: the index believed to be the tibia
    if fibula is not None:
        near_a = _axial_distance(bodies[fibula], bodies[a], axis)
        near_b = _axial_distance(bodies[fibula], bodies[b], axis)
        if near_a != near_b:
            votes.append(a if near_a < near_b else b)
    if patella is not None:
        gap_a = abs(float((bodies[patella].centroid - bodies[a].centroid) @ axis))
        gap_b = abs(float((bodies[patella].centroid - bodies[b].centroid) @ axis))
        # the patella sits at the femur's level: the other big bone is the tibia
        votes.append(b if gap_a < gap_b else a)
    if votes and all(v == votes[0] for v in votes):
        tibia = votes[0]
        return (b if tibia == a else a), tibia, []
    if len(votes) > 1:
        raise NotAKneeError(
            "the fibula and the patella point to different bones as the femur: "
            "the anatomy is not that of a knee"
        )
    # Neither cue: fall back on the scanner's head direction (LPS +z).
    head = np.array([0.0, 0.0, 1.0])
    higher_a = float((bodies[a].centroid - bodies[b].centroid) @ head) > 0
    femur, tibia = (a, b) if higher_a else (b, a)
    return femur, tibia, ["neither fibula nor patella found: femur taken as the upper bone"]


def _beside(fibula: BodyShape, tibia: BodyShape, axis: np.ndarray) -> bool:
    return _axial_distance(fibula, tibia, axis) < 20.0


def _side(bodies: list[BodyShape], names: dict[str, int], proximal: np.ndarray) -> str | None:
    if "fibula" not in names or "patella" not in names:
        return None
    anterior = _across(
        bodies[names["patella"]].centroid - bodies[names["femur"]].centroid, proximal
    )
    lateral = _across(bodies[names["fibula"]].centroid - bodies[names["tibia"]].centroid, proximal)
    patient_left = np.cross(proximal, anterior)
    return "L" if float(np.dot(lateral, patient_left)) > 0 else "R"


def _across(vector: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Component of `vector` perpendicular to `axis`."""
    return vector - np.dot(vector, axis) * axis
