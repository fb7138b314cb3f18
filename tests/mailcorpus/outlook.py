"""Outlook 16 (Microsoft 365 / Exchange): RFC 2231 continuations, TNEF winmail.dat, forward as
attachment, out-of-office replies."""
from __future__ import annotations

from . import payloads
from .base import CorpusMessage
from .campaign import NOTICE_TITLE, OFFICE, Signer, notice_message_id, unit_email, unit_name
from .mimebuild import (
    Part,
    encoded_word,
    file_part,
    message,
    message_part,
    multipart,
    rfc2231,
    split_encoded_words,
    text_part,
)
from demo.tnef import TnefFile, build_tnef

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXCHANGE_ID = "HK0PR03MB4567A1B2C3D4E5F6A7B8C9D0"


def _headers(sender: str, subject: str, *, message_id: str, in_reply_to: str | None, extra=()) -> list:
    headers = [
        ("From", sender),
        ("To", f'"lzxqwmb@wenmingban.example" <{OFFICE}>'),
        ("Subject", subject),
        ("Thread-Topic", subject),
        ("Thread-Index", "AQHZ+ZqL3kC8bW1V0E6k2cYv8x5vTrBAkS1A"),
        ("Date", "Mon, 9 Oct 2023 02:11:05 +0000"),
        ("Message-ID", message_id),
    ]
    if in_reply_to:
        headers += [("References", in_reply_to), ("In-Reply-To", in_reply_to)]
    return headers + list(extra) + [
        ("Accept-Language", "zh-CN, en-US"),
        ("Content-Language", "zh-CN"),
        ("X-MS-Has-Attach", "yes"),
        ("X-Mailer", "Microsoft Outlook 16.0"),
        ("MIME-Version", "1.0"),
    ]


def _alternative(text: str, boundary: str) -> Part:
    html = ('<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>'
            '<meta http-equiv="Content-Type" content="text/html; charset=gb2312"><style><!-- p.MsoNormal '
            '{margin:0cm;} --></style></head><body lang="ZH-CN">'
            + "".join(f'<p class="MsoNormal">{line or "&nbsp;"}</p>' for line in text.split("\n"))
            + "</body></html>")
    return multipart("alternative", [
        text_part(text, charset="gb2312", codec="gbk", transfer="quoted-printable"),
        text_part(html, subtype="html", charset="gb2312", codec="gbk", transfer="quoted-printable"),
    ], boundary)


def rfc2231_continuations(signer: Signer) -> CorpusMessage:
    unit = "YQ03"
    name = "西岔园区管委会学雷锋活动开展情况统计表（王堃填报）.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    subject = encoded_word(f"答复: 【{signer.token(unit)}】{NOTICE_TITLE}", "gb2312", codec="gbk")
    attachment = file_part(
        form,
        f'{XLSX};\r\n\tname="{encoded_word(name, "gb2312", codec="gbk")}"',
        disposition="attachment;\r\n\t" + rfc2231("filename", name, "gb2312", codec="gbk", chunk=30)
        + f';\r\n\tsize={len(form)};\r\n\tcreation-date="Mon, 09 Oct 2023 02:10:41 GMT";'
          '\r\n\tmodification-date="Mon, 09 Oct 2023 02:10:41 GMT"',
        extra=[("Content-Description", encoded_word(name, "gb2312", codec="gbk"))])
    body = multipart("mixed", [
        _alternative("税科长：\n\n附件是我园区的回执表，请查收。\n\n西岔园区管委会 王堃", f"_000_{EXCHANGE_ID}_"),
        attachment,
    ], f"_004_{EXCHANGE_ID}_")
    raw = message(_headers(f'"{encoded_word("西岔园区管委会", "gb2312", codec="gbk")}" <{unit_email(unit)}>', subject,
                           message_id=f"<{EXCHANGE_ID}@{EXCHANGE_ID}.apcprd03.prod.outlook.com>",
                           in_reply_to=notice_message_id(unit)), body)
    return CorpusMessage("outlook_rfc2231_continuations", "Outlook 16", "RFC 2231 filename*0*/filename*1* "
                         "continuations in a gb2312 label with a GBK-only character; all keys agree", raw, [(name, form)])


def tnef_winmail(signer: Signer) -> CorpusMessage:
    unit = "YQ04"
    form_name = "石化产业园区管委会回执表（堃）.xlsx"
    summary_name = "活动总结.pdf"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    summary = payloads.pdf("石化产业园区活动总结")
    winmail = build_tnef([
        TnefFile(form_name, form, XLSX, "回执表~1.XLS"),
        TnefFile(summary_name, summary, "application/pdf", "活动总~1.PDF"),
    ], body="税科长：\r\n回执表和活动总结见附件。\r\n石化产业园区管委会")
    body = multipart("mixed", [
        text_part("税科长：\n回执表和活动总结见附件。\n石化产业园区管委会", charset="gb2312", codec="gbk"),
        file_part(winmail, 'application/ms-tnef; name="winmail.dat"', disposition='attachment; filename="winmail.dat"'),
    ], f"_003_{EXCHANGE_ID}_")
    subject = encoded_word(f"答复: 【{signer.token(unit)}】{NOTICE_TITLE}", "utf-8")
    raw = message(_headers(f"{encoded_word('石化产业园区', 'utf-8')} <{unit_email(unit)}>", subject,
                           message_id=f"<{EXCHANGE_ID}T@{EXCHANGE_ID}.apcprd03.prod.outlook.com>",
                           in_reply_to=notice_message_id(unit),
                           extra=[("X-MS-TNEF-Correlator", f"<{EXCHANGE_ID}T@{EXCHANGE_ID}.apcprd03.prod.outlook.com>")]),
                  body)
    return CorpusMessage("outlook_tnef", "Outlook 16 (rich text)", "files only inside winmail.dat (TNEF); the "
                         "workbook ends in NUL bytes that a naive TNEF read drops", raw,
                         [(form_name, form), (summary_name, summary)])


def forward_as_attachment(signer: Signer, inner: bytes, inner_files: list) -> CorpusMessage:
    body = multipart("mixed", [
        _alternative("税科长：\n单位邮箱收不到外网邮件，我把绿色化工园区的回复转给您。\n张三", "_000_FWD_"),
        message_part(inner, extra=[("Content-Disposition", "attachment")]),
    ], "_002_FWD_")
    raw = message(_headers(f"{encoded_word('张三', 'utf-8')} <zhangsan@personal.example>",
                           encoded_word("FW: 报送材料", "utf-8"), message_id="<FWD123@personal.example>",
                           in_reply_to=None), body)
    return CorpusMessage("outlook_forward_rfc822", "Outlook 16", "a forwarded reply inside message/rfc822: files "
                         "and subject token come from the inner message", raw, inner_files)


def out_of_office(signer: Signer) -> CorpusMessage:
    unit = "YQ06"
    subject = encoded_word(f"自动答复: 【{signer.token(unit)}】{NOTICE_TITLE}", "utf-8")
    raw = message(_headers(f"{encoded_word('综合保税区', 'utf-8')} <{unit_email(unit)}>", subject,
                           message_id=f"<OOF{EXCHANGE_ID}@outlook.example>", in_reply_to=notice_message_id(unit),
                           extra=[("X-Auto-Response-Suppress", "All"), ("X-MS-Exchange-Inbox-Rules-Loop", unit_email(unit))]),
                  text_part("我于10月1日至10月8日休假，期间邮件不能及时回复，急事请联系办公室。", charset="utf-8"))
    return CorpusMessage("outlook_out_of_office", "Outlook 16 / Exchange", "out-of-office reply: "
                         "X-Auto-Response-Suppress and 自动答复 subject", raw)


def conflicting_keys(signer: Signer) -> CorpusMessage:
    # A clerk answering for 秦川 (YQ02) reused 中川's (YQ01) filled-in form.
    form = payloads.reply_form(signer.token("YQ01"), unit_name("YQ01"))
    name = "回执表.xlsx"
    subject = split_encoded_words(f"答复: 【{signer.token('YQ02')}】{NOTICE_TITLE}", "utf-8", chunk=30)
    body = multipart("mixed", [
        _alternative("回执表见附件。", "_000_CONFLICT_"),
        file_part(form, f'{XLSX}; name="{encoded_word(name)}"', disposition="attachment; " + rfc2231("filename", name)),
    ], "_004_CONFLICT_")
    raw = message(_headers("clerk <clerk@personal.example>", subject, message_id="<CONFLICT1@personal.example>",
                           in_reply_to=None), body)
    return CorpusMessage("outlook_conflicting_keys", "Outlook 16", "form token names YQ01, subject token YQ02: "
                         "review, never assigned", raw, [(name, form)])


def exchange_list_reply(signer: Signer) -> CorpusMessage:
    """A real reply that Exchange stamped with X-Auto-Response-Suppress (sent through a
    distribution list): it must stay a submission."""
    unit = "SZ02"
    name = "回执表.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    body = multipart("mixed", [
        _alternative("回执表见附件。", "_000_DL_"),
        file_part(form, f'{XLSX}; name="{encoded_word(name)}"', disposition="attachment; " + rfc2231("filename", name)),
    ], "_004_DL_")
    raw = message(_headers(f"{encoded_word('办公室')} <office-dl@units.xinqu.example>",
                           encoded_word(f"答复: 【{signer.token(unit)}】{NOTICE_TITLE}"), message_id="<DL1@units.example>",
                           in_reply_to=notice_message_id(unit),
                           extra=[("X-Auto-Response-Suppress", "DR, OOF, AutoReply"), ("X-MS-Exchange-Organization-Expanded", "")]),
                  body)
    return CorpusMessage("outlook_exchange_list_reply", "Outlook 16 / Exchange", "a real reply carrying "
                         "X-Auto-Response-Suppress (distribution list) stays a submission", raw, [(name, form)])
