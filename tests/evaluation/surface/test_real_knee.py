"""The one real knee (MRI label map in shared/data): real bone shapes, not star-shaped blobs.

Marching-cubes surfaces of the patella and the fibula are measured against a smaller
version of themselves (label eroded by one voxel, smoothed): every metric must exist, the
signed mean must say "smaller", and a bone against itself must give zero.
"""

import numpy as np
import pytest
import trimesh
from scipy import ndimage

from evaluation.surface import compare_pairs
from reconstruction.pseudoct import real_knee_labels_path

LABELS = real_knee_labels_path()
BONES = {"patella": 7, "fibula": 8}

pytestmark = pytest.mark.skipif(
    not LABELS.is_file(), reason="shared/data/real-knee-mri-labels.nrrd not present"
)


def _surface(
    mask: np.ndarray, directions: np.ndarray, origin: np.ndarray, sigma: float = 0.0
) -> trimesh.Trimesh:
    from skimage.measure import marching_cubes

    padded = np.pad(mask.astype(np.float32), 2)
    if sigma:
        padded = ndimage.gaussian_filter(padded, sigma)
    vertices, faces, _, _ = marching_cubes(padded, 0.5)
    return trimesh.Trimesh((vertices - 2) @ directions + origin, faces, process=False)


@pytest.fixture(scope="module")
def knee():
    import nrrd

    labels, header = nrrd.read(str(LABELS))
    directions = np.asarray(header["space directions"], dtype=float)  # rows: index axes, LPS mm
    origin = np.asarray(header["space origin"], dtype=float)
    reference, smaller = {}, {}
    for bone, label in BONES.items():
        mask = labels == label
        reference[bone] = _surface(mask, directions, origin)
        smaller[bone] = _surface(ndimage.binary_erosion(mask), directions, origin, sigma=1.0)
    return reference, smaller


def test_real_bones_against_a_smaller_version(knee):
    reference, smaller = knee
    pairs = compare_pairs(reference, smaller, density=1.0)
    for bone, pair in pairs.items():
        m = pair.metrics
        assert 0.2 < m["assd"] < 0.8, bone
        assert m["signed_mean"] < -0.2, bone  # the eroded surface lies inside
        assert m["hd"] >= m["hd95"] >= m["masd"] * 0.9, bone
        assert 0.85 < m["iou"] < m["dice"] < 1.0, bone
        assert pair.parameters["convergence"]["converged"], bone


def test_real_bone_against_itself_is_zero(knee):
    reference, _ = knee
    pair = compare_pairs(
        {"patella": reference["patella"]}, {"patella": reference["patella"].copy()}, density=1.0
    )
    m = pair["patella"].metrics
    assert m["hd"] == pytest.approx(0.0, abs=1e-6)
    assert m["dice"] == 1.0
