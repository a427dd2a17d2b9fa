"""Every constructed parameter is re-measured from the generated meshes (independently)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from reconstruction.phantoms.anatomy import PATELLA_FLEXION_RATIO
from tests.reconstruction.phantoms.measure import (
    condylar_rotation,
    measure_femur,
    measure_proximal_femur,
    measure_tibia,
    mesh_in_frame,
    principal_axes,
    signed_angle_2d,
    to_frame,
)

LENGTH_TOL = 1.0  # mm
ANGLE_TOL = 0.2  # degrees


def _measured(case):
    transforms = case.metadata["transforms"]
    femur = measure_femur(*to_frame(case.meshes["femur"], transforms["patient_from_femur"]))
    tibia = measure_tibia(*to_frame(case.meshes["tibia"], transforms["patient_from_tibia"]))
    return femur, tibia


@pytest.mark.parametrize("index", [0, 1])
def test_femur_dimensions_and_ldfa(limb_cases, index):
    case = limb_cases[index]
    p = case.params
    femur, _ = _measured(case)
    assert femur["femur_length"] == pytest.approx(p.femur_length, abs=LENGTH_TOL)
    assert femur["head_diameter"] == pytest.approx(p.head_diameter, abs=LENGTH_TOL)
    assert femur["bicondylar_width"] == pytest.approx(p.bicondylar_width, abs=LENGTH_TOL)
    assert femur["ldfa"] == pytest.approx(p.ldfa, abs=ANGLE_TOL)


@pytest.mark.parametrize("index", [0, 1])
def test_tibia_dimensions_mpta_and_slope(limb_cases, index):
    case = limb_cases[index]
    p = case.params
    _, tibia = _measured(case)
    assert tibia["tibia_length"] == pytest.approx(p.tibia_length, abs=LENGTH_TOL)
    assert tibia["plateau_width"] == pytest.approx(p.plateau_width, abs=LENGTH_TOL)
    assert tibia["plateau_depth"] == pytest.approx(p.plateau_depth, abs=LENGTH_TOL)
    assert tibia["mpta"] == pytest.approx(p.mpta, abs=ANGLE_TOL)
    assert tibia["posterior_slope"] == pytest.approx(p.posterior_slope, abs=ANGLE_TOL)


@pytest.mark.parametrize("index", [0, 1])
def test_limb_alignment_mhka_and_jlca(limb_cases, index):
    """Put the measured tibia back in extension (recorded pose) and measure in the femoral frontal plane."""
    case = limb_cases[index]
    femur, tibia = _measured(case)
    limb_from_tibia = np.asarray(case.metadata["transforms"]["limb_from_tibia_extension"])

    def to_limb(point):
        return limb_from_tibia[:3, :3] @ point + limb_from_tibia[:3, 3]

    knee_t, ankle = to_limb(tibia["knee"]), to_limb(tibia["ankle"])
    femoral_down = -femur["mech_axis_xz"]
    tibial_down = np.array([ankle[0] - knee_t[0], ankle[2] - knee_t[2]])
    # x = medial: a tibial axis turned towards medial (counter-clockwise here) is varus (negative)
    mhka = -signed_angle_2d(femoral_down, tibial_down)
    tibial_line = (limb_from_tibia[:3, :3] @ tibia["joint_line"])[[0, 2]]
    jlca = signed_angle_2d(femur["joint_line_xz"], tibial_line)
    assert mhka == pytest.approx(case.angles["mHKA"], abs=ANGLE_TOL)
    assert jlca == pytest.approx(case.angles["JLCA"], abs=ANGLE_TOL)
    # and the published identity holds on the measurements themselves
    ahka = tibia["mpta"] - femur["ldfa"]
    assert mhka == pytest.approx(ahka - jlca, abs=2 * ANGLE_TOL)


@pytest.mark.parametrize("index", [0, 1])
def test_recorded_landmarks_match_the_surfaces(limb_cases, index):
    case = limb_cases[index]
    transforms = case.metadata["transforms"]
    femur, tibia = _measured(case)
    to_patient_f = np.asarray(transforms["patient_from_femur"])
    to_patient_t = np.asarray(transforms["patient_from_tibia"])
    hip = to_patient_f[:3, :3] @ femur["hip_centre"] + to_patient_f[:3, 3]
    ankle = to_patient_t[:3, :3] @ tibia["ankle"] + to_patient_t[:3, 3]
    knee_t = to_patient_t[:3, :3] @ tibia["knee"] + to_patient_t[:3, 3]
    assert np.linalg.norm(hip - case.landmarks["hip_centre"]) < LENGTH_TOL
    assert np.linalg.norm(ankle - case.landmarks["ankle_centre"]) < LENGTH_TOL
    assert np.linalg.norm(knee_t - case.landmarks["tibial_knee_centre"]) < LENGTH_TOL
    # epicondyles are the extreme medial/lateral surface points of the distal femur
    for name in ("medial_epicondyle", "lateral_epicondyle", "medial_distal_condyle"):
        gap = case.meshes["femur"].nearest.on_surface([case.landmarks[name]])[1][0]
        assert gap < 0.3, name


@pytest.mark.parametrize("index", [0, 1])
def test_patella_size_and_fibula_position(limb_cases, index):
    case = limb_cases[index]
    p = case.params
    transforms = case.metadata["transforms"]
    vertices, _ = to_frame(case.meshes["patella"], transforms["patient_from_patella"])
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    assert extent == pytest.approx(
        [p.patella_width, p.patella_thickness, p.patella_height], abs=LENGTH_TOL
    )
    fibula, _ = to_frame(case.meshes["fibula"], transforms["patient_from_tibia"])
    head = fibula[fibula[:, 2] > fibula[:, 2].max() - 15.0].mean(axis=0)
    assert head[0] < -0.25 * p.plateau_width  # lateral (x = medial in the tibia frame)
    assert head[1] > 0.0  # posterior
    assert -30.0 < fibula[:, 2].max() < 0.0  # head tip below the plateau


def test_left_knee_is_mirrored_in_patient_space(limb_cases):
    """LPS: a right knee has its fibula towards patient right (-x), a left knee towards +x."""
    for case in limb_cases:
        lateral = case.landmarks["fibular_head"][0] - case.landmarks["tibial_knee_centre"][0]
        assert (lateral > 0) == (case.params.side == "L")
        assert case.meshes["femur"].volume > 0  # outward normals survive the mirroring


@pytest.mark.parametrize("index", [0, 1])
def test_knee_flexion_from_the_mechanical_axes(limb_cases, index):
    """Sagittal angle between measured femoral and tibial mechanical axes = flexion.

    Tolerance 0.5 deg: the flexion axis is the condylar axis, tilted by LDFA - 90 in the
    frontal plane, so the sagittal projection differs slightly from the rotation angle.
    """
    case = limb_cases[index]
    femur, tibia = _measured(case)
    transforms = case.metadata["transforms"]
    patient_from_femur = np.asarray(transforms["patient_from_femur"])
    femur_from_tibia = np.linalg.inv(patient_from_femur) @ np.asarray(
        transforms["patient_from_tibia"]
    )

    def in_femur(point):
        return femur_from_tibia[:3, :3] @ point + femur_from_tibia[:3, 3]

    knee_f = np.array([femur["knee_xz"][0], 0.0, femur["knee_xz"][1]])
    femoral_down = (knee_f - femur["hip_centre"])[[1, 2]]  # (y, z): sagittal plane
    tibial_down = (in_femur(tibia["ankle"]) - in_femur(tibia["knee"]))[[1, 2]]
    flexion = signed_angle_2d(femoral_down, tibial_down)  # ankle moves posterior (+y)
    assert flexion == pytest.approx(case.params.flexion, abs=0.5)


@pytest.mark.parametrize("index", [0, 1])
def test_neck_shaft_angle_and_anteversion(limb_cases, index):
    """Shaft axis at the isthmus and neck axis from section centroids, in the femur frame."""
    case = limb_cases[index]
    p = case.params
    frame = case.metadata["transforms"]["patient_from_femur"]
    femur = measure_femur(*to_frame(case.meshes["femur"], frame))
    proximal = measure_proximal_femur(
        mesh_in_frame(case.meshes["femur"], frame),
        femur["hip_centre"],
        femur["head_diameter"] / 2,
        femur["bicondylar_width"],
    )
    # the neck is a round cone aimed at the head centre (a misplaced trochanter bends it)
    assert proximal["neck_misses_head_by"] < 0.1
    assert proximal["neck_shaft_angle"] == pytest.approx(p.neck_shaft_angle, abs=ANGLE_TOL)
    assert proximal["femoral_anteversion"] == pytest.approx(p.femoral_anteversion, abs=ANGLE_TOL)


@pytest.mark.parametrize("index", [0, 1])
def test_axial_rotation_from_the_posterior_condyles(limb_cases, index):
    """Axial rotation = direction of the posterior condylar line in the patient axial plane.

    Uses the patient-space surface only (no recorded pose). It relies on the phantom having no
    posterior condylar angle (unrotated, that line is parallel to the frontal plane); it fails
    if the limb is rotated by another angle, the other way, about a non-vertical axis, or if the
    left-side mirroring and the rotation are composed in the wrong order.
    """
    case = limb_cases[index]
    measured = condylar_rotation(case.meshes["femur"].vertices, case.params.side)
    assert measured == pytest.approx(case.params.axial_rotation, abs=ANGLE_TOL)


@pytest.mark.parametrize("index", [0, 1])
def test_patella_tilt_from_its_principal_axes(limb_cases, index):
    """Patella tilt = rotation about the femoral medial (x) axis before it follows the knee.

    The patella's principal axes come from its surface (femur frame); the only recorded pose
    used is the knee-flexion one, scaled by the documented patellar share, to undo the
    patella's flexion. Fails if the tilt has the wrong size or sign, is applied about another
    axis or after the flexion, or the patella is not where its recorded pose says.
    """
    case = limb_cases[index]
    transforms = case.metadata["transforms"]
    patella = mesh_in_frame(case.meshes["patella"], transforms["patient_from_femur"])
    flexion = Rotation.from_matrix(np.asarray(transforms["flexion"])[:3, :3]).as_rotvec()
    unflex = Rotation.from_rotvec(-PATELLA_FLEXION_RATIO * flexion).as_matrix()
    axes = unflex @ principal_axes(patella)  # columns: thickness, height, width
    height = axes[:, 1] if axes[2, 1] > 0 else -axes[:, 1]
    tilt = np.degrees(np.arctan2(-height[1], height[2]))  # top towards anterior (-y)
    assert tilt == pytest.approx(case.params.patella_tilt, abs=ANGLE_TOL)
    assert np.degrees(np.arccos(abs(axes[0, 2]))) < ANGLE_TOL  # width stays medial-lateral
