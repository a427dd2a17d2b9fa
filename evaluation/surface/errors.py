"""Errors of the surface-metrics module: each message names the problem for a person.

Every error is a :class:`SurfaceMetricError`, itself a :class:`ValueError`, so a caller
can refuse bad input with one ``except`` and the CLI can print one clear line.
"""


class SurfaceMetricError(ValueError):
    """Base class: the meshes cannot be measured as given."""


class MeshFileError(SurfaceMetricError):
    """A mesh file is missing, unreadable or not a triangle mesh."""


class EmptyMeshError(SurfaceMetricError):
    """A mesh has no faces, no area, or nothing of it lies inside the region of interest."""


class DegenerateMeshError(SurfaceMetricError):
    """A mesh has non-finite coordinates, bad face indices or no usable (non-zero area) faces."""


class NotWatertightError(SurfaceMetricError):
    """A metric that needs a closed surface (volume Dice/IoU, signed distance) got an open one."""


class UnitMismatchError(SurfaceMetricError):
    """The two meshes are not in the same unit, or a mesh cannot be a bone in millimetres."""


class ParameterError(SurfaceMetricError):
    """A measurement parameter (density, tolerance, grid, region of interest...) is out of range."""
