"""Writing .docx packages byte-for-byte reproducibly: the same input gives the same file, so a
re-run of a flow does not produce a "changed" document and the committed template can be checked
against a fresh build."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from models import files

# Zip entries carry a timestamp; a fixed one keeps the bytes stable (1980-01-01 is the zip epoch).
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


def normalise_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed timestamps and permissions, entries in their original order."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, \
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zout.writestr(info, zin.read(item.filename))
    return out.getvalue()


def write_atomically(data: bytes, out_path: Path) -> Path:
    """A document is complete or absent, never half-written (see models.files)."""
    return files.write_atomically(out_path, data, fsync=False)


def save_docx(document, out_path: Path) -> Path:
    """Save a python-docx Document (or a docxtpl DocxTemplate) reproducibly."""
    buffer = io.BytesIO()
    document.save(buffer)
    return write_atomically(normalise_zip(buffer.getvalue()), out_path)
