"""Automatic answers that are not submissions: vacation replies by header, read receipts (MDN),
and a mail system's own notice that is neither a bounce nor a reply."""
from __future__ import annotations

from .base import CorpusMessage
from .campaign import NOTICE_TITLE, OFFICE, Signer, notice_message_id, unit_email
from .mimebuild import CRLF, Part, encoded_word, message, multipart, text_part


def precedence_only(signer: Signer) -> CorpusMessage:
    unit = "BM16"
    raw = message([
        ("From", f"{encoded_word('妇联')} <{unit_email(unit)}>"), ("To", OFFICE),
        ("Subject", encoded_word(f"Re: 【{signer.token(unit)}】{NOTICE_TITLE}")),
        ("Date", "Mon, 9 Oct 2023 07:00:00 +0800"), ("Message-ID", "<vacation.bm16@units.xinqu.example>"),
        ("In-Reply-To", notice_message_id(unit)), ("Precedence", "auto_reply"), ("MIME-Version", "1.0"),
    ], text_part("您好，本人国庆假期外出，10月9日返岗后回复。"))
    return CorpusMessage("vacation_precedence", "server vacation responder", "auto-reply recognised by "
                         "Precedence: auto_reply only", raw)


def auto_submitted(signer: Signer) -> CorpusMessage:
    unit = "BM18"
    raw = message([
        ("From", f"{encoded_word('融媒体中心')} <{unit_email(unit)}>"), ("To", OFFICE),
        ("Subject", f"Automatic reply: {encoded_word(signer.subject(unit))}"),
        ("Date", "Mon, 9 Oct 2023 07:00:00 +0800"), ("Message-ID", "<sieve.bm18@units.xinqu.example>"),
        ("In-Reply-To", notice_message_id(unit)), ("Auto-Submitted", "auto-replied (vacation)"),
        ("MIME-Version", "1.0"),
    ], text_part("I am away until 9 October. 本人休假至10月9日。"))
    return CorpusMessage("sieve_auto_submitted", "Sieve vacation (RFC 3834)", "Auto-Submitted: auto-replied "
                         "with an English 'Automatic reply:' subject", raw)


def read_receipt(signer: Signer) -> CorpusMessage:
    unit = "BM17"
    human = text_part(f"这是邮件的回执：\n\n您于 2023-09-14 09:00:00 发给 {unit_email(unit)} 的邮件\n"
                      f"主题：{signer.subject(unit)}\n已于 2023-09-14 10:12:03 被阅读。", charset="gb2312", codec="gbk")
    disposition = Part([("Content-Type", "message/disposition-notification")],
                       b"".join(line.encode() + CRLF for line in [
                           "Reporting-UA: Foxmail 7.2.25.228[cn]", f"Final-Recipient: rfc822;{unit_email(unit)}",
                           f"Original-Message-ID: {notice_message_id(unit)}",
                           "Disposition: manual-action/MDN-sent-manually; displayed"]))
    body = multipart("report", [human, disposition], "----=_001_MDN_=----", params=" report-type=disposition-notification;")
    raw = message([
        ("From", f"{encoded_word('总工会', 'gb2312', codec='gbk')} <{unit_email(unit)}>"), ("To", OFFICE),
        ("Subject", encoded_word(f"已读: {signer.subject(unit)}", "gb2312", codec="gbk")),
        ("Date", "Thu, 14 Sep 2023 10:12:03 +0800"), ("Message-ID", "<mdn.bm17@units.xinqu.example>"),
        ("X-Mailer", "Foxmail 7.2.25.228[cn]"), ("MIME-Version", "1.0"),
    ], body)
    return CorpusMessage("foxmail_read_receipt", "Foxmail 7.2", "a read receipt (multipart/report, "
                         "disposition-notification) is an automatic message, not a reply", raw)


def system_notice(signer: Signer) -> CorpusMessage:
    raw = message([
        ("From", f"{encoded_word('邮件系统')} <postmaster@wenmingban.example>"), ("To", OFFICE),
        ("Subject", encoded_word("邮箱容量提醒")), ("Date", "Tue, 10 Oct 2023 06:00:00 +0800"),
        ("Message-ID", "<quota.20231010@wenmingban.example>"), ("MIME-Version", "1.0"),
    ], text_part("您的邮箱已使用 92% 的容量，请及时清理。"))
    return CorpusMessage("system_quota_notice", "Coremail server", "a mail-system notice that is not a bounce: "
                         "unknown, kept for staff", raw)
