"""Provenance of an export or report: what produced the numbers, and can it be re-checked.

Randomisation algorithm and seed, the hash of the blinding key, the git commit, package
versions, the SHA-256 of every mesh (stored and recomputed from the file), metric
parameters.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from studyapp.cases.models import SurfaceEvaluation
from studyapp.files import sha256_of_file
from studyapp.reading import randomisation
from studyapp.reading.models import ReaderStudy

from . import exports

PACKAGES: tuple[str, ...] = (
    "kneestudy",
    "Django",
    "djangorestframework",
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "pyarrow",
    "openpyxl",
    "pyreadstat",
    "matplotlib",
    "trimesh",
)


@functools.cache
def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else "unknown"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def app_version() -> str:
    version = package_versions()["kneestudy"]
    commit = git_commit()
    return f"{version}+{commit[:12]}" if commit != "unknown" else version


def blinding_key_rows(reader_study: ReaderStudy) -> list[list[str]]:
    """The unblinding table (item code -> case, side, arm, method), sorted by item code."""
    items = reader_study.items.select_related("reconstruction__case").order_by("code")
    return [
        [
            item.code,
            item.reconstruction.case.code,
            item.reconstruction.case.side,
            item.reconstruction.source,
            item.reconstruction.method,
            str(item.reconstruction_id),
            str(int(item.is_training)),
        ]
        for item in items
    ]


BLINDING_KEY_HEADER = [
    "item_code",
    "case_code",
    "side",
    "arm",
    "method",
    "reconstruction_id",
    "training",
]


def blinding_key_csv(reader_study: ReaderStudy) -> bytes:
    lines = [",".join(BLINDING_KEY_HEADER)] + [",".join(r) for r in blinding_key_rows(reader_study)]
    return ("\r\n".join(lines) + "\r\n").encode()


def randomisation_record(reader_study: ReaderStudy, allocation_sha256: str = "") -> dict[str, Any]:
    doc = (randomisation.__doc__ or "").strip()
    return {
        "module": randomisation.__name__,
        "function": "generate",
        "algorithm": doc,
        "seed": reader_study.seed,
        "rounds": reader_study.rounds,
        "session_size": reader_study.session_size,
        "washout_days": reader_study.washout_days,
        "launched_at": reader_study.launched_at.isoformat() if reader_study.launched_at else None,
        "allocation_list": "assignments table of this export",
        "allocation_list_sha256": allocation_sha256,
    }


def mesh_hashes(reader_study: ReaderStudy, verify: bool = True) -> list[dict[str, Any]]:
    """Every bone mesh of the study: stored SHA-256 and (if the file exists) a recomputed one."""
    root = Path(settings.MEDIA_ROOT)
    rows = []
    for record in exports.meshes_frame(reader_study.study).to_dict(orient="records"):
        path = root / str(record["mesh"])
        actual = sha256_of_file(path) if verify and path.is_file() else None
        rows.append(
            {
                "case": record["case"],
                "source": exports.SOURCE_FROM_DB.get(record["source"], record["source"]),
                "reconstruction_id": int(record["reconstruction_id"]),
                "bone": record["bone"],
                "file": str(record["mesh"]),
                "sha256_stored": record["sha256"],
                "sha256_file": actual,
                "matches": None if actual is None else actual == record["sha256"],
            }
        )
    return rows


def metric_parameters(reader_study: ReaderStudy) -> list[dict[str, Any]]:
    """The distinct parameter sets of the study's surface evaluations, with their counts."""
    counts: dict[str, int] = {}
    for params in SurfaceEvaluation.objects.filter(
        reconstruction__case__study=reader_study.study
    ).values_list("parameters", flat=True):
        key = json.dumps(params or {}, sort_keys=True)
        counts[key] = counts.get(key, 0) + 1
    return [{"parameters": json.loads(k), "evaluations": n} for k, n in sorted(counts.items())]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def provenance(
    reader_study: ReaderStudy,
    *,
    allocation_sha256: str = "",
    files: dict[str, str] | None = None,
    verify_meshes: bool = True,
) -> dict[str, Any]:
    key = blinding_key_csv(reader_study)
    meshes = mesh_hashes(reader_study, verify=verify_meshes)
    return {
        "generated_at": timezone.now().isoformat(),
        "study": reader_study.study.name,
        "protocol_version": reader_study.study.protocol_version,
        "reader_study": reader_study.title,
        "app_version": app_version(),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "randomisation": randomisation_record(reader_study, allocation_sha256),
        "blinding_key": {
            "sha256": sha256_bytes(key),
            "items": len(key.splitlines()) - 1,
            "hashed_bytes": "unblinding_key.csv of this export (CRLF, header included)",
        },
        "meshes": meshes,
        "meshes_mismatched": sum(1 for m in meshes if m["matches"] is False),
        "metric_parameters": metric_parameters(reader_study),
        "files": files or {},
    }
