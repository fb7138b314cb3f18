"""Serving the program's files to staff: addressed by an id or a fixed kind, never by a path from the
request; every path comes from the database or from a fixed name, and must still resolve (symlinks
followed) to a regular file inside the output directory before a byte is sent.

File names follow RFC 6266: an ASCII fallback in `filename` for old clients, the real Chinese name
in `filename*` (RFC 8187, UTF-8, percent-encoded), which every current browser prefers."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from starlette.responses import FileResponse, Response

from documents.bundle import BUNDLE_FILE_NAME
from documents.export import EXPORT_FILE_NAME
from documents.notice import NOTICE_FILE_NAME
from documents.summary import SUMMARY_FILE_PREFIX
from mail.attachments import DOCX_MIME, XLSX_MIME
from models.tables import Campaign
from web.campaigns import spec_of

ZIP_MIME = "application/zip"
EML_MIME = "message/rfc822"
OCTET_STREAM = "application/octet-stream"
# Types a browser may be told an attachment is; anything else is served as opaque bytes. Every
# download is `Content-Disposition: attachment` with nosniff, so nothing received is rendered.
SERVABLE_TYPES = frozenset({
    DOCX_MIME, XLSX_MIME, ZIP_MIME, "application/pdf", "image/jpeg", "image/png", "image/gif", "image/webp",
    "image/bmp", "image/tiff", "text/plain", "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet", "application/vnd.oasis.opendocument.presentation",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "video/mp4", "audio/mpeg",
})
_FALLBACK_UNSAFE = re.compile(r'[^A-Za-z0-9._\- ()\[\]]+')


@dataclass(frozen=True)
class CampaignFile:
    kind: str
    label: str            # what staff see on the button
    media_type: str
    ascii_name: str       # the RFC 6266 fallback


# The kinds in the URL are the ones flows/summarize.py links to from its Prefect artifact.
CAMPAIGN_FILES: dict[str, CampaignFile] = {
    "summary": CampaignFile("summary", "情况通报（Word）", DOCX_MIME, "summary.docx"),
    "export": CampaignFile("export", "汇总表（Excel）", XLSX_MIME, "summary-table.xlsx"),
    "attachments": CampaignFile("attachments", "附件材料（压缩包）", ZIP_MIME, "attachments.zip"),
    "notice": CampaignFile("notice", "通知（Word）", DOCX_MIME, "notice.docx"),
}
_FIXED_NAMES = {"export": EXPORT_FILE_NAME, "attachments": BUNDLE_FILE_NAME, "notice": NOTICE_FILE_NAME}


def campaign_file_path(output_dir: Path, campaign: Campaign, kind: str) -> Path | None:
    """Where the file of `kind` for `campaign` is, if it exists (the newest summary when several)."""
    folder = Path(output_dir) / campaign.id
    if kind == "summary":   # summary-<YYYY-MM-DD>.docx: the newest date sorts last
        candidates = sorted(folder.glob(f"{SUMMARY_FILE_PREFIX}*.docx")) if folder.is_dir() else []
        relative = candidates[-1].relative_to(output_dir) if candidates else None
    else:
        relative = Path(campaign.id) / _FIXED_NAMES[kind]
    return inside(output_dir, relative) if relative is not None else None


def campaign_file_name(campaign: Campaign, kind: str, path: Path) -> str:
    """The Chinese name a browser saves the file under."""
    if kind == "summary":
        date = path.stem.removeprefix(SUMMARY_FILE_PREFIX)
        return f"{spec_of(campaign).summary.doc_number}情况通报（{date}）.docx"
    if kind == "export":
        return f"{campaign.doc_number}汇总表.xlsx"
    if kind == "attachments":
        return f"{campaign.doc_number}附件材料.zip"
    return f"{campaign.doc_number} {campaign.title}.docx"


def inside(root: Path, relative: str | Path) -> Path | None:
    """`root/relative` when it resolves (symlinks followed) to a regular file inside `root`; else None."""
    if not relative:
        return None
    base = Path(root).resolve()
    try:
        path = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(base) or path == base or not path.is_file():
        return None
    return path


def content_disposition(name: str, fallback: str = "download") -> str:
    """`attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>` (RFC 6266 / RFC 8187).
    The ASCII name is `name` itself when it is plain ASCII, else `fallback` (e.g. "summary.docx")."""
    name = " ".join(unicodedata.normalize("NFC", name or "").split()) or fallback
    ascii_name = name if name.isascii() else fallback
    ascii_name = _FALLBACK_UNSAFE.sub("_", ascii_name).strip(" .") or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def attachment_name(original_name: str, stored_path: str) -> str:
    """The unit's own file name, with the extension of what the file really is (from the content)."""
    stored_suffix = Path(stored_path).suffix
    name = (original_name or "").strip() or f"attachment{stored_suffix}"
    if stored_suffix and Path(name).suffix.lower() != stored_suffix.lower():
        name += stored_suffix
    return name


def file_download(path: Path, name: str, media_type: str, fallback: str) -> Response:
    if media_type not in SERVABLE_TYPES and media_type != EML_MIME:
        media_type = OCTET_STREAM
    return FileResponse(path, media_type=media_type, headers={
        "Content-Disposition": content_disposition(name, fallback),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    })


def bytes_download(data: bytes, name: str, media_type: str, fallback: str) -> Response:
    return Response(data, media_type=media_type, headers={
        "Content-Disposition": content_disposition(name, fallback),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    })
