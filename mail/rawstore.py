"""The raw-message archive: every fetched message, byte for byte as the server sent it, made durable
before anything is recorded about it.

A file is written under a temporary name, flushed to disk, renamed into place, and the directory is
flushed too, so after a crash a path either holds the complete message or does not exist. Writing
the same path twice (a rerun after a crash) replaces the file with identical bytes: harmless.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

MAIL_DIR = "mail"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def raw_relative_path(folder: str, uidvalidity: int, uid: int) -> Path:
    """Where a message lives inside a campaign's output directory: one directory per folder and
    UIDVALIDITY (so a UIDVALIDITY reset never overwrites an earlier message), one file per UID."""
    folder_part = _UNSAFE.sub("_", folder).strip("._") or "folder"
    return Path(MAIL_DIR) / f"{folder_part}-{uidvalidity}" / f"{uid:010d}.eml"


def write_atomically(path: Path, data: bytes, *, sync_directory: bool = True) -> Path:
    """Write `data` to `path` so that a crash leaves either the whole file or none. With
    `sync_directory=False` the caller must call `sync_directories` before relying on the file
    (one directory flush for a whole batch of files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if sync_directory:
        _fsync_directory(path.parent)
    return path


def sync_directories(paths) -> None:
    """Flush the directory entries of files written with `sync_directory=False`."""
    for directory in sorted({Path(p).parent for p in paths}):
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry itself reaches the disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_raw(path: Path) -> bytes:
    return Path(path).read_bytes()
