"""HTO planning on constructed geometry whose answer is known by construction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evaluation.alignment.errors import AlignmentError
from evaluation.alignment.frames import Frame
from evaluation.alignment.hto import (
    HTOGeometry,
    HTOOptions,
    HTOPlan,
    dugdale,
    gap_height,
    plan_hto,
)


def _random_frame(seed: int, side: str) -> Frame:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    medial, superior = q[:, 0], q[:, 2]
    anterior_hint = np.cross(superior, medial) * (1 if side == "left" else -1)
    return Frame.from_axes(rng.normal(0, 50, 3), superior, medial, anterior_hint, side)


def _clockwise(v: np.ndarray, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([c * v[0] + s * v[1], -s * v[0] + c * v[1]])


def _angle_from_down(v: np.ndarray) -> float:
    """Angle (deg) of a 2D (medial, superior) vector from straight down, towards medial."""
    return math.degrees(math.atan2(v[0], -v[1]))


def _case(theta: float, side: str, seed: int, mpta: float = 86.0):
    """Frontal-plane construction: choose the correction theta, rotate the ankle about the
    hinge by it, and put the hip on the line through the corrected ankle and the target."""
    frame = _random_frame(seed, side)
    hinge2, ankle2 = np.array([-26.0, -16.0]), np.array([6.0, -365.0])
    med2, lat2 = np.array([37.0, 0.5]), np.array([-39.0, -0.5])
    target2 = med2 + 0.625 * (lat2 - med2)
    corrected2 = hinge2 + _clockwise(ankle2 - hinge2, theta)
    ray = target2 - corrected2
    hip2 = target2 + 450.0 / np.linalg.norm(ray) * ray
    start2 = np.array([38.0, -37.5])
    knee2 = np.zeros(2)
    mhka = _angle_from_down(knee2 - hip2) - _angle_from_down(ankle2 - knee2)

    def world(p2: np.ndarray, ap: float = 3.0) -> np.ndarray:
        return frame.to_world(p2[0], ap, p2[1])

    geometry = HTOGeometry(
        frame=frame,
        hip=world(hip2, -20.0),  # out-of-plane offsets must not matter
        ankle=world(ankle2, 8.0),
        femoral_knee=world(knee2 + [0, 5.0]),
        tibial_knee=world(knee2),
        medial_margin=world(med2),
        lateral_margin=world(lat2),
        hinge=world(hinge2),
        osteotomy_start=world(start2),
        mpta=mpta,
        ldfa=88.0,
        mhka=mhka,
    )
    expected = {
        "target2": target2,
        "corrected2": corrected2,
        "hip2": hip2,
        "mhka_post": _angle_from_down(knee2 - hip2) - _angle_from_down(corrected2 - knee2),
        "length": float(np.linalg.norm(hinge2 - start2)),
    }
    return geometry, expected


@pytest.mark.parametrize(("theta", "side", "seed"), [(8.0, "right", 0), (11.5, "left", 1)])
def test_miniaci_recovers_constructed_correction(theta: float, side: str, seed: int) -> None:
    geometry, expected = _case(theta, side, seed)
    plan = plan_hto(geometry)
    fr = geometry.frame
    assert plan.correction_angle_deg == pytest.approx(theta, abs=1e-6)
    assert np.allclose(fr.frontal(np.array(plan.target_point))[0], expected["target2"], atol=1e-6)
    after2 = fr.frontal(np.array(plan.ankle_after))[0]
    assert np.allclose(after2, expected["corrected2"], atol=1e-6)
    assert plan.osteotomy_length_mm == pytest.approx(expected["length"], abs=1e-6)
    # the gap is the distance the medial start point opens when turned about the hinge
    start2 = fr.frontal(geometry.osteotomy_start)[0]
    hinge2 = fr.frontal(geometry.hinge)[0]
    opened = hinge2 + _clockwise(start2 - hinge2, theta)
    assert plan.gap_height_mm == pytest.approx(np.linalg.norm(opened - start2), abs=1e-6)
    assert plan.post["mpta"] == pytest.approx(geometry.mpta + theta, abs=1e-9)
    assert plan.post["jlo"] == pytest.approx(geometry.mpta + theta + geometry.ldfa, abs=1e-9)
    assert plan.post["mhka"] == pytest.approx(expected["mhka_post"], abs=1e-6)
    assert plan.side == side


def test_plan_plane_and_hinge_geometry() -> None:
    geometry, _ = _case(7.0, "right", 4)
    plan = plan_hto(geometry)
    normal, point = np.array(plan.osteotomy_plane_normal), np.array(plan.osteotomy_plane_point)
    assert abs(np.linalg.norm(normal) - 1) < 1e-12
    assert abs((geometry.osteotomy_start - point) @ normal) < 1e-9
    assert abs((geometry.hinge - point) @ normal) < 1e-9
    assert abs(np.array(plan.hinge_axis) @ normal) < 1e-12
    assert normal @ geometry.frame.superior > 0
    # rigid rotation about the hinge keeps |PA|
    before = np.linalg.norm(geometry.ankle - geometry.hinge)
    after = np.linalg.norm(np.array(plan.ankle_after) - geometry.hinge)
    assert after == pytest.approx(before, abs=1e-9)


def test_mpta_warning_above_95() -> None:
    geometry, _ = _case(9.0, "right", 2, mpta=88.0)
    plan = plan_hto(geometry)
    assert plan.post["mpta"] > 95
    assert any("MPTA" in w for w in plan.warnings)
    calm = plan_hto(_case(4.0, "right", 2, mpta=86.0)[0])
    assert not any("MPTA" in w for w in calm.warnings)


def test_valgus_knee_gets_no_opening() -> None:
    geometry, _ = _case(-3.0, "left", 3)
    plan = plan_hto(geometry)
    assert plan.correction_angle_deg == pytest.approx(-3.0, abs=1e-6)
    assert any("no opening wedge" in w for w in plan.warnings)


def test_dugdale_constructed() -> None:
    target = np.array([-9.0, 0.0])
    hip = np.array([-9.0, 450.0])  # straight above the target
    phi = 6.0
    ankle = target + 360 * np.array([math.sin(math.radians(phi)), -math.cos(math.radians(phi))])
    assert dugdale(hip, ankle, target) == pytest.approx(phi, abs=1e-9)


def test_gap_chord_values() -> None:
    # "1 mm per degree" only holds near L = 57 mm
    assert gap_height(57.0, 1.0) == pytest.approx(0.99483, abs=1e-4)
    assert gap_height(80.0, 10.0) == pytest.approx(2 * 80 * math.sin(math.radians(5)), rel=1e-12)


def test_json_round_trip(tmp_path) -> None:
    plan = plan_hto(_case(6.0, "right", 5)[0])
    path = plan.save(tmp_path / "plan.json")
    loaded = HTOPlan.load(path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert loaded.correction_angle_deg == plan.correction_angle_deg
    data = plan.to_dict()
    del data["hinge_point"]
    with pytest.raises(AlignmentError, match="hinge_point"):
        HTOPlan.from_dict(data)
    bad = plan.to_dict()
    bad["hinge_axis"] = [1.0, "x"]
    with pytest.raises((AlignmentError, ValueError)):
        HTOPlan.from_dict(bad)


@pytest.mark.parametrize(
    "options",
    [HTOOptions(target_fraction=1.2), HTOOptions(hinge_from_lateral_cortex_mm=-1.0)],
)
def test_bad_options(options: HTOOptions) -> None:
    with pytest.raises(AlignmentError):
        plan_hto(_case(5.0, "right", 6)[0], options)
