"""Training data: which phantoms are trained on, and which bank points are used."""

from __future__ import annotations

import argparse
from dataclasses import asdict

import numpy as np
import pytest

from reconstruction.networks.geometry import DEFAULT_ISO_PIXEL_MM, REFERENCE_FIELD_MM
from reconstruction.phantoms.dataset import case_seeds
from reconstruction.training.data import (
    HELD_OUT_BLOCK,
    VARIATION_OPTIONS,
    DataSettings,
    add_case_arguments,
    draw_separation,
    split_seeds,
    training_seeds,
)
from reconstruction.training.train_student import points_in_field

from .conftest import toy_case


def test_up_to_64_training_seeds_are_the_original_split() -> None:
    assert training_seeds(2026, 64) == split_seeds(2026, 64, 0)["train"]
    assert training_seeds(2026, 10) == split_seeds(2026, 10, 0)["train"]


def test_more_training_seeds_skip_every_held_out_phantom() -> None:
    seeds = training_seeds(2026, 128)
    start, stop = HELD_OUT_BLOCK
    held_out = case_seeds(2026, stop)[start:]
    assert len(seeds) == len(set(seeds)) == 128
    assert not set(seeds) & set(held_out)
    # the student's test phantoms (evaluate build-test) are in the held-out block
    assert set(split_seeds(2026, 64, 6)["test"]) <= set(held_out)


def test_view_grid_keeps_the_reference_field() -> None:
    assert DataSettings().iso_pixel_mm == DEFAULT_ISO_PIXEL_MM
    for size in (128, 256, 384):
        field = size * DataSettings(size_px=size).iso_pixel_mm
        assert abs(field - REFERENCE_FIELD_MM) < 0.1


def test_points_in_field_keeps_only_the_cube_around_the_isocentre() -> None:
    case = toy_case(3)  # CT centre (0, 0, 0), bank points uniform in +-50 mm
    kept = points_in_field(case, 60.0)
    inside = np.all(np.abs(case.points) <= 30.0, axis=1)
    assert 0 < len(kept) < len(case.points)
    np.testing.assert_array_equal(kept, np.flatnonzero(inside))


def test_jittered_pairs_are_centred_on_the_bones_and_select_their_own_field() -> None:
    from reconstruction.drr.simulate import bone_centre
    from reconstruction.training.data import build_case
    from reconstruction.volume import Volume

    settings = DataSettings(
        size_px=32, pairs_per_case=2, points_per_case=3000, isocentre_jitter_mm=20.0
    )
    seed = training_seeds(2026, 1)[0]
    case = build_case(seed, settings)
    knee = np.asarray(bone_centre(Volume(case.ct, case.ct_affine, "CT")))
    assert case.isocentres.shape == (2, 3)
    assert np.all(np.abs(case.isocentres - knee) <= 20.0)
    assert not np.allclose(case.isocentres[0], case.isocentres[1])
    # the projections look at those centres: the isocentre projects to the view centre
    for projection, centre in zip(case.projections, case.isocentres, strict=True):
        image = projection[0] @ np.append(centre, 1.0)
        np.testing.assert_allclose(image[:2] / image[2], (32 - 1) / 2.0, atol=1e-6)
    for pair in range(2):
        kept = case.points[points_in_field(case, 60.0, pair)]
        assert len(kept) and np.all(np.abs(kept - case.isocentres[pair]) <= 30.0)


def test_a_pseudo_ct_share_renders_only_those_pairs_from_the_label_map() -> None:
    from reconstruction.training.data import build_case, pseudo_ct_pairs

    plain = DataSettings(
        size_px=32, pairs_per_case=4, points_per_case=2000, isocentre_jitter_mm=20.0
    )
    mixed = DataSettings(**{**asdict(plain), "pseudo_ct_fraction": 0.5})
    seed = training_seeds(2026, 1)[0]
    chosen = pseudo_ct_pairs(seed, mixed)
    assert len(chosen) == 2 and chosen == pseudo_ct_pairs(seed, mixed)
    assert pseudo_ct_pairs(seed, plain) == set()
    own, rendered = build_case(seed, plain), build_case(seed, mixed)
    for pair in range(4):
        same = np.array_equal(own.images[pair], rendered.images[pair])
        assert same == (pair not in chosen)
    # every other draw is the plain case's: geometry, doses, points, labels, the CT
    np.testing.assert_array_equal(own.projections, rendered.projections)
    np.testing.assert_array_equal(own.doses, rendered.doses)
    np.testing.assert_array_equal(own.points, rendered.points)
    np.testing.assert_array_equal(own.labels, rendered.labels)
    np.testing.assert_array_equal(own.ct, rendered.ct)
    # the pseudo-CT's body is the margin around the bones, narrower than the phantom's leg:
    # less soft tissue along the rays (a measured property, not just "different")
    pair = min(chosen)
    assert rendered.images[pair].mean() < own.images[pair].mean()
    assert mixed.key() != plain.key()
    assert plain.key() == DataSettings(**{**asdict(plain), "pseudo_ct_fraction": 0.0}).key()


def test_pseudo_ct_fraction_is_checked(capsys) -> None:
    from reconstruction.training.train_student import parse_args

    run, _, _ = parse_args(["--pseudo-ct-fraction", "0.375", "--out", "x.pt"])
    assert run.pseudo_ct_fraction == 0.375
    with pytest.raises(SystemExit):
        parse_args(["--pseudo-ct-fraction", "1.5", "--out", "x.pt"])


def test_a_pseudo_ct_fraction_that_renders_no_pair_is_refused(capsys) -> None:
    from reconstruction.training import data, train_teacher
    from reconstruction.training.train_student import parse_args

    # 0.05 of 8 pairs rounds to none: it would only have given the cache a key of its own
    with pytest.raises(ValueError, match="renders none of 8 pairs"):
        DataSettings(pairs_per_case=8, pseudo_ct_fraction=0.05)
    assert DataSettings(pairs_per_case=8, pseudo_ct_fraction=0.07).key()  # 0.56 -> one pair
    for command in (
        lambda: parse_args(["--pseudo-ct-fraction", "0.05", "--pairs-per-case", "8"]),
        lambda: data.main(["--pseudo-ct-fraction", "0.05", "--pairs", "8"]),
        lambda: train_teacher.main(
            ["--student-pseudo-ct-fraction", "0.05", "--student-pairs", "8"]
        ),
    ):
        with pytest.raises(SystemExit):
            command()
        assert "rounds to 0" in capsys.readouterr().err


def test_near_orthogonal_share_draws_that_share_from_the_top_of_the_range() -> None:
    settings = DataSettings(near_orthogonal_fraction=0.5)
    rng = np.random.default_rng(0)
    draws = np.array([draw_separation(rng, settings) for _ in range(4000)])
    assert draws.min() >= 30.0 and draws.max() <= 90.0
    # half from [80, 90] plus a sixth of the uniform half: 7/12 of all draws
    assert abs(np.mean(draws >= 80.0) - 7 / 12) < 0.03
    assert abs(np.mean(draws < 50.0) - 1 / 6) < 0.03


def test_without_a_near_orthogonal_share_the_draws_and_cache_keys_are_the_earlier_ones() -> None:
    plain = DataSettings(size_px=128, pairs_per_case=8, isocentre_jitter_mm=20.0)
    assert plain.key() == "c17584f29879"  # the cache the shipped student was trained on
    rng, reference = np.random.default_rng(1), np.random.default_rng(1)
    assert [draw_separation(rng, plain) for _ in range(5)] == [
        float(reference.uniform(30.0, 90.0)) for _ in range(5)
    ]
    assert DataSettings(near_orthogonal_fraction=0.3).key() != DataSettings().key()


@pytest.mark.parametrize(
    "arguments",
    [
        ["--near-orthogonal-fraction", "1.5"],
        ["--near-orthogonal-fraction", "-0.1"],
        ["--first-angle-jitter-deg", "-5"],
        ["--first-angle-jitter-deg", "nan"],
    ],
)
def test_angle_options_refuse_values_outside_their_range(arguments, capsys) -> None:
    parser = argparse.ArgumentParser()
    add_case_arguments(parser)
    with pytest.raises(SystemExit) as raised:
        parser.parse_args(arguments)
    assert raised.value.code == 2
    assert "must be" in capsys.readouterr().err


def test_train_student_refuses_the_same_out_of_range_angle_options(capsys) -> None:
    from reconstruction.training.train_student import parse_args

    with pytest.raises(SystemExit) as raised:
        parse_args(["--near-orthogonal-fraction", "2"])
    assert raised.value.code == 2 and "must be between 0 and 1" in capsys.readouterr().err


def test_shape_variation_names_its_own_cache_and_labels_the_varied_phantom() -> None:
    from reconstruction.phantoms.generator import generate_case
    from reconstruction.training.data import exact_labels

    assert DataSettings(shape_variation=1.0).key() != DataSettings().key()
    seed = training_seeds(2026, 1)[0]
    case = generate_case(seed, spacing=(2.0, 2.0, 2.0), with_meshes=False, variation=1.0)
    volume = np.asarray(case.labels.array)
    ijk = np.argwhere(np.ones(volume.shape, dtype=bool))[::7]
    points = case.labels.index_to_patient(ijk.astype(float))
    varied = exact_labels(seed, points, {"shape_variation": 1.0})
    truth = volume[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
    assert np.mean(varied == truth) > 0.998
    assert np.mean(exact_labels(seed, points) == truth) < np.mean(varied == truth)


def test_shape_variation_option_refuses_a_negative_strength(capsys) -> None:
    parser = argparse.ArgumentParser()
    add_case_arguments(parser, prefix="student-")
    assert parser.parse_args(["--student-shape-variation", "1.5"]).student_shape_variation == 1.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--student-shape-variation", "-1"])
    assert "must be between 0 and 3" in capsys.readouterr().err


def test_each_variation_names_its_own_cache() -> None:
    keys = {
        DataSettings().key(),
        DataSettings(soft_tissue_variation=1.0).key(),
        DataSettings(soft_tissue_variation=2.0).key(),
        DataSettings(shape_variation=1.0).key(),
        DataSettings(patella_variation=2.0).key(),
        DataSettings(soft_tissue_variation=2.0, patella_variation=2.0).key(),
        DataSettings(femur_variation=2.0).key(),
        DataSettings(patella_variation=2.0, femur_variation=2.0).key(),
        DataSettings(tibia_variation=2.0).key(),
        DataSettings(femur_variation=2.0, tibia_variation=2.0).key(),
        DataSettings(condyle_variation=2.0).key(),
        DataSettings(trochlea_variation=2.0).key(),
        DataSettings(patella_form_variation=2.0).key(),
        DataSettings(trochlea_variation=2.0, patella_form_variation=2.0).key(),
        DataSettings(patella_ridge_variation=2.0).key(),
        DataSettings(condylar_offset_variation=2.0).key(),
        DataSettings(tilt_variation=2.0).key(),
    }
    assert len(keys) == 17
    unvaried = DataSettings(patella_variation=0.0, femur_variation=0.0, tibia_variation=0.0)
    assert unvaried.key() == DataSettings().key()


@pytest.mark.parametrize(
    "variation",
    [
        "patella_variation",  # version 2: the patellar height joined the patella variation
        "femur_variation",  # version 2: the notch enlargement dropped
    ],
)
def test_a_variation_cache_names_its_version(variation: str) -> None:
    # caches of the first version, whose keys had no version field, are stale
    import hashlib
    import json
    from dataclasses import asdict

    from reconstruction.training.data import CACHE_VERSION

    settings = DataSettings(**{variation: 2.0})
    first = {"v": CACHE_VERSION, **asdict(settings)}
    del first["isocentre_jitter_mm"], first["near_orthogonal_fraction"]
    del first["near_orthogonal_band_deg"]
    for name in VARIATION_OPTIONS:
        if name != variation:
            del first[name]
    first_key = hashlib.sha256(json.dumps(first, sort_keys=True).encode()).hexdigest()[:12]
    assert settings.key() != first_key


@pytest.mark.parametrize(
    "option",
    [
        "soft-tissue-variation",
        "patella-variation",
        "femur-variation",
        "tibia-variation",
        "condyle-variation",
        "trochlea-variation",
        "patella-form-variation",
        "patella-ridge-variation",
        "condylar-offset-variation",
        "tilt-variation",
    ],
)
def test_variation_options_are_checked_by_the_data_and_training_commands(
    option: str, capsys
) -> None:
    from reconstruction.training.train_student import parse_args

    attribute = option.replace("-", "_")
    parser = argparse.ArgumentParser()
    add_case_arguments(parser, prefix="student-")
    parsed = parser.parse_args([f"--student-{option}", "2"])
    assert getattr(parsed, f"student_{attribute}") == 2.0
    with pytest.raises(SystemExit):
        parser.parse_args([f"--student-{option}", "4"])
    assert "must be between 0 and 3" in capsys.readouterr().err
    run, _, _ = parse_args([f"--{option}", "1.5", "--out", "x.pt"])
    assert getattr(run, attribute) == 1.5
    with pytest.raises(SystemExit) as raised:
        parse_args([f"--{option}", "-1"])
    assert raised.value.code == 2


BONE_SHAPE_VARIATIONS = {
    "femur_variation": 1.5,
    "tibia_variation": 1.0,
    "condyle_variation": 1.0,
    "trochlea_variation": 3.0,
    "patella_variation": 1.5,
    "patella_form_variation": 1.5,
    "condylar_offset_variation": 1.0,
    "tilt_variation": 2.0,
}


def test_exact_labels_are_the_bones_the_varied_phantoms_ct_shows() -> None:
    # version 1 labelled the plain bones: 12-18 % of bone voxels wrong with O's variations
    from reconstruction.phantoms.generator import generate_case
    from reconstruction.training.data import exact_labels, phantom_variations

    seed = training_seeds(2026, 1)[0]
    case = generate_case(
        seed,
        spacing=(2.0, 2.0, 2.0),
        with_meshes=False,
        **phantom_variations(BONE_SHAPE_VARIATIONS),
    )
    volume = np.asarray(case.labels.array)
    ijk = np.argwhere(np.ones(volume.shape, dtype=bool))[::5]
    truth = volume[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
    points = case.labels.index_to_patient(ijk.astype(float))
    varied = exact_labels(seed, points, BONE_SHAPE_VARIATIONS)
    plain = exact_labels(seed, points)
    bone = (truth > 0) | (varied > 0) | (plain > 0)
    assert np.mean(varied[bone] == truth[bone]) > 0.98
    assert np.mean(plain[bone] == truth[bone]) < np.mean(varied[bone] == truth[bone]) - 0.03


def test_the_training_case_labels_follow_its_variations(monkeypatch) -> None:
    from reconstruction.training import data

    settings = DataSettings(
        size_px=32, pairs_per_case=1, points_per_case=64, ct_spacing_mm=2.0, **BONE_SHAPE_VARIATIONS
    )
    seen = {}

    def recording(seed, points, variations=None):
        seen.update(variations or {})
        return np.zeros(len(points), dtype=np.uint8)

    monkeypatch.setattr(data, "exact_labels", recording)
    data.build_case(training_seeds(2026, 1)[0], settings)
    assert {k: v for k, v in seen.items() if v} == BONE_SHAPE_VARIATIONS


@pytest.mark.parametrize("variation", [*sorted(BONE_SHAPE_VARIATIONS), "shape_variation"])
def test_caches_with_the_old_labels_are_stale(variation: str, monkeypatch) -> None:
    from reconstruction.training import data

    settings = DataSettings(**{variation: 1.0})
    current = settings.key()
    monkeypatch.setattr(data, "RELABELLED_VARIATIONS", ())  # the keys before version 2
    if variation == "shape_variation":  # labelled right all along: its caches are kept
        assert settings.key() == current
    else:
        assert settings.key() != current
