"""Cone-beam geometry of one X-ray view and its 3x4 projection matrix.

Conventions (patient coordinates are the CT's affine space: LPS millimetres):
- The gantry rotates about the patient's long axis (LPS z, superior) through the
  isocentre. At angle 0 the source is anterior (-y) of the isocentre and the detector
  posterior: an AP view. At +90 degrees the source is on the patient's left (+x): a
  lateral view. Angle theta puts the source at iso + SID * (sin t, -cos t, 0).
- Detector axes: column index u grows along e_u = (cos t, sin t, 0) (patient right to
  left on the AP view, i.e. the usual radiograph display seen from the source side),
  row index v grows along e_v = (0, 0, -1) (superior at the top of the image).
- Pixel centres sit at integer (u, v); the principal ray (source -> isocentre) hits the
  detector at ((W - 1) / 2, (H - 1) / 2). Images are stored as array[v, u] (rows, columns).
- P = K [R | -R s] with R rows (e_u, e_v, n), n the unit beam direction, and
  K = [[SDD/du, 0, cu], [0, SDD/dv, cv], [0, 0, 1]], so [u w, v w, w] = P [x, y, z, 1]
  and w is the depth of the point along the beam, in mm from the source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from reconstruction.errors import GeometryError

DEFAULT_SOURCE_ISOCENTRE_MM = 1000.0
DEFAULT_SOURCE_DETECTOR_MM = 2000.0
DEFAULT_DETECTOR_PX = 512
DEFAULT_PIXEL_SPACING_MM = 0.575
MIN_SEPARATION_DEG = 30.0
MAX_SEPARATION_DEG = 90.0
# Tolerances when checking a stated projection matrix against its stated geometry.
REPROJECTION_TOLERANCE_PX = 0.1  # max pixel disagreement over a +-100 mm cube at the isocentre
SOURCE_DISTANCE_TOLERANCE_MM = 0.5  # |source - isocentre| versus the stated SID
SEPARATION_TOLERANCE_DEG = 1e-6


@dataclass(frozen=True)
class ViewGeometry:
    angle_deg: float
    isocentre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    source_isocentre_mm: float = DEFAULT_SOURCE_ISOCENTRE_MM
    source_detector_mm: float = DEFAULT_SOURCE_DETECTOR_MM
    detector_size_px: tuple[int, int] = (DEFAULT_DETECTOR_PX, DEFAULT_DETECTOR_PX)  # (W, H)
    pixel_spacing_mm: tuple[float, float] = (DEFAULT_PIXEL_SPACING_MM,) * 2  # (du, dv)
    name: str = field(default="view", compare=False)

    def __post_init__(self) -> None:
        if not (0 < self.source_isocentre_mm < self.source_detector_mm):
            raise GeometryError(
                f"{self.name}: need 0 < source-isocentre ({self.source_isocentre_mm} mm) "
                f"< source-detector ({self.source_detector_mm} mm)"
            )
        if min(self.detector_size_px) < 1 or len(self.detector_size_px) != 2:
            raise GeometryError(f"{self.name}: bad detector size {self.detector_size_px}")
        if min(self.pixel_spacing_mm) <= 0 or len(self.pixel_spacing_mm) != 2:
            raise GeometryError(f"{self.name}: bad pixel spacing {self.pixel_spacing_mm}")
        values = (self.angle_deg, *self.isocentre_mm, *self.pixel_spacing_mm)
        if not np.all(np.isfinite(values)):
            raise GeometryError(f"{self.name}: geometry values must be finite")

    # ------------------------------------------------------------------ frame
    @property
    def beam_direction(self) -> np.ndarray:
        """Unit vector from the source towards the isocentre."""
        theta = np.deg2rad(self.angle_deg)
        return np.array([-np.sin(theta), np.cos(theta), 0.0])

    @property
    def u_axis(self) -> np.ndarray:
        theta = np.deg2rad(self.angle_deg)
        return np.array([np.cos(theta), np.sin(theta), 0.0])

    @property
    def v_axis(self) -> np.ndarray:
        return np.array([0.0, 0.0, -1.0])

    @property
    def source_position(self) -> np.ndarray:
        return np.asarray(self.isocentre_mm) - self.source_isocentre_mm * self.beam_direction

    @property
    def detector_centre(self) -> np.ndarray:
        return self.source_position + self.source_detector_mm * self.beam_direction

    @property
    def principal_point(self) -> tuple[float, float]:
        width, height = self.detector_size_px
        return (width - 1) / 2.0, (height - 1) / 2.0

    # ------------------------------------------------------------------ mapping
    def projection_matrix(self) -> np.ndarray:
        du, dv = self.pixel_spacing_mm
        cu, cv = self.principal_point
        intrinsics = np.array(
            [
                [self.source_detector_mm / du, 0.0, cu],
                [0.0, self.source_detector_mm / dv, cv],
                [0, 0, 1],
            ]
        )
        rotation = np.stack([self.u_axis, self.v_axis, self.beam_direction])
        extrinsics = np.hstack([rotation, -(rotation @ self.source_position)[:, None]])
        return intrinsics @ extrinsics

    def pixel_positions(self) -> np.ndarray:
        """Patient-mm centres of all detector pixels, shape (H, W, 3), row-major like the image."""
        width, height = self.detector_size_px
        du, dv = self.pixel_spacing_mm
        cu, cv = self.principal_point
        offset_u = (np.arange(width) - cu) * du
        offset_v = (np.arange(height) - cv) * dv
        return (
            self.detector_centre[None, None, :]
            + offset_v[:, None, None] * self.v_axis[None, None, :]
            + offset_u[None, :, None] * self.u_axis[None, None, :]
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("name")
        data["projection_matrix"] = self.projection_matrix().tolist()
        data["source_position_mm"] = self.source_position.tolist()
        data["detector_u_axis"] = self.u_axis.tolist()
        data["detector_v_axis"] = self.v_axis.tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict, name: str = "view") -> ViewGeometry:
        try:
            return cls(
                angle_deg=float(data["angle_deg"]),
                isocentre_mm=tuple(float(x) for x in data["isocentre_mm"]),  # type: ignore[arg-type]
                source_isocentre_mm=float(data["source_isocentre_mm"]),
                source_detector_mm=float(data["source_detector_mm"]),
                detector_size_px=tuple(int(x) for x in data["detector_size_px"]),  # type: ignore[arg-type]
                pixel_spacing_mm=tuple(float(x) for x in data["pixel_spacing_mm"]),  # type: ignore[arg-type]
                name=name,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GeometryError(f"{name}: incomplete or malformed geometry ({exc!r})") from exc


def project_points(matrix: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    """Apply a 3x4 projection matrix to (N, 3) patient points -> (N, 2) pixel (u, v)."""
    points = np.atleast_2d(np.asarray(points_mm, dtype=float))
    homogeneous = np.hstack([points, np.ones((len(points), 1))]) @ np.asarray(matrix).T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def separation_deg(first: ViewGeometry, second: ViewGeometry) -> float:
    difference = abs(first.angle_deg - second.angle_deg) % 360.0
    return min(difference, 360.0 - difference)


def check_separation(separation: float) -> None:
    low, high = (
        MIN_SEPARATION_DEG - SEPARATION_TOLERANCE_DEG,
        MAX_SEPARATION_DEG + SEPARATION_TOLERANCE_DEG,
    )
    if not (low <= separation <= high):
        raise GeometryError(
            f"view separation {separation:g} degrees is outside the supported "
            f"{MIN_SEPARATION_DEG:g}-{MAX_SEPARATION_DEG:g} degree range"
        )


def make_view_pair(
    separation: float = 90.0,
    *,
    first_angle_deg: float = 0.0,
    isocentre_mm: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
    source_isocentre_mm: float = DEFAULT_SOURCE_ISOCENTRE_MM,
    source_detector_mm: float = DEFAULT_SOURCE_DETECTOR_MM,
    detector_px: int | tuple[int, int] = DEFAULT_DETECTOR_PX,
    pixel_spacing_mm: float | tuple[float, float] = DEFAULT_PIXEL_SPACING_MM,
) -> tuple[ViewGeometry, ViewGeometry]:
    """Two views `separation` degrees apart (default AP + lateral)."""
    check_separation(float(separation))
    size = (detector_px, detector_px) if isinstance(detector_px, int) else tuple(detector_px)
    spacing = (
        (pixel_spacing_mm, pixel_spacing_mm)
        if isinstance(pixel_spacing_mm, (int, float))
        else tuple(pixel_spacing_mm)
    )
    common = {
        "isocentre_mm": tuple(float(x) for x in isocentre_mm),
        "source_isocentre_mm": float(source_isocentre_mm),
        "source_detector_mm": float(source_detector_mm),
        "detector_size_px": tuple(int(x) for x in size),
        "pixel_spacing_mm": tuple(float(x) for x in spacing),
    }
    first = ViewGeometry(angle_deg=float(first_angle_deg), name="view1", **common)  # type: ignore[arg-type]
    second = ViewGeometry(
        angle_deg=float(first_angle_deg + separation),
        name="view2",
        **common,  # type: ignore[arg-type]
    )
    return first, second


def camera_centre(matrix: np.ndarray) -> np.ndarray:
    """The source position: the null space of P (raises if P is not rank 3)."""
    matrix = np.asarray(matrix, dtype=float)
    singular = np.linalg.svd(matrix, compute_uv=False)
    if matrix.shape != (3, 4) or singular[-1] <= 1e-9 * singular[0]:
        raise GeometryError(f"projection matrix must be 3x4 of rank 3, got shape {matrix.shape}")
    return -np.linalg.solve(matrix[:, :3], matrix[:, 3])


def check_projection_matrix(matrix: np.ndarray, view: ViewGeometry) -> None:
    """Check a stated P against the stated geometry; specific GeometryError on mismatch.

    Tolerances: the source recovered from P lies within 0.5 mm of the stated
    source-isocentre distance, and P reprojects the corners of a +-100 mm cube
    around the isocentre within 0.1 pixel of the matrix recomputed from the geometry.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (3, 4) or not np.all(np.isfinite(matrix)):
        raise GeometryError(f"{view.name}: projection matrix must be a finite 3x4 array")
    source = camera_centre(matrix)
    distance = float(np.linalg.norm(source - np.asarray(view.isocentre_mm)))
    if abs(distance - view.source_isocentre_mm) > SOURCE_DISTANCE_TOLERANCE_MM:
        raise GeometryError(
            f"{view.name}: the projection matrix puts the source {distance:.2f} mm from the "
            f"isocentre, the geometry says {view.source_isocentre_mm:.2f} mm"
        )
    corners = np.asarray(view.isocentre_mm) + 100.0 * np.array(
        [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    )
    error = np.abs(
        project_points(matrix, corners) - project_points(view.projection_matrix(), corners)
    )
    if error.max() > REPROJECTION_TOLERANCE_PX:
        raise GeometryError(
            f"{view.name}: projection matrix disagrees with the stated distances, spacing, "
            f"size and angle by up to {error.max():.2f} pixel"
        )
