"""Writing .docx packages byte-for-byte reproducibly: the same input gives the same file, so a
re-run of a flow does not produce a "changed" document and the committed template can be checked
against a fresh build."""
from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

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
    """Write through a temporary file in the same folder, so a killed run never leaves half a file
    where a finished one is expected."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def save_docx(document, out_path: Path) -> Path:
    """Save a python-docx Document (or a docxtpl DocxTemplate) reproducibly."""
    buffer = io.BytesIO()
    document.save(buffer)
    return write_atomically(normalise_zip(buffer.getvalue()), out_path)
