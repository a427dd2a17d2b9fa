"""The shared real knee (MRI labels, knee-only field of view): what the field of view holds
is found and drawn; hip and ankle are reported missing, never guessed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation.alignment import analyse_knee
from evaluation.alignment.labels import meshes_from_labels
from evaluation.alignment.overlay import overlay_ap_image, render_frontal
from reconstruction.pseudoct import real_knee_labels_path

DATA = real_knee_labels_path()
LABELS = {"femur": 5, "tibia": 6, "patella": 7, "fibula": 8}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_knee():
    if not DATA.is_file():
        pytest.skip(f"shared real knee not found at {DATA.resolve()}")
    from reconstruction.io import read_volume

    volume = read_volume(DATA)
    meshes = meshes_from_labels(volume.array, volume.affine, LABELS)
    return meshes, analyse_knee(*(meshes[b] for b in ("femur", "tibia", "fibula", "patella")))


def test_missing_hip_and_ankle_are_reported_not_guessed(real_knee) -> None:
    _, result = real_knee
    lm = result.landmarks
    assert lm.fov == "knee"
    for name in ("hip_centre", "ankle_centre"):
        assert lm.points[name] is None
        assert "knee-only field of view" in lm.missing[name]
    report = result.to_dict()
    for key in ("mhka", "ldfa", "mpta", "ahka", "jlo", "cpak"):
        assert key in report["flags"]["approximate"]
    assert report["flags"]["missing"]["femoral_anatomic_mechanical"]
    assert result.plan is not None and result.plan.approximate


def test_landmarks_in_the_field_of_view_are_found(real_knee) -> None:
    _, result = real_knee
    lm = result.landmarks
    assert lm.side == "right" and "fibula" in lm.side_source  # README: a right knee
    fr = lm.femur_frame
    c = {name: fr.coords(p)[0] for name, p in lm.points.items() if p is not None}
    tea = np.linalg.norm(lm.points["medial_epicondyle"] - lm.points["lateral_epicondyle"])
    assert 65 < tea < 100, tea
    assert c["medial_epicondyle"][0] > 25 and c["lateral_epicondyle"][0] < -25
    assert c["medial_distal_condyle"][0] > 0 > c["lateral_distal_condyle"][0]
    assert c["medial_epicondyle"][2] > c["medial_distal_condyle"][2] + 10
    assert c["patella_centre"][1] > 25  # anterior of the knee centre
    assert c["tibial_knee_centre"][2] < 0  # below the femoral knee centre
    assert 60 < lm.extras["plateau_width_mm"] < 90
    # coronal angles not needing hip or ankle are measured; approximate ones stay plausible
    assert abs(result.angles["jlca"]) < 6
    assert 70 < result.angles["ldfa"] < 100 and 70 < result.angles["mpta"] < 100


def test_frontal_overlay_is_drawn(real_knee, tmp_path: Path) -> None:
    meshes, result = real_knee
    png = render_frontal(result, meshes, tmp_path / "real.png")
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    yellow = (rgb[..., 0] > 200) & (rgb[..., 1] > 170) & (rgb[..., 2] < 60)  # joint lines
    assert yellow.sum() > 300


def test_ap_image_overlay_with_projection_matrix(real_knee, tmp_path: Path) -> None:
    """An orthographic 'AP image' of the meshes with a known 3x4 matrix: the annotations
    must land where the matrix says (checked on the knee centre)."""
    meshes, result = real_knee
    fr = result.landmarks.femur_frame
    px = 0.5  # mm per pixel
    right = fr.medial if fr.side == "right" else fr.lateral
    centre = fr.origin
    p = np.zeros((3, 4))
    p[0, :3], p[1, :3] = right / px, -fr.superior / px
    p[0, 3], p[1, 3] = 200 - right @ centre / px, 200 + fr.superior @ centre / px
    p[2, 3] = 1.0
    image = np.zeros((400, 400))
    for mesh in meshes.values():
        uv = np.hstack([mesh.vertices, np.ones((len(mesh.vertices), 1))]) @ p.T
        ij = np.round(uv[:, [1, 0]]).astype(int)
        ok = (ij >= 0).all(axis=1) & (ij < 400).all(axis=1)
        np.add.at(image, (ij[ok, 0], ij[ok, 1]), 1.0)
    png = overlay_ap_image(image, p, result, tmp_path / "ap.png")
    assert Image.open(png).size[0] > 600
    from evaluation.alignment.overlay import matrix_projector

    assert np.allclose(matrix_projector(p)(centre)[0], [200, 200])
