"""Loading meshes (STL, PLY, OBJ, GLB; coordinates in mm) and the input checks.

Checks refuse, with a clear :class:`SurfaceMetricError`, what would otherwise come out as a
plausible-looking number: empty or degenerate meshes, open meshes where a closed one is
needed, and unit mismatches (a mesh in metres next to one in millimetres).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from .errors import (
    DegenerateMeshError,
    EmptyMeshError,
    MeshFileError,
    NotWatertightError,
    UnitMismatchError,
)

MESH_SUFFIXES = (".stl", ".ply", ".obj", ".glb")
# A knee bone (or its crop) in millimetres: bounding-box diagonal between a few mm (a small
# fragment of a patella) and 2 m (a whole leg). A femur in metres has a diagonal of ~0.5.
MIN_DIAGONAL_MM = 5.0
MAX_DIAGONAL_MM = 2000.0
MAX_DIAGONAL_RATIO = 100.0


def load_mesh(source: trimesh.Trimesh | str | Path, name: str = "mesh") -> trimesh.Trimesh:
    """A triangle mesh from a Trimesh or a file path; scenes (GLB) are flattened."""
    if isinstance(source, trimesh.Trimesh):
        return source
    if not isinstance(source, str | Path):
        raise MeshFileError(
            f"{name}: expected a trimesh.Trimesh or a file path, got {type(source).__name__}"
        )
    path = Path(source)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise MeshFileError(f"{name}: {path} is not a mesh file ({', '.join(MESH_SUFFIXES)})")
    if not path.is_file():
        raise MeshFileError(f"{name}: no such file {path}")
    try:
        loaded = trimesh.load(path, process=False, force=None)
    except Exception as exc:  # the loaders raise anything from ValueError to struct.error
        raise MeshFileError(f"{name}: cannot read {path}: {exc}") from exc
    if isinstance(loaded, trimesh.Scene):
        geometries = (
            [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)] if loaded.geometry else []
        )
        if not geometries:
            raise EmptyMeshError(f"{name}: {path} contains no triangle mesh")
        loaded = trimesh.util.concatenate(geometries)
    if not isinstance(loaded, trimesh.Trimesh):
        raise MeshFileError(f"{name}: {path} holds a {type(loaded).__name__}, not a triangle mesh")
    return loaded


def check_mesh(mesh: trimesh.Trimesh, name: str = "mesh") -> trimesh.Trimesh:
    """Refuse empty or degenerate meshes (returns the mesh unchanged).

    Zero-area faces are allowed: they carry no sampling weight, and a closest point on one
    is also on a neighbour.
    """
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    if len(faces) == 0 or len(vertices) == 0:
        raise EmptyMeshError(f"{name} is empty (no faces)")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise DegenerateMeshError(f"{name} is not a triangle mesh (faces of shape {faces.shape})")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise DegenerateMeshError(f"{name} has face indices outside its {len(vertices)} vertices")
    if not np.all(np.isfinite(vertices)):
        raise DegenerateMeshError(f"{name} has non-finite (NaN or infinite) vertex coordinates")
    area = float(mesh.area)
    if not area > 0:
        raise DegenerateMeshError(
            f"{name} has zero surface area (all {len(faces)} faces are degenerate)"
        )
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.ravel()] = True
    extent = np.ptp(vertices[used], axis=0)
    if np.count_nonzero(extent > 1e-9 * max(float(extent.max()), 1e-300)) < 3:
        raise DegenerateMeshError(
            f"{name} is flat (bounding box {np.round(extent, 6).tolist()}): not a bone surface"
        )
    return mesh


def check_units(reference: trimesh.Trimesh, result: trimesh.Trimesh) -> None:
    """Both meshes must be plausible bone sizes in mm and of comparable size."""
    diagonals = {}
    for name, mesh in (("reference", reference), ("result", result)):
        diagonal = float(np.linalg.norm(np.ptp(np.asarray(mesh.vertices), axis=0)))
        if not MIN_DIAGONAL_MM <= diagonal <= MAX_DIAGONAL_MM:
            hint = "metres?" if diagonal < MIN_DIAGONAL_MM else "micrometres?"
            raise UnitMismatchError(
                f"the {name} mesh spans {diagonal:.4g} units (bounding-box diagonal), which cannot be "
                f"a bone in millimetres ({MIN_DIAGONAL_MM:g}..{MAX_DIAGONAL_MM:g} mm; {hint})"
            )
        diagonals[name] = diagonal
    ratio = max(diagonals.values()) / min(diagonals.values())
    if ratio > MAX_DIAGONAL_RATIO:
        raise UnitMismatchError(
            f"the meshes differ in size by a factor {ratio:.0f} (bounding-box diagonals "
            f"{diagonals['reference']:.4g} and {diagonals['result']:.4g}): not in the same unit"
        )


def _every_edge_twice(faces: np.ndarray, n_vertices: int) -> bool:
    a = faces.ravel()
    b = faces[:, [1, 2, 0]].ravel()
    keys = np.sort(np.minimum(a, b).astype(np.int64) * n_vertices + np.maximum(a, b))
    # closed 2-manifold edges: each key exactly twice, i.e. pairs of equal neighbours
    return (
        len(keys) % 2 == 0
        and bool(np.all(keys[0::2] == keys[1::2]))
        and bool(np.all(keys[2::2] != keys[1:-1:2]))
    )


def require_watertight(mesh: trimesh.Trimesh, name: str, needed_for: str) -> None:
    """Closed surface (every edge shared by exactly two faces), or a clear error naming the
    metric that needs it. Face orientation does not matter: inside tests use ray parity.

    A triangle soup (STL: every triangle with its own three vertices) is judged after
    merging identical vertices; the measurement itself does not need merged vertices.
    """
    faces = np.asarray(mesh.faces, dtype=np.int64)
    vertices = np.asarray(mesh.vertices)
    if _every_edge_twice(faces, len(vertices)):
        return
    _, inverse = np.unique(vertices, axis=0, return_inverse=True)
    if not _every_edge_twice(inverse.reshape(-1)[faces], len(vertices)):
        raise NotWatertightError(
            f"{name} is not watertight (it has boundary or non-manifold edges), which {needed_for} "
            "needs; repair it or switch that metric off"
        )
