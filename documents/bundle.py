"""The bundle 附件材料.zip: every attachment the units sent, one folder per unit.

    001_中川园区管委会/回执表.xlsx
    001_中川园区管委会/活动照片.jpg
    001_中川园区管委会/活动照片（2）.jpg       a second file of the same name
    012_财政局/活动总结.docx

The folder's number is the unit's 序号 in the summary's table. Files keep the name the unit gave
them, made safe for every file system (no path separators, no characters Windows refuses, no
reserved device names, no control or bidirectional characters, bounded length) and with the
extension of what the file really is (mail/attachments.py sniffed it when storing). A unit's
identical files (same SHA-256) appear once. Names are UTF-8 with the zip's UTF-8 flag set, so
Windows Explorer, macOS and 7-Zip show the Chinese names. Files are streamed into the archive, never
held in memory; each entry is dated when its mail arrived, so the same data gives the same bytes.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlmodel import Session, select

from models.clock import CHINA_TZ
from models.settings import get_settings
from models.tables import Attachment, InboundMessage, Recipient, Unit

BUNDLE_FILE_NAME = "附件材料.zip"
STORED = "stored"
UTF8_NAMES = 0x800                     # general purpose flag bit 11: names are UTF-8
MAX_FOLDER_CHARS = 60
MAX_FILE_CHARS = 100
COPY_CHUNK = 1024 * 1024
ZIP_EPOCH = datetime(1980, 1, 1)
# Already compressed: deflating them again costs time and gains nothing.
_COMPRESSED_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".heif", ".avif", ".zip", ".rar", ".7z", ".gz",
    ".bz2", ".xz", ".mp4", ".mov", ".avi", ".mkv", ".webm", ".flv", ".mpg", ".mp3", ".m4a", ".aac",
    ".amr", ".xlsx", ".docx", ".pptx", ".odt", ".ods", ".odp", ".epub",
}
_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')
_SPACES = re.compile(r"\s+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,5}$")


def safe_component(name: str, limit: int, fallback: str = "附件") -> str:
    """One path component that every file system accepts and shows as the person wrote it."""
    text = unicodedata.normalize("NFC", name or "")
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"))
    text = _SPACES.sub(" ", _FORBIDDEN.sub("_", text)).strip(" .")
    if len(text) > limit:
        suffix = PurePosixPath(text).suffix
        suffix = suffix if _EXTENSION.match(suffix) else ""
        text = text[:limit - len(suffix)].rstrip(" .") + suffix
    if not text:
        return fallback
    if PurePosixPath(text).stem.split(".")[0].upper() in _RESERVED:
        text = "_" + text
    return text


def file_name(original_name: str, stored_path: str) -> str:
    """The unit's name for the file, with the extension of what it is."""
    real = PurePosixPath(stored_path).suffix.lower()
    name = safe_component(original_name, MAX_FILE_CHARS - len(real))
    given = PurePosixPath(name).suffix
    if given.lower() == real:
        return name
    stem = name[: -len(given)] if _EXTENSION.match(given) and len(given) < len(name) else name
    return stem + real


def _with_number(name: str, number: int) -> str:
    path = PurePosixPath(name)
    suffix = path.suffix if _EXTENSION.match(path.suffix) else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    return f"{stem}（{number}）{suffix}"


@dataclass(frozen=True)
class BundleEntry:
    source: Path
    arcname: str
    date_time: tuple
    size: int


@dataclass
class BundleReport:
    path: Path
    files: int = 0
    units: int = 0
    bytes: int = 0
    duplicates: int = 0
    missing: list[str] = field(default_factory=list)   # recorded files no longer on disk


def _zip_time(when: datetime | None) -> tuple:
    local = when.astimezone(CHINA_TZ).replace(tzinfo=None) if when is not None else ZIP_EPOCH
    return max(local, ZIP_EPOCH).timetuple()[:6]


def bundle_entries(session: Session, campaign_id: str, unit_numbers: dict[str, int],
                   output_dir: Path | None = None) -> tuple[list[BundleEntry], BundleReport]:
    """The archive's entries in unit order (`unit_numbers`: unit code → 序号), each unit's files in
    the order they arrived, and what was skipped."""
    output_dir = Path(output_dir or get_settings().output_dir)
    rows = session.exec(
        select(Unit.code, Unit.name, Attachment.original_name, Attachment.stored_path, Attachment.sha256,
               Attachment.size, Attachment.seq, Attachment.id, InboundMessage.received_at)
        .join(Recipient, Recipient.id == Attachment.recipient_id)
        .join(Unit, Unit.id == Recipient.unit_id)
        .outerjoin(InboundMessage, InboundMessage.id == Attachment.inbound_id)
        .where(Recipient.campaign_id == campaign_id, Attachment.verdict == STORED, Attachment.stored_path != "")).all()
    width = max(3, len(str(max(unit_numbers.values(), default=0))))
    last = max(unit_numbers.values(), default=0)

    def unit_position(code: str) -> int:
        return unit_numbers.get(code, last + 1)

    rows = sorted(rows, key=lambda r: (unit_position(r.code), r.code, r.received_at or ZIP_EPOCH.replace(tzinfo=CHINA_TZ),
                                       r.seq, r.id))
    report = BundleReport(path=Path())
    entries: list[BundleEntry] = []
    taken: dict[str, set[str]] = {}
    seen: dict[str, set[str]] = {}
    for row in rows:
        source = output_dir / row.stored_path
        if not source.is_file():
            report.missing.append(row.stored_path)
            continue
        if row.sha256 in seen.setdefault(row.code, set()):
            report.duplicates += 1
            continue
        seen[row.code].add(row.sha256)
        number = unit_numbers.get(row.code)
        prefix = f"{number:0{width}d}" if number is not None else row.code
        folder = f"{prefix}_{safe_component(row.name, MAX_FOLDER_CHARS, fallback=row.code)}"
        names = taken.setdefault(folder, set())
        name = file_name(row.original_name, row.stored_path)
        candidate, copy = name, 1
        while candidate.casefold() in names:   # Windows and macOS compare names without case
            copy += 1
            candidate = _with_number(name, copy)
        names.add(candidate.casefold())
        entries.append(BundleEntry(source, f"{folder}/{candidate}", _zip_time(row.received_at),
                                   source.stat().st_size))
    report.files = len(entries)
    report.units = len(taken)
    report.bytes = sum(e.size for e in entries)
    return entries, report


def write_bundle(entries: list[BundleEntry], out_path: Path) -> Path:
    """Write the archive through a temporary file beside `out_path`, streaming each file."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for entry in entries:
                info = zipfile.ZipInfo(entry.arcname, date_time=entry.date_time)
                info.flag_bits |= UTF8_NAMES
                info.external_attr = 0o644 << 16
                info.compress_type = (zipfile.ZIP_STORED if PurePosixPath(entry.arcname).suffix.lower()
                                      in _COMPRESSED_SUFFIXES else zipfile.ZIP_DEFLATED)
                info.file_size = entry.size
                with open(entry.source, "rb") as source, \
                        archive.open(info, "w", force_zip64=entry.size > zipfile.ZIP64_LIMIT) as target:
                    shutil.copyfileobj(source, target, COPY_CHUNK)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def build_bundle(session: Session, campaign_id: str, unit_numbers: dict[str, int], out_path: Path,
                 output_dir: Path | None = None) -> BundleReport:
    """附件材料.zip of the campaign at `out_path`; the report says what went in and what was skipped."""
    entries, report = bundle_entries(session, campaign_id, unit_numbers, output_dir)
    report.path = write_bundle(entries, out_path)
    return report
