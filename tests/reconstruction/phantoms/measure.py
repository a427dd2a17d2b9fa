"""Independent measurement of phantom anatomy from mesh vertices (no generator internals).

Only the recorded rigid poses (bone frame -> patient) are used, to define each bone's
frontal plane; every landmark, axis and joint line is re-derived from the surface (vertex
sets, sphere/plane/line fits, convex hulls, area centroids of planar cross-sections).
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, cKDTree


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


# ---------------------------------------------------------------- cross-sections


def mesh_in_frame(mesh: trimesh.Trimesh, patient_from_frame: np.ndarray) -> trimesh.Trimesh:
    """A copy of the mesh in a bone frame (trimesh re-winds faces when undoing a mirror)."""
    moved = mesh.copy()
    moved.apply_transform(np.linalg.inv(np.asarray(patient_from_frame)))
    return moved


def section_loops(
    mesh: trimesh.Trimesh, origin: np.ndarray, normal: np.ndarray
) -> list[tuple[np.ndarray, float]]:
    """Area-weighted centroid and area of every closed loop of a planar cross-section."""
    normal = np.asarray(normal, dtype=float) / np.linalg.norm(normal)
    lines, faces = trimesh.intersections.mesh_plane(mesh, normal, origin, return_faces=True)
    start, end = lines[:, 0], lines[:, 1]
    # orient every segment counter-clockwise about `normal`: the outward face normal on its right
    flip = np.einsum("ij,ij->i", np.cross(end - start, normal), mesh.face_normals[faces]) < 0
    start, end = np.where(flip[:, None], end, start), np.where(flip[:, None], start, end)
    # loops: segments sharing an end point (adjacent faces cut the same edge)
    count = len(start)
    pairs = cKDTree(np.r_[start, end]).query_pairs(1e-6, output_type="ndarray") % count
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(count, count))
    _, loop_of = connected_components(graph, directed=False)
    loops = []
    for loop in np.unique(loop_of):
        a, b = start[loop_of == loop], end[loop_of == loop]
        fan = a.mean(axis=0)  # triangle fan from an in-plane point: signed areas sum exactly
        areas = 0.5 * np.cross(a - fan, b - fan) @ normal
        centroids = (fan + a + b) / 3.0
        loops.append((areas @ centroids / areas.sum(), float(areas.sum())))
    return loops


def section_at(
    mesh: trimesh.Trimesh, origin: np.ndarray, normal: np.ndarray
) -> tuple[np.ndarray, float]:
    """Centroid and area of the cross-section loop around `origin` (other loops ignored)."""
    loops = section_loops(mesh, origin, normal)
    return min(loops, key=lambda loop: float(np.linalg.norm(loop[0] - origin)))


def _hinge_minimum(z: np.ndarray, values: np.ndarray) -> float:
    """Breakpoint of the best continuous two-line (V) fit: the minimum of a kinked profile."""
    best_residual, best_z = np.inf, float(z[0])
    for knot in np.linspace(z[2], z[-3], 200):
        design = np.c_[np.ones_like(z), np.minimum(z - knot, 0.0), np.maximum(z - knot, 0.0)]
        coef, *_ = np.linalg.lstsq(design, values, rcond=None)
        residual = float(np.sum((design @ coef - values) ** 2))
        if residual < best_residual:
            best_residual, best_z = residual, float(knot)
    return best_z


# ---------------------------------------------------------------- proximal femur


def shaft_axis(mesh: trimesh.Trimesh, z_low: float, z_high: float) -> tuple[np.ndarray, float]:
    """Femoral shaft axis (femur frame, unit, pointing up) and the height of the isthmus.

    The phantom shaft bows anteriorly, symmetrically about its mid-length, where it is also
    narrowest; the chord from its distal end to the neck junction is therefore parallel to the
    centreline tangent at the isthmus. The ends themselves are buried in the metaphysis and the
    trochanters, so: fit the centreline (area centroids of horizontal sections, quadratic in z)
    between those blend zones, locate the isthmus as the kink of the area profile of sections
    perpendicular to that centreline, and take the tangent there. A straight line fit over
    the diaphysis instead would tilt by up to ~0.3 deg in the bow plane (and anteversion by
    ~0.75x that) depending on where the window sits.
    """
    heights = np.arange(z_low, z_high, 4.0)
    horizontal = [section_at(mesh, np.array([0.0, 0.0, z]), [0, 0, 1]) for z in heights]
    coef = np.polyfit(heights, np.array([centre[:2] for centre, _ in horizontal]), 2)

    def centreline(z: float) -> tuple[np.ndarray, np.ndarray]:
        tangent = np.r_[coef.T @ [2.0 * z, 1.0, 0.0], 1.0]
        return np.r_[coef.T @ [z * z, z, 1.0], z], tangent / np.linalg.norm(tangent)

    # coarse waist from the horizontal sections (biased by the varying tilt of the centreline),
    # then the exact area profile of perpendicular sections around it
    waist = heights[np.argmin([area for _, area in horizontal])]
    fine = np.arange(max(z_low, waist - 30.0), min(z_high, waist + 30.0), 1.5)
    areas = np.array([section_at(mesh, *centreline(z))[1] for z in fine])
    near = np.abs(fine - fine[np.argmin(areas)]) < 25.0
    isthmus = _hinge_minimum(fine[near], areas[near])
    return centreline(isthmus)[1], isthmus


def neck_axis(
    mesh: trimesh.Trimesh, hip: np.ndarray, head_radius: float
) -> tuple[np.ndarray, float]:
    """Femoral neck direction (unit, neck -> head) and how far its line misses the head centre.

    Line fit through area centroids of sections perpendicular to the neck, 1.0-1.5 head radii
    from the head centre: clear of the head-neck fillet and of the trochanteric/shaft blend.
    """
    reach = np.linalg.norm(mesh.vertices - hip, axis=1)
    collar = mesh.vertices[(reach > 1.1 * head_radius) & (reach < 1.5 * head_radius)]
    outward = collar.mean(axis=0) - hip  # rough: the neck is the only bone leaving the head
    outward /= np.linalg.norm(outward)
    for _ in range(3):
        steps = np.linspace(1.0, 1.5, 6) * head_radius
        centres = np.array([section_at(mesh, hip + s * outward, outward)[0] for s in steps])
        mean = centres.mean(axis=0)
        direction = np.linalg.svd(centres - mean)[2][0]
        outward = direction if direction @ outward > 0 else -direction
    miss = float(np.linalg.norm(np.cross(hip - mean, outward)))
    return -outward, miss


def measure_proximal_femur(
    mesh: trimesh.Trimesh, hip: np.ndarray, head_radius: float, bicondylar_width: float
) -> dict[str, object]:
    """3D neck-shaft angle and anteversion of a femur mesh given in its own frame.

    Anteversion: the neck rotated anteriorly out of the plane of the shaft axis and the frame's
    medial (x) axis, measured in the plane perpendicular to the shaft axis.
    """
    # diaphysis: above the metaphyseal flare, below the lesser trochanter
    u, isthmus = shaft_axis(mesh, 1.4 * bicondylar_width, hip[2] - 3.8 * head_radius)
    n, miss = neck_axis(mesh, hip, head_radius)
    medial = np.array([1.0, 0.0, 0.0]) - u[0] * u
    medial /= np.linalg.norm(medial)
    anterior = np.cross(medial, u)  # -y for a vertical shaft
    return {
        "shaft_axis": u,
        "isthmus_z": isthmus,
        "neck_axis": n,
        "neck_misses_head_by": miss,
        "neck_shaft_angle": float(np.degrees(np.arccos(np.clip(-(u @ n), -1.0, 1.0)))),
        "femoral_anteversion": float(np.degrees(np.arctan2(n @ anterior, n @ medial))),
    }


# ---------------------------------------------------------------- limb rotation, patella


def condylar_rotation(patient_vertices: np.ndarray, side: str) -> float:
    """External rotation (deg) of the posterior condylar line in the patient axial plane.

    Femur in patient coordinates (the femur is never flexed): the posterior bitangent of the
    distal femur seen from above is the longest convex-hull edge facing posteriorly (+y); it
    spans the intercondylar notch. External rotation turns its medial end anteriorly (-y).
    """
    points = np.array(patient_vertices, dtype=float)
    if side == "L":
        points[:, 0] = -points[:, 0]  # x = medial, as for a right limb
    distal = points[points[:, 2] < points[:, 2].min() + 45.0][:, :2]
    hull = ConvexHull(distal)
    posterior = hull.equations[:, 1] > np.cos(np.radians(30.0))  # outward normal ~ +y
    edges = distal[hull.simplices[posterior]]
    a, b = max(edges, key=lambda edge: float(np.linalg.norm(edge[1] - edge[0])))
    line = b - a if b[0] > a[0] else a - b  # towards medial
    return float(-np.degrees(np.arctan2(line[1], line[0])))


def principal_axes(mesh: trimesh.Trimesh) -> np.ndarray:
    """Unit principal axes of a closed mesh's volume (columns), smallest extent first."""
    inertia = mesh.moment_inertia  # about the centre of mass
    second_moment = 0.5 * np.trace(inertia) * np.eye(3) - inertia  # integral of r r^T
    return np.linalg.eigh(second_moment)[1]
