"""Dataset builder: CLI, manifest, seeds/splits, hashes, determinism, storage budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconstruction.phantoms import generate_case, sample_params
from reconstruction.phantoms.dataset import (
    BuildSettings,
    assign_splits,
    build_dataset,
    case_seeds,
    check_split_seeds,
    load_meshes,
    sha256,
)
from reconstruction.phantoms.params import KneeParams, PhantomParameterError

REPO = Path(__file__).resolve().parents[3]


def test_cli_builds_four_cases_with_a_complete_manifest(tmp_path):
    out = tmp_path / "ds"
    command = [
        sys.executable,
        "-m",
        "reconstruction.phantoms",
        "build",
        "--n",
        "4",
        "--labelled",
        "3",
        "--out",
        str(out),
        "--seed",
        "9",
        "--spacing",
        "3",
        "--quiet",
    ]
    subprocess.run(command, check=True, cwd=REPO, capture_output=True, timeout=600)
    manifest = json.loads((out / "manifest.json").read_text())
    cases = manifest["cases"]
    assert len(cases) == 4
    assert sum(c["labelled"] for c in cases) == 3
    assert {c["split"] for c in cases} == {"train", "validation", "test"}
    for case in cases:
        folder = out / case["id"]
        expected = {"ct.nii.gz", "landmarks.json"}
        if case["labelled"]:
            expected |= {"labels.nii.gz", "meshes.npz"}
            meshes = load_meshes(folder / "meshes.npz")
            assert set(meshes) == {"femur", "tibia", "fibula", "patella"}
            assert all(m.is_watertight for m in meshes.values())
        assert set(case["files"]) == expected
        for name, digest in case["files"].items():
            assert sha256(folder / name) == digest
        params = KneeParams.from_dict(case["parameters"])
        assert params == sample_params(case["seed"])  # exact regeneration from the manifest
    check_split_seeds(cases)
    assert not list(out.rglob("*.tmp*"))  # atomic writes leave no temporaries


def test_build_is_deterministic(tmp_path):
    settings = BuildSettings(n=2, labelled=1, seed=4, spacing=(4.0, 4.0, 4.0), mesh_spacing=2.0)
    first = build_dataset(settings, tmp_path / "a", progress=False)
    second = build_dataset(settings, tmp_path / "b", progress=False)
    assert [c["files"] for c in first["cases"]] == [c["files"] for c in second["cases"]]


def test_seeds_are_unique_and_splits_never_share_them():
    seeds = case_seeds(123, 600)
    assert len(set(seeds)) == 600
    assert case_seeds(123, 600) == seeds and case_seeds(124, 600) != seeds
    splits, flags = assign_splits(123, 600, 120)
    assert sum(flags) == 120
    assert splits.count("test") == 24 and splits.count("validation") == 24
    assert all(flag for flag, split in zip(flags, splits, strict=True) if split != "train")
    cases = [{"seed": s, "split": sp} for s, sp in zip(seeds, splits, strict=True)]
    check_split_seeds(cases)
    cases[1] = {"seed": seeds[0], "split": "test" if splits[0] != "test" else "train"}
    with pytest.raises(AssertionError):
        check_split_seeds(cases)


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(PhantomParameterError):
        build_dataset(BuildSettings(n=2, labelled=3, seed=1), tmp_path, progress=False)
    with pytest.raises(PhantomParameterError):
        build_dataset(BuildSettings(n=0, labelled=0, seed=1), tmp_path, progress=False)


def test_storage_for_600_cases_fits_a_few_gigabytes(tmp_path):
    """--n 600 --labelled 120 at the default training spacing (1 mm) stays below 5 GB."""
    from reconstruction.phantoms.dataset import write_case

    case = generate_case(sample_params(31), fov="knee", spacing=(1.0, 1.0, 1.0), mesh_spacing=1.0)
    sizes = {}
    for labelled in (False, True):
        folder = tmp_path / f"case_{labelled}"
        files = write_case(case, folder, labelled=labelled)
        sizes[labelled] = sum((folder / name).stat().st_size for name in files)
    total = 480 * sizes[False] + 120 * sizes[True]
    assert total < 5e9, f"{sizes} bytes per case -> {total / 1e9:.2f} GB"


def test_phantom_ct_is_also_written_as_a_dicom_series_that_reads_back(tmp_path):
    import numpy as np
    import pydicom
    import SimpleITK as sitk

    from reconstruction.io import read_volume
    from reconstruction.phantoms.dataset import write_case

    case = generate_case(11, fov="knee", spacing=(2.0, 2.0, 2.0), with_meshes=False)
    files = write_case(case, tmp_path / "case", labelled=False, dicom=True)
    series = sorted((tmp_path / "case" / "ct_dicom").glob("*.dcm"))
    assert len(series) == case.ct.shape[2] and all(f"ct_dicom/{p.name}" in files for p in series)
    assert pydicom.dcmread(series[0]).Modality == "CT"
    ours = read_volume(tmp_path / "case" / "ct_dicom", require_ct=True)
    np.testing.assert_array_equal(ours.array, case.ct.array)
    np.testing.assert_allclose(ours.affine, case.ct.affine, atol=1e-4)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in series])
    image = reader.Execute()
    assert image.GetSize() == case.ct.shape  # ITK (x, y, z) = our (i, j, k)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).transpose(2, 1, 0), case.ct.array)
