"""Safe extraction of uploaded zip archives.

Refused with ArchiveError, before anything is written: absolute paths, drive letters,
`..` components, symbolic links, encrypted entries, too many entries, a declared total
size above the limit, and entries whose compression ratio is absurd (zip bombs). While
extracting, the bytes actually produced are counted too, because headers can lie.
Extraction goes to a temporary sibling directory renamed into place at the end.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from reconstruction.errors import ArchiveError, CorruptFileError
from reconstruction.io._atomic import atomic_directory

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    max_total_bytes: int = 4 * 1024**3  # a large CT series is well under 4 GB
    max_entry_ratio: float = 200.0  # DICOM compresses ~2-10x; 200x is a bomb
    max_entries: int = 20_000
    min_size_for_ratio: int = 1 << 20  # tiny files may compress absurdly without harm


def safe_extract_zip(
    zip_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    limits: ArchiveLimits | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Extract regular files of `zip_path` into `out_dir`; return their paths."""
    limits = limits or ArchiveLimits()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CorruptFileError(
            f"{Path(zip_path).name}: not a readable zip archive ({exc})"
        ) from exc
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        relative_names = [_check_member(info, limits) for info in members]
        _check_totals(members, limits)
        with atomic_directory(out_dir, overwrite=overwrite) as temp_dir:
            budget = [limits.max_total_bytes]
            for info, relative in zip(members, relative_names, strict=True):
                _extract_member(archive, info, temp_dir / relative, budget)
    return [Path(out_dir) / relative for relative in relative_names]


def _check_member(info: zipfile.ZipInfo, limits: ArchiveLimits) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"archive entry {info.filename!r} has an absolute path")
    if ".." in path.parts:
        raise ArchiveError(
            f"archive entry {info.filename!r} escapes the target folder (path traversal)"
        )
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"archive entry {info.filename!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"archive entry {info.filename!r} is encrypted")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size >= limits.min_size_for_ratio and ratio > limits.max_entry_ratio:
        raise ArchiveError(
            f"archive entry {info.filename!r} expands {ratio:.0f}x "
            f"(limit {limits.max_entry_ratio:.0f}x): looks like a zip bomb"
        )
    parts = [part for part in path.parts if part not in ("", ".")]
    if not parts:
        raise ArchiveError(f"archive entry {info.filename!r} has an empty name")
    return PurePosixPath(*parts)


def _check_totals(members: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    if len(members) > limits.max_entries:
        raise ArchiveError(f"archive has {len(members)} entries (limit {limits.max_entries})")
    total = sum(info.file_size for info in members)
    if total > limits.max_total_bytes:
        raise ArchiveError(
            f"archive would expand to {total / 1024**2:.0f} MB (limit {limits.max_total_bytes / 1024**2:.0f} MB)"
        )


def _extract_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: list[int]
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with archive.open(info) as source, open(target, "xb") as sink:
            while chunk := source.read(CHUNK_BYTES):
                written += len(chunk)
                budget[0] -= len(chunk)
                if written > info.file_size or budget[0] < 0:
                    raise ArchiveError(
                        f"archive entry {info.filename!r} expands beyond its declared size"
                    )
                sink.write(chunk)
    except FileExistsError as exc:
        raise ArchiveError(f"archive holds {info.filename!r} twice") from exc
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CorruptFileError(
            f"archive entry {info.filename!r} is truncated or corrupt ({exc})"
        ) from exc
