"""WPS Office's mail client: the name only in Content-Type, full-width tokens typed by an input
method, and workbooks saved in the legacy .xls format WPS still offers."""
from __future__ import annotations

import unicodedata

from . import payloads
from .base import CorpusMessage
from .campaign import NOTICE_TITLE, OFFICE, Signer, unit_email, unit_name
from .mimebuild import encoded_word, file_part, message, multipart, text_part

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def _headers(sender: str, subject: str, message_id: str) -> list:
    return [("From", sender), ("To", OFFICE), ("Subject", subject), ("Date", "Wed, 11 Oct 2023 08:45:10 +0800"),
            ("Message-ID", message_id), ("X-Mailer", "WPS Mail 2.1.0.3 (Windows)"), ("MIME-Version", "1.0")]


def name_only_fullwidth(signer: Signer) -> CorpusMessage:
    unit = "BM10"
    name = "农林水务局回执表.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    token = _fullwidth(signer.token(unit))
    assert unicodedata.normalize("NFKC", token) == signer.token(unit)
    body = multipart("mixed", [
        text_part("您好，回执表见附件。"),
        file_part(form, f'{XLSX}; name="{encoded_word(name, "UTF-8")}"', disposition="attachment"),
    ], "=-WPS-MIXED-7f3a2b1c")
    raw = message(_headers(f"{encoded_word('农林水务局', 'UTF-8')} <{unit_email(unit)}>",
                           encoded_word(f"回复：【{token}】{NOTICE_TITLE}", "UTF-8"), "<wps.7f3a2b1c@units.xinqu.example>"),
                  body)
    return CorpusMessage("wps_name_only_fullwidth", "WPS Mail", "file name only in Content-Type name=; a "
                         "full-width token in the subject", raw, [(name, form)])


def legacy_xls(signer: Signer) -> CorpusMessage:
    unit = "BM11"
    name = "商务和投资合作局回执表.xls"
    workbook = payloads.legacy_xls()
    body = multipart("mixed", [
        text_part("您好，回执表见附件。"),
        file_part(workbook, f'application/vnd.ms-excel; name="{encoded_word(name, "UTF-8")}"',
                  disposition=f'attachment; filename="{encoded_word(name, "UTF-8")}"'),
    ], "=-WPS-MIXED-8e4b3c2d")
    raw = message(_headers(f"{encoded_word('商务和投资合作局', 'UTF-8')} <{unit_email(unit)}>",
                           encoded_word(f"回复：【{signer.token(unit)}】{NOTICE_TITLE}", "UTF-8"),
                           "<wps.8e4b3c2d@units.xinqu.example>"), body)
    return CorpusMessage("wps_legacy_xls", "WPS Mail", "an Excel 97-2003 workbook (OLE) recognised by content and "
                         "refused with instructions to save as .xlsx", raw, [(name, workbook)])
