"""Mesh normalisation for blinded reading: both arms leave here looking alike.

A reader must not tell a CT-derived model from an X-ray-derived one by anything but the
anatomy it shows. Meshes from different pipelines differ in tell-tale ways: vertex
density, triangle shape, noise, smoothing, coordinate frame, file format and metadata.
`normalise_knee` removes them all the same way for every item:

1. Common frame: the four bones are moved together so that the centre of their joint
   bounding box is the origin (axes stay the patient axes both arms share).
2. Common density: each bone is re-sampled on a voxel grid of one fixed pitch (surface
   voxels, closed and filled), blurred with a fixed Gaussian and re-surfaced by marching
   cubes. The result depends on the shape only, not on the input triangles: the same
   edge length statistics, the same vertex density, the same loss of sub-pitch noise.
3. Common smoothing: a fixed number of Taubin iterations (volume preserving).

`blinded_glb` then writes one GLB with the four bones in a fixed order (femur, tibia,
fibula, patella), without names, materials, normals or generator string, positions
quantised to 16-bit integers on one fixed grid (KHR_mesh_quantization) so every file has
the same structure and precision.

No Django here: this is imaging code, tested on its own.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage import measure

BONE_ORDER: tuple[str, ...] = ("femur", "tibia", "fibula", "patella")
QUANT_STEP_MM = 0.02  # int16 * 0.02 mm covers +-655 mm around the knee centre


@dataclass(frozen=True)
class Normalisation:
    pitch_mm: float = 1.0
    blur_voxels: float = 1.0
    taubin_iterations: int = 10


DEFAULT = Normalisation()


def common_centre(meshes: Mapping[str, trimesh.Trimesh]) -> np.ndarray:
    bounds = np.array([mesh.bounds for mesh in meshes.values()])
    return (bounds[:, 0, :].min(axis=0) + bounds[:, 1, :].max(axis=0)) / 2.0


def normalise_knee(
    meshes: Mapping[str, trimesh.Trimesh], settings: Normalisation = DEFAULT
) -> dict[str, trimesh.Trimesh]:
    """The same frame, density and smoothing for every bone of every item."""
    centre = common_centre(meshes)
    result = {}
    for bone, mesh in meshes.items():
        moved = mesh.copy()
        moved.apply_translation(-centre)
        result[bone] = remesh(moved, settings)
    return result


def signed_distance_grid(mesh: trimesh.Trimesh, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (negative inside, clamped to 3 voxels) on a grid of the given pitch,
    and the world position of voxel (0, 0, 0). Depends on the surface, not its triangles."""
    # Dense surface samples (triangle centres after subdivision) with their normals.
    vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, pitch / 2)
    dense = trimesh.Trimesh(vertices, faces, process=False)
    samples, normals = dense.triangles_center, dense.face_normals
    margin = 4
    origin = np.floor(dense.bounds[0] / pitch) * pitch - margin * pitch
    shape = np.ceil((dense.bounds[1] - origin) / pitch).astype(int) + margin + 1
    # Inside/outside from the filled voxel shell (closed first so no gap lets the fill leak).
    shell = np.zeros(shape, dtype=bool)
    shell[tuple(np.round((samples - origin) / pitch).astype(int).T)] = True
    inside = ndimage.binary_fill_holes(ndimage.binary_dilation(shell, iterations=1))
    limit = 3.0 * pitch
    distance = np.where(inside, -limit, limit).astype(np.float32)
    # Exact-enough distances in a band around the surface: nearest sample, signed by its normal.
    band = ndimage.binary_dilation(shell, iterations=3)
    band_index = np.argwhere(band)
    points = band_index * pitch + origin
    nearest_distance, nearest = cKDTree(samples).query(points, workers=-1)
    side = np.einsum("ij,ij->i", points - samples[nearest], normals[nearest])
    distance[tuple(band_index.T)] = np.clip(np.sign(side) * nearest_distance, -limit, limit)
    return distance, origin


def remesh(mesh: trimesh.Trimesh, settings: Normalisation = DEFAULT) -> trimesh.Trimesh:
    distance, origin = signed_distance_grid(mesh, settings.pitch_mm)
    field = ndimage.gaussian_filter(distance, settings.blur_voxels)
    vertices, faces, _, _ = measure.marching_cubes(field, level=0.0)
    surface = trimesh.Trimesh(vertices * settings.pitch_mm + origin, faces, process=True)
    # Keep the largest piece: the blur can leave specks at thin spurs.
    pieces = surface.split(only_watertight=False)
    if len(pieces) > 1:
        surface = max(pieces, key=lambda piece: len(piece.faces))
    trimesh.smoothing.filter_taubin(surface, iterations=settings.taubin_iterations)
    if surface.volume < 0:
        surface.invert()
    return surface


# --- GLB ----------------------------------------------------------------------------------

_SHORT = 5122
_UNSIGNED_SHORT = 5123
_UNSIGNED_INT = 5125
_INDEX_TYPES = {_UNSIGNED_SHORT: "<u2", _UNSIGNED_INT: "<u4"}
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963


def _pad(data: bytes, filler: bytes = b"\x00") -> bytes:
    return data + filler * (-len(data) % 4)


def blinded_glb(meshes: Mapping[str, trimesh.Trimesh]) -> bytes:
    """One GLB, bones in BONE_ORDER, no names or metadata, quantised int16 positions."""
    missing = [bone for bone in BONE_ORDER if bone not in meshes]
    if missing:
        raise ValueError("missing bones: " + ", ".join(missing))
    binary = bytearray()
    views, accessors, gltf_meshes, nodes = [], [], [], []
    for bone in BONE_ORDER:
        mesh = meshes[bone]
        quantised = np.round(np.asarray(mesh.vertices) / QUANT_STEP_MM)
        if np.abs(quantised).max() > 32767:
            raise ValueError(f"{bone} extends beyond +-655 mm of the knee centre")
        positions = np.zeros((len(quantised), 4), dtype="<i2")
        positions[:, :3] = quantised
        # One fixed rule: 16-bit indices whenever they fit (every knee bone at this pitch).
        index_type = _UNSIGNED_SHORT if len(quantised) < 65536 else _UNSIGNED_INT
        indices = np.asarray(mesh.faces, dtype=_INDEX_TYPES[index_type]).ravel()
        for data, target in (
            (positions.tobytes(), _ARRAY_BUFFER),
            (indices.tobytes(), _ELEMENT_ARRAY_BUFFER),
        ):
            view = {
                "buffer": 0,
                "byteOffset": len(binary),
                "byteLength": len(data),
                "target": target,
            }
            if target == _ARRAY_BUFFER:
                view["byteStride"] = 8
            views.append(view)
            binary += _pad(data)
        accessors.append(
            {
                "bufferView": len(views) - 2,
                "componentType": _SHORT,
                "count": len(positions),
                "type": "VEC3",
                "min": positions[:, :3].min(axis=0).astype(int).tolist(),
                "max": positions[:, :3].max(axis=0).astype(int).tolist(),
            }
        )
        accessors.append(
            {
                "bufferView": len(views) - 1,
                "componentType": index_type,
                "count": len(indices),
                "type": "SCALAR",
            }
        )
        gltf_meshes.append(
            {
                "primitives": [
                    {"attributes": {"POSITION": len(accessors) - 2}, "indices": len(accessors) - 1}
                ]
            }
        )
        nodes.append({"mesh": len(gltf_meshes) - 1, "scale": [QUANT_STEP_MM] * 3})
    document = {
        "asset": {"version": "2.0"},
        "extensionsUsed": ["KHR_mesh_quantization"],
        "extensionsRequired": ["KHR_mesh_quantization"],
        "scene": 0,
        "scenes": [{"nodes": list(range(len(nodes)))}],
        "nodes": nodes,
        "meshes": gltf_meshes,
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    json_chunk = _pad(json.dumps(document, separators=(",", ":")).encode(), b" ")
    total = 12 + 8 + len(json_chunk) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(json_chunk), b"JSON"),
            json_chunk,
            struct.pack("<I4s", len(binary), b"BIN\x00"),
            bytes(binary),
        ]
    )


def read_blinded_glb(data: bytes) -> dict[str, trimesh.Trimesh]:
    """Decode a file written by `blinded_glb` (for tests and checks), in millimetres."""
    magic, _, _ = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF":
        raise ValueError("not a GLB file")
    json_length, _ = struct.unpack_from("<I4s", data, 12)
    document = json.loads(data[20 : 20 + json_length])
    binary_start = 20 + json_length + 8
    result = {}
    for bone, node in zip(BONE_ORDER, document["nodes"], strict=True):
        primitive = document["meshes"][node["mesh"]]["primitives"][0]
        position = document["accessors"][primitive["attributes"]["POSITION"]]
        index = document["accessors"][primitive["indices"]]
        view = document["bufferViews"][position["bufferView"]]
        start = binary_start + view["byteOffset"]
        raw = np.frombuffer(data, dtype="<i2", count=position["count"] * 4, offset=start)
        vertices = raw.reshape(-1, 4)[:, :3].astype(float) * node["scale"][0]
        view = document["bufferViews"][index["bufferView"]]
        faces = np.frombuffer(
            data,
            dtype=_INDEX_TYPES[index["componentType"]],
            count=index["count"],
            offset=binary_start + view["byteOffset"],
        ).reshape(-1, 3)
        result[bone] = trimesh.Trimesh(vertices, faces, process=False)
    return result
