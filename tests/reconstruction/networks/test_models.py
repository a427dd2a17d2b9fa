"""Shapes and invariances of the student and teacher networks (tiny configurations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reconstruction.drr.geometry import make_view_pair
from reconstruction.networks import NUM_CLASSES
from reconstruction.networks.encoders import UNet
from reconstruction.networks.student import StudentConfig, XrayStudent
from reconstruction.networks.teacher import (
    CTTeacher,
    TeacherConfig,
    pad_labels,
    prepare_ct,
    sample_one_hot,
    sample_volume,
)

TINY_STUDENT = StudentConfig(
    widths=(4, 8, 8), n_levels=2, view_embedding=16, hidden=(16,), feature_dim=8
)
TINY_TEACHER = TeacherConfig(widths=(4, 8, 8), n_levels=2, hidden=(16,), feature_dim=8)


def _pair_tensors(separation: float = 90.0) -> tuple[torch.Tensor, torch.Tensor]:
    views = make_view_pair(separation, detector_px=64, pixel_spacing_mm=4.6)
    matrices = torch.from_numpy(np.stack([v.projection_matrix() for v in views])).float()[None]
    return matrices, torch.full((1, 2), 1000.0)


def test_unet_outputs_cover_odd_sizes() -> None:
    maps = UNet(2, 1, (4, 8, 16), n_outputs=2)(torch.zeros(1, 1, 37, 50))
    assert [m.shape[1:] for m in maps] == [(4, 37, 50), (8, 19, 25)]


def test_student_shapes_and_point_order_equivariance() -> None:
    torch.manual_seed(0)
    model = XrayStudent(TINY_STUDENT).eval()
    matrices, depths = _pair_tensors()
    images = torch.rand(1, 2, 64, 64)
    points = torch.rand(1, 40, 3) * 80 - 40
    with torch.no_grad():
        features, logits = model(images, matrices, depths, points)
        permutation = torch.randperm(40)
        _, permuted = model(images, matrices, depths, points[:, permutation])
    assert features.shape == (1, 40, 8) and logits.shape == (1, 40, NUM_CLASSES)
    torch.testing.assert_close(permuted, logits[:, permutation])


@pytest.mark.parametrize(
    ("fused", "view_size"), [(True, (64, 64)), (False, (64, 64)), (True, (45, 38))]
)
def test_channels_first_inference_is_the_same_function_as_query(
    fused: bool, view_size: tuple[int, int], monkeypatch
) -> None:
    """The fast inference path (first layer folded into the maps, fused oneDNN products or
    plain ones where torch lacks them) must match `query`, including points outside a view
    (zero padding), odd map sizes (ceil-mode pooling, 45 x 38 -> 23 x 19 -> 12 x 10) and the
    order of the views' embeddings."""
    from reconstruction.networks import student

    if not fused:
        monkeypatch.setattr(student, "_FUSED_LINEAR", None)
    elif student._FUSED_LINEAR is None:
        pytest.skip("this torch has no fused oneDNN linear")
    torch.manual_seed(1)
    model = XrayStudent(StudentConfig(widths=(4, 8, 8, 8), n_levels=3, n_frequencies=4)).eval()
    matrices, depths = _pair_tensors(60.0)
    points = torch.rand(300, 3) * 300 - 150  # some fall outside the 64-px views
    with torch.inference_mode():
        width, height = view_size
        encoded = model.encode(torch.rand(1, 2, height, width), matrices, depths)
        _, reference = model.query(encoded, points[None])
        fast = model.logits_channels_first(encoded, points)
        folded = encoded.folded
        again = model.logits_channels_first(encoded, points)
    torch.testing.assert_close(fast, reference[0].T, rtol=1e-5, atol=1e-5)
    assert encoded.folded is folded  # folded once per pair
    torch.testing.assert_close(again, fast)


def test_student_accepts_other_angles_without_change() -> None:
    model = XrayStudent(TINY_STUDENT).eval()
    for separation in (30.0, 45.0, 75.0):
        matrices, depths = _pair_tensors(separation)
        with torch.no_grad():
            _, logits = model(torch.rand(1, 2, 64, 64), matrices, depths, torch.zeros(1, 5, 3))
        assert torch.isfinite(logits).all()


def _toy_ct() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    hu = rng.normal(0, 300, (30, 26, 21)).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-15, -13, -10)
    prior = rng.integers(0, NUM_CLASSES, hu.shape).astype(np.uint8)
    return hu, affine, prior


def test_teacher_point_features_and_logits() -> None:
    torch.manual_seed(0)
    hu, affine, prior = _toy_ct()
    model = CTTeacher(TINY_TEACHER).eval()
    ct = prepare_ct(hu, affine, TINY_TEACHER, prior)
    assert all(n % 4 == 0 for n in ct.coarse.shape[2:])
    assert ct.coarse.shape[1] == 2 + NUM_CLASSES
    with torch.no_grad():
        features, logits = model(ct, torch.rand(17, 3) * 20 - 10)
    assert features.shape == (17, 8) and logits.shape == (17, NUM_CLASSES)


def test_teacher_uses_the_classical_prior_and_requires_it() -> None:
    torch.manual_seed(0)
    hu, affine, prior = _toy_ct()
    model = CTTeacher(TINY_TEACHER).eval()
    points = torch.rand(50, 3) * 20 - 10
    with torch.no_grad():
        _, with_prior = model(prepare_ct(hu, affine, TINY_TEACHER, prior), points)
        _, other = model(prepare_ct(hu, affine, TINY_TEACHER, (prior + 1) % NUM_CLASSES), points)
    assert not torch.allclose(with_prior, other)
    with pytest.raises(ValueError, match="classical labels"):
        prepare_ct(hu, affine, TINY_TEACHER)
    ct_only = TeacherConfig(widths=(4, 8, 8), n_levels=2, hidden=(16,), feature_dim=8, prior=False)
    with torch.no_grad():
        _, logits = CTTeacher(ct_only).eval()(prepare_ct(hu, affine, ct_only), points)
    assert logits.shape == (50, NUM_CLASSES)


def test_old_checkpoint_configs_load_as_ct_only() -> None:
    config = TeacherConfig.from_dict({"widths": [8, 16], "n_levels": 1})
    assert config.prior is False and config.widths == (8, 16)


def test_one_hot_sampling_equals_trilinear_interpolation_of_the_one_hot_volume() -> None:
    """The gathered 8-neighbour version must be grid_sample on a float one-hot volume, with
    everything outside the volume counted as background."""
    _, affine, prior = _toy_ct()
    affine = affine.copy()
    affine[:3, :3] = np.diag([0.7, 0.8, 1.2])
    from_patient = torch.from_numpy(np.linalg.inv(affine)).float()
    points = torch.rand(2000, 3) * 80 - 40  # many outside the volume, some far outside
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(prior).long(), NUM_CLASSES)
    volume = one_hot.permute(3, 0, 1, 2)[None].float()
    volume[:, 0] -= 1.0  # background: 1 - 1 = 0 inside; grid_sample's zero padding outside ...
    expected = sample_volume(volume, points, from_patient)
    expected[:, 0] += 1.0  # ... becomes 1 after adding the 1 back: background outside
    got = sample_one_hot(pad_labels(prior), points, from_patient)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.sum(1), torch.ones(2000), rtol=1e-5, atol=1e-5)


def test_bfloat16_inference_keeps_the_classes() -> None:
    """The bfloat16 fast path rounds the products, not the function: logits stay close and
    the arg-max class changes only at near-ties."""
    torch.manual_seed(2)
    model = XrayStudent(StudentConfig(widths=(4, 8, 8, 8), n_levels=3, n_frequencies=4)).eval()
    matrices, depths = _pair_tensors(75.0)
    points = torch.rand(4000, 3) * 200 - 100
    with torch.inference_mode():
        encoded = model.encode(torch.rand(1, 2, 64, 64), matrices, depths)
        exact = model.logits_channels_first(encoded, points)
        rounded = model.logits_channels_first(encoded, points, torch.bfloat16)
    assert rounded.dtype == torch.float32
    scale = exact.abs().max()
    assert (rounded - exact).abs().max() < 0.05 * scale
    top2 = exact.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 0.05 * scale
    assert clear.float().mean() > 0.5
    assert torch.equal(rounded.argmax(0)[clear], exact.argmax(0)[clear])


def test_a_dtype_that_onednn_refuses_falls_back_to_plain_products(monkeypatch) -> None:
    """On a CPU without AVX512, oneDNN refuses to build a bfloat16 product; the layer must
    then run as a plain product (same values) and not ask oneDNN again."""
    from reconstruction.networks import student

    calls = []

    def refusing(*args):
        calls.append(args[1].dtype)
        raise RuntimeError("could not create a primitive descriptor")

    monkeypatch.setattr(student, "_FUSED_LINEAR", refusing)
    monkeypatch.setattr(student, "_FUSED_UNSUPPORTED", set())
    torch.manual_seed(3)
    layer = torch.nn.Linear(6, 4)
    x = torch.randn(10, 6)
    with torch.inference_mode():
        expected = torch.relu(layer(x))
        for _ in range(2):
            torch.testing.assert_close(student._dense(x, layer, torch.float32, relu=True), expected)
    assert calls == [torch.float32]  # refused once, then remembered
    assert student._FUSED_UNSUPPORTED == {torch.float32}
