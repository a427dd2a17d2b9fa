"""Deterministic phantom dataset builder (manifest + per-case files).

Seeds: the master seed is expanded with numpy SeedSequence.spawn, one child per case, so
every case is regenerable alone from (its seed, the manifest's generator settings). Splits are
assigned to cases, hence no generator seed is ever shared between splits (asserted).

Labelled cases (the expert-label analogue) are split 60/20/20 into train/validation/test;
unlabelled cases are training-only. Unlabelled cases get no labels.nii.gz and no meshes
(they are the semi-supervised pool), but their ground truth can be regenerated from the seed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from reconstruction.io import write_dicom_series, write_nifti
from reconstruction.phantoms.findings import Findings
from reconstruction.phantoms.generator import PhantomCase, generate_case
from reconstruction.phantoms.params import PhantomParameterError, sample_params

MANIFEST_VERSION = 1
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class BuildSettings:
    n: int
    labelled: int
    seed: int
    fov: str = "knee"
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    dose: float = 1.0
    findings: str = ""
    mesh_spacing: float = 1.0
    dicom: bool = False  # also write the CT as a DICOM series (ct_dicom/)

    def validate(self) -> None:
        if self.n < 1:
            raise PhantomParameterError(f"--n must be >= 1, got {self.n}")
        if not 0 <= self.labelled <= self.n:
            raise PhantomParameterError(f"--labelled must be in [0, n], got {self.labelled}")
        if self.seed < 0:
            raise PhantomParameterError(f"--seed must be >= 0, got {self.seed}")


def case_seeds(master_seed: int, n: int) -> list[int]:
    """One independent 63-bit seed per case, spawned from the master seed."""
    children = np.random.SeedSequence(master_seed).spawn(n)
    seeds = [int(c.generate_state(1, dtype=np.uint64)[0] & np.uint64(2**63 - 1)) for c in children]
    if len(set(seeds)) != n:
        raise RuntimeError("seed collision: spawned case seeds are not unique")
    return seeds


def assign_splits(master_seed: int, n: int, labelled: int) -> tuple[list[str], list[bool]]:
    """Per-case split and labelled flag (deterministic in the master seed)."""
    order = np.random.default_rng(master_seed).permutation(n)
    n_test = int(round(0.2 * labelled)) if labelled >= 3 else 0
    n_val = int(round(0.2 * labelled)) if labelled >= 3 else 0
    splits = ["train"] * n
    flags = [False] * n
    for rank, index in enumerate(order[:labelled]):
        flags[index] = True
        if rank < n_test:
            splits[index] = "test"
        elif rank < n_test + n_val:
            splits[index] = "validation"
    return splits, flags


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _json_bytes(data: object) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


def meshes_npz_bytes(meshes: dict) -> bytes:
    """Deterministic compressed npz: <bone>_vertices (float32, LPS mm), <bone>_faces (int32).

    numpy.savez stamps the current time into the zip; fixed timestamps keep hashes stable.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(meshes):
            for key, array in (
                ("vertices", np.asarray(meshes[name].vertices, dtype=np.float32)),
                ("faces", np.asarray(meshes[name].faces, dtype=np.int32)),
            ):
                member = io.BytesIO()
                np.save(member, array, allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}_{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def load_meshes(path: Path) -> dict:
    """Inverse of `meshes_npz_bytes`: bone -> trimesh.Trimesh."""
    import trimesh

    with np.load(path) as data:
        bones = sorted({key.rsplit("_", 1)[0] for key in data.files})
        return {
            b: trimesh.Trimesh(data[f"{b}_vertices"], data[f"{b}_faces"], process=False)
            for b in bones
        }


def write_case(
    case: PhantomCase, directory: Path, labelled: bool, dicom: bool = False
) -> dict[str, str]:
    """Write one case; returns file name -> SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    written = ["ct.nii.gz", "landmarks.json"]
    write_nifti(case.ct, directory / "ct.nii.gz")
    if dicom:
        slices = write_dicom_series(
            case.ct, directory / "ct_dicom", series_description="knee phantom", overwrite=True
        )
        written += [f"ct_dicom/{path.name}" for path in slices]
    if labelled:
        write_nifti(case.labels, directory / "labels.nii.gz")
        written.append("labels.nii.gz")
        _write_atomic(directory / "meshes.npz", meshes_npz_bytes(case.meshes))
        written.append("meshes.npz")
    truth = {
        "landmarks_mm_lps": case.landmarks,
        "angles_deg": case.angles,
        "landmarks_in_fov": case.metadata["landmarks_in_fov"],
        "transforms": case.metadata["transforms"],
        "fov_box_mm": case.metadata["fov_box_mm"],
        "findings": case.metadata["findings"],
        "conventions": "LPS mm; angles in degrees; mHKA/aHKA negative = varus; JLCA > 0 opens laterally",
    }
    _write_atomic(directory / "landmarks.json", _json_bytes(truth))
    return {name: sha256(directory / name) for name in sorted(written)}


def build_dataset(
    settings: BuildSettings,
    out: Path,
    progress: bool = True,
    generator: Callable[..., PhantomCase] = generate_case,
) -> dict:
    """Generate every case and write `manifest.json` (atomically, last)."""
    settings.validate()
    out.mkdir(parents=True, exist_ok=True)
    seeds = case_seeds(settings.seed, settings.n)
    splits, flags = assign_splits(settings.seed, settings.n, settings.labelled)
    findings = Findings.parse(settings.findings)
    cases = []
    for index in tqdm(range(settings.n), desc="phantoms", disable=not progress, unit="case"):
        params = sample_params(seeds[index])
        case = generator(
            params,
            fov=settings.fov,
            spacing=settings.spacing,
            findings=findings,
            dose=settings.dose,
            mesh_spacing=settings.mesh_spacing,
            with_meshes=flags[index],
        )
        case_id = f"case_{index:04d}"
        files = write_case(case, out / case_id, flags[index], dicom=settings.dicom)
        cases.append(
            {
                "id": case_id,
                "seed": seeds[index],
                "split": splits[index],
                "labelled": flags[index],
                "parameters": params.to_dict(),
                "angles": case.angles,
                "files": files,
            }
        )
    check_split_seeds(cases)
    manifest = {
        "version": MANIFEST_VERSION,
        "generator": "reconstruction.phantoms",
        "settings": {
            "n": settings.n,
            "labelled": settings.labelled,
            "master_seed": settings.seed,
            "fov": settings.fov,
            "spacing_mm": list(settings.spacing),
            "dose": settings.dose,
            "findings": settings.findings,
            "mesh_spacing_mm": settings.mesh_spacing,
            "dicom": settings.dicom,
        },
        "regenerate": "generate_case(KneeParams.from_dict(case['parameters']), fov, spacing, ...)",
        "cases": cases,
    }
    _write_atomic(out / "manifest.json", _json_bytes(manifest))
    return manifest


def check_split_seeds(cases: Sequence[dict]) -> None:
    """Assert that no generator seed appears in two splits (or twice at all)."""
    seeds = [c["seed"] for c in cases]
    if len(set(seeds)) != len(seeds):
        raise AssertionError("duplicate case seeds in the manifest")
    by_split = {s: {c["seed"] for c in cases if c["split"] == s} for s in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            if by_split[a] & by_split[b]:
                raise AssertionError(f"splits {a} and {b} share generator seeds")
