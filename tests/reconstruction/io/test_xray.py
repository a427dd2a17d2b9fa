"""X-ray pair layout: round trip and one specific error per broken input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reconstruction.drr.geometry import ViewGeometry, make_view_pair
from reconstruction.errors import CorruptFileError, GeometryError, ModalityError
from reconstruction.io import read_xray_pair, write_dicom_xray, write_xray_pair


@pytest.fixture
def pair_dir(tmp_path: Path) -> Path:
    views = make_view_pair(
        60.0, isocentre_mm=(1.0, 2.0, 3.0), detector_px=(40, 30), pixel_spacing_mm=1.5
    )
    rng = np.random.default_rng(0)
    images = [rng.random((30, 40)).astype(np.float32) for _ in views]
    return write_xray_pair(tmp_path / "pair", images, views, metadata={"seed": 0})


def _edit_geometry(directory: Path, edit) -> None:
    path = directory / "geometry.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


def test_round_trip(pair_dir: Path) -> None:
    pair = read_xray_pair(pair_dir)
    assert pair.separation_deg == pytest.approx(60.0)
    assert pair.views[0].image.shape == (30, 40) and pair.views[0].image.dtype == np.float32
    assert np.array_equal(pair.views[1].image, np.load(pair_dir / "view2.npy"))
    assert pair.metadata == {"seed": 0}
    preview = np.asarray(Image.open(pair_dir / "view1.png"))
    assert preview.shape == (30, 40) and preview.max() > 255  # 16-bit


def test_missing_view_is_reported(pair_dir: Path) -> None:
    (pair_dir / "view2.npy").unlink()
    with pytest.raises(CorruptFileError, match="view2.npy is missing"):
        read_xray_pair(pair_dir)


def test_image_size_must_match_geometry(pair_dir: Path) -> None:
    np.save(pair_dir / "view1.npy", np.zeros((30, 41), np.float32))
    with pytest.raises(GeometryError, match="41 x 30 pixels, the geometry says 40 x 30"):
        read_xray_pair(pair_dir)


def test_non_finite_image(pair_dir: Path) -> None:
    image = np.zeros((30, 40), np.float32)
    image[3, 4] = np.nan
    np.save(pair_dir / "view1.npy", image)
    with pytest.raises(CorruptFileError, match="NaN or infinite"):
        read_xray_pair(pair_dir)


def test_three_dimensional_image(pair_dir: Path) -> None:
    np.save(pair_dir / "view1.npy", np.zeros((2, 30, 40), np.float32))
    with pytest.raises(ModalityError, match="must be a 2D image"):
        read_xray_pair(pair_dir)


def test_truncated_image(pair_dir: Path) -> None:
    data = (pair_dir / "view1.npy").read_bytes()
    (pair_dir / "view1.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="truncated or corrupt"):
        read_xray_pair(pair_dir)


def test_matrix_inconsistent_with_stated_distance(pair_dir: Path) -> None:
    _edit_geometry(pair_dir, lambda doc: doc["views"][0].update(source_isocentre_mm=900.0))
    with pytest.raises(GeometryError, match="geometry says 900.00 mm"):
        read_xray_pair(pair_dir)


def test_matrix_inconsistent_with_stated_angle(pair_dir: Path) -> None:
    _edit_geometry(pair_dir, lambda doc: doc["views"][1].update(angle_deg=62.0))
    with pytest.raises(GeometryError, match="disagrees with the stated"):
        read_xray_pair(pair_dir)


def test_separation_out_of_range(pair_dir: Path) -> None:
    wide = ViewGeometry(
        angle_deg=120.0,
        isocentre_mm=(1.0, 2.0, 3.0),
        detector_size_px=(40, 30),
        pixel_spacing_mm=(1.5, 1.5),
    )
    _edit_geometry(pair_dir, lambda doc: doc["views"][1].update(wide.to_dict()))
    with pytest.raises(GeometryError, match="separation 120 degrees"):
        read_xray_pair(pair_dir)


def test_missing_matrix_and_bad_json(pair_dir: Path) -> None:
    _edit_geometry(pair_dir, lambda doc: doc["views"][0].pop("projection_matrix"))
    with pytest.raises(GeometryError, match="view1 has no projection_matrix"):
        read_xray_pair(pair_dir)
    (pair_dir / "geometry.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        read_xray_pair(pair_dir)


def test_dicom_dx_pair_with_and_without_geometry_json(tmp_path: Path) -> None:
    views = make_view_pair(45.0, detector_px=(24, 20), pixel_spacing_mm=(0.5, 0.6))
    images = [np.linspace(0, 3, 480, dtype=np.float32).reshape(20, 24) * (k + 1) for k in range(2)]
    bare = tmp_path / "bare"
    for name, image, view in zip(("view1", "view2"), images, views, strict=True):
        write_dicom_xray(image, view, bare / f"{name}.dcm")
    pair = read_xray_pair(bare)  # geometry from the DICOM tags alone
    assert pair.separation_deg == pytest.approx(45.0)
    assert np.allclose(pair.views[1].projection_matrix, views[1].projection_matrix())
    assert np.allclose(pair.views[0].image, images[0], atol=3.0 / 65000)
    # With a geometry.json that contradicts the tags: refuse.
    documented = write_xray_pair(tmp_path / "documented", images, views)
    for name in ("view1", "view2"):
        (documented / f"{name}.npy").unlink()
        write_dicom_xray(
            images[0],
            ViewGeometry(angle_deg=0.0, source_detector_mm=1800.0, detector_size_px=(24, 20)),
            documented / f"{name}.dcm",
        )
    _edit_geometry(documented, lambda doc: [view.pop("image") for view in doc["views"]])
    with pytest.raises(GeometryError, match="1800.0 mm in the DICOM tags"):
        read_xray_pair(documented)


def test_png_images_with_geometry(pair_dir: Path) -> None:
    for name in ("view1", "view2"):
        (pair_dir / f"{name}.npy").unlink()
    _edit_geometry(pair_dir, lambda doc: [view.pop("image") for view in doc["views"]])
    pair = read_xray_pair(pair_dir)  # falls back to the 16-bit PNGs
    assert pair.views[0].image.max() == 65535.0


def test_consistent_dicom_pair_with_geometry_json_and_float_tiffs(tmp_path: Path) -> None:
    views = make_view_pair(30.0, isocentre_mm=(5.0, 0.0, -5.0), detector_px=(24, 20))
    images = [np.full((20, 24), 1.5 * (k + 1), np.float32) for k in range(2)]
    documented = write_xray_pair(tmp_path / "dx", images, views)
    for name, image, view in zip(("view1", "view2"), images, views, strict=True):
        (documented / f"{name}.npy").unlink()
        write_dicom_xray(image, view, documented / f"{name}.dcm")
    _edit_geometry(documented, lambda doc: [view.pop("image") for view in doc["views"]])
    pair = read_xray_pair(documented)
    assert np.allclose(pair.views[0].geometry.isocentre_mm, (5.0, 0.0, -5.0))  # from the json
    assert np.allclose(pair.views[1].image, 3.0, atol=1e-3)
    tiffs = write_xray_pair(tmp_path / "tif", images, views)
    for name, image in zip(("view1", "view2"), images, strict=True):
        (tiffs / f"{name}.npy").unlink()
        (tiffs / f"{name}.png").unlink()
        Image.fromarray(image).save(tiffs / f"{name}.tif")
    _edit_geometry(tiffs, lambda doc: [view.pop("image") for view in doc["views"]])
    assert np.array_equal(read_xray_pair(tiffs).views[0].image, images[0])
