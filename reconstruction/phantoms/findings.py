"""Optional findings: osteophytes (bone shape), a subchondral cyst and a metal plate (CT only).

* Osteophytes are small spheres smooth-blended onto the condylar and plateau margins; they
  change the bone surfaces (labels and meshes) but NOT the constructed landmarks/angles.
* The cyst is a fluid-filled void (~20 HU) with a thin sclerotic rim inside the cancellous
  bone of the medial tibial plateau. Labels keep it as tibia (segmentations include cysts).
* Metal: a medial proximal-tibia plate (HTO-like) with screws, 6000 HU. Streaks are a
  documented approximation: per axial slice, the metal mask is forward-projected (Radon),
  a beam-hardening error proportional to the squared metal path plus photon-starvation noise
  growing with the path is filtered back-projected, and added to the slice. Labels ignore the
  metal (it is not bone); screws inside bone keep the bone label.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import zoom
from skimage.transform import iradon, radon

from reconstruction.phantoms.sdf import Array, Grid, Sphere, Union, apply

METAL_HU = 6000.0
MU_WATER = 0.02  # 1/mm at ~70 keV
MU_METAL = MU_WATER * (1.0 + METAL_HU / 1000.0)
BEAM_HARDENING = 0.35
PHOTONS = 1e4  # unattenuated photons per ray
MAX_LINE = 9.0  # detector floor: line integrals saturate
CYST_HU = 20.0
CYST_RIM_HU = 800.0


@dataclass(frozen=True)
class Findings:
    osteophytes: bool = False
    cyst: bool = False
    metal: bool = False

    def describe(self) -> dict[str, bool]:
        return dataclasses.asdict(self)

    @classmethod
    def parse(cls, text: str | None) -> Findings:
        """'osteophytes,cyst,metal' -> Findings; empty/None -> none."""
        names = [t.strip() for t in (text or "").split(",") if t.strip()]
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = set(names) - valid
        if unknown:
            raise ValueError(f"unknown findings {sorted(unknown)}; choose from {sorted(valid)}")
        return cls(**{n: True for n in names})

    def apply_ct(self, hu: Array, anatomy, grid: Grid, rng: np.random.Generator) -> Array:
        extras = anatomy.extras.get("findings", {})
        if self.cyst and "cyst" in extras:
            centre, radius = extras["cyst"]
            _paint_sphere(hu, grid, centre, radius + 1.0, CYST_RIM_HU)
            _paint_sphere(hu, grid, centre, radius, CYST_HU)
        if self.metal and "metal" in extras:
            metal = _metal_fraction(grid, extras["metal"])
            hu = hu * (1 - metal) + METAL_HU * metal
            hu = _add_streaks(hu, metal, grid, rng)
        return hu


def _snap_to_surface(sdf, point: Array, iterations: int = 20) -> Array:
    """Newton-like projection of a point onto the zero set (numerical gradient)."""
    p = np.asarray(point, dtype=float).copy()
    eps = 0.05
    for _ in range(iterations):
        probes = p + np.vstack([np.zeros(3), eps * np.eye(3)])
        values = sdf(probes)
        grad = (values[1:] - values[0]) / eps
        norm = np.linalg.norm(grad)
        if norm < 1e-9:
            break
        p = p - values[0] * grad / norm**2
        if abs(values[0]) < 1e-3:
            break
    return p


def _unit(v: Array) -> Array:
    return v / np.linalg.norm(v)


def apply_findings(anatomy, findings: Findings):
    """Return an anatomy with osteophytes blended in and finding geometry recorded in extras."""
    if not (findings.osteophytes or findings.cyst or findings.metal):
        return anatomy
    rng = np.random.default_rng([anatomy.params.seed, 11])
    lm = anatomy.landmarks
    medial = _unit(lm["medial_epicondyle"] - lm["lateral_epicondyle"])
    up = _unit(lm["hip_centre"] - lm["femoral_knee_centre"])
    tib_up = _unit(lm["tibial_knee_centre"] - lm["ankle_centre"])
    bones = dict(anatomy.bones)
    extras = dict(anatomy.extras)
    recorded: dict[str, object] = {}
    if findings.osteophytes:
        p = anatomy.params
        seeds = {
            "femur": [
                lm["medial_distal_condyle"] + medial * 0.13 * p.bicondylar_width + up * 6,
                lm["lateral_distal_condyle"] - medial * 0.13 * p.bicondylar_width + up * 6,
            ],
            "tibia": [
                lm["medial_plateau"] + medial * 0.19 * p.plateau_width - tib_up * 3,
                lm["lateral_plateau"] - medial * 0.19 * p.plateau_width - tib_up * 3,
            ],
        }
        spheres = []
        for name, points in seeds.items():
            bone = bones[name]
            union = Union().add(bone.local_shape)
            local_from_patient = np.linalg.inv(bone.patient_from_local)
            for point in points:
                surface = _snap_to_surface(bone.sdf, point)
                radius = float(rng.uniform(2.0, 4.0))
                union.add(Sphere(apply(local_from_patient, surface), radius), 2.0)
                spheres.append((name, surface.tolist(), radius))
            bones[name] = dataclasses.replace(bone, local_shape=union)
        recorded["osteophytes"] = spheres
    if findings.cyst:
        radius = float(rng.uniform(3.0, 6.0))
        centre = lm["medial_plateau"] - tib_up * (radius + 4.0)
        recorded["cyst"] = (centre, radius)
    if findings.metal:
        recorded["metal"] = _plate_geometry(bones["tibia"], lm, medial, tib_up)
    extras["findings"] = recorded
    return dataclasses.replace(anatomy, bones=bones, extras=extras)


def _plate_geometry(tibia, lm: dict[str, Array], medial: Array, up: Array) -> dict[str, object]:
    """Plate on the anteromedial proximal tibia, 4 screws through it into the bone."""
    anterior = _unit(np.cross(up, medial))  # for a right limb in LPS this is -y
    if anterior @ (lm["tibial_tuberosity"] - lm["tibial_knee_centre"]) < 0:
        anterior = -anterior
    outward = _unit(medial * np.cos(np.radians(30)) + anterior * np.sin(np.radians(30)))
    centre_axis = lm["tibial_knee_centre"] - up * 58.0
    surface = _snap_to_surface(tibia.sdf, centre_axis + outward * 60.0)
    thickness, width, length = 3.5, 14.0, 70.0
    plate_centre = surface + outward * (thickness / 2 + 0.5)
    along = _unit(up - (up @ outward) * outward)
    screws = [plate_centre + along * s for s in (-25.0, -8.0, 8.0, 25.0)]
    return {
        "centre": plate_centre,
        "normal": outward,
        "along": along,
        "size": (thickness, width, length),
        "screws": screws,
        "screw_radius": 2.25,
        "screw_length": 28.0,
    }


def _voxel_centres(grid: Grid, lo: Array, hi: Array) -> tuple[tuple[slice, ...], Array] | None:
    origin, step = np.asarray(grid.origin), np.asarray(grid.spacing)
    i0 = np.clip(np.floor((lo - origin) / step).astype(int), 0, np.asarray(grid.shape))
    i1 = np.clip(np.ceil((hi - origin) / step).astype(int) + 1, 0, np.asarray(grid.shape))
    if np.any(i1 <= i0):
        return None
    sl = tuple(slice(a, b) for a, b in zip(i0, i1, strict=True))
    ii, jj, kk = np.meshgrid(*[np.arange(a, b) for a, b in zip(i0, i1, strict=True)], indexing="ij")
    return sl, grid.points(ii, jj, kk)


def _coverage(sdf_values: Array, grid: Grid) -> Array:
    """Partial-volume fraction from a signed distance (linear ramp over one voxel)."""
    h = float(np.mean(grid.spacing))
    return np.clip(0.5 - sdf_values / h, 0.0, 1.0)


def _paint_sphere(hu: Array, grid: Grid, centre: Array, radius: float, value: float) -> None:
    placed = _voxel_centres(grid, centre - radius - 2, centre + radius + 2)
    if placed is None:
        return
    sl, pts = placed
    frac = _coverage(np.linalg.norm(pts - centre, axis=1) - radius, grid).reshape(hu[sl].shape)
    hu[sl] = hu[sl] * (1 - frac) + value * frac


def _metal_sdf(metal: dict[str, object]):
    centre, normal, along = (np.asarray(metal[k]) for k in ("centre", "normal", "along"))
    side = np.cross(normal, along)
    half = np.asarray(metal["size"]) / 2
    screws = [np.asarray(s) for s in metal["screws"]]

    def sdf(points: Array) -> Array:
        q = points - centre
        local = np.stack([q @ normal, q @ side, q @ along], axis=1)
        d = np.abs(local) - half[[0, 1, 2]]
        plate = np.linalg.norm(np.maximum(d, 0), axis=1) + np.minimum(d.max(axis=1), 0)
        result = plate
        for s in screws:
            t = np.clip((points - s) @ -normal, 0.0, float(metal["screw_length"]))
            closest = s - np.outer(t, normal)
            result = np.minimum(
                result, np.linalg.norm(points - closest, axis=1) - float(metal["screw_radius"])
            )
        return result

    return sdf


def _metal_fraction(grid: Grid, metal: dict[str, object]) -> Array:
    frac = np.zeros(grid.shape, dtype=np.float32)
    reach = 60.0
    centre = np.asarray(metal["centre"])
    placed = _voxel_centres(grid, centre - reach, centre + reach)
    if placed is None:
        return frac
    sl, pts = placed
    frac[sl] = _coverage(_metal_sdf(metal)(pts), grid).reshape(frac[sl].shape)
    return frac


def _add_streaks(
    hu: Array, metal: Array, grid: Grid, rng: np.random.Generator, max_px: int = 64
) -> Array:
    """Beam-hardening + photon-starvation streaks, slice by slice (see module docstring)."""
    slices = np.flatnonzero(metal.reshape(-1, metal.shape[2]).max(axis=0) > 0.05)
    if len(slices) == 0:
        return hu
    nx, ny = metal.shape[:2]
    factor = int(np.ceil(max(nx, ny) / max_px))
    pixel = float(np.mean(grid.spacing[:2])) * factor
    angles = np.linspace(0.0, 180.0, 60, endpoint=False)
    # streak patterns vary slowly along z: one projection per ~3 mm slab, shared by its slices
    step = max(1, int(round(3.0 / grid.spacing[2])))
    out = hu.copy()
    for k in slices[::step]:
        small = metal[: nx - nx % factor or nx, : ny - ny % factor or ny, k]
        small = small.reshape(
            small.shape[0] // factor, factor, small.shape[1] // factor, factor
        ).mean(axis=(1, 3))
        # metal line integrals (mu * mm) per ray, from the metal volume fraction
        line = np.minimum(radon(small, angles, circle=False) * pixel * MU_METAL, MAX_LINE)
        # beam hardening (under-estimate ~ line^2) + photon starvation (noise ~ e^(line/2))
        error = -BEAM_HARDENING * line**2
        error += rng.normal(0.0, 1.0, line.shape) * np.exp(line / 2) / np.sqrt(PHOTONS)
        streak = iradon(
            error / pixel, angles, circle=False, filter_name="ramp", output_size=max(small.shape)
        )
        streak = 1000.0 * streak / MU_WATER  # attenuation error per mm -> HU
        streak = streak[: small.shape[0], : small.shape[1]]
        full = zoom(streak, factor, order=1, grid_mode=True, mode="nearest")
        slab = [j for j in range(k, k + step) if j in set(slices.tolist())]
        out[: full.shape[0], : full.shape[1], slab] += full.astype(np.float32)[:, :, None]
    return out
