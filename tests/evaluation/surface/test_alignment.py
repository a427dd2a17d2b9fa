"""Alignment policy (none by default, rigid ICP on request) and the convergence check."""

import numpy as np
import pytest

from evaluation.surface import compare_pair
from evaluation.surface.synthetic import bone_mesh


def test_icp_recovers_a_rigid_offset_and_reports_it():
    reference = bone_mesh("patella", subdivisions=4)
    result = bone_mesh("patella", subdivisions=4)
    angle = np.radians(4.0)
    transform = np.eye(4)
    transform[:3, :3] = [
        [np.cos(angle), -np.sin(angle), 0],
        [np.sin(angle), np.cos(angle), 0],
        [0, 0, 1],
    ]
    transform[:3, 3] = [1.5, -1.0, 2.0]
    result.apply_transform(transform)
    native = compare_pair(reference, result, density=2.0, convergence=False)
    aligned = compare_pair(reference, result, density=2.0, convergence=False, alignment="icp")
    assert native.parameters["alignment"] == {"method": "none"}
    report = aligned.parameters["alignment"]
    assert report["method"] == "icp"
    assert report["rms_after_mm"] < 0.01 < report["rms_before_mm"]
    # the reported transform undoes the offset
    assert np.allclose(np.asarray(report["transform"]) @ transform, np.eye(4), atol=1e-3)
    assert aligned.metrics["assd"] < 0.01 < native.metrics["assd"]


def test_default_density_converges_on_a_bone():
    reference = bone_mesh("femur", subdivisions=5)
    result = bone_mesh("femur", subdivisions=4, noise_mm=1.0, scale=0.98, seed=1)
    pair = compare_pair(reference, result, volume=False, signed=False)
    conv = pair.parameters["convergence"]
    assert conv["converged"] and conv["abs_change_mm"] < 0.01
    assert pair.metrics["assd_convergence"] == pytest.approx(conv["abs_change_mm"])
