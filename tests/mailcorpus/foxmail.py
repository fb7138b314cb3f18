"""Foxmail 7.2 (Windows): GBK text labelled gb2312, RFC 2047 words inside quoted file names."""
from __future__ import annotations

from . import payloads
from .base import CorpusMessage
from .campaign import NOTICE_TITLE, OFFICE, OFFICE_NAME, Signer, notice_message_id, unit_name
from .mimebuild import encoded_word, file_part, message, multipart, split_encoded_words, text_part

X_MAILER = "Foxmail 7.2.25.228[cn]"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _gb2312_words(text: str, size: int = 12) -> str:
    # Foxmail folds long headers into several words, each whole characters, all labelled gb2312
    # although the bytes are GBK.
    chunks = [text[i:i + size] for i in range(0, len(text), size)]
    return "\r\n\t".join(encoded_word(chunk, "gb2312", codec="gbk") for chunk in chunks)


def _headers(sender: str, subject: str, message_id: str, in_reply_to: str | None) -> list:
    headers = [
        ("Date", "Sun, 8 Oct 2023 10:35:27 +0800"),
        ("From", sender),
        ("To", f"{encoded_word(OFFICE_NAME, 'gb2312', codec='gbk')} <{OFFICE}>"),
        ("Subject", subject),
    ]
    if in_reply_to:
        headers += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    return headers + [
        ("X-Priority", "3"),
        ("X-GUID", "5C0B1F0E-8D4A-4E52-9C3B-7A1D2E3F4A5B"),
        ("X-Has-Attach", "yes"),
        ("X-Mailer", X_MAILER),
        ("Mime-Version", "1.0"),
        ("Message-ID", message_id),
    ]


def _body(text: str, files: list) -> object:
    html = "<html><head><meta http-equiv=\"content-type\" content=\"text/html; charset=gb2312\"></head><body>" \
           + "".join(f"<div>{line or '<br>'}</div>" for line in text.split("\n")) + "</body></html>"
    alternative = multipart("alternative", [
        text_part(text, charset="gb2312", codec="gbk"),
        text_part(html, subtype="html", charset="gb2312", codec="gbk", transfer="quoted-printable"),
    ], "----=_002_NextPart736518209534_=----")
    return multipart("mixed", [alternative] + files, "----=_001_NextPart582761453847_=----")


def gbk_in_gb2312(signer: Signer) -> CorpusMessage:
    unit = "YQ01"
    name = "中川园区回执表（王堃）.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    subject = f"回复：【{signer.token(unit)}】{NOTICE_TITLE}（王堃报送）"
    attachment = file_part(
        form, f'{XLSX};\r\n\tname="{encoded_word(name, "gb2312", codec="gbk")}"',
        disposition=f'attachment;\r\n\tfilename="{encoded_word(name, "gb2312", codec="gbk")}"')
    raw = message(
        _headers(f'"{encoded_word("王堃", "gb2312", codec="gbk")}" <wangkun@zc-park.example>',
                 _gb2312_words(subject), "<202310081035271923417@zc-park.example>", notice_message_id(unit)),
        _body("税科长：\n您好！中川园区的回执表已填好，见附件。\n\n王堃\n2023-10-08", [attachment]),
    )
    return CorpusMessage("foxmail_gbk_in_gb2312", "Foxmail 7.2", "gb2312 label on GBK-only 堃 in subject, "
                         "sender name and file name; RFC 2047 inside quoted filename=", raw, [(name, form)])


def split_words(signer: Signer) -> CorpusMessage:
    unit = "YQ02"
    form_name = "秦川园区管委会学雷锋志愿服务活动开展情况统计表.xlsx"
    photo_name = "活动照片（1）.jpg"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    photo = payloads.jpeg(b"qinchuan")
    subject = f"答复：【{signer.token(unit)}】{NOTICE_TITLE}"
    # 13-byte words cut GBK characters in half: only joining the words' bytes decodes them.
    split_name = split_encoded_words(form_name, "GBK", chunk=13, separator="\r\n ")
    files = [
        file_part(form, f'{XLSX};\r\n\tname="{split_name}"', disposition=f'attachment;\r\n\tfilename="{split_name}"'),
        file_part(photo, f'image/jpeg;\r\n\tname="{encoded_word(photo_name, "GBK")}"',
                  disposition=f'attachment;\r\n\tfilename="{encoded_word(photo_name, "GBK")}"'),
    ]
    raw = message(
        _headers(f'"{encoded_word("秦川园区", "GBK")}" <qc_park@126.example>',
                 split_encoded_words(subject, "GBK", chunk=13), "<202310081602115521908@126.example>", None),
        _body("您好，回执表和活动照片见附件，请查收。\n秦川园区管委会", files),
    )
    return CorpusMessage("foxmail_split_words", "Foxmail 7.2", "subject and quoted file name folded into "
                         "encoded words that split GBK characters in half", raw, [(form_name, form), (photo_name, photo)])


def forged_token(signer: Signer) -> CorpusMessage:
    unit = "GQ01"
    genuine = signer.token(unit)
    forged = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")  # one character of the signature changed
    subject = f"回复：【{forged}】{NOTICE_TITLE}"
    raw = message(
        _headers(f'"{encoded_word("城发集团 赵敏", "gb2312", codec="gbk")}" <zhaomin@chengfa.example>',
                 _gb2312_words(subject), "<202310091120331234567@chengfa.example>", None),
        _body("您好，我单位情况如下：共开展活动5场。", []),
    )
    return CorpusMessage("foxmail_forged_token", "Foxmail 7.2", "a subject token whose signature does not "
                         "verify: never assigned, sent to review", raw)
