"""163/126 (Coremail): raw 8-bit headers, 超大附件 links, X-Autoreply, Coremail's 系统退信."""
from __future__ import annotations

from datetime import datetime

from models.clock import CHINA_TZ

from . import payloads
from .base import CorpusMessage
from .campaign import NOTICE_TITLE, OFFICE, Signer, notice_message_id, our_notice, unit_email, unit_name
from .mimebuild import Part, encoded_word, file_part, message, multipart, text_part

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COREMAIL_HEADERS = [
    ("X-Originating-IP", "[117.136.12.34]"),
    ("X-Priority", "3"),
    ("X-Mailer", "Coremail Webmail Server Version XT5.0.14 build 20230109(dcb5de15) Copyright (c) 2002-2023 www.mailtech.cn 163com"),
    ("X-NTES-SC", "AL_QuySBf6ZukEr4iWabekXnk8Sh+s/WcW4vP8h3YNXP5E0sSbk5w=="),
    ("MIME-Version", "1.0"),
    ("X-Coremail-Locale", "zh_CN"),
    ("X-CM-TRANSID", "_____wDXP8QOCiNlF8oBAA--.3041S2"),
    ("X-Coremail-Antispam", "1Uf129KBjvJXoW7WF4rAr4UJr4xZr1UAr4kJFb_yoW8XF4kpF"),
]


def _coremail(sender: str | bytes, subject: str | bytes, body: Part, *, message_id: str, in_reply_to: str | None,
              extra=()) -> bytes:
    headers = [("Date", "Mon, 9 Oct 2023 15:12:46 +0800 (CST)"), ("From", sender), ("To", OFFICE),
               ("Subject", subject)]
    if in_reply_to:
        headers += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    headers += list(extra) + COREMAIL_HEADERS + [("Message-ID", message_id)]
    return message(headers, body)


def _alternative(text: str, charset: str = "UTF-8", codec: str | None = None) -> Part:
    html = '<div style="line-height:1.7;color:#000000;font-size:14px;font-family:Arial">' + "".join(
        f"<div>{line or '<br>'}</div>" for line in text.split("\n")) + "</div>"
    return multipart("alternative", [text_part(text, charset=charset, codec=codec),
                                     text_part(html, subtype="html", charset=charset, codec=codec)],
                     "----=_Part_174532_1063437413.1696835566339")


def raw_utf8(signer: Signer) -> CorpusMessage:
    unit = "BM01"
    name = "党群工作部回执表.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    # The file name and the headers as raw UTF-8 bytes (the Coremail mobile app), no encoded words.
    body = multipart("mixed", [
        _alternative("税科长：\n回执表见附件。\n刘洋"),
        file_part(form, f"{XLSX}; ".encode() + b'name="' + name.encode() + b'"',
                  disposition=b'attachment; filename="' + name.encode() + b'"'),
    ], "----=_Part_174531_1471983251.1696835566338")
    raw = _coremail("党群工作部 刘洋 <liuyang_dq@163.com>".encode(), f"Re:【{signer.token(unit)}】{NOTICE_TITLE}".encode(),
                    body, message_id="<5e1a2b3c.1a2b.18b0c1d2e3f.Coremail.liuyang_dq@163.com>",
                    in_reply_to=notice_message_id(unit))
    return CorpusMessage("netease_raw8bit_utf8", "163 (Coremail app)", "raw 8-bit UTF-8 subject, sender name and "
                         "file name", raw, [(name, form)])


def raw_gbk(signer: Signer) -> CorpusMessage:
    unit = "BM02"
    name = "经济发展局回执表（堃）.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    body = multipart("mixed", [
        _alternative("回执表见附件，请查收。", charset="GBK"),
        file_part(form, f"{XLSX}; ".encode() + b'name="' + name.encode("gbk") + b'"',
                  disposition=b'attachment; filename="' + name.encode("gbk") + b'"'),
    ], "----=_Part_NetEaseFlash_0002")
    raw = message([
        ("Date", "Mon, 9 Oct 2023 16:20:00 +0800"),
        ("From", "经济发展局 孙堃 <sunkun@126.example>".encode("gbk")),
        ("To", OFFICE),
        ("Subject", f"回复：【{signer.token(unit)}】{NOTICE_TITLE}".encode("gbk")),
        ("X-Mailer", "NetEase Flash Mail 2.4.1.32"),
        ("MIME-Version", "1.0"),
        ("Message-ID", "<20231009162000.ABCD@126.example>"),
    ], body)
    return CorpusMessage("netease_raw8bit_gbk", "网易闪电邮 (126)", "raw 8-bit GBK headers and file name: UTF-8 "
                         "fails, GB18030 reads them (堃 included)", raw, [(name, form)])


def bigfile_with_form(signer: Signer) -> CorpusMessage:
    unit = "BM03"
    name = "财政局回执表.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    files = [
        ("财政局活动照片.rar", "3.61M", datetime(2023, 10, 25, 13, 35, 26, tzinfo=CHINA_TZ), "Sy2W9lTU-photos"),
        ("志愿服务纪实.mp4", "17.49M", datetime(2023, 10, 26, 9, 0, 5, tzinfo=CHINA_TZ), "Sy2W9lTU-video"),
    ]

    def url(key: str) -> str:
        return f"https://mail.163.com/large-attachment-download/index.html?p=X-NETEASE-HUGE-ATTACHMENT&amp;file={key}&amp;title=x"

    blocks = "".join(
        '<div style="clear:both;height:36px;padding:6px 4px">'
        f'<div style="float:left;width:36px"><a href="{url(key)}"><img src="https://mimg.127.net/xm/all/fj/ico-bfile-28.gif" border="0"></a></div>'
        f'<div><div style="padding:0px;font-size:12px;line-height:14px"><a href="{url(key)}" download="{url(key)}" '
        f'filename="{name}" filesize="3781934" expiretime="{int(when.timestamp() * 1000)}" target="_blank">{name}</a>'
        f'<span style="color:#bbb"> ({size}, {when:%Y}年{when.month}月{when.day}日 {when:%H:%M} 到期)</span></div>'
        f'<div><a href="http://fs.163.com/fs/preview/?file={key}&amp;title=x">在线预览</a> | <a href="{url(key)}">下载</a></div></div></div>'
        for name, size, when, key in files)
    html = ('<div>回执表见附件，照片和视频较大，用超大附件发送。</div><div id="divNeteaseBigAttach" '
            'style="clear:both;margin-top:10px;background:#DEE8F2;padding:4px"><div><b>从网易163邮箱发来的超大附件</b></div>'
            f'<div style="background:#fff;padding:4px">{blocks}</div></div>')
    body = multipart("mixed", [
        multipart("alternative", [text_part("回执表见附件，照片和视频较大，用超大附件发送。"),
                                  text_part(html, subtype="html")], "----=_Part_BIG_ALT"),
        file_part(form, f'{XLSX}; name="{encoded_word(name, "UTF-8")}"',
                  disposition=f'attachment; filename="{encoded_word(name, "UTF-8")}"'),
    ], "----=_Part_BIG_MIXED")
    raw = _coremail(f"{encoded_word('财政局', 'UTF-8')} <czj_xinqu@163.com>", encoded_word(f"回复:【{signer.token(unit)}】{NOTICE_TITLE}", "UTF-8"),
                    body, message_id="<7a8b9c0d.2b3c.18b0c1d2e40.Coremail.czj_xinqu@163.com>", in_reply_to=None)
    return CorpusMessage("netease_bigfile_with_form", "163 webmail", "a normal form attachment plus 163 超大附件 "
                         "links with expiretime attributes", raw, [(name, form)])


def x_autoreply(signer: Signer) -> CorpusMessage:
    unit = "BM05"
    raw = _coremail(f"{encoded_word('生态环境局', 'UTF-8')} <{unit_email(unit)}>",
                    encoded_word(f"Re:【{signer.token(unit)}】{NOTICE_TITLE}", "UTF-8"),
                    text_part("您好，您的来信已收到，我会尽快处理。"), message_id="<autoreply.bm05@163.com>",
                    in_reply_to=notice_message_id(unit), extra=[("X-Autoreply", "yes")])
    return CorpusMessage("netease_x_autoreply", "163 webmail", "auto-reply recognised by X-Autoreply although the "
                         "subject looks like a reply", raw)


def coremail_bounce(signer: Signer) -> CorpusMessage:
    """The office's own Coremail server (common in government mail) returning a notice."""
    unit = "BM04"
    original = our_notice(signer, unit)
    original_headers = original.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    text = (f"您好：\n\n您发送的邮件被退回。\n\n收件人：{unit_email(unit)}\n主题：{signer.subject(unit)}\n"
            f"退信原因：对方服务器拒收 550 User not found: {unit_email(unit)}\n\n"
            "请检查收件人地址是否正确。\n\n此邮件由系统自动发出，请勿回复。")
    body = multipart("mixed", [
        text_part(text, charset="GBK"),
        Part([("Content-Type", "text/rfc822-headers; charset=us-ascii"),
              ("Content-Description", "original message headers")], original_headers),
    ], "----=_Part_SYSTEM_BOUNCE")
    raw = message([
        ("Date", "Thu, 14 Sep 2023 09:00:31 +0800"),
        ("From", f"{encoded_word('系统管理员', 'GBK')} <postmaster@wenmingban.example>"),
        ("To", OFFICE),
        ("Subject", encoded_word("系统退信", "GBK")),
        ("X-Mailer", "Coremail Mail Server"),
        ("Message-ID", "<SYSBOUNCE.20230914090031@wenmingban.example>"),
        ("MIME-Version", "1.0"),
    ], body)
    return CorpusMessage("coremail_bounce", "Coremail server", "系统退信 without DSN; the original comes back as "
                         "text/rfc822-headers only", raw)


def no_keys(signer: Signer) -> CorpusMessage:
    raw = _coremail(f"{encoded_word('某单位办公室', 'UTF-8')} <office_unknown@163.com>",
                    encoded_word("请问回执表在哪里下载？", "UTF-8"), _alternative("您好，我们没有收到回执表，请再发一次。"),
                    message_id="<nokeys.1@163.com>", in_reply_to=None)
    return CorpusMessage("netease_no_keys", "163 webmail", "no token, no thread, unknown sender: kept for review", raw)
