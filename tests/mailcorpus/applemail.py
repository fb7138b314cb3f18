"""Apple Mail (macOS): RFC 2231 names with continuations, NFD names, body split around files,
inline images in multipart/related."""
from __future__ import annotations

import unicodedata

from . import payloads
from .base import CorpusMessage
from .campaign import NOTICE_TITLE, OFFICE, Signer, notice_message_id, unit_email, unit_name
from .mimebuild import encoded_word, file_part, message, multipart, rfc2231, text_part

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _headers(sender: str, subject: str, message_id: str, in_reply_to: str | None) -> list:
    headers = [("From", sender), ("Mime-Version", "1.0 (Mac OS X Mail 16.0 \\(3731.700.6\\))"),
               ("Subject", subject), ("Date", "Tue, 10 Oct 2023 09:05:12 +0800")]
    if in_reply_to:
        headers += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    headers += [("To", OFFICE), ("Message-Id", message_id), ("X-Mailer", "Apple Mail (2.3731.700.6)")]
    return headers


def rfc2231_split_body(signer: Signer) -> CorpusMessage:
    unit = "BM06"
    form_name = "教育文化体育局学雷锋志愿服务活动统计表.xlsx"
    # Apple Mail writes names in decomposed form (NFD): "é" as "e" + U+0301.
    summary_name_nfd = unicodedata.normalize("NFD", "Résumé 活动总结（定稿）第二版最终版本.pdf")
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    summary = payloads.pdf("教体局总结")
    boundary = "Apple-Mail=_8A4D7D2B-3B5E-4F1C-9E0F-2C3D4E5F6A7B"
    body = multipart("mixed", [
        text_part("您好：\n\n回执表和活动总结见附件。\n", transfer="quoted-printable"),
        file_part(form, f"{XLSX};\r\n\tx-unix-mode=0644;\r\n\t{rfc2231('name', form_name)}",
                  disposition="attachment;\r\n\t" + rfc2231("filename", form_name)),
        text_part("\n", transfer="7bit"),
        file_part(summary, f"application/pdf;\r\n\tx-unix-mode=0644;\r\n\t{rfc2231('name', summary_name_nfd, chunk=24)}",
                  disposition="attachment;\r\n\t" + rfc2231("filename", summary_name_nfd, chunk=24)),
        text_part("\n陈静\n教育文化体育局\n", transfer="quoted-printable"),
    ], boundary)
    raw = message(_headers(f"{encoded_word('陈静')} <chenjing@me.example>",
                           f"Re: {encoded_word(f'【{signer.token(unit)}】{NOTICE_TITLE}')}",
                           "<5B6C7D8E-9F0A-4B1C-8D2E-3F4A5B6C7D8E@me.example>", notice_message_id(unit)), body)
    return CorpusMessage("applemail_rfc2231_split_body", "Apple Mail 16", "RFC 2231 names with continuations, an NFD "
                         "name read as NFC, body text split around the files", raw,
                         [(form_name, form), (unicodedata.normalize("NFC", summary_name_nfd), summary)])


def inline_images(signer: Signer) -> CorpusMessage:
    unit = "BM07"
    photo_name = "活动现场.png"
    photo = payloads.png(3, 2)
    logo = payloads.png(1, 1)
    html = ('<html><body><div>您好，这是我委活动现场照片：</div><img src="cid:F1A2B3C4-photo" alt="活动现场">'
            '<div>卫生健康委员会</div><img src="cid:logo@sig"></body></html>')
    related = multipart("related", [
        text_part(html, subtype="html", transfer="quoted-printable"),
        file_part(photo, f'image/png;\r\n\tx-unix-mode=0644;\r\n\tname="{encoded_word(photo_name)}"',
                  disposition=f'inline;\r\n\tfilename="{encoded_word(photo_name)}"',
                  extra=[("Content-Id", "<F1A2B3C4-photo>")]),
        file_part(logo, "image/png", extra=[("Content-Id", "<logo@sig>")]),
    ], "Apple-Mail=_RELATED-0001", params=' type="text/html";')
    body = multipart("alternative", [text_part("您好，这是我委活动现场照片：\n卫生健康委员会\n", transfer="quoted-printable"),
                                     related], "Apple-Mail=_ALT-0001")
    raw = message(_headers(f"{encoded_word('卫生健康委员会')} <{unit_email(unit)}>", encoded_word("活动照片"),
                           "<A1B2C3D4-INLINE@units.xinqu.example>", None), body)
    return CorpusMessage("applemail_inline_images", "Apple Mail 16", "a named inline photo is kept, an unnamed "
                         "signature logo is not; matched by sender only", raw, [(photo_name, photo)])
