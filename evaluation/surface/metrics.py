"""Surface metrics between a reference mesh A (CT) and a result mesh B (X-ray reconstruction).

Both directed distance sets are computed once, with weights, and every metric is derived
from them (see ``DEFINITIONS`` for the exact variants, also written into every output):

* A -> B: exact distances from area-weighted samples of A (each standing for
  area(A) / n_A mm^2) to the surface of B, plus every vertex of A (weight 0: maximum only);
* B -> A: the same the other way round.

With a region of interest, both meshes are cropped to the same slab and only the cropped
surfaces are sampled, but each sample's distance is to the whole other surface: the cut
itself then creates no distance. (Cut-to-cut would report the gap between the two cut
rims: concentric spheres of radius 20 and 21 mm cut 10 mm off-centre would get a Hausdorff
distance of 1.15 mm instead of 1.)

Signs (result outside the reference = positive) come from exact ray parity through the
closed reference mesh; volume Dice/IoU from both closed meshes voxelised on one lattice.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from .distances import ClosestPointIndex, SurfaceSample, sample_surface
from .errors import EmptyMeshError, ParameterError, SurfaceMetricError
from .io import check_mesh, check_units, load_mesh, require_watertight
from .roi import ALIGNMENTS, Slab, icp
from .volume import (
    MAX_GRID_SPACING,
    Lattice,
    column_events,
    overlap_counts,
    ray_axis,
    signs_outside,
)

DEFAULTS = {
    "density": 5.0,  # area-weighted samples per mm^2 on each surface
    "n_samples": None,  # or a sample count per side (overrides density)
    "seed": 0,
    "tolerance": 1.0,  # mm, normalised surface Dice
    "roi": None,  # Slab or None (whole meshes)
    "alignment": "none",
    "grid_spacing": 0.25,  # mm, volume Dice/IoU lattice
    "volume": True,
    "signed": True,
    "convergence": True,
}
CONVERGENCE_LIMIT_MM = 0.01

DEFINITIONS = {
    "assd": "pooled: area-weighted mean of all distances of both directed sets "
    "(sum_A d dA + sum_B d dB) / (area A + area B), as MONAI pools",
    "masd": "mean of the two directed area-weighted means (mean_AB + mean_BA) / 2, as MedPy "
    "and the reference paper call 'ASSD'",
    "rms": "pooled area-weighted root mean square of both directed sets",
    "hd": "Hausdorff: max of the two directed maxima over all samples and all vertices",
    "hd95": "max of the two directed area-weighted 95th percentiles (samples; linear interpolation)",
    "nsd": "normalised surface Dice at tolerance tau: (area of A within tau of B + area of B "
    "within tau of A) / (area A + area B)",
    "chamfer": "sum of the two directed area-weighted means of SQUARED distances "
    "(mean_A d^2 + mean_B d^2), mm^2, the PyTorch3D convention",
    "signed_mean": "area-weighted mean signed distance of the result surface to the reference: "
    "positive where the result lies outside the reference (result larger), sign by exact ray "
    "parity through the closed reference mesh",
    "dice": "volume Dice 2|A and B| / (|A| + |B|) of both closed meshes voxelised (scanline "
    "parity, voxel centres) on one shared lattice of grid_spacing mm, within the ROI",
    "iou": "volume intersection over union |A and B| / |A or B| on the same lattice",
    "assd_convergence": "|ASSD at twice the sample density - ASSD| (the first samples pooled "
    f"with as many new ones, seeds + 2 and + 3); converged when < {CONVERGENCE_LIMIT_MM} mm",
    "mean": "directed area-weighted mean distance",
    "p95": "directed area-weighted 95th percentile of distance",
    "max": "directed maximum over samples and vertices",
}


@dataclass(frozen=True)
class Directed:
    """Distances from one surface's samples (equal area weights) and vertices to the other."""

    samples: np.ndarray  # (n,) mm
    vertices: np.ndarray  # (m,) mm, for the maximum only (possibly only the candidates)
    area: float  # mm^2 of the source surface

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    @property
    def mean_sq(self) -> float:
        return float(np.mean(self.samples**2))

    @property
    def max(self) -> float:
        return float(max(np.max(self.samples, initial=0.0), np.max(self.vertices, initial=0.0)))

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.samples, q))

    def within(self, tolerance: float) -> float:
        return float(np.mean(self.samples <= tolerance))


def distance_metrics(ab: Directed, ba: Directed, tolerance: float) -> dict[str, float]:
    """Every unsigned metric from the two directed sets (keys as in ``DEFINITIONS``)."""
    total = ab.area + ba.area
    return {
        "assd": (ab.area * ab.mean + ba.area * ba.mean) / total,
        "masd": 0.5 * (ab.mean + ba.mean),
        "rms": float(np.sqrt((ab.area * ab.mean_sq + ba.area * ba.mean_sq) / total)),
        "hd": max(ab.max, ba.max),
        "hd95": max(ab.quantile(0.95), ba.quantile(0.95)),
        "nsd": (ab.area * ab.within(tolerance) + ba.area * ba.within(tolerance)) / total,
        "chamfer": ab.mean_sq + ba.mean_sq,
    }


@dataclass
class PairResult:
    """Everything measured for one bone: metrics, the inputs to them, and how they were made."""

    metrics: dict[str, float]
    directed: dict[str, dict[str, float]]
    parameters: dict
    result_mesh: trimesh.Trimesh  # the (aligned, cropped) result surface that was measured
    vertex_signed_distance: np.ndarray | None  # per vertex of result_mesh, mm (outside +)
    profile: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        units = dict.fromkeys(self.metrics, "mm")
        units.update(chamfer="mm^2", nsd="1", dice="1", iou="1")
        return {
            **self.metrics,
            "units": "mm",
            "metric_units": units,
            "directed": self.directed,
            "definitions": {
                k: DEFINITIONS[k] for k in (*self.metrics, "mean", "p95", "max") if k in DEFINITIONS
            },
            "parameters": self.parameters,
        }


class _Profiler:
    """Wall time and peak resident memory (ru_maxrss high-water mark) per stage."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self._t = time.perf_counter()

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        self.stages[stage] = {"seconds": now - self._t, "peak_rss_mb": peak}
        self._t = now


def _directed(
    index: ClosestPointIndex, sample: SurfaceSample, vertices: np.ndarray, every_vertex: bool = True
) -> Directed:
    """Distances of the samples and of the vertices (all, or only those that can be the max).

    With ``every_vertex=False`` a vertex v is skipped when d(s) + |v - s| <= max over the
    samples for its nearest sample s: d(v) <= d(s) + |v - s| (triangle inequality), so it
    cannot raise the maximum, and the maximum stays exact.
    """
    distance, _, _ = index.query(sample.points)
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    if not every_vertex and len(vertices) and len(distance):
        gap, nearest = cKDTree(sample.points).query(vertices, workers=-1)
        vertices = vertices[distance[nearest] + gap > distance.max()]
    return Directed(samples=distance, vertices=index.query(vertices)[0], area=sample.area)


def _validate_parameters(p: dict) -> None:
    unknown = set(p) - set(DEFAULTS)
    if unknown:
        raise ParameterError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    if p["n_samples"] is None and not (np.isfinite(p["density"]) and p["density"] > 0):
        raise ParameterError(
            f"sample density must be a positive number per mm^2, got {p['density']}"
        )
    if p["n_samples"] is not None and int(p["n_samples"]) < 100:
        raise ParameterError(f"need at least 100 samples per surface, got {p['n_samples']}")
    if not (np.isfinite(p["tolerance"]) and p["tolerance"] >= 0):
        raise ParameterError(
            f"NSD tolerance must be a non-negative number of mm, got {p['tolerance']}"
        )
    if not (0 < p["grid_spacing"] <= MAX_GRID_SPACING):
        raise ParameterError(
            f"voxel spacing must be in (0, {MAX_GRID_SPACING}] mm, got {p['grid_spacing']} mm"
        )
    if p["alignment"] not in ALIGNMENTS:
        raise ParameterError(f"alignment must be one of {ALIGNMENTS}, got {p['alignment']!r}")
    if p["roi"] is not None and not isinstance(p["roi"], Slab):
        raise ParameterError("roi must be an evaluation.surface.roi.Slab or None")


def compare_pair(
    reference: trimesh.Trimesh | str | Path,
    result: trimesh.Trimesh | str | Path,
    **params,
) -> PairResult:
    """Measure one result mesh against its reference mesh (coordinates in mm).

    Parameters (see ``DEFAULTS``): density or n_samples, seed (reference samples use
    ``seed``, result samples ``seed + 1``, the convergence run ``seed + 2`` and ``seed + 3``),
    tolerance (NSD, mm), roi (:class:`Slab`), alignment (``"none"`` or ``"icp"``),
    grid_spacing (mm, <= 0.25), volume / signed / convergence (switch those parts off).
    """
    p = {**DEFAULTS, **params}
    _validate_parameters(p)
    prof = _Profiler()
    mesh_a = check_mesh(load_mesh(reference, "reference"), "reference mesh")
    mesh_b = check_mesh(load_mesh(result, "result"), "result mesh")
    check_units(mesh_a, mesh_b)
    if p["signed"] or p["volume"]:
        needs = " and ".join(
            ["the signed distance"] * p["signed"] + ["volume Dice/IoU"] * p["volume"]
        )
        require_watertight(mesh_a, "the reference mesh", needs)
    if p["volume"]:
        require_watertight(mesh_b, "the result mesh", "volume Dice/IoU")
    roi: Slab | None = p["roi"]
    crop = (lambda m, name: roi.crop(m, name)) if roi is not None else (lambda m, name: m)
    prof.mark("load_and_check")

    crop_a = crop(mesh_a, "reference mesh")
    index_a = ClosestPointIndex(mesh_a)
    alignment: dict = {"method": p["alignment"]}
    if p["alignment"] == "icp":
        density = p["density"] if p["n_samples"] is None else p["n_samples"] / crop_a.area
        fit = icp(crop(mesh_b, "result mesh"), index_a, density=density, seed=p["seed"] + 4)
        mesh_b = mesh_b.copy()
        mesh_b.apply_transform(fit["transform"])
        alignment.update(
            transform=np.round(fit["transform"], 9).tolist(),
            iterations=fit["iterations"],
            rms_before_mm=fit["rms_before_mm"],
            rms_after_mm=fit["rms_after_mm"],
        )
    crop_b = crop(mesh_b, "result mesh")
    index_b = ClosestPointIndex(mesh_b)
    prof.mark("crop_align_index")

    def density_for(mesh: trimesh.Trimesh) -> float:
        return p["density"] if p["n_samples"] is None else p["n_samples"] / mesh.area

    sample_a = sample_surface(crop_a, density_for(crop_a), p["seed"])
    sample_b = sample_surface(crop_b, density_for(crop_b), p["seed"] + 1)
    for name, sample in (("reference", sample_a), ("result", sample_b)):
        if len(sample.points) < 100:
            raise ParameterError(
                f"only {len(sample.points)} samples on the {name} surface ({sample.area:.1f} mm^2 at "
                f"{sample.density:g}/mm^2): raise the density"
            )
    ab = _directed(index_b, sample_a, crop_a.vertices, every_vertex=False)
    ba = _directed(index_a, sample_b, crop_b.vertices, every_vertex=p["signed"])  # error map
    metrics = distance_metrics(ab, ba, p["tolerance"])
    prof.mark("distances")

    vertex_signed = None
    if p["signed"] or p["volume"]:
        # one lattice for both: the voxels that can hold a cropped surface point
        lower = np.minimum(crop_a.bounds[0], crop_b.bounds[0])
        upper = np.maximum(crop_a.bounds[1], crop_b.bounds[1])
        lattice = Lattice.covering(lower, upper, p["grid_spacing"])
        axis = ray_axis(crop_a)
        events_a = column_events(mesh_a, lattice, axis)

    if p["signed"]:
        points = np.vstack([sample_b.points, crop_b.vertices])
        sign = signs_outside(mesh_a, events_a, points, np.concatenate([ba.samples, ba.vertices]))
        n = len(sample_b.points)
        metrics["signed_mean"] = float(np.mean(sign[:n] * ba.samples))
        vertex_signed = sign[n:] * ba.vertices
        prof.mark("signed")

    if p["volume"]:
        n_a, n_b, n_ab = overlap_counts(events_a, column_events(mesh_b, lattice, axis), roi)
        if n_a == 0 or n_b == 0:
            empty = "reference" if n_a == 0 else "result"
            raise EmptyMeshError(
                f"the {empty} mesh encloses no voxel of the {p['grid_spacing']} mm grid inside the ROI"
            )
        metrics["dice"] = 2.0 * n_ab / (n_a + n_b)
        metrics["iou"] = n_ab / (n_a + n_b - n_ab)
        prof.mark("volume")

    convergence = None
    if p["convergence"]:
        # Doubling the density = adding an independent sample of the same density: only
        # the new points are measured, and pooled with the first ones.
        def doubled(first: Directed, index, mesh, seed) -> Directed:
            extra = _directed(
                index, sample_surface(mesh, density_for(mesh), seed), np.empty((0, 3))
            )
            return Directed(
                np.concatenate([first.samples, extra.samples]), first.vertices, first.area
            )

        ab2 = doubled(ab, index_b, crop_a, p["seed"] + 2)
        ba2 = doubled(ba, index_a, crop_b, p["seed"] + 3)
        assd2 = distance_metrics(ab2, ba2, p["tolerance"])["assd"]
        delta = abs(assd2 - metrics["assd"])
        metrics["assd_convergence"] = delta
        convergence = {
            "assd_at_double_density_mm": assd2,
            "abs_change_mm": delta,
            "limit_mm": CONVERGENCE_LIMIT_MM,
            "converged": bool(delta < CONVERGENCE_LIMIT_MM),
        }
        prof.mark("convergence")

    parameters = {
        "density_per_mm2": {"reference": sample_a.density, "result": sample_b.density},
        "n_samples": {"reference": len(sample_a.points), "result": len(sample_b.points)},
        "n_vertices": {"reference": len(crop_a.vertices), "result": len(crop_b.vertices)},
        "vertices_queried": {"reference": len(ab.vertices), "result": len(ba.vertices)},
        "area_mm2": {"reference": sample_a.area, "result": sample_b.area},
        "seed": p["seed"],
        "tolerance_mm": p["tolerance"],
        "roi": roi.as_dict() if roi is not None else None,
        "alignment": alignment,
        "grid_spacing_mm": p["grid_spacing"] if p["volume"] else None,
        "sign_method": "ray parity through the closed reference mesh" if p["signed"] else None,
        "convergence": convergence,
    }
    directed = {
        "reference_to_result": {"mean": ab.mean, "p95": ab.quantile(0.95), "max": ab.max},
        "result_to_reference": {"mean": ba.mean, "p95": ba.quantile(0.95), "max": ba.max},
    }
    return PairResult(
        metrics=metrics,
        directed=directed,
        parameters=parameters,
        result_mesh=crop_b,
        vertex_signed_distance=vertex_signed,
        profile=prof.stages,
    )


VARIANTS = {
    "assd": "pooled_area_weighted",
    "masd": "mean_of_directed_means",
    "rms": "pooled_area_weighted",
    "hd": "max_of_directed_max_samples_and_vertices",
    "hd95": "max_of_directed_p95",
    "nsd": "tau={tolerance:g}mm",
    "chamfer": "sum_of_directed_mean_squared",
    "signed_mean": "result_to_reference_outside_positive",
    "dice": "voxel_grid_{grid:g}mm",
    "iou": "voxel_grid_{grid:g}mm",
    "assd_convergence": "abs_change_at_double_density",
}
UNITS = {"chamfer": "mm^2", "nsd": "1", "dice": "1", "iou": "1"}


def rows_for(bone: str, pair: PairResult) -> list[dict]:
    """Long-format rows (bone, metric, variant, value, unit, parameters) for one bone."""
    fmt = {
        "tolerance": pair.parameters["tolerance_mm"],
        "grid": pair.parameters["grid_spacing_mm"] or 0.0,
    }
    rows = [
        {
            "bone": bone,
            "metric": metric,
            "variant": VARIANTS[metric].format(**fmt),
            "value": float(value),
            "unit": UNITS.get(metric, "mm"),
            "parameters": pair.parameters,
        }
        for metric, value in pair.metrics.items()
    ]
    for direction, values in pair.directed.items():
        for stat, value in values.items():
            rows.append(
                {
                    "bone": bone,
                    "metric": {"mean": "mean_distance", "p95": "hd95", "max": "hd"}[stat],
                    "variant": direction,
                    "value": float(value),
                    "unit": "mm",
                    "parameters": pair.parameters,
                }
            )
    return rows


def compare_pairs(reference: dict, result: dict, **params) -> dict[str, PairResult]:
    """:func:`compare_pair` for every bone; both dicts must name the same bones."""
    if not reference:
        raise EmptyMeshError("no bones given")
    if set(reference) != set(result):
        missing = sorted(set(reference) ^ set(result))
        raise ParameterError(
            f"reference and result must name the same bones; only in one of them: {', '.join(missing)}"
        )
    out = {}
    for bone in reference:
        try:
            out[bone] = compare_pair(reference[bone], result[bone], **params)
        except SurfaceMetricError as exc:
            raise type(exc)(f"{bone}: {exc}") from exc
    return out


def compare_bones(reference: dict, result: dict, **params) -> list[dict]:
    """One row per bone and metric, ready for ``pandas.DataFrame(rows)``.

    ``reference`` and ``result`` map bone names (femur, tibia, fibula, patella) to a
    Trimesh or a mesh file path (mm). ``params`` as for :func:`compare_pair`.
    """
    return [
        row
        for bone, pair in compare_pairs(reference, result, **params).items()
        for row in rows_for(bone, pair)
    ]
