"""Public API: generate one phantom case (CT, labels, meshes, landmarks, angles)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import trimesh
from skimage.measure import marching_cubes

from reconstruction.phantoms.anatomy import BONE_LABELS, Bone, KneeAnatomy
from reconstruction.phantoms.ct import Materials, add_noise, simulate_fields, to_int16
from reconstruction.phantoms.femur import (
    build_offset_anatomy,
    vary_condyles,
    vary_femur,
    vary_trochlea,
)
from reconstruction.phantoms.findings import Findings, apply_findings
from reconstruction.phantoms.params import KneeParams, PhantomParameterError, sample_params
from reconstruction.phantoms.patella import vary_patella, vary_patella_form, vary_patella_ridge
from reconstruction.phantoms.sdf import Array, Box, Grid, Intersect, sample_narrow_band
from reconstruction.phantoms.soft_tissue import vary_soft_tissue
from reconstruction.phantoms.tibia import vary_tibia
from reconstruction.phantoms.variation import vary_anatomy, vary_tilt
from reconstruction.volume import Volume

FOV_CHOICES = ("knee", "limb")
KNEE_FOV_HEIGHT = 170.0  # mm along z, centred on the joint line
XY_MARGIN = 8.0


@dataclass
class PhantomCase:
    ct: Volume | None
    labels: Volume | None
    meshes: dict[str, trimesh.Trimesh]
    landmarks: dict[str, list[float]]
    angles: dict[str, float | str]
    params: KneeParams
    fov: str
    metadata: dict = field(default_factory=dict)


def field_of_view(anatomy: KneeAnatomy, fov: str) -> tuple[Array, Array]:
    """Axis-aligned patient box of the scan: knee-only or hip-to-ankle."""
    if fov not in FOV_CHOICES:
        raise PhantomParameterError(f"fov must be one of {FOV_CHOICES}, got {fov!r}")
    lm = anatomy.landmarks
    if fov == "knee":
        centre_z = 0.5 * (lm["femoral_knee_centre"][2] + lm["tibial_knee_centre"][2])
        z_lo, z_hi = centre_z - KNEE_FOV_HEIGHT / 2, centre_z + KNEE_FOV_HEIGHT / 2
    else:
        z_lo = min(lm["ankle_centre"][2], lm["lateral_malleolus"][2]) - 40.0
        z_hi = lm["hip_centre"][2] + anatomy.params.head_diameter / 2 + 40.0
    # the body cross-section decides x/y: sample the skin surface on a 3 mm grid
    probe = Grid.covering(
        np.array([-200.0, -200.0, z_lo]), np.array([200.0, 200.0, z_hi]), (4.0, 4.0, 4.0)
    )
    inside = sample_narrow_band(anatomy.body, probe, block=6) < 0
    ijk = np.argwhere(inside)
    pts = np.asarray(probe.origin) + ijk * np.asarray(probe.spacing)
    lo = pts.min(axis=0) - XY_MARGIN
    hi = pts.max(axis=0) + XY_MARGIN
    return np.array([lo[0], lo[1], z_lo]), np.array([hi[0], hi[1], z_hi])


def bone_mesh(
    bone: Bone, spacing: float, clip: tuple[Array, Array] | None = None
) -> trimesh.Trimesh:
    """Watertight marching-cubes surface of one bone (optionally capped by the FOV box)."""
    lo, hi = bone.patient_bounds(margin=2.0 * spacing)
    shape = bone.shape
    if clip is not None:
        # keep the cap planes off the grid nodes (exact zeros make non-manifold cubes)
        box = Box(clip[0] + 0.31 * spacing, clip[1] - 0.31 * spacing)
        shape = Intersect(shape, box, 0.0)
        lo = np.maximum(lo, clip[0] - 2 * spacing)
        hi = np.minimum(hi, clip[1] + 2 * spacing)
    grid = Grid.covering(lo, hi, (spacing, spacing, spacing))
    values = sample_narrow_band(shape, grid, block=6)
    if values.min() >= 0:
        return trimesh.Trimesh()
    verts, faces, _, _ = marching_cubes(values, 0.0, spacing=grid.spacing)
    mesh = _drop_stray_faces(trimesh.Trimesh(verts + np.asarray(grid.origin), faces, process=True))
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def _drop_stray_faces(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Marching cubes can leave lone triangles where the field grazes zero; no closed piece
    has fewer than four faces, so such fragments are removed and the surface stays watertight."""
    pieces = mesh.split(only_watertight=False)
    if len(pieces) <= 1:
        return mesh
    kept = [piece for piece in pieces if len(piece.faces) >= 4]
    return trimesh.util.concatenate(kept) if kept else mesh


# what each training-time variation drew, copied from the anatomy into the case metadata
VARIATION_EXTRAS = (
    "variation",
    "soft_tissue",
    "patella",
    "femur",
    "tibia",
    "condyles",
    "trochlea",
    "patella_form",
    "patella_ridge",
    "condylar_offset",
    "tilt",
)


def _as_params(params_or_seed: KneeParams | int) -> KneeParams:
    if isinstance(params_or_seed, KneeParams):
        params_or_seed.validate()
        return params_or_seed
    if isinstance(params_or_seed, int | np.integer):
        return sample_params(int(params_or_seed))
    raise PhantomParameterError("generate_case needs KneeParams or an integer seed")


def case_anatomy(
    params: KneeParams,
    findings: Findings | None = None,
    variation: float = 0.0,
    soft_tissue: float = 0.0,
    patella: float = 0.0,
    femur: float = 0.0,
    tibia: float = 0.0,
    condyles: float = 0.0,
    trochlea: float = 0.0,
    patella_form: float = 0.0,
    patella_ridge: float = 0.0,
    condylar_offset: float = 0.0,
    tilt: float = 0.0,
) -> KneeAnatomy:
    """The anatomy generate_case draws for these parameters, findings and variation
    strengths (see generate_case): the one place the variations are chained, so that a
    phantom's CT, label map, meshes and exact point labels all show the same bones."""
    if patella_ridge > 0 and variation > 0:  # the warp rescales the patella's ellipsoid
        raise PhantomParameterError("the patella ridge cannot be combined with shape warps")
    anatomy = build_offset_anatomy(params, condylar_offset)  # first: it builds the femur
    anatomy = apply_findings(anatomy, findings or Findings())
    anatomy = vary_femur(anatomy, femur)  # before the patella: it only removes bone
    anatomy = vary_tibia(anatomy, tibia)  # only removes bone
    anatomy = vary_condyles(anatomy, condyles)  # before the patella: it slides to the femur
    anatomy = vary_trochlea(anatomy, trochlea)  # adds bone only in front of the notch
    anatomy = vary_patella(anatomy, patella)  # before the warp: it needs the ellipsoid
    anatomy = vary_patella_form(anatomy, patella_form)  # keeps vary_patella's exponent
    anatomy = vary_patella_ridge(anatomy, patella_ridge)  # last: the patella is cut after it
    anatomy = vary_anatomy(anatomy, variation)
    anatomy = vary_tilt(anatomy, tilt)  # rigid: after every shape change
    return vary_soft_tissue(anatomy, soft_tissue)  # after the warp: on the final limb


def generate_case(
    params_or_seed: KneeParams | int,
    fov: str = "knee",
    spacing: Sequence[float] = (0.7, 0.7, 1.0),
    findings: Findings | None = None,
    dose: float = 1.0,
    noise_k: float = 25.0,
    mesh_spacing: float = 0.75,
    with_ct: bool = True,
    with_meshes: bool = True,
    supersample: bool = True,
    variation: float = 0.0,
    soft_tissue: float = 0.0,
    patella: float = 0.0,
    femur: float = 0.0,
    tibia: float = 0.0,
    condyles: float = 0.0,
    trochlea: float = 0.0,
    patella_form: float = 0.0,
    patella_ridge: float = 0.0,
    condylar_offset: float = 0.0,
    tilt: float = 0.0,
) -> PhantomCase:
    """One deterministic phantom: same parameters (seed) -> identical arrays.

    `variation` > 0 adds seeded shape and pose variation (phantoms.variation) and
    `soft_tissue` > 0 seeded muscle bulges and fat regions (phantoms.soft_tissue) and
    `patella` > 0 a seeded squarer, thicker-cortex patella at another height
    (phantoms.patella) and `femur` > 0 a seeded popliteal hollow
    (phantoms.femur) and `tibia` > 0 a seeded posterior recess below the plateau
    (phantoms.tibia) and `condyles` > 0 seeded squarer distal condyles
    (phantoms.femur.vary_condyles) and `trochlea` > 0 a seeded lower trochlea
    (phantoms.femur.vary_trochlea) and `patella_form` > 0 seeded patellar proportions,
    tilt and seating (phantoms.patella.vary_patella_form) and `patella_ridge` > 0 a seeded
    median ridge on the patella's articular face (phantoms.patella.vary_patella_ridge) and
    `condylar_offset` > 0 a seeded posterior condylar offset
    (phantoms.femur.build_offset_anatomy) and `tilt` > 0 a seeded turn of the whole limb
    about both horizontal axes (phantoms.variation.vary_tilt), all for training."""
    params = _as_params(params_or_seed)
    spacing_t = tuple(float(s) for s in spacing)
    if len(spacing_t) != 3 or min(spacing_t) < 0.2 or max(spacing_t) > 4.0:
        raise PhantomParameterError(f"spacing must be 3 values in [0.2, 4] mm, got {spacing}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    findings = findings or Findings()
    anatomy = case_anatomy(
        params,
        findings,
        variation=variation,
        soft_tissue=soft_tissue,
        patella=patella,
        femur=femur,
        tibia=tibia,
        condyles=condyles,
        trochlea=trochlea,
        patella_form=patella_form,
        patella_ridge=patella_ridge,
        condylar_offset=condylar_offset,
        tilt=tilt,
    )
    lo, hi = field_of_view(anatomy, fov)
    timings["anatomy"] = time.perf_counter() - t0

    ct_volume = labels_volume = None
    rng = np.random.default_rng([params.seed, 7])
    if with_ct:
        grid = Grid.covering(lo, hi, spacing_t)
        materials = Materials.sample(rng)
        result = simulate_fields(anatomy, grid, materials, rng, supersample=supersample)
        timings.update(result.timings)
        t0 = time.perf_counter()
        hu = findings.apply_ct(result.hu, anatomy, grid, rng)
        hu = add_noise(hu, dose, noise_k, rng)
        timings["findings + noise"] = time.perf_counter() - t0
        meta = {"params_seed": params.seed, "fov": fov, "dose": dose, "materials": vars(materials)}
        ct_volume = Volume(to_int16(hu), grid.affine, "CT", meta)
        labels_volume = Volume(result.labels, grid.affine, "LABELS", {"labels": dict(BONE_LABELS)})

    meshes: dict[str, trimesh.Trimesh] = {}
    if with_meshes:
        t0 = time.perf_counter()
        clip = (lo, hi) if fov == "knee" else None
        for name, bone in anatomy.bones.items():
            mesh = bone_mesh(bone, mesh_spacing, clip)
            if len(mesh.faces):
                meshes[name] = mesh
        timings["meshes"] = time.perf_counter() - t0

    in_fov = {n: bool(np.all((p >= lo) & (p <= hi))) for n, p in anatomy.landmarks.items()}
    metadata = {
        "fov_box_mm": [lo.tolist(), hi.tolist()],
        "landmarks_in_fov": in_fov,
        "transforms": {k: v.tolist() for k, v in anatomy.transforms.items()},
        "findings": findings.describe(),
        "timings_s": timings,
        "mesh_spacing_mm": mesh_spacing,
        "meshes_clipped_to_fov": fov == "knee",
    }
    for extra in VARIATION_EXTRAS:
        if extra in anatomy.extras:
            metadata[extra] = anatomy.extras[extra]
    return PhantomCase(
        ct=ct_volume,
        labels=labels_volume,
        meshes=meshes,
        landmarks={k: [float(x) for x in v] for k, v in anatomy.landmarks.items()},
        angles=dict(anatomy.angles),
        params=params,
        fov=fov,
        metadata=metadata,
    )
