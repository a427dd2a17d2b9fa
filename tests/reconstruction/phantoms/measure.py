"""Independent measurement of phantom anatomy from mesh vertices (no generator internals).

Only the recorded rigid poses (bone frame -> patient) are used, to define each bone's
frontal plane; every landmark, axis and joint line is re-derived from the surface.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import ConvexHull


def to_frame(
    mesh: trimesh.Trimesh, patient_from_frame: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and unit normals expressed in a bone frame (undoing any left-side mirroring)."""
    inverse = np.linalg.inv(np.asarray(patient_from_frame))
    vertices = mesh.vertices @ inverse[:3, :3].T + inverse[:3, 3]
    normals = mesh.vertex_normals @ inverse[:3, :3].T
    return vertices, normals / np.linalg.norm(normals, axis=1, keepdims=True)


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Algebraic least-squares sphere."""
    a = np.c_[2 * points, np.ones(len(points))]
    b = np.sum(points**2, axis=1)
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def femoral_head(vertices: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, float]:
    """Sphere fit to the head: start at the most proximal vertex, keep radially-facing points."""
    top = vertices[np.argmax(vertices[:, 2])]
    centre, radius = top - np.array([0.0, 0.0, 20.0]), 20.0
    for _ in range(10):
        offset = vertices - centre
        dist = np.linalg.norm(offset, axis=1)
        radial = np.einsum("ij,ij->i", offset / dist[:, None], normals)
        keep = (dist < 1.3 * radius) & (radial > 0.995)
        centre, radius = fit_sphere(vertices[keep])
    return centre, radius


def lower_bitangent(points_xz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower supporting line of a 2D point set that spans x = 0 (the intercondylar notch).

    Returns the two contact points (lateral x < 0, medial x > 0) of the convex-hull edge.
    """
    hull = ConvexHull(points_xz)
    for a, b in hull.simplices:
        pa, pb = points_xz[a], points_xz[b]
        if (pa[0] < 0) == (pb[0] < 0):
            continue
        edge = pb - pa
        normal = np.array([-edge[1], edge[0]])
        if normal[1] > 0:
            normal = -normal
        # lower edge: every other point lies above the line
        if np.all((points_xz - pa) @ normal <= 1e-6):
            lateral, medial = (pa, pb) if pa[0] < 0 else (pb, pa)
            return lateral, medial
    raise AssertionError("no lower hull edge spans the notch")


def signed_angle_2d(u: np.ndarray, v: np.ndarray) -> float:
    """Angle from u to v (degrees, counter-clockwise positive) of 2D vectors."""
    return float(np.degrees(np.arctan2(u[0] * v[1] - u[1] * v[0], u @ v)))


def angle_2d(u: np.ndarray, v: np.ndarray) -> float:
    return abs(signed_angle_2d(u, v))


def measure_femur(vertices: np.ndarray, normals: np.ndarray) -> dict[str, object]:
    hip, head_radius = femoral_head(vertices, normals)
    distal = vertices[vertices[:, 2] < 60.0]
    lateral, medial = lower_bitangent(distal[:, [0, 2]])
    knee_xz = 0.5 * (lateral + medial)
    mech = np.array([hip[0], hip[2]]) - knee_xz  # knee -> hip, frontal plane (x, z)
    ldfa = angle_2d(mech, lateral - medial)
    lower = vertices[vertices[:, 2] < 90.0]
    return {
        "hip_centre": hip,
        "head_diameter": 2 * head_radius,
        "knee_xz": knee_xz,
        "femur_length": float(np.linalg.norm(mech)),
        "ldfa": ldfa,
        "bicondylar_width": float(lower[:, 0].max() - lower[:, 0].min()),
        "joint_line_xz": medial - lateral,
        "mech_axis_xz": mech,
    }


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centroid = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centroid)
    normal = vt[2] if vt[2][2] > 0 else -vt[2]
    return centroid, normal


def measure_tibia(vertices: np.ndarray, normals: np.ndarray) -> dict[str, object]:
    top_z = vertices[:, 2].max()
    upper = vertices[vertices[:, 2] > top_z - 40.0]
    width = float(upper[:, 0].max() - upper[:, 0].min())
    centre_x = 0.5 * (upper[:, 0].max() + upper[:, 0].min())
    # plateau facets: up-facing, away from the spines and the rim
    facet = (
        (normals[:, 2] > 0.97)
        & (vertices[:, 2] > top_z - 20.0)
        & (np.abs(vertices[:, 0] - centre_x) > 0.15 * width)
        & (np.abs(vertices[:, 0] - centre_x) < 0.4 * width)
    )
    centroid, plane_n = fit_plane(vertices[facet])
    depth_pts = vertices[np.abs(vertices[:, 2] - (centroid[2] - 0.14 * width)) < 0.5]
    depth = float(depth_pts[:, 1].max() - depth_pts[:, 1].min())
    centre_y = 0.5 * (depth_pts[:, 1].max() + depth_pts[:, 1].min())
    # knee centre: plateau-plane point above the centre of the ML / AP extents
    cz = (
        centroid[2]
        - (plane_n[0] * (centre_x - centroid[0]) + plane_n[1] * (centre_y - centroid[1]))
        / plane_n[2]
    )
    knee = np.array([centre_x, centre_y, cz])
    # ankle centre: the flat plafond (down-facing), excluding the malleolar tip
    down = normals[:, 2] < -0.995
    low = vertices[down]
    plafond = low[low[:, 2] > vertices[:, 2].min() + 5.0]
    plafond = plafond[plafond[:, 2] < np.median(plafond[:, 2]) + 0.5]
    ankle = plafond.mean(axis=0)
    frontal_line = np.cross(plane_n, [0.0, 1.0, 0.0])  # plateau plane within the frontal plane
    if frontal_line[0] < 0:
        frontal_line = -frontal_line
    axis_down = np.array([ankle[0] - knee[0], ankle[2] - knee[2]])
    mpta = angle_2d(axis_down, frontal_line[[0, 2]])
    slope = float(np.degrees(np.arctan2(plane_n[1], plane_n[2])))
    return {
        "knee": knee,
        "ankle": ankle,
        "tibia_length": float(np.linalg.norm(knee - ankle)),
        "plateau_width": width,
        "plateau_depth": depth,
        "mpta": mpta,
        "posterior_slope": slope,
        "plateau_normal": plane_n,
        "joint_line": frontal_line,
    }
