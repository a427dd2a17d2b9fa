"""Safe zip extraction: traversal, links, bombs refused before anything is written."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from reconstruction.errors import ArchiveError, CorruptFileError
from reconstruction.io import ArchiveLimits, safe_extract_zip


def make_zip(
    path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_regular_archive_is_extracted(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "ok.zip", {"series/a.dcm": b"a" * 100, "series/sub/b.dcm": b"b", "./c.txt": b"c"}
    )
    paths = safe_extract_zip(archive, tmp_path / "out")
    assert sorted(path.relative_to(tmp_path / "out").as_posix() for path in paths) == [
        "c.txt",
        "series/a.dcm",
        "series/sub/b.dcm",
    ]
    assert (tmp_path / "out" / "series" / "a.dcm").read_bytes() == b"a" * 100


@pytest.mark.parametrize(
    "name", ["../evil.txt", "series/../../evil.txt", "/etc/evil", "C:/evil.txt", "..\\evil.txt"]
)
def test_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "evil.zip", {"fine.txt": b"x", name: b"owned"})
    with pytest.raises(ArchiveError, match="absolute path|path traversal"):
        safe_extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("series/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        safe_extract_zip(path, tmp_path / "out")


def test_zip_bomb_ratio_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (20 * 1024**2)})
    with pytest.raises(ArchiveError, match="zip bomb"):
        safe_extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_absurd_total_size_is_refused(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "big.zip",
        {f"f{i}.bin": bytes(range(256)) * 4096 for i in range(3)},
        zipfile.ZIP_STORED,
    )
    with pytest.raises(ArchiveError, match="would expand to"):
        safe_extract_zip(
            archive, tmp_path / "out", limits=ArchiveLimits(max_total_bytes=2 * 1024**2)
        )


def test_lying_header_is_caught_while_streaming(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "liar.zip", {"data.bin": b"y" * 5000}, zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    # Patch the central directory's uncompressed size down to 10 bytes (stored, so CRC unchanged).
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises((ArchiveError, CorruptFileError)):
        safe_extract_zip(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrupt_archive(tmp_path: Path) -> None:
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CorruptFileError, match="not a readable zip archive"):
        safe_extract_zip(tmp_path / "bad.zip", tmp_path / "out")
