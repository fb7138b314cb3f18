"""Delivery failures as MTAs write them: Postfix and Exchange DSNs (RFC 3464), Exim without a DSN.

QQ's and Coremail's bounces live with their clients (qqmail.py, netease.py)."""
from __future__ import annotations

from .base import CorpusMessage
from .campaign import OFFICE, Signer, our_notice, unit_email
from .mimebuild import CRLF, Part, encoded_word, message, message_part, multipart, text_part

POSTFIX_HOST = "mail.wenmingban.example"


def _delivery_status(per_message: list[tuple[str, str]], recipients: list[list[tuple[str, str]]],
                     description: str = "Delivery report") -> Part:
    def block(fields: list[tuple[str, str]]) -> bytes:
        return b"".join(f"{name}: {value}".encode() + CRLF for name, value in fields)

    body = block(per_message) + b"".join(CRLF + block(fields) for fields in recipients)
    return Part([("Content-Description", description), ("Content-Type", "message/delivery-status")], body)


def postfix_failed(signer: Signer) -> CorpusMessage:
    unit = "BM12"
    address = unit_email(unit)
    diagnostic = (f"smtp; 550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table")
    notification = (
        f"This is the mail system at host {POSTFIX_HOST}.\n\n"
        "I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. "
        "It's attached below.\n\nFor further assistance, please send mail to postmaster.\n\n"
        "If you do so, please include this problem report. You can\ndelete your own text from the attached returned message.\n\n"
        "                   The mail system\n\n"
        f"<{address}>: host mx.units.xinqu.example[203.0.113.25] said: 550 5.1.1\n    <{address}>: Recipient address "
        "rejected: User unknown in virtual mailbox table (in reply to RCPT TO\n    command)\n")
    notice = text_part(notification, charset="us-ascii", transfer="7bit")
    notice.headers.insert(0, ("Content-Description", "Notification"))
    report = multipart("report", [
        notice,
        _delivery_status(
            [("Reporting-MTA", f"dns; {POSTFIX_HOST}"), ("X-Postfix-Queue-ID", "4RmQ1x3Jz2z9sWf"),
             ("X-Postfix-Sender", f"rfc822; {OFFICE}"), ("Arrival-Date", "Thu, 14 Sep 2023 09:00:01 +0800 (CST)")],
            [[("Final-Recipient", f"rfc822; {address}"), ("Original-Recipient", f"rfc822;{address}"),
              ("Action", "failed"), ("Status", "5.1.1"), ("Remote-MTA", "dns; mx.units.xinqu.example"),
              ("Diagnostic-Code", diagnostic)]]),
        message_part(our_notice(signer, unit), extra=[("Content-Description", "Undelivered Message")]),
    ], "4RmQ1x3Jz2z9sWf.1694653202/mail.wenmingban.example", params=' report-type=delivery-status;')
    raw = message([
        ("Return-Path", "<>"),
        ("Date", "Thu, 14 Sep 2023 09:00:02 +0800 (CST)"),
        ("From", f"MAILER-DAEMON@{POSTFIX_HOST} (Mail Delivery System)"),
        ("Subject", "Undelivered Mail Returned to Sender"),
        ("To", OFFICE),
        ("Auto-Submitted", "auto-replied"),
        ("MIME-Version", "1.0"),
        ("Message-Id", f"<20230914010002.4RmQ1x3Jz2z9sWf@{POSTFIX_HOST}>"),
    ], report)
    return CorpusMessage("postfix_dsn", "Postfix 3.7", "RFC 3464 DSN: Final-Recipient, Status 5.1.1, the "
                         "Diagnostic-Code as the server's words; bounce wins over Auto-Submitted; no harvest", raw)


def postfix_delayed(signer: Signer) -> CorpusMessage:
    unit = "BM13"
    address = unit_email(unit)
    original_headers = our_notice(signer, unit).split(b"\r\n\r\n", 1)[0] + CRLF
    notice = text_part(
        f"This is the mail system at host {POSTFIX_HOST}.\n\n####################################################\n"
        "#     THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE.     #\n"
        "####################################################\n\nYour message could not be delivered for more than "
        "4 hour(s).\nIt will be retried until it is 5 day(s) old.\n", charset="us-ascii", transfer="7bit")
    notice.headers.insert(0, ("Content-Description", "Notification"))
    report = multipart("report", [
        notice,
        _delivery_status([("Reporting-MTA", f"dns; {POSTFIX_HOST}"), ("Arrival-Date", "Thu, 14 Sep 2023 09:00:01 +0800")],
                         [[("Final-Recipient", f"rfc822; {address}"), ("Action", "delayed"), ("Status", "4.4.1"),
                           ("Diagnostic-Code", "X-Postfix; connect to mx.units.xinqu.example[203.0.113.25]:25: Connection timed out"),
                           ("Will-Retry-Until", "Tue, 19 Sep 2023 09:00:01 +0800 (CST)")]],
                         description="Delivery report"),
        Part([("Content-Description", "Undelivered Message Headers"), ("Content-Type", "text/rfc822-headers")],
             original_headers),
    ], "DELAY.1694667602/mail.wenmingban.example", params=' report-type=delivery-status;')
    raw = message([
        ("Return-Path", "<>"), ("Date", "Thu, 14 Sep 2023 13:00:02 +0800 (CST)"),
        ("From", f"MAILER-DAEMON@{POSTFIX_HOST} (Mail Delivery System)"),
        ("Subject", "Delayed Mail (still being retried)"), ("To", OFFICE), ("Auto-Submitted", "auto-replied"),
        ("MIME-Version", "1.0"), ("Message-Id", f"<20230914050002.DELAY@{POSTFIX_HOST}>"),
    ], report)
    return CorpusMessage("postfix_delayed", "Postfix 3.7", "a delay warning (Action: delayed, 4.4.1) is not a "
                         "bounce: recorded, the unit is not marked", raw)


def exchange_ndr(signer: Signer) -> CorpusMessage:
    unit = "BM14"
    address = unit_email(unit)
    exchange_sender = "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@units.xinqu.example"
    text = ("Delivery has failed to these recipients or groups:\n\n"
            f"{address}\nThe email address you entered couldn't be found. Please check the recipient's email address "
            "and try to resend the message. If the problem continues, please contact your helpdesk.\n\n"
            "Diagnostic information for administrators:\n\nGenerating server: EX01.units.xinqu.example\n\n"
            f"{address}\nRemote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by "
            "SMTP address lookup'\n")
    html = "<html><body>" + "".join(f"<p>{line}</p>" for line in text.split("\n") if line) + "</body></html>"
    report = multipart("report", [
        multipart("alternative", [text_part(text, transfer="quoted-printable"),
                                  text_part(html, subtype="html", transfer="quoted-printable")], "_000_NDR_ALT_"),
        _delivery_status([("Reporting-MTA", "dns;EX01.units.xinqu.example"),
                          ("Received-From-MTA", "dns;mail.wenmingban.example"),
                          ("Arrival-Date", "Thu, 14 Sep 2023 01:00:03 +0000")],
                         [[("Original-Recipient", f"rfc822;{address}"), ("Final-Recipient", f"rfc822;{address}"),
                           ("Action", "failed"), ("Status", "5.1.10"),
                           ("Diagnostic-Code", "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup")]],
                         description="Delivery report"),
        message_part(our_notice(signer, unit)),
    ], "_002_NDR_REPORT_", params=' report-type=delivery-status;')
    raw = message([
        ("From", f"Microsoft Outlook <{exchange_sender}>"),
        ("To", OFFICE),
        ("Date", "Thu, 14 Sep 2023 01:00:05 +0000"),
        ("Subject", "Undeliverable: " + encoded_word(signer.subject(unit))),
        ("Message-ID", f"<NDR-{unit}@EX01.units.xinqu.example>"),
        ("X-MS-Exchange-Message-Is-Ndr", ""),
        ("Content-Language", "en-US"),
        ("Auto-Submitted", "auto-replied"),
        ("MIME-Version", "1.0"),
    ], report)
    return CorpusMessage("exchange_ndr", "Exchange 2019", "Exchange NDR: multipart/report with a text+HTML "
                         "notification, Status 5.1.10", raw)


def exim_failed(signer: Signer) -> CorpusMessage:
    unit = "BM15"
    address = unit_email(unit)
    text = ("This message was created automatically by mail delivery software.\n\n"
            "A message that you sent could not be delivered to one or more of its\n"
            "recipients. This is a permanent error. The following address(es) failed:\n\n"
            f"  {address}\n    host mx.units.xinqu.example [203.0.113.25]\n"
            f"    SMTP error from remote mail server after RCPT TO:<{address}>:\n    550 No such user here\n\n"
            "------ This is a copy of the message, including all the headers. ------\n\n")
    original = our_notice(signer, unit).decode("ascii")
    raw = message([
        ("Return-path", "<>"),
        ("X-Failed-Recipients", address),
        ("Auto-Submitted", "auto-replied"),
        ("From", "Mail Delivery System <Mailer-Daemon@relay.example>"),
        ("To", OFFICE),
        ("Subject", "Mail delivery failed: returning message to sender"),
        ("Message-Id", "<E1qgSx2-0004Ab-9Z@relay.example>"),
        ("Date", "Thu, 14 Sep 2023 01:00:09 +0000"),
        ("Content-Type", "text/plain; charset=us-ascii"),
    ], Part([], (text + original).replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode("ascii")))
    return CorpusMessage("exim_bounce", "Exim 4", "a non-DSN bounce read by flufl.bounce's Exim detector; our "
                         "Message-ID found in the copied original", raw)
