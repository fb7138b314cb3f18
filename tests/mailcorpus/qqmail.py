"""QQ Mail (webmail and app): gb18030 words, HTML-only bodies, 超大附件 links, 来自qq.com的退信."""
from __future__ import annotations

from . import payloads
from .base import CorpusMessage
from .campaign import NOTICE_TITLE, OFFICE, Signer, notice_message_id, our_notice, unit_email, unit_name
from .mimebuild import Part, b64_body, encoded_word, file_part, message, message_part, multipart, text_part

QQ_HEADERS = [
    ("X-QQ-mid", "xmsezb12-0t1696729427tqkxk8z7a"),
    ("X-QQ-XMAILINFO", "NfBnXwzB7Tqzo8aHt7kDdNoVRbdqZvHfOFEUDD5dAZjDTrF4M0EhPJMdT6c7hY"),
    ("X-QQ-MIME", "TCMime 1.0 by Tencent"),
    ("X-Mailer", "QQMail 2.x"),
    ("X-QQ-Mailer", "QQMail 2.x"),
    ("Mime-Version", "1.0"),
]


def _quote_block() -> str:
    return ('<div>&nbsp;</div><div style="font-size:12px;background:#efefef;padding:8px;">'
            '<div><b>发件人:</b>&nbsp;"新区文明办"&lt;lzxqwmb@wenmingban.example&gt;;</div>'
            f'<div><b>主题:</b>&nbsp;{NOTICE_TITLE}</div></div>')


def _reply(signer: Signer, unit: str, sender: str, *, html: str, parts: list[Part], message_id: str,
           in_reply_to: str | None = None, subject_prefix: str = "回复：", alternative_text: str | None = None) -> bytes:
    if alternative_text is None:
        body_part = text_part(html, subtype="html", charset="gb18030")
    else:
        body_part = multipart("alternative", [text_part(alternative_text, charset="gb18030"),
                                              text_part(html, subtype="html", charset="gb18030")],
                              "----=_NextPart_6521F6B3_0A2B7C30_ALT")
    body = multipart("mixed", [body_part] + parts, "----=_NextPart_6521F6B3_0A2B7C30_5E8F1A2D") if parts else body_part
    headers = [
        ("From", sender),
        ("To", f'"{encoded_word("新区文明办", "gb18030")}"<{OFFICE}>'),
        ("Subject", encoded_word(f"{subject_prefix}【{signer.token(unit)}】{NOTICE_TITLE}", "gb18030")),
        ("Date", "Sun, 8 Oct 2023 09:43:47 +0800"),
    ]
    if in_reply_to:
        headers += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    headers += QQ_HEADERS + [("Message-ID", message_id)]
    return message(headers, body)


def _qq_file(data: bytes, name: str) -> Part:
    # QQ labels every file application/octet-stream and writes the name as an encoded word in quotes.
    return file_part(data, f'application/octet-stream;\r\n\tcharset="gb18030";\r\n\tname="{encoded_word(name, "gb18030")}"',
                     disposition=f'attachment; filename="{encoded_word(name, "gb18030")}"')


def html_only(signer: Signer) -> CorpusMessage:
    unit = "YQ07"
    name = "职教园区回执表.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    html = ('<meta http-equiv="Content-Type" content="text/html; charset=GB18030"><div>税科长：</div>'
            '<div>&nbsp; &nbsp; 您好！职教园区回执表已填好，请查收。</div><div><br></div>'
            '<div>李娜&amp;职教园区</div><script>alert(1)</script>' + _quote_block())
    raw = _reply(signer, unit, f'"{encoded_word("职教园区 李娜", "gb18030")}"<2948173650@qq.com>', html=html,
                 parts=[_qq_file(form, name)], message_id="<tencent_3C5F1E2D4B6A7980C1D2E3F4A5B6C7D8E909@qq.com>")
    return CorpusMessage("qq_html_only", "QQ Mail", "HTML-only body (text made from HTML, script dropped); "
                         "gb18030 words; file labelled application/octet-stream", raw, [(name, form)])


def bigfile(signer: Signer) -> CorpusMessage:
    unit = "YQ08"
    files = [
        ("活动照片合集.zip", "356.2M", "2023年10月20日 10:00", "8d3c1b2a4e5f60718293a4b5c6d7e8f9"),
        ("志愿服务视频.mp4", "1.2G", "2023年11月02日 08:30", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
    ]

    def url(key: str) -> str:
        return f"https://wx.mail.qq.com/ftn/download?func=3&k={key}&key={key}&fweb=1&cl=1"

    blocks = "".join(
        f'<div class="bigatt_bt" style="padding:6px;" title="{name}&#10;文件大小：{size}&#10;到期时间：{expiry}">'
        f'<a href="{url(key).replace("&", "&amp;")}" target="_blank"><img src="https://rescdn.qqmail.com/ico_mid/fu_zip.gif" border="0"></a>'
        f'<div><a href="{url(key).replace("&", "&amp;")}" target="_blank">{name}</a></div>'
        f'<a href="{url(key).replace("&", "&amp;")}">下载</a></div>'
        for name, size, expiry, key in files)
    html = ('<div>您好，照片和视频太大，用超大附件发送，请及时下载。</div>'
            '<div id="QQMailBigAttach" style="padding:2px;"><div><b>从QQ邮箱发来的超大附件</b></div>'
            + blocks + "</div>")
    text = "您好，照片和视频太大，用超大附件发送，请及时下载。\n\n从QQ邮箱发来的超大附件\n\n" + "\n".join(
        f"{name} ({size}, {expiry} 到期)进入下载页面：{url(key)}" for name, size, expiry, key in files)
    raw = _reply(signer, unit, f'"{encoded_word("现代农业示范园区", "gb18030")}"<{unit_email(unit)}>', html=html,
                 parts=[], message_id="<tencent_BIGFILE0A1B2C3D4E5F@qq.com>", alternative_text=text,
                 in_reply_to=notice_message_id(unit))
    return CorpusMessage("qq_bigfile", "QQ Mail", "超大附件 links only (no file): links, names and expiry from "
                         "the bigatt block and the plain text", raw)


def reply_for_forward(signer: Signer, unit: str = "YQ05") -> tuple[bytes, list]:
    """The unit's reply from its QQ mailbox, later forwarded as an attachment by a colleague."""
    name = "绿色化工园区回执表.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    raw = _reply(signer, unit, f'"{encoded_word("绿色化工园区", "gb18030")}"<1190034567@qq.com>',
                 html="<div>回执表见附件。</div>", parts=[_qq_file(form, name)],
                 message_id="<tencent_FWDINNER0123456789@qq.com>", in_reply_to=notice_message_id(unit))
    return raw, [(name, form)]


def forward_base64(signer: Signer) -> CorpusMessage:
    """QQ forwards "as attachment" with the attached message itself base64-encoded."""
    unit = "SZ01"
    inner, files = reply_for_forward(signer, unit)
    attached = Part([("Content-Type", "message/rfc822"), ("Content-Transfer-Encoding", "base64"),
                     ("Content-Disposition", f'attachment; filename="{encoded_word("回执.eml", "gb18030")}"')],
                    b64_body(inner))
    body = multipart("mixed", [text_part("<div>转发单位回复，请查收。</div>", subtype="html", charset="gb18030"), attached],
                     "----=_NextPart_FWD64_0001")
    raw = message([("From", f'"{encoded_word("办公室小王", "gb18030")}"<1380013800@qq.com>'), ("To", OFFICE),
                   ("Subject", encoded_word("转发：单位回执", "gb18030")), ("Date", "Mon, 9 Oct 2023 08:00:00 +0800")]
                  + QQ_HEADERS + [("Message-ID", "<tencent_FWD64@qq.com>")], body)
    return CorpusMessage("qq_forward_base64_rfc822", "QQ Mail", "forwarded message attached as message/rfc822 "
                         "with Content-Transfer-Encoding: base64", raw, files)


def auto_reply(signer: Signer) -> CorpusMessage:
    unit = "YQ10"
    raw = _reply(signer, unit, f'"{encoded_word("国际物流园区", "gb18030")}"<{unit_email(unit)}>',
                 html="<div>这是来自QQ邮箱的假期自动回复邮件。</div><div>您好，我最近正在休假中，无法亲自回复您的邮件。</div>",
                 parts=[], message_id="<tencent_AUTOREPLY01@qq.com>", subject_prefix="自动回复: ",
                 in_reply_to=notice_message_id(unit))
    return CorpusMessage("qq_auto_reply", "QQ Mail", "holiday auto-reply recognised by its 自动回复 subject alone", raw)


def bounce(signer: Signer) -> CorpusMessage:
    unit = "YQ09"
    original = our_notice(signer, unit)
    html = ('<div style="font-size:14px">很抱歉您发送的邮件被退回，以下是该邮件的相关信息：</div>'
            '<table><tr><td>被退回的邮件：</td><td>' + signer.subject(unit) + '</td></tr>'
            '<tr><td>时间：</td><td>2023年9月14日 (星期四) 上午9:00</td></tr>'
            f'<tr><td>收件人：</td><td>{unit_email(unit)}</td></tr></table>'
            '<div><b>退信原因</b></div><div>收件人邮箱地址不存在，请确认邮箱地址是否正确。</div>'
            '<div style="color:#999">(550 Mailbox not found or access denied)</div>')
    body = multipart("mixed", [text_part(html, subtype="html", charset="gb18030"),
                               message_part(original, extra=[("Content-Disposition", "attachment")])],
                     "----=_NextPart_BOUNCE_QQ_0001")
    raw = message([
        ("From", f'"{encoded_word("QQ邮箱团队", "gb18030")}" <MAILER-DAEMON@qq.com>'),
        ("To", OFFICE),
        ("Subject", encoded_word("来自qq.com的退信", "gb18030")),
        ("Date", "Thu, 14 Sep 2023 09:00:12 +0800"),
        ("Message-ID", "<bounce_20230914090012_7@qq.com>"),
        ("Mime-Version", "1.0"),
    ], body)
    return CorpusMessage("qq_bounce", "QQ Mail (MTA)", "text fallback bounce 来自qq.com的退信 (no DSN): address "
                         "and Message-ID from the returned original; its blank form is not harvested", raw)
