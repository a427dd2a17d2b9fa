"""Small imaging files for upload tests, written with the imaging core's own writers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import trimesh
from django.core.files.uploadedfile import SimpleUploadedFile

from reconstruction import io as imaging_io
from reconstruction.drr.geometry import ViewGeometry
from reconstruction.volume import Volume


def ct_volume(shape=(24, 20, 16), spacing=(0.8, 0.8, 1.0), seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    array = rng.normal(40.0, 15.0, size=shape).astype(np.float32)
    array[6:18, 5:15, 4:12] = 1200.0  # a "bone" block
    array[:2] = -1000.0
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-10.0, -8.0, 5.0)
    return Volume(array=array, affine=affine, modality="CT")


def nifti_upload(
    tmp_path: Path, volume: Volume | None = None, name: str = "ct.nii.gz"
) -> SimpleUploadedFile:
    path = imaging_io.write_nifti(volume or ct_volume(), tmp_path / name)
    return SimpleUploadedFile(name, Path(path).read_bytes(), content_type="application/gzip")


def label_volume(shape=(24, 20, 16)) -> Volume:
    labels = np.zeros(shape, dtype=np.uint8)
    labels[2:10, 2:10, 2:8] = 1
    labels[12:20, 2:10, 2:8] = 2
    labels[12:20, 12:16, 2:8] = 3
    labels[2:6, 12:16, 10:14] = 4
    affine = np.diag([0.8, 0.8, 1.0, 1.0])
    affine[:3, 3] = (-10.0, -8.0, 5.0)
    return Volume(array=labels, affine=affine, modality="LABELS")


def xray_pair_uploads(
    tmp_path: Path, separation: float = 90.0, size: int = 32
) -> dict[str, SimpleUploadedFile]:
    geometries = [
        ViewGeometry(
            angle_deg=0.0, detector_size_px=(size, size), pixel_spacing_mm=(2.0, 2.0), name="view1"
        ),
        ViewGeometry(
            angle_deg=separation,
            detector_size_px=(size, size),
            pixel_spacing_mm=(2.0, 2.0),
            name="view2",
        ),
    ]
    rng = np.random.default_rng(1)
    images = [rng.random((size, size)).astype(np.float32) for _ in range(2)]
    folder = imaging_io.write_xray_pair(tmp_path / "pair", images, geometries)
    return {
        name: SimpleUploadedFile(filename, (Path(folder) / filename).read_bytes())
        for name, filename in (
            ("view1", "view1.npy"),
            ("view2", "view2.npy"),
            ("geometry", "geometry.json"),
        )
    }


def mesh_upload(
    bone: str, radius_mm: float = 20.0, fmt: str = "stl", broken: bool = False
) -> SimpleUploadedFile:
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=radius_mm)
    if broken:
        mesh.update_faces(np.arange(len(mesh.faces)) > 10)  # punch a hole
    buffer = io.BytesIO(mesh.export(file_type=fmt))
    return SimpleUploadedFile(f"{bone}.{fmt}", buffer.getvalue())
