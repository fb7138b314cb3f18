"""The raw-message archive: every fetched message, byte for byte as the server sent it, made durable
before anything is recorded about it.

A file is written under a temporary name, flushed to disk, renamed into place, and the directory is
flushed too, so after a crash a path either holds the complete message or does not exist. Writing
the same path twice (a rerun after a crash) replaces the file with identical bytes: harmless.
"""
from __future__ import annotations

import re
from pathlib import Path

from models.files import sync_directories, write_atomically  # noqa: F401  (the archive's writers)

MAIL_DIR = "mail"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def raw_relative_path(folder: str, uidvalidity: int, uid: int) -> Path:
    """Where a message lives inside a campaign's output directory: one directory per folder and
    UIDVALIDITY (so a UIDVALIDITY reset never overwrites an earlier message), one file per UID."""
    folder_part = _UNSAFE.sub("_", folder).strip("._") or "folder"
    return Path(MAIL_DIR) / f"{folder_part}-{uidvalidity}" / f"{uid:010d}.eml"


def read_raw(path: Path) -> bytes:
    return Path(path).read_bytes()
