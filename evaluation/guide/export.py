"""Print-ready files: binary STL (label in the 80-byte header) and 3MF (core spec, one
object named by the label, millimetres), both written atomically."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import trimesh

from .errors import GuideError

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="model" '
    'ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>'
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
)
CORE_NS = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return target


def _require_printable(mesh: trimesh.Trimesh, name: str) -> None:
    if not (mesh.is_watertight and mesh.is_volume):
        raise GuideError(f"{name} is not a closed manifold solid; refusing to export it")


def stl_bytes(mesh: trimesh.Trimesh, label: str = "") -> bytes:
    triangles = np.asarray(mesh.triangles, dtype=np.float32)
    normals = np.asarray(mesh.face_normals, dtype=np.float32)
    record = np.zeros(
        len(triangles), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")]
    )
    record["n"], record["v"] = normals, triangles
    header = label.encode("ascii", "replace")[:80].ljust(80, b" ")
    return header + np.uint32(len(triangles)).tobytes() + record.tobytes()


def threemf_bytes(mesh: trimesh.Trimesh, label: str = "") -> bytes:
    name = label.replace("&", "and").replace("<", "").replace(">", "").replace('"', "")
    vertices = "".join(
        f'<vertex x="{x:.5f}" y="{y:.5f}" z="{z:.5f}"/>' for x, y, z in np.asarray(mesh.vertices)
    )
    triangles = "".join(
        f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in np.asarray(mesh.faces)
    )
    model = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<model unit="millimeter" xml:lang="en-US" xmlns="{CORE_NS}">'
        f'<metadata name="Title">{name}</metadata>'
        f'<resources><object id="1" type="model" name="{name}"><mesh>'
        f"<vertices>{vertices}</vertices><triangles>{triangles}</triangles>"
        '</mesh></object></resources><build><item objectid="1"/></build></model>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr("3D/3dmodel.model", model)
    return buffer.getvalue()


def read_3mf(path: str | os.PathLike[str]) -> tuple[trimesh.Trimesh, str]:
    """The single object of a 3MF written here (mesh, name) — for checks and tests."""
    with zipfile.ZipFile(path) as archive:
        root = ElementTree.fromstring(archive.read("3D/3dmodel.model"))
    ns = {"m": CORE_NS}
    obj = root.find(".//m:object", ns)
    vertices = [
        [float(v.get(k)) for k in ("x", "y", "z")] for v in root.iterfind(".//m:vertex", ns)
    ]
    faces = [
        [int(t.get(k)) for k in ("v1", "v2", "v3")] for t in root.iterfind(".//m:triangle", ns)
    ]
    return trimesh.Trimesh(vertices, faces, process=False), obj.get("name", "")


def write_stl(mesh: trimesh.Trimesh, path: str | os.PathLike[str], label: str = "") -> Path:
    _require_printable(mesh, str(path))
    return atomic_write(path, stl_bytes(mesh, label))


def write_3mf(mesh: trimesh.Trimesh, path: str | os.PathLike[str], label: str = "") -> Path:
    _require_printable(mesh, str(path))
    return atomic_write(path, threemf_bytes(mesh, label))
