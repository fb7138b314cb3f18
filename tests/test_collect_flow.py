"""`collect_replies` end to end through the dev mail server: the notice goes out with the issue flow,
units answer the way units do (errors, twice, from another mailbox, forwarded, late, an
auto-reply, a bounce, a stranger, the same mail twice), collect runs, and the database, the
mailboxes and the files on disk are checked. The flow body runs directly (run_flow without
PREFECT_API_URL); one test runs it as a real Prefect flow to check its artifacts.
"""
from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import shutil
import smtplib
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import select

from flows.campaign import issue_notice
from flows.collect import collect_replies
from flows.runner import run_flow
from forms.campaign import CampaignDefinition, load_campaign
from forms.form_filling import fill_reply_form
from mail import ingest
from mail.inbox import open_inbox
from mail.outbox import RetryPolicy
from models import tokens
from models.db import session_scope
from models.settings import DEFAULT_OFFICE_LOGIN, PROJECT_ROOT, get_settings, reload_settings
from models.status import campaign_status
from models.tables import Attachment, InboundMessage, OutboundMessage, OutboundState, Recipient, Submission, Unit
from synthetic import figures, write_units

EXAMPLE = PROJECT_ROOT / "campaigns" / "xinqu-2023-9"
CAMPAIGN_ID = "xinqu-2023-9"
OFFICE = DEFAULT_OFFICE_LOGIN
ISSUED_AT = "2023-10-08T09:00:00"
BEFORE_DEADLINE = "2023-10-09T15:30:00"
AFTER_DEADLINE = "2023-10-11T09:00:00"
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


# -- a campaign with a few units, its notices sent -----------------------------------------------

def issue(tmp_path: Path, monkeypatch, unit_count: int) -> CampaignDefinition:
    campaign_dir = tmp_path / "campaign" / CAMPAIGN_ID
    shutil.copytree(EXAMPLE, campaign_dir)
    write_units(campaign_dir, unit_count)
    monkeypatch.setenv("NOTICEFLOW_NOW", ISSUED_AT)
    assert f"本次发出 {unit_count} 封" in run_flow(issue_notice, str(campaign_dir))
    return load_campaign(campaign_dir)


@pytest.fixture
def issued(nf_env, devmail, tmp_path, monkeypatch) -> CampaignDefinition:
    return issue(tmp_path, monkeypatch, 9)


# -- what units do -------------------------------------------------------------------------------

def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)





@dataclass
class Units:
    devmail: object
    definition: CampaignDefinition

    def email(self, code: str) -> str:
        return f"{code.lower()}@units.example.test"

    def token(self, code: str) -> str:
        return str(tokens.sign(self.definition.spec.token_prefix, code))

    def notice(self, code: str) -> EmailMessage:
        return parse(self.devmail.mailbox_messages(self.email(code))[0])

    def notice_raw(self, code: str) -> bytes:
        return self.devmail.mailbox_messages(self.email(code))[0]

    def blank_form(self, code: str) -> bytes:
        return next(p.get_content() for p in self.notice(code).iter_attachments()
                    if p.get_filename().endswith(".xlsx"))

    def filled_form(self, code: str, values: dict) -> bytes:
        return fill_reply_form(self.blank_form(code), self.definition.form, values)

    def mail(self, sender: str, subject: str, body: str = "报送材料见附件，请查收。", *,
             answering: EmailMessage | None = None, form: bytes | None = None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = OFFICE
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(localtime=True)
        message["Message-ID"] = email.utils.make_msgid(domain=sender.split("@")[1])
        if answering is not None:
            message["In-Reply-To"] = answering["Message-ID"]
            message["References"] = answering["Message-ID"]
        message.set_content(body)
        if form is not None:
            message.add_attachment(form, maintype=XLSX[0], subtype=XLSX[1], filename="回执表（已填写）.xlsx")
        return message

    def reply(self, code: str, values: dict, *, to: EmailMessage | None = None) -> EmailMessage:
        original = to or self.notice(code)
        return self.mail(self.email(code), "回复：" + original["Subject"], answering=original,
                         form=self.filled_form(code, values))

    def send(self, message: EmailMessage, envelope_from: str | None = None) -> EmailMessage:
        with smtplib.SMTP("127.0.0.1", self.devmail.smtp_port) as smtp:
            smtp.sendmail(message["From"] if envelope_from is None else envelope_from, [OFFICE],
                          message.as_bytes(policy=email.policy.SMTP))
        return message

    def answers_to(self, message: EmailMessage, address: str) -> list[EmailMessage]:
        return [m for m in map(parse, self.devmail.mailbox_messages(address))
                if m["In-Reply-To"] == message["Message-ID"]]


def bounce_for(units: Units, code: str) -> bytes:
    """A Postfix-style DSN returning the notice (with its blank form) to the office."""
    address = units.email(code)
    original = units.notice_raw(code).replace(b"\r\n", b"\n").decode("utf-8")
    boundary = "BOUNDARY.dsn.4711"
    return "\n".join([
        "From: MAILER-DAEMON@mx.units.example.test (Mail Delivery System)",
        f"To: {OFFICE}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Message-ID: {email.utils.make_msgid(domain='mx.units.example.test')}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "", f"--{boundary}", "Content-Type: text/plain; charset=us-ascii", "",
        "This is the mail system at host mx.units.example.test.",
        "I'm sorry to have to inform you that your message could not be delivered.",
        f"<{address}>: host mx said: 550 5.1.1 <{address}>: Recipient address rejected: User unknown",
        "", f"--{boundary}", "Content-Type: message/delivery-status", "",
        "Reporting-MTA: dns; mx.units.example.test", "",
        f"Final-Recipient: rfc822; {address}", "Action: failed", "Status: 5.1.1",
        f"Diagnostic-Code: smtp; 550 5.1.1 <{address}>: Recipient address rejected: User unknown",
        "", f"--{boundary}", "Content-Type: message/rfc822", "", original.rstrip("\n"),
        "", f"--{boundary}--", "",
    ]).replace("\n", "\r\n").encode("utf-8")


# -- reading back ----------------------------------------------------------------------------------

def inbound_rows() -> list[InboundMessage]:
    with session_scope() as session:
        return list(session.exec(select(InboundMessage).order_by(InboundMessage.id)))


def submissions(code: str) -> list[Submission]:
    with session_scope() as session:
        return list(session.exec(select(Submission).join(Recipient, Recipient.id == Submission.recipient_id)
                                 .join(Unit, Unit.id == Recipient.unit_id).where(Unit.code == code)
                                 .order_by(Submission.version)))


def statuses() -> dict[str, str]:
    with session_scope() as session:
        return {u["code"]: u["status"] for u in campaign_status(session, CAMPAIGN_ID)["units"]}


def body(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


# -- the scenario ----------------------------------------------------------------------------------

def test_units_reply_every_way_and_each_reply_is_answered_once(issued, devmail, monkeypatch):
    units = Units(devmail, issued)
    schema = issued.form
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    sent: dict[str, list[EmailMessage]] = {}

    sent["T001"] = [units.send(units.reply("T001", figures(schema, 1)))]
    wrong = figures(schema, 2) | {"xuanjiang.sessions": "十几场", "phone": None}
    sent["T002"] = [units.send(units.reply("T002", wrong))]
    sent["T003"] = [units.send(units.reply("T003", figures(schema, 3)))]
    # From a private mailbox, as a new mail with no token in the subject: only the form names the unit.
    other_mailbox = "wangli1985@mail.example.test"
    sent["T004"] = [units.send(units.mail(other_mailbox, "统计表", form=units.filled_form("T004", figures(schema, 4))))]
    # A colleague mailed the filled form to the unit's contact, who forwards that mail as an attachment.
    inner = units.mail("colleague@units.example.test", "回执表填好了", form=units.filled_form("T005", figures(schema, 5)))
    forward = units.mail(units.email("T005"), "转发：回执表填好了", "请查收我单位的回执表。")
    forward.add_attachment(inner)
    sent["T005"] = [units.send(forward)]
    auto = units.mail(units.email("T007"), "自动回复：" + units.notice("T007")["Subject"], "我正在休假，10月12日返回。",
                      answering=units.notice("T007"))
    auto["Auto-Submitted"] = "auto-replied"
    units.send(auto)
    with smtplib.SMTP("127.0.0.1", devmail.smtp_port) as smtp:
        smtp.sendmail("", [OFFICE], bounce_for(units, "T008"))
    stranger = units.send(units.mail("someone@elsewhere.example.test", "咨询", "请问这个表怎么填？"))
    # The same mail lands twice (two deliveries of one message), byte for byte.
    devmail.deliver(OFFICE, devmail.mailbox_messages(OFFICE)[0])
    monkeypatch.setenv("NOTICEFLOW_NOW", AFTER_DEADLINE)
    sent["T006"] = [units.send(units.reply("T006", figures(schema, 6)))]
    delivered = len(devmail.mailbox_messages(OFFICE))

    summary = run_flow(collect_replies, CAMPAIGN_ID)   # collected after the deadline
    assert f"新邮件 {delivered} 封" in summary

    rows = inbound_rows()
    assert len(rows) == delivered == 10
    assert dict(Counter(r.classification for r in rows)) == {"reply": 7, "auto_reply": 1, "bounce": 1, "duplicate": 1}
    assert {r.state for r in rows} == {"moved"}
    assert devmail.mailbox_messages(OFFICE) == []
    assert len(devmail.mailbox_messages(OFFICE, "Processed")) == delivered
    # The raw files are the server's bytes.
    processed = {hashlib.sha256(raw).hexdigest() for raw in devmail.mailbox_messages(OFFICE, "Processed")}
    for row in rows:
        data = (get_settings().output_dir / row.raw_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256 and row.sha256 in processed
        assert row.raw_path.startswith(f"{CAMPAIGN_ID}/mail/")

    state = statuses()
    # T002's form was rejected: not a report yet, so it keeps waiting (and is chased for a correction).
    assert state == {"T001": "replied", "T002": "notified", "T003": "replied", "T004": "replied", "T005": "replied",
                     "T006": "late", "T007": "notified", "T008": "bounced", "T009": "notified"}
    assert [s.valid for s in submissions("T002")] == [False]
    assert {e["cell"] for e in submissions("T002")[0].errors} >= {"B6"}
    assert [s.late for s in submissions("T006")] == [True] and [s.late for s in submissions("T001")] == [False]
    assert submissions("T004")[0].values["articles"] == figures(schema, 4)["articles"]
    assert submissions("T005")[0].values["articles"] == figures(schema, 5)["articles"]

    # One answer per reply, to the mailbox it came from; the unit's own mailbox copied.
    def only_answer(message, address):
        answers = units.answers_to(message, address)
        assert len(answers) == 1, (message["Subject"], address, len(answers))
        return answers[0]

    ack = only_answer(sent["T001"][0], units.email("T001"))
    assert ack["Subject"].startswith("回执：") and units.token("T001") in ack["Subject"]
    assert str(figures(schema, 1)["articles"]) in body(ack) and "回执表（已填写）.xlsx" in body(ack)
    assert ack["Auto-Submitted"] == "auto-replied"
    correction = only_answer(sent["T002"][0], units.email("T002"))
    assert correction["Subject"].startswith("请更正") and "B6" in body(correction) and "十几场" in body(correction)
    only_answer(sent["T003"][0], units.email("T003"))
    ack4 = only_answer(sent["T004"][0], other_mailbox)
    assert units.email("T004") in ack4["Cc"] and units.answers_to(sent["T004"][0], units.email("T004"))
    only_answer(sent["T005"][0], units.email("T005"))
    late_ack = only_answer(sent["T006"][0], units.email("T006"))
    assert "逾期" in body(late_ack)
    # Nobody answers auto-replies, bounces or strangers.
    for code in ("T007", "T008", "T009"):
        assert len(devmail.mailbox_messages(units.email(code))) == 1   # the notice only
    assert devmail.mailbox_messages("someone@elsewhere.example.test") == []
    assert devmail.mailbox_messages("mailer-daemon@mx.units.example.test") == []

    by_subject = {r.subject: r for r in rows}
    bounce = next(r for r in rows if r.classification == "bounce")
    with session_scope() as session:
        assert session.exec(select(Attachment).where(Attachment.inbound_id == bounce.id)).all() == []
    assert not (get_settings().output_dir / CAMPAIGN_ID / "attachments" / "T008").exists()
    review = by_subject["咨询"]
    assert review.detail["needs_review"] and review.recipient_id is None and stranger["Message-ID"] == review.message_id
    stored = Path(get_settings().output_dir / CAMPAIGN_ID / "attachments" / "T001")
    assert len(list(stored.glob("*.xlsx"))) == 1

    # Round two: T002 corrects its form by answering the correction request; T003 sends a new version.
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-11T10:00:00")
    sent["T002"].append(units.send(units.reply("T002", figures(schema, 22), to=correction)))
    sent["T003"].append(units.send(units.reply("T003", figures(schema, 33))))
    run_flow(collect_replies, CAMPAIGN_ID)
    assert [(s.version, s.valid) for s in submissions("T002")] == [(1, False), (2, True)]
    assert [s.values["articles"] for s in submissions("T003")] == [figures(schema, n)["articles"] for n in (3, 33)]
    assert statuses()["T002"] == "replied" and statuses()["T003"] == "replied"   # on time, though late now
    assert [s.late for s in submissions("T003")] == [False, True]
    for code in ("T002", "T003"):
        only_answer(sent[code][1], units.email(code))
        only_answer(sent[code][0], units.email(code))

    # A third run finds nothing and changes nothing.
    before = (len(inbound_rows()), {c: len(devmail.mailbox_messages(units.email(c))) for c in statuses()})
    assert "新邮件 0 封" in run_flow(collect_replies, CAMPAIGN_ID)
    assert (len(inbound_rows()), {c: len(devmail.mailbox_messages(units.email(c))) for c in statuses()}) == before


def test_the_same_mail_under_a_new_uidvalidity_is_recorded_once(issued, devmail, monkeypatch):
    """A UIDVALIDITY reset makes every UID new: the copy is recognised and nothing is doubled."""
    units = Units(devmail, issued)
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    reply = units.send(units.reply("T001", figures(issued.form, 1)))
    scope = ingest.Scope.for_run(CAMPAIGN_ID)
    with open_inbox() as inbox:
        (first,) = ingest.fetch_new_messages(inbox, scope)
    with session_scope() as session:   # as if recorded before the server renumbered the folder
        row = session.get(InboundMessage, first)
        row.uidvalidity -= 1
        session.add(row)

    run_flow(collect_replies, CAMPAIGN_ID)
    rows = inbound_rows()
    assert [(r.classification, r.state) for r in rows] == [("reply", "uid_expired"), ("duplicate", "moved")]
    assert len(submissions("T001")) == 1
    assert len(units.answers_to(reply, units.email("T001"))) == 1
    assert devmail.mailbox_messages(OFFICE) == [] and len(devmail.mailbox_messages(OFFICE, "Processed")) == 1


def test_one_mail_delivered_twice_with_different_trace_headers_counts_once(issued, devmail, monkeypatch):
    units = Units(devmail, issued)
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    reply = units.reply("T001", figures(issued.form, 1)).as_bytes(policy=email.policy.SMTP)
    # As two office aliases would receive it: each copy with its own delivery trace on top.
    devmail.deliver(OFFICE, b"Return-Path: <t001@units.example.test>\r\nDelivered-To: office@alias.example\r\n"
                    b"Received: from mx.units.example.test\r\n"
                    b"\tby mx.office.example; Mon, 9 Oct 2023 15:30:00 +0800\r\n"
                    + reply)
    devmail.deliver(OFFICE, b"Delivered-To: lzxqwmb@wenmingban.example\r\n" + reply)
    run_flow(collect_replies, CAMPAIGN_ID)
    assert [r.classification for r in inbound_rows()] == ["reply", "duplicate"]
    assert len(submissions("T001")) == 1
    assert len(units.answers_to(parse(reply), units.email("T001"))) == 1


def test_answers_wait_in_the_outbox_while_smtp_is_down(issued, devmail, monkeypatch):
    units = Units(devmail, issued)
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    reply = units.send(units.reply("T001", figures(issued.form, 1)))
    monkeypatch.setattr(ingest, "ANSWER_RETRY", RetryPolicy(delays=()))
    with monkeypatch.context() as down:
        down.setenv("NOTICEFLOW_SMTP_PORT", "1")   # nothing listens there
        reload_settings()
        summary = run_flow(collect_replies, CAMPAIGN_ID)
    reload_settings()
    assert "暂未发出" in summary
    assert statuses()["T001"] == "replied" and devmail.mailbox_messages(OFFICE) == []
    assert units.answers_to(reply, units.email("T001")) == []
    run_flow(collect_replies, CAMPAIGN_ID)
    run_flow(collect_replies, CAMPAIGN_ID)
    assert len(units.answers_to(reply, units.email("T001"))) == 1
    with session_scope() as session:
        rows = session.exec(select(OutboundMessage).where(OutboundMessage.kind == "ack")).all()
        assert [r.state for r in rows] == [OutboundState.sent]


def test_a_reply_without_the_form_asks_for_it_and_a_question_goes_to_staff(issued, devmail, monkeypatch):
    units = Units(devmail, issued)
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    question = units.send(units.mail(units.email("T001"), "回复：" + units.notice("T001")["Subject"],
                                     "请问没有开展的活动填什么？", answering=units.notice("T001")))
    run_flow(collect_replies, CAMPAIGN_ID)
    (answer,) = units.answers_to(question, units.email("T001"))
    assert answer["Subject"].startswith("请更正") and "没有找到回执表" in body(answer)
    (row,) = inbound_rows()
    assert row.detail["needs_review"] and row.match_key == "subject_token"
    assert statuses()["T001"] == "notified" and submissions("T001") == []


def test_an_old_excel_file_is_answered_with_what_to_do(issued, devmail, monkeypatch):
    units = Units(devmail, issued)
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    legacy = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096)   # an OLE file, as .xls and encrypted files are
    reply = units.mail(units.email("T001"), "回复：" + units.notice("T001")["Subject"], answering=units.notice("T001"))
    reply.add_attachment(legacy, maintype="application", subtype="vnd.ms-excel", filename="回执表.xls")
    reply.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(64), maintype="image", subtype="png", filename="活动照片.png")
    units.send(reply)
    run_flow(collect_replies, CAMPAIGN_ID)
    (answer,) = units.answers_to(reply, units.email("T001"))
    text = body(answer)
    assert answer["Subject"].startswith("请更正") and "没有可读取的回执表" in answer["Subject"]
    assert "附件“回执表.xls”" in text and ".xlsx" in text and "活动照片.png" in text
    assert submissions("T001") == [] and statuses()["T001"] == "notified"


def test_a_message_that_keeps_failing_goes_to_staff_and_stays_in_the_inbox(issued, devmail, monkeypatch):
    units = Units(devmail, issued)
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    broken = units.send(units.reply("T001", figures(issued.form, 1)))
    units.send(units.reply("T002", figures(issued.form, 2)))
    with open_inbox() as inbox:
        first, _ = ingest.fetch_new_messages(inbox, ingest.Scope.for_run(CAMPAIGN_ID))
    with session_scope() as session:   # the stored copy is gone (a disk error, an operator's mistake)
        (get_settings().output_dir / session.get(InboundMessage, first).raw_path).unlink()

    for attempt in range(ingest.MAX_ATTEMPTS):
        summary = run_flow(collect_replies, CAMPAIGN_ID)
    assert "处理出错 1" in summary and "需要人工处理" in summary
    failed, done = inbound_rows()
    assert (failed.state, failed.classification, failed.detail["attempts"]) == ("failed", "error", ingest.MAX_ATTEMPTS)
    assert failed.detail["needs_review"] and failed.raw_path in failed.detail["review_reason"]
    assert done.state == "moved" and statuses()["T002"] == "replied"
    assert [parse(raw)["Message-ID"] for raw in devmail.mailbox_messages(OFFICE)] == [broken["Message-ID"]]
    assert units.answers_to(broken, units.email("T001")) == []
    run_flow(collect_replies, CAMPAIGN_ID)   # not retried any more
    assert inbound_rows()[0].detail["attempts"] == ingest.MAX_ATTEMPTS


@pytest.mark.filterwarnings("ignore")
def test_the_prefect_flow_publishes_counts_and_review_items(issued, devmail, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    units = Units(devmail, issued)
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    units.send(units.reply("T001", figures(issued.form, 1)))
    units.send(units.mail("someone@elsewhere.example.test", "咨询", "请问这个表怎么填？"))
    with prefect_test_harness(server_startup_timeout=120):
        summary = collect_replies(CAMPAIGN_ID)   # a real flow run, its tasks real task runs
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts()}
    assert "新邮件 2 封" in summary
    report = artifacts[f"collect-{CAMPAIGN_ID}"].data
    assert "| 单位回复 | 2 |" in report and "| 需要人工处理 | 1 |" in report and "someone@elsewhere" in report
    review = artifacts[f"collect-review-{CAMPAIGN_ID}"].data
    assert "someone@elsewhere.example.test" in str(review)
