"""Held-out evaluation of the X-ray student (phantoms never used in training, the real knee).

    python -m reconstruction.training.evaluate build-test --n 6 --out var/cache/testset
    python -m reconstruction.training.evaluate student --checkpoint F --testset DIR --out R.json
    python -m reconstruction.training.evaluate real-knee --checkpoint F --out R.json

Held-out phantoms: seeds after the training seeds of the same master seed (disjoint by
construction), DRRs written exactly as the product receives them (simulate_pair at the
reference 512 px detector, write_xray_pair) and read back through read_xray_pair. Ground
truth: the generator's exact bone meshes. Metrics from evaluation.surface.compare_pair:
volume Dice of the closed meshes and ASSD = mean of the two directed area-weighted mean
exact point-to-triangle distances ("masd" there; the reference paper's definition).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

from reconstruction.drr.simulate import DRRSettings, bone_centre, simulate_pair
from reconstruction.io import read_xray_pair, write_xray_pair
from reconstruction.io._atomic import write_bytes_atomic
from reconstruction.phantoms.generator import VARIATION_EXTRAS, generate_case
from reconstruction.pseudoct import REAL_KNEE_ENV, continued_pseudo_ct, real_knee_labels_path
from reconstruction.training.data import (
    VARIATION_OPTIONS,
    phantom_variations,
    split_seeds,
    training_seeds,
)

ANGLES = (90.0, 75.0, 60.0, 45.0, 30.0)
DOSES = (1e5, 1e4, 1e3)
BONES = ("femur", "tibia", "fibula", "patella")
SLAB_SUFFIX = "_slab"
REAL_KNEE_COMMANDS = ("real-knee", "real-knee-sections", "teacher-real-knee", "femur-depth")
# the variations a held-out set can be built with (shape warps are a training option only)
BUILD_TEST_VARIATIONS = (
    "soft_tissue_variation",
    "patella_variation",
    "femur_variation",
    "tibia_variation",
    "condyle_variation",
    "trochlea_variation",
    "patella_form_variation",
    "patella_ridge_variation",
    "condylar_offset_variation",
    "tilt_variation",
)


def held_out_variations(args: argparse.Namespace) -> dict[str, float]:
    """The BUILD_TEST_VARIATIONS strengths a command's arguments ask for."""
    return {name: getattr(args, name) for name in BUILD_TEST_VARIATIONS}


def write_json(path: Path, data: dict) -> Path:
    """Indented JSON, written to a temporary name and renamed (never half-written)."""
    return write_bytes_atomic(path, json.dumps(data, indent=1).encode())


def read_real_knee_labels():
    """The shared real knee's label map (a Volume); a clear error when it is not there."""
    from reconstruction.io import read_volume

    path = real_knee_labels_path()
    if not path.is_file():
        raise FileNotFoundError(f"the shared real knee is not at {path} (set ${REAL_KNEE_ENV})")
    return read_volume(path)


def condition_name(separation: float, dose: float) -> str:
    return f"sep{separation:g}_dose{dose:g}"


def build_test_case(
    seed: int,
    out: Path,
    size_px: int = 512,
    variations: dict[str, float] | None = None,
    pseudo_ct: bool = False,
) -> dict:
    """Ground-truth meshes + one X-ray pair directory per (separation, dose) condition.

    `variations` (DataSettings names, BUILD_TEST_VARIATIONS; default none) give the held-out
    phantom the training variations' bones, tissue or pose at those strengths: e.g.
    soft_tissue_variation the same bones on other-looking radiographs, patella_variation a
    squarer patella (phantoms.patella), tilt_variation a turned limb
    (phantoms.variation.vary_tilt).

    With `pseudo_ct` the radiographs are rendered as the real knee's are: from the
    pseudo-CT of the phantom's label map (default tissue model, continued along the limb),
    so the same shapes measure the renderer's share of the real-knee error."""
    case = generate_case(
        seed,
        fov="knee",
        spacing=(1.0, 1.0, 1.0),
        mesh_spacing=1.0,
        **phantom_variations(variations or {}),
    )
    out.mkdir(parents=True, exist_ok=True)
    leaky = [n for n, m in case.meshes.items() if not m.is_watertight]
    for name, mesh in case.meshes.items():
        mesh.export(out / f"truth_{name}.stl")
    np.savez_compressed(out / "ct.npz", ct=case.ct.array, affine=case.ct.affine)
    conditions = [(a, DOSES[0]) for a in ANGLES] + [(ANGLES[0], d) for d in DOSES[1:]]
    source = continued_pseudo_ct(case.labels, seed=seed) if pseudo_ct else case.ct
    centre = bone_centre(source)  # the beam centred on the knee, as a radiographer does
    for index, (separation, dose) in enumerate(conditions):
        settings = DRRSettings(
            separation_deg=separation,
            dose_photons=dose,
            size_px=size_px,
            seed=seed % 10**6 + index,
            isocentre_mm=centre,
        )
        pair = simulate_pair(source, settings)
        write_xray_pair(
            out / condition_name(separation, dose),
            [v.image for v in pair.views],
            [v.geometry for v in pair.views],
            metadata=pair.metadata,
        )
    info = {"seed": seed, "non_watertight_truth": leaky, "side": case.params.side}
    if pseudo_ct:
        info["renderer"] = "pseudo_ct"
    for extra in VARIATION_EXTRAS:
        if extra in case.metadata:
            info[extra] = case.metadata[extra]
    write_json(out / "case.json", info)  # last: its presence marks the case complete
    return info


def surface_metrics(
    reference: trimesh.Trimesh, result: trimesh.Trimesh, roi=None
) -> dict[str, float]:
    from evaluation.surface import compare_pair

    pair = compare_pair(reference, result, signed=False, convergence=False, density=4.0, roi=roi)
    return {
        "dice": pair.metrics["dice"],
        "assd": pair.metrics["masd"],
        "hd95": pair.metrics["hd95"],
    }


def evaluate_pair_dir(
    pair_dir: Path,
    truth: dict[str, trimesh.Trimesh],
    checkpoint: str,
    slab_mm: float = 0.0,
    roi=None,
) -> dict:
    """Metrics of one reconstruction; with `slab_mm` also within |z - isocentre z| <= slab_mm,
    the part of the knee that both X-ray views actually show (the detector covers about
    +-70 mm around the isocentre, the CT field of view +-85 mm); an explicit `roi` replaces
    that slab."""
    from evaluation.surface import Slab
    from reconstruction.reconstruct_xray import reconstruct_from_xray

    pair = read_xray_pair(pair_dir)
    meshes, summary = reconstruct_from_xray(pair, checkpoint)
    row = {"evaluations": summary["network_evaluations"], "seconds": summary["timings_s"]["total"]}
    if roi is None and slab_mm > 0:
        centre = tuple(float(x) for x in pair.views[0].geometry.isocentre_mm)
        roi = Slab(centre=centre, below=slab_mm, above=slab_mm)
    for bone in BONES:
        if bone in truth and bone in meshes:
            row[bone] = surface_metrics(truth[bone], meshes[bone])
            if roi is not None:
                row[f"{bone}{SLAB_SUFFIX}"] = surface_metrics(truth[bone], meshes[bone], roi)
    return row


def evaluate_testset(
    checkpoint: str, testset: Path, n_cases: int, conditions: list[str], slab_mm: float = 0.0
) -> dict:
    rows = []
    for case_dir in sorted(p for p in testset.iterdir() if p.is_dir())[:n_cases]:
        info = json.loads((case_dir / "case.json").read_text())
        truth = {
            b: trimesh.load(case_dir / f"truth_{b}.stl")
            for b in BONES
            if b not in info["non_watertight_truth"] and (case_dir / f"truth_{b}.stl").exists()
        }
        for condition in conditions:
            start = time.perf_counter()
            row = evaluate_pair_dir(case_dir / condition, truth, checkpoint, slab_mm)
            row.update(case=case_dir.name, condition=condition)
            rows.append(row)
            print(
                f"{case_dir.name} {condition} {time.perf_counter() - start:.1f} s "
                + " ".join(
                    f"{b} {row[b]['dice']:.3f}/{row[b]['assd']:.2f}" for b in BONES if b in row
                ),
                flush=True,
            )
    return {"rows": rows, "summary": summarise(rows)}


def summarise(rows: list[dict]) -> dict:
    """Mean Dice / ASSD per condition and bone."""
    table: dict[str, dict] = {}
    for condition in sorted({r["condition"] for r in rows}):
        subset = [r for r in rows if r["condition"] == condition]
        table[condition] = {
            bone: {
                metric: float(np.mean([r[bone][metric] for r in subset if bone in r]))
                for metric in ("dice", "assd", "hd95")
            }
            for bone in (*BONES, *(f"{b}{SLAB_SUFFIX}" for b in BONES))
            if any(bone in r for r in subset)
        }
        table[condition]["n_cases"] = len(subset)
        table[condition]["mean_evaluations"] = float(np.mean([r["evaluations"] for r in subset]))
    return table


def markdown_table(summary: dict, region: str = "") -> str:
    """Condition x bone table of mean Dice (%) / ASSD (mm) for the model cards; `region`
    SLAB_SUFFIX for the metrics within the slab both views show."""
    lines = [
        "| condition | n | "
        + " | ".join(f"{b} Dice % / ASSD mm" for b in BONES)
        + " | evaluations |",
        "|---" * (len(BONES) + 3) + "|",
    ]
    for condition, row in summary.items():
        keys = [f"{b}{region}" for b in BONES]
        cells = [
            f"{100 * row[k]['dice']:.1f} / {row[k]['assd']:.2f}" if k in row else "-" for k in keys
        ]
        lines.append(
            f"| {condition} | {row['n_cases']} | "
            + " | ".join(cells)
            + f" | {row['mean_evaluations']:.0f} |"
        )
    return "\n".join(lines)


def label_dice(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    out = {}
    for index, bone in enumerate(("femur", "tibia", "fibula", "patella"), start=1):
        a, b = truth == index, predicted == index
        both = np.count_nonzero(a) + np.count_nonzero(b)
        out[bone] = float(2 * np.count_nonzero(a & b) / max(1, both))
    return out


def teacher_conditions() -> dict[str, dict]:
    """The CT conditions of the teacher's evaluation and calibration: generate_case options."""
    from reconstruction.phantoms.findings import Findings

    return {
        "clean": {},
        "low_dose_0.1": {"dose": 0.1},
        "metal": {"findings": Findings(metal=True)},
    }


def evaluate_teacher(teacher_path: str, seeds: list[int]) -> dict:
    """Teacher vs the classical segmentation, voxel Dice on held-out phantom CTs: clean
    (the generator's default dose), low dose (0.1 x, noisier CT) and with a metal implant.
    The teacher's time includes the classical pass it starts from."""
    from reconstruction.segmentation import segment
    from reconstruction.segmentation.teacher import teacher_labels
    from reconstruction.training.train_teacher import load_teacher

    model = load_teacher(teacher_path)
    rows = []
    for seed in seeds:
        for name, options in teacher_conditions().items():
            case = generate_case(seed, spacing=(1.0, 1.0, 1.0), with_meshes=False, **options)
            truth = np.asarray(case.labels.array)
            start = time.perf_counter()
            try:
                classical_labels = np.asarray(segment(case.ct).labels.array)
            except Exception as error:  # the classical method may refuse a case
                rows.append({"seed": seed, "condition": name, "error": str(error).splitlines()[0]})
                print(json.dumps(rows[-1]), flush=True)
                continue
            classical_s = time.perf_counter() - start
            start = time.perf_counter()
            labels, stats = teacher_labels(case.ct, classical_labels, model)
            rows.append(
                {
                    "seed": seed,
                    "condition": name,
                    "teacher": label_dice(truth, labels),
                    "classical": label_dice(truth, classical_labels),
                    "teacher_s": classical_s + time.perf_counter() - start,
                    "classical_s": classical_s,
                    "teacher_evaluations": stats["evaluations"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows}


REAL_KNEE_EDGE_MARGIN_MM = 8.0  # keeps the label map's flat end caps out of the ROI
REPEAT_SHIFT_MM = 5.0  # a repeated acquisition's isocentre offset per axis, at most
REPEAT_TURN_DEG = 5.0  # and its first view's rotation about the limb axis, at most


def real_knee(
    checkpoint: str,
    work: Path,
    separations: tuple[float, ...] = (90.0, 60.0),
    extend: bool = True,
    repeats: int = 1,
) -> dict:
    """Pseudo-CT from the real knee labels -> DRRs -> reconstruction vs the label meshes.

    With `extend` the label map is first continued beyond the MRI's field of view
    (pseudoct.extend_label_field) so that the radiographs show no scan box, and the "_slab"
    metrics are taken where the labels are the truth: the map's own z range, less
    REAL_KNEE_EDGE_MARGIN_MM at each end (both surfaces cropped there). The whole-field
    metrics compare with the truncated label meshes as before. With `repeats` > 1 each
    separation is also acquired again with the knee placed differently
    (real_knee_drr_settings), and "sepN_spread" gives the metrics' spread over them."""
    from evaluation.surface import Slab
    from reconstruction.pseudoct import extend_label_field, pseudo_ct_from_labels

    source = read_real_knee_labels()
    truth = real_knee_truth(source=source)
    roi = None
    if extend:
        source, (z_lo, z_hi) = extend_label_field(source)
        half = 0.5 * (z_hi - z_lo) - REAL_KNEE_EDGE_MARGIN_MM
        centre = (0.0, 0.0, 0.5 * (z_lo + z_hi))
        roi = Slab(centre=centre, below=half, above=half)
    ct = pseudo_ct_from_labels(source)
    results: dict = {"extended_field": extend, "repeats": repeats}
    beam_centre = bone_centre(ct)
    for separation in separations:
        rows = []
        for repeat in range(repeats):
            settings = real_knee_drr_settings(beam_centre, separation, repeat)
            pair = simulate_pair(ct, settings)
            name = f"sep{separation:g}" + (f"_r{repeat}" if repeat else "")
            pair_dir = work / f"real_{name}{'_extended' if extend else ''}"
            images, geometries = [v.image for v in pair.views], [v.geometry for v in pair.views]
            write_xray_pair(pair_dir, images, geometries)
            rows.append(evaluate_pair_dir(pair_dir, truth, checkpoint, roi=roi))
            results[name] = rows[-1]
            print(f"real knee {name}: {rows[-1]}", flush=True)
        if repeats > 1:
            results[f"sep{separation:g}_spread"] = metric_spread(rows)
    return results


def real_knee_truth(bones: tuple[str, ...] = BONES, source=None) -> dict:
    """The real knee's truth meshes of `bones` (its label map, read unless `source` is
    given, in the canonical labels, meshed as every real-knee metric's truth)."""
    from reconstruction.meshing import meshes_from_labels
    from reconstruction.pseudoct import CANONICAL_BONE_LABELS, canonical_labels_from_real_knee

    labels = canonical_labels_from_real_knee(
        source if source is not None else read_real_knee_labels()
    )
    return meshes_from_labels(labels, {bone: CANONICAL_BONE_LABELS[bone] for bone in bones})


def real_knee_drr_settings(
    centre: tuple[float, float, float], separation: float, repeat: int
) -> DRRSettings:
    """Repeat 0 is the fixed protocol (beam on the bones' centre, first view at 0 deg, noise
    seed 11); each further repeat is another acquisition of the same knee: the isocentre
    moved up to REPEAT_SHIFT_MM per axis, the first view turned up to REPEAT_TURN_DEG, other
    quantum noise (all seeded by the repeat)."""
    if repeat == 0:
        return DRRSettings(separation_deg=separation, seed=11, isocentre_mm=centre)
    rng = np.random.default_rng([11, repeat])
    shift = rng.uniform(-REPEAT_SHIFT_MM, REPEAT_SHIFT_MM, 3)
    return DRRSettings(
        separation_deg=separation,
        first_angle_deg=float(rng.uniform(-REPEAT_TURN_DEG, REPEAT_TURN_DEG)),
        seed=11 + repeat,
        isocentre_mm=tuple(float(c + d) for c, d in zip(centre, shift, strict=True)),
    )


def metric_spread(rows: list[dict]) -> dict:
    """Per bone and region, mean / sd / min / max of Dice and ASSD over repeated acquisitions."""
    spread: dict = {}
    for key in [k for k in rows[0] if isinstance(rows[0][k], dict)]:
        spread[key] = {}
        for metric in ("dice", "assd"):
            values = np.array([row[key][metric] for row in rows])
            spread[key][metric] = {
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)),
                "min": float(values.min()),
                "max": float(values.max()),
            }
    return spread


def real_knee_sections(
    checkpoints: list[str],
    pair_dir: Path,
    out: Path,
    testset: Path | None = None,
    n_phantoms: int = 6,
    separation: float = 90.0,
    view: str = "axial",
) -> Path:
    """The real femur's axial sections against each checkpoint's reconstruction of the
    `pair_dir` radiographs and the first `n_phantoms` femurs of `testset`; with `view`
    "sagittal", sections through the patella and the femur behind it instead."""
    from reconstruction.reconstruct_xray import reconstruct_from_xray
    from reconstruction.training.sections import femur_sections_figure, patellofemoral_figure

    truth = real_knee_truth(("femur",) if view == "axial" else ("femur", "patella"))
    pair = read_xray_pair(pair_dir)
    reconstructions = [(Path(c).stem, reconstruct_from_xray(pair, c)[0]) for c in checkpoints]
    if view == "sagittal":
        title = f"real knee, {separation:g} deg pair: sagittal sections through the patella"
        return patellofemoral_figure(truth, out, reconstructions, title=title)
    phantoms = []
    if testset is not None:
        files = sorted(testset.glob("test_*/truth_femur.stl"))[:n_phantoms]
        phantoms = [trimesh.load(f) for f in files]
    title = f"real knee femur, {separation:g} deg pair: axial sections"
    femurs = [(name, meshes["femur"]) for name, meshes in reconstructions]
    return femur_sections_figure(truth["femur"], out, femurs, phantoms, title=title)


def femur_depth_family(
    n: int,
    strengths: dict[str, float],
    heights_mm: tuple[float, ...] | None = None,
    master_seed: int = 2026,
) -> dict:
    """The real femur's depth over width (sections.femur_depth_over_width) against the first
    `n` training phantoms drawn with the variation `strengths` (DataSettings names): per
    height the real value, the phantoms' median and 90th percentile and the share of them
    at or beyond the real knee (default heights: sections.DEPTH_HEIGHTS_MM). Shapes only:
    nothing is rendered or trained."""
    from reconstruction.training.sections import DEPTH_HEIGHTS_MM, femur_depth_over_width

    heights_mm = heights_mm or DEPTH_HEIGHTS_MM
    femur = real_knee_truth(("femur",))["femur"]
    real = femur_depth_over_width(femur, heights_mm)
    family = []
    for seed in training_seeds(master_seed, n):
        case = generate_case(seed, with_ct=False, mesh_spacing=1.0, **phantom_variations(strengths))
        family.append(femur_depth_over_width(case.meshes["femur"], heights_mm))
    rows = {}
    for height in real:
        values = np.array([f[height] for f in family])
        rows[f"{height:g}"] = {
            "real": real[height],
            "median": float(np.median(values)),
            "p90": float(np.percentile(values, 90)),
            "share_at_or_beyond_real": float(np.mean(values >= real[height])),
        }
    return {"n": n, "strengths": strengths, "master_seed": master_seed, "heights": rows}


def teacher_table(result: dict) -> str:
    """Markdown: mean voxel Dice (%) teacher / classical per condition and bone, and times."""
    rows = [r for r in result["rows"] if "teacher" in r]
    lines = [
        "| condition | n | " + " | ".join(BONES) + " | s per case teacher / classical |",
        "|---|---|" + "---|" * (len(BONES) + 1),
    ]
    for condition in dict.fromkeys(r["condition"] for r in rows):
        chosen = [r for r in rows if r["condition"] == condition]
        cells = [
            f"{100 * np.mean([r['teacher'][b] for r in chosen]):.2f} / "
            f"{100 * np.mean([r['classical'][b] for r in chosen]):.2f}"
            for b in BONES
        ]
        times = (
            f"{np.mean([r['teacher_s'] for r in chosen]):.1f} / "
            f"{np.mean([r['classical_s'] for r in chosen]):.1f}"
        )
        lines.append(f"| {condition} | {len(chosen)} | " + " | ".join(cells) + f" | {times} |")
    return "\n".join(lines)


def real_knee_ct(teacher_path: str | None = None) -> dict:
    """Both CT methods on the real knee's pseudo-CT mirrored into a left knee: voxel Dice
    against the expert labels and ASSD against the label meshes (same meshing settings)."""
    from reconstruction.meshing import meshes_from_labels
    from reconstruction.pseudoct import canonical_labels_from_real_knee, pseudo_ct_from_labels
    from reconstruction.segmentation import BONE_LABELS, segment
    from reconstruction.segmentation.teacher import shipped_teacher, teacher_labels
    from reconstruction.training.train_teacher import load_teacher
    from reconstruction.volume import Volume

    source = read_real_knee_labels()
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])  # a right knee becomes a left one
    canonical = canonical_labels_from_real_knee(source)
    truth = Volume(canonical.array, mirror @ canonical.affine, "LABELS")
    pseudo = pseudo_ct_from_labels(source, seed=0)
    ct = Volume(pseudo.array, mirror @ pseudo.affine, "PSEUDO_CT")
    reference = meshes_from_labels(truth, BONE_LABELS)
    model = load_teacher(teacher_path) if teacher_path else shipped_teacher()
    classical = np.asarray(segment(ct).labels.array)
    labels = {"classical": classical, "teacher": teacher_labels(ct, classical, model)[0]}
    out: dict = {}
    for method, predicted in labels.items():
        start = time.perf_counter()
        meshes = meshes_from_labels(Volume(predicted, ct.affine, "LABELS"), BONE_LABELS)
        dice = label_dice(np.asarray(truth.array), predicted)
        out[method] = {
            bone: {
                "dice": dice[bone],
                "assd": surface_metrics(reference[bone], meshes[bone])["assd"],
            }
            for bone in BONE_LABELS
            if bone in meshes
        }
        print(f"real knee CT {method}: {out[method]} ({time.perf_counter() - start:.1f} s)")
    return out


def _add_variation_options(parser: argparse.ArgumentParser, help_text: str) -> None:
    """One option per BUILD_TEST_VARIATIONS name (--trochlea-variation S ...), default 0."""
    for name in BUILD_TEST_VARIATIONS:
        check, what = VARIATION_OPTIONS[name]
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=check,
            default=0.0,
            help=help_text.format(what=what),
        )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconstruction.training.evaluate")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-test")
    build.add_argument("--n", type=int, default=6)
    build.add_argument("--n-train", type=int, default=64, help="training seeds to skip")
    build.add_argument("--master-seed", type=int, default=2026)
    build.add_argument("--out", type=Path, required=True)
    _add_variation_options(build, "held-out phantoms with {what}; 0 = plain")
    build.add_argument(
        "--pseudo-ct",
        action="store_true",
        help="render the radiographs from the pseudo-CT of the phantoms' labels, as the real "
        "knee's are (the same phantoms as without it)",
    )
    student = commands.add_parser("student")
    student.add_argument("--checkpoint", required=True)
    student.add_argument("--testset", type=Path, required=True)
    student.add_argument("--cases", type=int, default=6)
    student.add_argument("--conditions", default=condition_name(90, 1e5))
    student.add_argument("--out", type=Path, required=True)
    student.add_argument("--slab-mm", type=float, default=0.0, help="also metrics in a z slab")
    real = commands.add_parser("real-knee")
    real.add_argument("--checkpoint", required=True)
    real.add_argument("--work", type=Path, default=Path("var/cache/realknee"))
    real.add_argument("--out", type=Path, required=True)
    real.add_argument(
        "--truncated",
        action="store_true",
        help="project the label map as it is (its scan box shows in the radiographs)",
    )
    real.add_argument(
        "--repeats",
        type=_positive_int,
        default=1,
        help="acquisitions per separation: 1 = the fixed protocol; more adds others of the "
        "same knee (isocentre +-5 mm, first view +-5 deg, other noise) and their spread",
    )
    teacher = commands.add_parser("teacher")
    teacher.add_argument("--checkpoint", required=True)
    teacher.add_argument("--cases", type=int, default=3)
    teacher.add_argument("--out", type=Path, required=True)
    teacher_real = commands.add_parser("teacher-real-knee")
    teacher_real.add_argument("--checkpoint", default=None, help="default: the shipped teacher")
    teacher_real.add_argument("--out", type=Path, required=True)
    sections = commands.add_parser(
        "real-knee-sections", help="a PNG of sections: truth, reconstructions (and phantoms)"
    )
    sections.add_argument("--checkpoint", action="append", default=[], help="repeatable")
    sections.add_argument("--work", type=Path, default=Path("var/cache/realknee"))
    sections.add_argument("--separation", type=float, default=90.0)
    sections.add_argument("--testset", type=Path, default=None, help="phantoms drawn in grey")
    sections.add_argument("--phantoms", type=int, default=6)
    sections.add_argument(
        "--view",
        choices=("axial", "sagittal"),
        default="axial",
        help="axial femur sections (with phantoms) or sagittal ones through the patella",
    )
    sections.add_argument("--out", type=Path, required=True)
    depth = commands.add_parser(
        "femur-depth",
        help="the real femur's front depth over width against training phantoms' (shapes only)",
    )
    depth.add_argument("--n", type=_positive_int, default=32, help="training phantoms")
    depth.add_argument("--master-seed", type=int, default=2026)
    depth.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    _add_variation_options(depth, "training phantoms with {what}; 0 = plain")
    table = commands.add_parser("table")
    table.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command in REAL_KNEE_COMMANDS and not real_knee_labels_path().is_file():
        parser.error(
            f"the shared real knee is not at {real_knee_labels_path()} (set ${REAL_KNEE_ENV})"
        )
    if args.command == "table":
        for path in args.results:
            summary = json.loads(path.read_text())["summary"]
            print(f"{path.name}, whole CT field of view\n\n{markdown_table(summary)}\n")
            if any(f"{BONES[0]}{SLAB_SUFFIX}" in row for row in summary.values()):
                slab = markdown_table(summary, SLAB_SUFFIX)
                print(f"{path.name}, within the slab both views show\n\n{slab}\n")
        return 0
    if args.command == "build-test":
        seeds = split_seeds(args.master_seed, args.n_train, args.n)["test"]
        for index, seed in enumerate(seeds):
            target = args.out / f"test_{index:02d}"
            if (target / "case.json").exists():
                continue
            start = time.perf_counter()
            info = build_test_case(
                seed,
                target,
                variations=held_out_variations(args),
                pseudo_ct=args.pseudo_ct,
            )
            print(
                f"{target.name} seed {seed} {time.perf_counter() - start:.1f} s {info}", flush=True
            )
        return 0
    if args.command == "femur-depth":
        strengths = held_out_variations(args)
        result = femur_depth_family(args.n, strengths, master_seed=args.master_seed)
        if args.out is not None:
            write_json(args.out, result)
        print("height mm | real | phantoms' median | 90th percentile | share at or beyond real")
        for height, row in result["heights"].items():
            print(
                f"{height} | {row['real']:.3f} | {row['median']:.3f} | {row['p90']:.3f} | "
                f"{row['share_at_or_beyond_real']:.3f}"
            )
        return 0
    if args.command == "real-knee-sections":
        pair_dir = args.work / f"real_sep{args.separation:g}_extended"
        if not (pair_dir / "geometry.json").exists():
            parser.error(f"no real-knee pair at {pair_dir}: run real-knee with --work first")
        written = real_knee_sections(
            args.checkpoint,
            pair_dir,
            args.out,
            args.testset,
            args.phantoms,
            args.separation,
            args.view,
        )
        print(f"wrote {written}")
        return 0
    if args.command == "teacher-real-knee":
        write_json(args.out, real_knee_ct(args.checkpoint))
        return 0
    if args.command == "teacher":
        seeds = split_seeds(2026, 64, args.cases)["test"]
        result = evaluate_teacher(args.checkpoint, seeds)
        write_json(args.out, result)
        print(teacher_table(result))
        return 0
    if args.command == "student":
        result = evaluate_testset(
            args.checkpoint, args.testset, args.cases, args.conditions.split(","), args.slab_mm
        )
    else:
        result = real_knee(
            args.checkpoint, args.work, extend=not args.truncated, repeats=args.repeats
        )
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
