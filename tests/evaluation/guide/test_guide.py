from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from evaluation.guide.__main__ import main
from evaluation.guide.checks import measure_slot, slot_vs_plan
from evaluation.guide.design import GuideParams, design_guide, plan_geometry
from evaluation.guide.errors import GuideError
from evaluation.guide.export import read_3mf
from evaluation.guide.virtual_trial import (
    KneeInput,
    run_knee,
    simulated_xray_model,
    summarise,
)


@pytest.fixture(scope="module")
def bundle(knee, tmp_path_factory):
    tibia, plan = knee
    folder = tmp_path_factory.mktemp("guide")
    tibia.export(folder / "tibia.stl")
    plan.save(folder / "plan.json")
    code = main(
        [
            "--tibia",
            str(folder / "tibia.stl"),
            "--plan",
            str(folder / "plan.json"),
            "--out",
            str(folder / "out"),
            "--label",
            "PH-003_right",
        ]
    )
    return code, folder / "out"


def test_cli_writes_printable_files_and_a_passing_report(bundle):
    code, out = bundle
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["ok"], report["checks"]
    assert report["slot_angle_deg"] <= 0.5 and report["slot_offset_mm"] <= 0.5
    assert report["slot_width_mm"] == pytest.approx(1.4, abs=0.01)
    assert report["min_clearance_mm"] >= 0.2 - 0.05
    assert len(report["pins"]) == 2
    for pin in report["pins"]:
        assert pin["below_joint_mm"] >= 5.0 and pin["clear_of_slot_mm"] >= 3.0
    for name in ("guide.stl", "tibia_print.stl"):
        mesh = trimesh.load(out / name)
        assert mesh.is_watertight and mesh.is_volume
    assert (out / "guide.stl").read_bytes()[:80].startswith(b"PH-003_right")
    mesh, label = read_3mf(out / "guide.3mf")
    mesh.merge_vertices()
    assert mesh.is_watertight and label == "PH-003_right"
    assert mesh.volume == pytest.approx(trimesh.load(out / "guide.stl").volume, rel=1e-4)


def test_slot_measurement_sees_a_tilted_plan(bundle, knee):
    """The measurement is independent of the plan: a guide built for a plan tilted by 2
    degrees is 2 degrees off the original plan."""
    _, out = bundle
    _, plan = knee
    measured = measure_slot(trimesh.load(out / "guide.stl"))
    tilted = plan.to_dict()
    n = np.asarray(tilted["osteotomy_plane_normal"])
    axis = np.asarray(tilted["hinge_axis"])
    angle = np.radians(2.0)
    tilted["osteotomy_plane_normal"] = (
        n * np.cos(angle) + np.cross(axis, n) * np.sin(angle)
    ).tolist()
    from evaluation.alignment.hto import HTOPlan

    result = slot_vs_plan(measured, plan_geometry(HTOPlan.from_dict(tilted)))
    assert result["slot_angle_deg"] == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tibia", "missing.stl"], "no such file"),
        (["--tibia", "tibia.txt"], "not an STL"),
        (["--plan", "bad.json"], "bad HTO plan"),
    ],
)
def test_bad_input_exits_with_one_line(tmp_path, capsys, knee, args, message):
    tibia, plan = knee
    tibia.export(tmp_path / "tibia.stl")
    plan.save(tmp_path / "plan.json")
    (tmp_path / "bad.json").write_text('{"side": "right"}')
    (tmp_path / "tibia.txt").write_text("x")
    base = {
        "--tibia": str(tmp_path / "tibia.stl"),
        "--plan": str(tmp_path / "plan.json"),
        "--out": str(tmp_path / "out"),
    }
    base[args[0]] = str(tmp_path / args[1])
    code = main([x for kv in base.items() for x in kv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_open_tibia_is_refused(knee):
    tibia, plan = knee
    broken = trimesh.Trimesh(tibia.vertices, tibia.faces[:-10], process=False)
    with pytest.raises(GuideError, match="watertight"):
        design_guide(broken, plan)


def test_virtual_trial_ct_on_ct_is_exact_and_xray_differs(knee):
    tibia, plan = knee
    params = GuideParams(grid_mm=0.8)
    xray = simulated_xray_model(tibia, seed=1)
    row = run_knee(KneeInput("PH", tibia, xray, plan), params, start_seed=5)
    # the CT guide, started 2 deg / 2 mm off, seats back on its own bone
    assert row["ct_guide_angle_vs_plan_deg"] < 0.1
    assert abs(row["ct_guide_offset_vs_plan_mm"]) < 0.1
    assert 0.0 < row["angle_deg"] < 10.0 and abs(row["offset_mm"]) < 3.0
    assert row["fit"]["ct"]["rms_mm"] < 0.05
    summary = summarise([row, row])
    assert summary["angle_deg"]["mean"] == pytest.approx(row["angle_deg"])
    assert summary["angle_deg"]["sd"] == pytest.approx(0.0)
