"""Storing attachments, which are hostile until proven otherwise.

A file is stored as `<unit>/<seq>_<sha256[:12]><ext>`: the extension comes from the sniffed content,
the original name is kept only as data, so no name (`../`, absolute paths, NUL, right-to-left
override, 300 bytes, `CON.xlsx`) can choose a path. Macro workbooks, encrypted Office files, legacy
OLE files and executables are recognised by content, whatever their name says.

When `forms/ooxml_guard.py` exists, every Office Open XML file also passes its `check_ooxml`
(zip bombs and the like) before it is stored.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import filetype

from mail.mime import ParsedAttachment
from models.files import write_atomically

MiB = 1024 * 1024
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
# Reading a zip's directory is cheap, but a hostile one can list millions of entries.
MAX_ZIP_ENTRIES = 10_000
DISPLAY_NAME_LIMIT = 255

if importlib.util.find_spec("forms.ooxml_guard") is not None:
    _guard = importlib.import_module("forms.ooxml_guard")
    check_ooxml = _guard.check_ooxml
    UnsafeFile = _guard.UnsafeFile
else:  # the guard is optional: without it, only the checks in this module apply
    check_ooxml = None
    UnsafeFile = None


@dataclass(frozen=True)
class AttachmentLimits:
    max_attachment_bytes: int = 30 * MiB
    max_message_bytes: int = 60 * MiB


DEFAULT_LIMITS = AttachmentLimits()


@dataclass
class StoredAttachment:
    seq: int
    stored_path: str  # relative to the store root, "" when not stored
    original_name: str  # printable and bounded: safe to show and to put in a database
    sha256: str
    size: int
    sniffed_type: str
    extension: str
    verdict: str  # "stored" | "refused_size" | "unsafe_<reason>"
    message_zh: str


@dataclass(frozen=True)
class Sniffed:
    mime: str
    extension: str
    problem: str | None = None  # the <reason> of an unsafe_<reason> verdict
    detail: str = ""


# Types stored under filetype's own extension. Anything executable is not on this list.
_ALLOWED_MIMES = {
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/heic", "image/heif",
    "image/avif", "application/pdf", "application/zip", "application/x-rar-compressed", "application/vnd.rar",
    "application/x-7z-compressed", "application/gzip", "application/x-bzip2", "application/x-xz", "application/x-tar",
    "video/mp4", "video/quicktime", "video/x-msvideo", "video/x-matroska", "video/webm", "video/x-flv", "video/mpeg",
    "audio/mpeg", "audio/x-wav", "audio/wav", "audio/amr", "audio/mp4", "audio/m4a", "audio/x-m4a", "audio/aac",
    "application/rtf", "application/epub+zip",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
}
_EXECUTABLE_MIMES = {
    "application/x-msdownload", "application/x-executable", "application/x-elf", "application/x-mach-binary",
    "application/vnd.microsoft.portable-executable", "application/x-dosexec", "application/x-shockwave-flash",
    "application/wasm", "application/x-dex", "application/vnd.android.dex", "application/x-deb",
    "application/x-rpm", "application/x-msi", "application/x-ms-shortcut",
}
_SHORTCUT_SIGNATURE = b"L\x00\x00\x00\x01\x14\x02\x00"
_TEXT_EXTENSIONS = {".csv", ".txt"}
_LEGACY_OFFICE = {"application/vnd.ms-excel": ".xls", "application/msword": ".doc",
                  "application/vnd.ms-powerpoint": ".ppt"}
_ODF_MIMES = {"application/vnd.oasis.opendocument.text": ".odt",
              "application/vnd.oasis.opendocument.spreadsheet": ".ods",
              "application/vnd.oasis.opendocument.presentation": ".odp"}


def sniff(data: bytes, original_name: str = "") -> Sniffed:
    """What the bytes are (never what the name says), the extension to store them under, and
    why they must not be stored, if they must not."""
    if data.startswith(OLE_SIGNATURE):
        return _sniff_ole(data)
    if (data.startswith(b"MZ") and len(data) >= 64) or data.startswith(b"\x7fELF") or data.startswith(_SHORTCUT_SIGNATURE):
        return Sniffed("application/x-msdownload", ".bin", "executable")
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        zipped = _sniff_zip(data)
        if zipped is not None:
            return zipped
    kind = filetype.guess(data) if data else None
    if kind is not None:
        if kind.mime in _EXECUTABLE_MIMES:
            return Sniffed(kind.mime, ".bin", "executable")
        if kind.mime in _ALLOWED_MIMES:
            return Sniffed(kind.mime, "." + kind.extension)
        return Sniffed(kind.mime, ".bin")
    if _looks_like_text(data):
        # HTML or SVG is stored as .txt too: nothing received may later run in a browser.
        suffix = os.path.splitext(original_name.lower())[1]
        return Sniffed("text/plain", suffix if suffix in _TEXT_EXTENSIONS else ".txt")
    return Sniffed("application/octet-stream", ".bin")


def safe_extension(data: bytes, original_name: str) -> str:
    """The extension for stored bytes, from their sniffed content (the name only picks .csv over
    .txt for text)."""
    return sniff(data, original_name).extension


def _sniff_ole(data: bytes) -> Sniffed:
    # Encrypted OOXML is an OLE container with these streams; their names sit in the directory
    # sectors in UTF-16LE. Either way the file is refused, the name only chooses the message.
    if "EncryptedPackage".encode("utf-16-le") in data or "EncryptionInfo".encode("utf-16-le") in data:
        return Sniffed("application/x-ole-encrypted", ".bin", "encrypted")
    kind = filetype.guess(data)
    mime = kind.mime if kind is not None else "application/x-ole-storage"
    return Sniffed(mime, _LEGACY_OFFICE.get(mime, ".bin"), "legacy_office", _LEGACY_OFFICE.get(mime, ""))


def _sniff_zip(data: bytes) -> Sniffed | None:
    if data.count(b"PK\x01\x02") > MAX_ZIP_ENTRIES:
        return Sniffed("application/zip", ".zip", "zip_entries")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return None
    lowered = [name.lower() for name in names]
    content_types = ""
    if "[content_types].xml" in lowered:
        info = archive.getinfo(names[lowered.index("[content_types].xml")])
        if info.file_size <= 1 * MiB:
            try:
                content_types = archive.read(info).decode("utf-8", "replace").lower()
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
                content_types = ""
    if any(name.endswith("vbaproject.bin") or name.startswith("xl/macrosheets/") for name in lowered) \
            or "macroenabled" in content_types:
        return Sniffed("application/vnd.ms-office.macroEnabled", ".bin", "macro")
    if "xl/workbook.xml" in lowered or "spreadsheetml.sheet.main" in content_types:
        return Sniffed(XLSX_MIME, ".xlsx")
    if "word/document.xml" in lowered or "wordprocessingml.document.main" in content_types:
        return Sniffed(DOCX_MIME, ".docx")
    if "ppt/presentation.xml" in lowered or "presentationml.presentation.main" in content_types:
        return Sniffed(PPTX_MIME, ".pptx")
    if lowered and lowered[0] == "mimetype":
        try:
            declared = archive.read(names[0])[:100].decode("ascii", "replace").strip()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
            declared = ""
        if declared in _ODF_MIMES:
            return Sniffed(declared, _ODF_MIMES[declared])
    return Sniffed("application/zip", ".zip")


def _looks_like_text(data: bytes) -> bool:
    head = data[:8192]
    if not head or b"\x00" in head:
        return False
    for codec in ("utf-8", "gb18030"):
        try:
            head.decode(codec)
            return True
        except UnicodeDecodeError:
            # The sample may end inside a multi-byte character.
            try:
                head[:-3].decode(codec)
                return True
            except UnicodeDecodeError:
                continue
    return False


# --------------------------------------------------------------------------------------------
# Names and paths


def printable_name(name: str) -> str:
    """The original name as data that is safe to show and to store: control and bidirectional
    formatting characters made visible (`回执表<U+202E>xcod.exe`), NUL included, length bounded."""
    shown = []
    for char in name or "":
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            shown.append(f"<U+{ord(char):04X}>")
        else:
            shown.append(char)
    text = "".join(shown).strip()
    if len(text) > DISPLAY_NAME_LIMIT:
        text = text[: DISPLAY_NAME_LIMIT - 1] + "…"
    return text or "（无文件名）"


def sanitize_unit_dir(unit_dir: str) -> str:
    """A single path component of [A-Za-z0-9_-]: anything else becomes `_`."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", unit_dir or "")
    if not cleaned.strip("_"):
        raise ValueError(f"unit directory {unit_dir!r} has no usable characters")
    return cleaned


def stored_file_name(seq: int, sha256_hex: str, extension: str) -> str:
    return f"{seq:03d}_{sha256_hex[:12]}{extension}"


# --------------------------------------------------------------------------------------------
# Storing


def _size_text(size: int) -> str:
    if size >= MiB:
        return f"{size / MiB:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} 字节"


_UNSAFE_MESSAGES = {
    "macro": "附件“{name}”是含宏的文件，出于安全原因未接收。请在 Excel 或 WPS 中“另存为”不含宏的 .xlsx 格式后重新发送。",
    "encrypted": "附件“{name}”设置了打开密码，无法读取，未接收。请取消密码后重新发送。",
    "legacy_office": "附件“{name}”是旧版 Office 格式{detail}，无法读取，未接收。请另存为 .xlsx（表格）或 .docx（文档）后重新发送。",
    "executable": "附件“{name}”是可执行程序，出于安全原因未接收。请只发送表格、文档、图片或 PDF。",
    "zip_entries": "附件“{name}”是包含文件过多的压缩包，出于安全原因未接收。请减少文件数量后重新发送。",
}


def _unsafe_message(problem: str, name: str, detail: str = "") -> str:
    template = _UNSAFE_MESSAGES.get(problem)
    if template is None:
        return f"附件“{name}”未通过安全检查，未接收。请重新保存文件后再发送。"
    return template.format(name=name, detail=f"（{detail}）" if detail else "")


def _guard_verdict(data: bytes, sniffed: Sniffed, name: str) -> tuple[str, str] | None:
    """(reason, message) when the OOXML guard refuses the file, else None."""
    if check_ooxml is None or sniffed.mime not in (XLSX_MIME, DOCX_MIME, PPTX_MIME):
        return None
    try:
        check_ooxml(data)
    except UnsafeFile as exc:
        reason = re.sub(r"[^a-z0-9_]", "_", str(getattr(exc, "reason_code", "") or "ooxml").lower())
        explanation = getattr(exc, "message_zh", "")
        if explanation:
            return reason, f"附件“{name}”未接收：{explanation}"
        return reason, _unsafe_message(reason, name)
    return None


def store_attachments(
    attachments: list[ParsedAttachment],
    store_root: Path,
    unit_dir: str,
    *,
    limits: AttachmentLimits = DEFAULT_LIMITS,
    start_seq: int = 1,
) -> list[StoredAttachment]:
    """Store what may be stored under `<store_root>/<unit_dir>/<seq>_<sha256[:12]><ext>` (written
    atomically) and report every attachment, stored or not, with a message for the unit."""
    store_root = Path(store_root)
    component = sanitize_unit_dir(unit_dir)
    directory = store_root / component
    results: list[StoredAttachment] = []
    stored_bytes = 0
    for offset, attachment in enumerate(attachments):
        seq = start_seq + offset
        data = attachment.data
        size = len(data)
        digest = hashlib.sha256(data).hexdigest()
        name = printable_name(attachment.original_name)

        def report(verdict: str, message: str, sniffed: Sniffed | None = None, path: str = "") -> None:
            results.append(StoredAttachment(seq, path, name, digest, size,
                                            sniffed.mime if sniffed else "", sniffed.extension if sniffed else "",
                                            verdict, message))

        if size == 0:
            report("refused_size", f"附件“{name}”是空文件（0 字节），未接收。请检查文件后重新发送。")
            continue
        if size > limits.max_attachment_bytes:
            report("refused_size", f"附件“{name}”大小为 {_size_text(size)}，超过单个附件 "
                                   f"{_size_text(limits.max_attachment_bytes)} 的上限，未接收。请压缩后重新发送，或改用超大附件。")
            continue
        if stored_bytes + size > limits.max_message_bytes:
            report("refused_size", f"本封邮件的附件合计超过 {_size_text(limits.max_message_bytes)}，"
                                   f"附件“{name}”未接收。请分成几封邮件发送。")
            continue
        sniffed = sniff(data, attachment.original_name)
        if sniffed.problem:
            report(f"unsafe_{sniffed.problem}", _unsafe_message(sniffed.problem, name, sniffed.detail), sniffed)
            continue
        guarded = _guard_verdict(data, sniffed, name)
        if guarded is not None:
            reason, message = guarded
            report(f"unsafe_{reason}", message, sniffed)
            continue
        file_name = stored_file_name(seq, digest, sniffed.extension)
        target = (directory / file_name).resolve()
        if store_root.resolve() not in target.parents:
            raise ValueError(f"refusing to write outside the store: {target}")
        write_atomically(directory / file_name, data, sync_directory=True)
        stored_bytes += size
        report("stored", f"已收到附件“{name}”（{_size_text(size)}）。", sniffed, f"{component}/{file_name}")
    return results
