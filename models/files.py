"""Writing files so that a crash leaves either the whole file or none: every file the program
writes (raw mail, attachments, forms, documents) goes through here."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, fsync: bool = True, sync_directory: bool = False) -> Path:
    """Write under a temporary name in the same folder, then rename into place. `fsync` flushes the
    file before the rename; `sync_directory` also flushes the folder entry, without which the rename
    itself may not survive a power cut (or call `sync_directories` once for a batch)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if sync_directory:
        sync_directories([path])
    return path


def sync_directories(paths) -> None:
    """Flush the folder entries of files written with `sync_directory=False`."""
    for directory in sorted({Path(p).parent for p in paths}):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
