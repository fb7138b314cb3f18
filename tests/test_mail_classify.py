"""Classification edges: what must not be taken for a bounce or an auto-reply, and what must."""
from __future__ import annotations

from mail.classify import Kind, classify, harvestable_attachments
from mail.mime import parse_message
from mailcorpus.mimebuild import Part, encoded_word, message, message_part, multipart, text_part


def classify_raw(raw: bytes, **kwargs):
    parsed = parse_message(raw)
    return parsed, classify(raw, parsed, **kwargs)


def simple(subject: str, sender: str = "clerk@units.example", body: str = "正文", extra=()) -> bytes:
    return message([("From", sender), ("To", "office@wenmingban.example"), ("Subject", encoded_word(subject)),
                    ("Message-ID", "<x@units.example>"), *extra], text_part(body))


def dsn(action: str, status: str) -> bytes:
    fields = (f"Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; unit@units.example\r\n"
              f"Action: {action}\r\nStatus: {status}\r\n")
    report = multipart("report", [
        text_part("Delivery report"),
        Part([("Content-Type", "message/delivery-status")], fields.encode()),
    ], "r", params=" report-type=delivery-status;")
    return message([("From", "MAILER-DAEMON@mx.example"), ("To", "office@wenmingban.example"),
                    ("Subject", "Undelivered Mail Returned to Sender")], report)


def test_a_person_writing_about_a_bounce_is_a_reply():
    for subject in ("回复：退信怎么办？", "退信问题", "Undelivered report of volunteers"):
        _, result = classify_raw(simple(subject, body="我们收到了退信，邮件无法投递，怎么办？ unit@units.example"))
        assert result.kind is Kind.reply, subject


def test_loose_bounce_subject_from_a_mail_system_is_a_bounce():
    _, result = classify_raw(simple("投递失败", sender="postmaster@units.example",
                                    body="unit@units.example: 550 5.1.1 mailbox unavailable"))
    assert (result.kind, result.bounced_addresses, result.bounce_status) == (Kind.bounce, ["unit@units.example"], "5.1.1")


def test_a_forwarded_bounce_is_not_our_bounce():
    inner = dsn("failed", "5.1.1")
    raw = message([("From", "clerk@units.example"), ("To", "office@wenmingban.example"),
                   ("Subject", encoded_word("转发：Undelivered Mail Returned to Sender"))],
                  multipart("mixed", [text_part("请看这封退信"), message_part(inner)], "f"))
    _, result = classify_raw(raw)
    assert result.kind is Kind.reply


def test_failed_action_with_a_temporary_status_is_a_bounce():
    # Postfix gives up after the queue lifetime with Action: failed and a 4.x.x status.
    _, result = classify_raw(dsn("failed", "4.4.7"))
    assert (result.kind, result.bounced_addresses, result.bounce_status) == (Kind.bounce, ["unit@units.example"], "4.4.7")


def test_delivered_dsn_is_automatic():
    _, result = classify_raw(dsn("delivered", "2.0.0"))
    assert result.kind is Kind.auto_reply and result.bounced_addresses == []


def test_own_address_is_never_bounced_and_own_mail_is_unknown():
    _, mine = classify_raw(simple("测试", sender="office@wenmingban.example"), own_addresses=["Office@wenmingban.example"])
    assert mine.kind is Kind.unknown and mine.reason == "sent from our own mailbox"
    bounce = simple("系统退信", sender="postmaster@wenmingban.example",
                    body="发给 office@wenmingban.example 和 unit@units.example 的邮件无法投递：550 User unknown")
    _, result = classify_raw(bounce, own_addresses=["office@wenmingban.example"])
    assert result.bounced_addresses == ["unit@units.example"] and result.bounce_status == "550"


def test_no_sender_is_unknown():
    raw = b"To: office@wenmingban.example\r\nSubject: hello\r\n\r\nbody\r\n"
    assert classify_raw(raw)[1].kind is Kind.unknown


def test_auto_submitted_no_is_a_person():
    _, result = classify_raw(simple("材料", extra=[("Auto-Submitted", "no")]))
    assert result.kind is Kind.reply


def test_auto_reply_subjects():
    for subject in ("自动回复：休假", "自动答复: 通知", "Automatic reply: 通知", "Out of Office: 通知", "Auto Reply: x"):
        assert classify_raw(simple(subject))[1].kind is Kind.auto_reply, subject
    assert classify_raw(simple("回复：自动回复的设置方法"))[1].kind is Kind.reply


def test_nothing_is_harvested_from_bounces_and_auto_replies():
    parsed, result = classify_raw(simple("自动回复：休假"))
    assert harvestable_attachments(parsed, result) == []


def test_x_auto_response_suppress_alone_is_a_person():
    # Exchange adds it to ordinary mail (e.g. through a distribution list): a real submission
    # must not be dropped as an auto-reply.
    _, result = classify_raw(simple("答复: 回执表", extra=[("X-Auto-Response-Suppress", "All")]))
    assert result.kind is Kind.reply
