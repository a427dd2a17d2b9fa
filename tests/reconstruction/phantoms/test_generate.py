"""Labels, meshes and CT of a generated knee case are mutually consistent and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.phantoms import (
    BONE_LABELS,
    PhantomParameterError,
    build_anatomy,
    generate_case,
    sample_params,
)


def test_meshes_are_watertight_and_outward(knee_case):
    assert set(knee_case.meshes) == set(BONE_LABELS)
    for name, mesh in knee_case.meshes.items():
        assert mesh.is_watertight, name
        assert mesh.is_winding_consistent, name
        assert mesh.volume > 0, name  # outward normals


def test_label_volume_matches_mesh_volume(knee_case):
    labels = knee_case.labels
    voxel = float(np.prod(labels.spacing))
    for name, label in BONE_LABELS.items():
        from_labels = np.count_nonzero(labels.array == label) * voxel
        from_mesh = knee_case.meshes[name].volume
        assert from_labels == pytest.approx(from_mesh, rel=0.03), name


def test_labels_form_a_partition_and_bones_do_not_touch(knee_case):
    labels = knee_case.labels.array
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    anatomy = build_anatomy(knee_case.params)
    for name, mesh in knee_case.meshes.items():
        for other, bone in anatomy.bones.items():
            if other != name:
                # every surface point of one bone lies outside every other bone
                assert bone.sdf(mesh.vertices).min() > 0.5, (name, other)


def test_ct_and_labels_share_the_grid(knee_case):
    ct, labels = knee_case.ct, knee_case.labels
    assert ct.shape == labels.shape
    np.testing.assert_allclose(ct.affine, labels.affine)
    assert ct.spacing == pytest.approx((1.5, 1.5, 1.5))
    assert ct.array.dtype == np.int16


def test_ct_tissue_values(knee_case):
    """Bone interior is cancellous, the shell cortical, the outside air, soft tissue in between."""
    ct = knee_case.ct.array.astype(float)
    labels = knee_case.labels.array
    materials = knee_case.ct.metadata["materials"]
    from scipy.ndimage import binary_erosion

    deep = binary_erosion(labels == 2, iterations=4)
    assert np.median(ct[deep]) == pytest.approx(materials["cancellous"], abs=60)
    shell = (labels == 1) & ~binary_erosion(labels == 1)
    assert np.percentile(ct[shell], 90) > 900  # cortical shell (partial-volumed at 1.5 mm)
    corner = ct[:3, :3, :]
    assert np.median(corner) < -900  # air outside the leg
    soft = (labels == 0) & (ct > -300) & (ct < 300)
    assert soft.sum() > 0.2 * labels.size


def test_landmarks_and_angles_are_recorded(knee_case):
    for name in (
        "hip_centre",
        "femoral_knee_centre",
        "tibial_knee_centre",
        "ankle_centre",
        "medial_epicondyle",
        "lateral_epicondyle",
        "medial_distal_condyle",
        "lateral_distal_condyle",
        "medial_plateau",
        "lateral_plateau",
    ):
        assert len(knee_case.landmarks[name]) == 3
    in_fov = knee_case.metadata["landmarks_in_fov"]
    assert in_fov["femoral_knee_centre"] and not in_fov["hip_centre"]
    angles = knee_case.angles
    assert angles["aHKA"] == pytest.approx(angles["MPTA"] - angles["LDFA"])
    assert angles["CPAK"] in {"I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"}


def test_same_seed_same_arrays_different_seed_differs():
    kwargs = {"fov": "knee", "spacing": (3.0, 3.0, 3.0), "with_meshes": False}
    a, b = generate_case(21, **kwargs), generate_case(21, **kwargs)
    c = generate_case(22, **kwargs)
    np.testing.assert_array_equal(a.ct.array, b.ct.array)
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    assert a.landmarks == b.landmarks
    assert a.ct.shape != c.ct.shape or not np.array_equal(a.ct.array, c.ct.array)
    assert a.params != c.params


def test_noise_sd_follows_dose():
    params = sample_params(4)
    kwargs = {"fov": "knee", "spacing": (3.0, 3.0, 3.0), "with_meshes": False, "noise_k": 30.0}
    clean = generate_case(params, dose=1e10, **kwargs).ct.array.astype(float)
    sds = []
    for dose in (1.0, 4.0):
        noisy = generate_case(params, dose=dose, **kwargs).ct.array.astype(float)
        unclipped = (clean > -900) & (noisy > -1000)
        sds.append(float(np.std((noisy - clean)[unclipped])))
    assert sds[0] == pytest.approx(30.0, rel=0.05)
    assert sds[1] == pytest.approx(15.0, rel=0.05)


def test_partial_volume_creates_intermediate_values():
    params = sample_params(5)
    kwargs = {"fov": "knee", "spacing": (2.0, 2.0, 2.0), "with_meshes": False, "dose": 1e10}
    sharp = generate_case(params, supersample=False, **kwargs).ct.array
    smooth = generate_case(params, supersample=True, **kwargs).ct.array
    # air/skin edge: sharp has only air or skin, the supersampled one has mixtures
    between = lambda a: np.count_nonzero((a > -900) & (a < -200))  # noqa: E731
    assert between(smooth) > 3 * max(between(sharp), 1)


def test_bad_inputs_raise_clear_errors():
    params = sample_params(6)
    with pytest.raises(PhantomParameterError, match="ldfa"):
        generate_case(params.replace(ldfa=120.0), with_ct=False, with_meshes=False)
    with pytest.raises(PhantomParameterError, match="fov"):
        generate_case(params, fov="hip", with_ct=False, with_meshes=False)
    with pytest.raises(PhantomParameterError, match="spacing"):
        generate_case(params, spacing=(0.0, 1.0, 1.0), with_meshes=False)
    with pytest.raises(PhantomParameterError):
        generate_case("seven")  # type: ignore[arg-type]
