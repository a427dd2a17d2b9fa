"""The held-out evaluation: summary tables (whole field and imaged slab), the real knee's
repeated acquisitions, and its command-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reconstruction.pseudoct import real_knee_labels_path
from reconstruction.training.evaluate import SLAB_SUFFIX, markdown_table, summarise


def _metrics(dice: float, assd: float) -> dict:
    return {"dice": dice, "assd": assd, "hd95": 2 * assd}


def test_tables_average_per_condition_and_keep_the_slab_apart() -> None:
    rows = [
        {
            "condition": "sep90_dose100000",
            "evaluations": 1000 + 200 * i,
            "femur": _metrics(0.90 + 0.02 * i, 1.0 + i),
            f"femur{SLAB_SUFFIX}": _metrics(0.96, 0.5 + 0.1 * i),
        }
        for i in range(2)
    ]
    summary = summarise(rows)
    row = summary["sep90_dose100000"]
    assert row["n_cases"] == 2 and row["mean_evaluations"] == 1100
    assert abs(row["femur"]["dice"] - 0.91) < 1e-12 and abs(row["femur"]["assd"] - 1.5) < 1e-12
    whole, slab = markdown_table(summary), markdown_table(summary, SLAB_SUFFIX)
    assert "| sep90_dose100000 | 2 | 91.0 / 1.50 | - | - | - | 1100 |" in whole
    assert "| sep90_dose100000 | 2 | 96.0 / 0.55 | - | - | - | 1100 |" in slab


@pytest.mark.parametrize(
    "option",
    [
        "--soft-tissue-variation",
        "--patella-variation",
        "--femur-variation",
        "--tibia-variation",
        "--condyle-variation",
        "--trochlea-variation",
        "--patella-form-variation",
        "--patella-ridge-variation",
        "--condylar-offset-variation",
        "--tilt-variation",
    ],
)
def test_build_test_refuses_an_out_of_range_strength(option: str, tmp_path, capsys) -> None:
    from reconstruction.training.evaluate import main

    with pytest.raises(SystemExit) as raised:
        main(["build-test", "--out", str(tmp_path / "set"), option, "5"])
    assert raised.value.code == 2
    assert "must be between 0 and 3" in capsys.readouterr().err
    assert not (tmp_path / "set").exists()  # nothing written


def test_build_test_draws_its_phantoms_with_the_variations_asked_for(tmp_path, monkeypatch):
    from reconstruction.training import evaluate

    asked: list[dict] = []

    def drawn(seed, **keywords):
        asked.append(keywords)
        raise RuntimeError("only the keywords are under test")

    monkeypatch.setattr(evaluate, "generate_case", drawn)
    with pytest.raises(RuntimeError, match="keywords"):
        evaluate.main(["build-test", "--n", "1", "--out", str(tmp_path / "set")])
    with pytest.raises(RuntimeError, match="keywords"):
        evaluate.main(
            ["build-test", "--n", "1", "--out", str(tmp_path / "set"), "--tilt-variation", "2"]
            + ["--patella-variation", "1.5"]
        )
    plain, varied = asked
    keywords = evaluate.phantom_variations(dict.fromkeys(evaluate.BUILD_TEST_VARIATIONS, 0.0))
    assert set(keywords) <= set(plain) and not any(plain[k] for k in keywords)
    assert {k: varied[k] for k in keywords if varied[k]} == {"tilt": 2.0, "patella": 1.5}


def test_real_knee_sections_needs_the_real_knee_pair_first(tmp_path, capsys, monkeypatch) -> None:
    from reconstruction.training.evaluate import main

    labels = tmp_path / "knee.nrrd"  # present, so only the missing pair is at fault
    labels.write_bytes(b"")
    monkeypatch.setenv("REAL_KNEE_LABELS", str(labels))

    out = tmp_path / "sections.png"
    with pytest.raises(SystemExit) as stopped:
        main(["real-knee-sections", "--work", str(tmp_path), "--out", str(out)])
    assert stopped.value.code == 2
    assert "run real-knee" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("command", ["real-knee", "teacher-real-knee", "femur-depth"])
def test_real_knee_commands_say_where_the_knee_is_missing(
    command: str, monkeypatch, tmp_path, capsys
) -> None:
    from reconstruction.training.evaluate import main

    monkeypatch.setenv("REAL_KNEE_LABELS", str(tmp_path / "absent.nrrd"))
    out = tmp_path / "result.json"
    arguments = [command, "--out", str(out)]
    if command == "real-knee":
        arguments += ["--checkpoint", str(tmp_path / "model.pt")]
    with pytest.raises(SystemExit) as stopped:
        main(arguments)
    assert stopped.value.code == 2
    assert "absent.nrrd" in capsys.readouterr().err
    assert not out.exists()


def test_write_json_replaces_whole_and_leaves_no_temporary(tmp_path) -> None:
    from reconstruction.training.evaluate import write_json

    target = tmp_path / "results" / "r.json"
    write_json(target, {"a": 1})
    write_json(target, {"b": [1, 2]})
    assert json.loads(target.read_text()) == {"b": [1, 2]}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_real_knee_repeat_zero_is_the_fixed_protocol_and_others_vary_within_bounds() -> None:
    from reconstruction.training.evaluate import (
        REPEAT_SHIFT_MM,
        REPEAT_TURN_DEG,
        real_knee_drr_settings,
    )

    centre = (1.0, -2.0, 30.0)
    fixed = real_knee_drr_settings(centre, 60.0, 0)
    assert (fixed.seed, fixed.first_angle_deg, fixed.isocentre_mm) == (11, 0.0, centre)
    assert fixed.separation_deg == 60.0
    repeats = [real_knee_drr_settings(centre, 90.0, r) for r in range(1, 9)]
    assert repeats[0] == real_knee_drr_settings(centre, 90.0, 1)  # seeded
    assert len({r.seed for r in repeats}) == 8 and 11 not in {r.seed for r in repeats}
    shifts = np.array([np.subtract(r.isocentre_mm, centre) for r in repeats])
    turns = np.array([r.first_angle_deg for r in repeats])
    assert np.all(np.abs(shifts) <= REPEAT_SHIFT_MM) and np.abs(shifts).max() > 0.5
    assert np.all(np.abs(turns) <= REPEAT_TURN_DEG) and np.abs(turns).max() > 0.5
    assert all(r.separation_deg == 90.0 for r in repeats)


def test_metric_spread_summarises_each_bone_over_repeats() -> None:
    from reconstruction.training.evaluate import metric_spread

    rows = [
        {"evaluations": 10, "femur": _metrics(0.90, 1.0), "femur_slab": _metrics(0.92, 0.8)},
        {"evaluations": 12, "femur": _metrics(0.94, 2.0), "femur_slab": _metrics(0.96, 0.6)},
        {"evaluations": 11, "femur": _metrics(0.92, 3.0), "femur_slab": _metrics(0.94, 0.7)},
    ]
    spread = metric_spread(rows)
    assert set(spread) == {"femur", "femur_slab"}
    assert spread["femur"]["assd"] == pytest.approx(
        {"mean": 2.0, "sd": 1.0, "min": 1.0, "max": 3.0}
    )
    assert spread["femur_slab"]["dice"]["mean"] == pytest.approx(0.94)
    assert spread["femur_slab"]["dice"]["sd"] == pytest.approx(0.02)


def test_real_knee_refuses_fewer_than_one_repeat(tmp_path, capsys) -> None:
    from reconstruction.training.evaluate import main

    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as stopped:
        main(["real-knee", "--checkpoint", "m.pt", "--repeats", "0", "--out", str(out)])
    assert stopped.value.code == 2
    assert "at least 1" in capsys.readouterr().err
    assert not out.exists()


def test_a_pseudo_ct_test_set_holds_the_same_phantoms_seen_through_the_real_knee_renderer(
    tmp_path, monkeypatch
) -> None:
    from reconstruction.io import read_xray_pair
    from reconstruction.training import evaluate

    monkeypatch.setattr(evaluate, "ANGLES", (90.0,))
    monkeypatch.setattr(evaluate, "DOSES", (1e5,))
    seed = 4242
    own = evaluate.build_test_case(seed, tmp_path / "own", size_px=48)
    pseudo = evaluate.build_test_case(seed, tmp_path / "pseudo", size_px=48, pseudo_ct=True)
    assert pseudo["renderer"] == "pseudo_ct" and "renderer" not in own
    for bone in ("femur", "tibia", "fibula", "patella"):
        name = f"truth_{bone}.stl"
        assert (tmp_path / "own" / name).read_bytes() == (tmp_path / "pseudo" / name).read_bytes()
    condition = evaluate.condition_name(90.0, 1e5)
    own_pair = read_xray_pair(tmp_path / "own" / condition)
    pseudo_pair = read_xray_pair(tmp_path / "pseudo" / condition)
    for a, b in zip(own_pair.views, pseudo_pair.views, strict=True):
        assert a.image.shape == b.image.shape == (48, 48)
        # the pseudo-CT's body is a margin around the bones, slimmer than the phantom's leg
        assert b.image.mean() < a.image.mean()


@pytest.mark.skipif(
    not real_knee_labels_path().exists(), reason="the shared real knee is not on this machine"
)
def test_femur_depth_compares_the_real_knee_with_the_training_phantoms_named(
    tmp_path, capsys
) -> None:
    from reconstruction.phantoms import generate_case
    from reconstruction.training.data import training_seeds
    from reconstruction.training.evaluate import main
    from reconstruction.training.sections import femur_depth_over_width

    out = tmp_path / "depth.json"
    main(["femur-depth", "--n", "3", "--trochlea-variation", "3", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["strengths"]["trochlea_variation"] == 3.0
    assert set(result["heights"]) == {"10", "15"}
    # the phantoms are the first training seeds, drawn with the variation named
    seeds = training_seeds(2026, 3)
    values = [
        femur_depth_over_width(
            generate_case(s, with_ct=False, mesh_spacing=1.0, trochlea=3.0).meshes["femur"]
        )[10.0]
        for s in seeds
    ]
    row = result["heights"]["10"]
    assert row["median"] == pytest.approx(float(np.median(values)))
    assert row["share_at_or_beyond_real"] == pytest.approx(np.mean(np.array(values) >= row["real"]))
    assert 0.5 < row["real"] < 1.0  # a femur deeper than wide at 10 mm would be a misreading
    assert "share at or beyond real" in capsys.readouterr().out
