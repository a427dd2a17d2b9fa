"""Blinding: after normalisation a classifier on simple file features cannot tell the arm.

Both arms are generated from the same knee shapes: arm A as a fine, smooth mesh; arm B as
a coarse, noisy mesh in a shifted coordinate frame (the tell-tales of two pipelines).
Without normalisation the classifier separates them (AUC near 1), so the test can fail;
after `normalise_knee` + `blinded_glb` it must not do better than AUC 0.6.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from reconstruction import blinding

KNEES = 24
OFFSETS = {"femur": (0, 0, 9), "tibia": (0, 0, -9), "fibula": (9, 3, -14), "patella": (0, -10, 10)}
RADII = {"femur": (7, 6, 6), "tibia": (7, 6, 6), "fibula": (4, 4, 7), "patella": (5, 3.5, 5)}


def knee_shape(rng: np.random.Generator):
    """A random knee: per bone, an ellipsoid with random radii and low-frequency bumps."""
    shape = {}
    for bone in blinding.BONE_ORDER:
        radii = np.array(RADII[bone]) * rng.uniform(0.85, 1.15, 3)
        bumps = rng.normal(0, 0.08, (3, 3))  # amplitude per direction cosine product
        shape[bone] = (radii, bumps)
    return shape


def tessellate(shape, subdivisions: int, noise_mm: float, frame_shift, rng) -> dict:
    meshes = {}
    for bone, (radii, bumps) in shape.items():
        sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
        unit = sphere.vertices
        scale = 1 + np.einsum("ni,ij,nj->n", unit, bumps, unit)
        vertices = unit * radii * scale[:, None] + OFFSETS[bone] + frame_shift
        vertices = vertices + rng.normal(0, noise_mm, vertices.shape)
        meshes[bone] = trimesh.Trimesh(vertices, sphere.faces, process=True)
    return meshes


def arms(seed: int):
    rng = np.random.default_rng(seed)
    shape = knee_shape(rng)
    fine = tessellate(shape, subdivisions=4, noise_mm=0.0, frame_shift=(0, 0, 0), rng=rng)
    coarse = tessellate(shape, subdivisions=3, noise_mm=0.3, frame_shift=(40, -25, 12), rng=rng)
    return fine, coarse


def file_features(data: bytes, meshes: dict) -> list[float]:
    """What a curious reader could measure: size, vertex count, edges, bounding box."""
    edges = np.concatenate([m.edges_unique_length for m in meshes.values()])
    vertices = np.vstack([m.vertices for m in meshes.values()])
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    return [
        float(len(data)),
        float(len(vertices)),
        float(edges.mean()),
        float(edges.std()),
        *(hi - lo).tolist(),
        *((hi + lo) / 2).tolist(),
    ]


def raw_features(meshes: dict) -> list[float]:
    data = b"".join(meshes[b].export(file_type="stl") for b in blinding.BONE_ORDER)
    return file_features(data, meshes)


def blinded_features(meshes: dict) -> list[float]:
    data = blinding.blinded_glb(blinding.normalise_knee(meshes))
    return file_features(data, blinding.read_blinded_glb(data))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half)."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positive) * len(negative)))


def cross_validated_auc(features: np.ndarray, labels: np.ndarray, knees: np.ndarray) -> float:
    """Leave-one-knee-out linear discriminant on standardised features (ridge-regularised)."""
    scores = np.zeros(len(labels))
    for knee in np.unique(knees):
        train, test = knees != knee, knees == knee
        mean, std = features[train].mean(axis=0), features[train].std(axis=0) + 1e-9
        x = (features - mean) / std
        mu1, mu0 = x[train & (labels == 1)].mean(axis=0), x[train & (labels == 0)].mean(axis=0)
        covariance = np.cov(x[train].T) + 0.1 * np.eye(x.shape[1])
        weights = np.linalg.solve(covariance, mu1 - mu0)
        scores[test] = x[test] @ weights
    return auc(scores, labels)


@pytest.fixture(scope="module")
def dataset():
    raw, blinded, labels, knees = [], [], [], []
    for knee in range(KNEES):
        for label, meshes in enumerate(arms(seed=1000 + knee)):
            raw.append(raw_features(meshes))
            blinded.append(blinded_features(meshes))
            labels.append(label)
            knees.append(knee)
    return np.array(raw), np.array(blinded), np.array(labels), np.array(knees)


def test_without_normalisation_the_source_is_obvious(dataset):
    raw, _, labels, knees = dataset
    value = cross_validated_auc(raw, labels, knees)
    print(f"classifier AUC without normalisation: {value:.3f}")
    assert value >= 0.95


def test_after_normalisation_a_classifier_cannot_tell_the_source(dataset):
    _, blinded, labels, knees = dataset
    value = cross_validated_auc(blinded, labels, knees)
    print(f"classifier AUC after normalisation: {value:.3f}")
    assert value <= 0.6


def test_normalised_files_share_structure_and_keep_the_shape():
    fine, coarse = arms(seed=7)
    a = blinding.normalise_knee(fine)
    b = blinding.normalise_knee(coarse)
    for bone in blinding.BONE_ORDER:
        # The two arms agree with each other; the fixed blur shrinks these small test bones
        # (radius 3-7 mm) by up to ~25 % of volume (about sigma^2 / radius per axis); knee-sized
        # bones (radius 10-25 mm) lose a few per cent.
        assert abs(a[bone].volume - b[bone].volume) / a[bone].volume < 0.06
        assert 0.7 < a[bone].volume / fine[bone].volume < 1.0
        assert a[bone].is_watertight and b[bone].is_watertight
    centre = blinding.common_centre(b)
    assert np.allclose(centre, 0, atol=0.5)  # the shifted frame is gone


def test_the_glb_has_no_names_or_metadata_and_round_trips():
    import json
    import struct

    fine, _ = arms(seed=3)
    normalised = blinding.normalise_knee(fine)
    data = blinding.blinded_glb(normalised)
    length = struct.unpack_from("<I", data, 12)[0]
    document = json.loads(data[20 : 20 + length])
    assert document["asset"] == {"version": "2.0"}
    assert "name" not in json.dumps(document) and "extras" not in document
    assert "materials" not in document
    back = blinding.read_blinded_glb(data)
    for bone in blinding.BONE_ORDER:
        assert (
            np.abs(back[bone].vertices - normalised[bone].vertices).max() <= blinding.QUANT_STEP_MM
        )
    loaded = trimesh.load(trimesh.util.wrap_as_stream(data), file_type="glb")
    assert len(loaded.geometry) == 4


def test_missing_bones_are_refused():
    fine, _ = arms(seed=5)
    del fine["patella"]
    with pytest.raises(ValueError, match="patella"):
        blinding.blinded_glb(fine)
