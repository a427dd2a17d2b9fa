"""File helpers shared by the apps: atomic writes and content hashes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def atomic_write_bytes(target: Path, data: bytes | Iterable[bytes]) -> Path:
    """Write to a temporary file in the target's folder, fsync, then rename over the target.

    Readers never see a half-written file: it is either absent or complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes | bytearray):
                handle.write(data)
            else:
                for chunk in data:
                    handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


def atomic_copy(source: Path, target: Path, chunk_size: int = 1 << 20) -> Path:
    def chunks() -> Iterable[bytes]:
        with open(source, "rb") as handle:
            while block := handle.read(chunk_size):
                yield block

    return atomic_write_bytes(target, chunks())


def sha256_of_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
