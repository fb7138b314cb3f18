"""mail.outbound and mail.outbox against real SMTP servers on loopback (aiosmtpd)."""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import logging
import smtplib
import ssl
import threading
from email.header import decode_header, make_header
from pathlib import Path

import imap_tools
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlmodel import select

from mail import outbox
from mail.outbound import (
    Attachment,
    OutgoingEmail,
    SmtpBatch,
    SmtpFailure,
    attachment_filename,
    classify_smtp_error,
)
from models.db import session_scope
from models.settings import Settings
from models.tables import Campaign, Event, OutboundMessage, OutboundState
from smtp_sink import SinkHandler, SmtpSink, free_port

PASSWORD = "s3cret-Pa55word-never-logged"
NOTICE_NAME = "新文明办发〔2023〕9号 关于组织开展“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动的通知.docx"
FORM_NAME = "回执表-兰州新区建设投资（控股）集团有限公司.xlsx"
SUBJECT = "关于组织开展“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动的通知【XQ9-GQ02-ABC234】"
OFFICE = "lzxqwmb@wenmingban.example"


def smtp_settings(port: int, security: str = "none", password: str = PASSWORD, **extra) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_user=OFFICE, smtp_password=password,
                    smtp_security=security, smtp_timeout=10, **extra)


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    notice = tmp_path / "notice.docx"
    notice.write_bytes(b"PK\x03\x04 notice " + bytes(range(256)) * 40)
    form = tmp_path / "form.xlsx"
    form.write_bytes(b"PK\x03\x04 form " + bytes(range(256)) * 10)
    return notice, form


def message(files, number: int = 1, to: str = "gq02@units.xinqu.example", **changes) -> OutgoingEmail:
    notice, form = files
    fields = dict(to=(to,), subject=SUBJECT, text="兰州新区建设投资（控股）集团有限公司：\n\n第一段。\n第二段。\n",
                  html="<p>兰州新区建设投资（控股）集团有限公司：</p><p>第一段。</p>",
                  message_id=f"<notice.XQ9.U{number:03d}.issue@wenmingban.example>",
                  attachments=(Attachment(notice, NOTICE_NAME), Attachment(form, FORM_NAME)))
    fields.update(changes)
    return OutgoingEmail(**fields)


def attachments_of(raw: bytes) -> list[tuple[str, str, bytes]]:
    """(filename from Content-Disposition, name from Content-Type, content) of each attachment."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    result = []
    for part in parsed.iter_attachments():
        ct_name = str(make_header(decode_header(part.get_param("name", header="content-type"))))
        result.append((part.get_filename(), ct_name, part.get_content()))
    return result


# -- composing ------------------------------------------------------------------------------------

def test_message_is_built_for_chinese_clients(files):
    batch = SmtpBatch(smtp_settings(free_port()), sender_name="新区文明办")
    recipients, raw = batch.compose(message(files, reply_to="reply@wenmingban.example"))
    assert recipients == ["gq02@units.xinqu.example"]
    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78

    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == SUBJECT
    assert parsed.get_all("Message-ID") == ["<notice.XQ9.U001.issue@wenmingban.example>"]
    assert parsed["From"].addresses[0].display_name == "新区文明办"
    assert parsed["From"].addresses[0].addr_spec == OFFICE
    assert parsed["Reply-To"] == "reply@wenmingban.example"
    assert parsed["Date"].datetime.utcoffset() == dt.timedelta(hours=8)  # the program's clock, Beijing time

    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain.get_content() == "兰州新区建设投资（控股）集团有限公司：\n\n第一段。\n第二段。\n"  # no <br> in the text part
    assert "<p>第一段。</p>" in html.get_content()

    notice, form = files
    assert attachments_of(raw) == [(NOTICE_NAME, NOTICE_NAME, notice.read_bytes()),
                                            (FORM_NAME, FORM_NAME, form.read_bytes())]
    # What a mail client library makes of it.
    client_view = imap_tools.MailMessage.from_bytes(raw)
    assert [a.filename for a in client_view.attachments] == [NOTICE_NAME, FORM_NAME]
    assert client_view.subject == SUBJECT


def test_a_long_sender_name_survives(files):
    name = "兰州新区精神文明建设指导委员会办公室"
    _, raw = SmtpBatch(smtp_settings(free_port()), sender_name=name).compose(message(files))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["From"].addresses[0].display_name == name
    assert imap_tools.MailMessage.from_bytes(raw).from_values.name == name


def test_attachment_names_carry_rfc2047_and_rfc2231(files):
    _, raw = SmtpBatch(smtp_settings(free_port())).compose(message(files))
    parsed = email.message_from_bytes(raw)
    form_part = [p for p in parsed.walk() if p.get_content_subtype().endswith("sheet")][0]
    assert form_part.get_param("name").startswith("=?utf-8?b?")          # RFC 2047 on Content-Type
    assert "filename*0*=utf-8''" in form_part["Content-Disposition"]      # RFC 2231 on Content-Disposition
    assert form_part.get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_plain_only_message_has_no_empty_html(files):
    _, raw = SmtpBatch(smtp_settings(free_port())).compose(message(files, html=None, attachments=()))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert [p.get_content_type() for p in parsed.walk()] == ["multipart/mixed", "text/plain"]


@pytest.mark.parametrize("stem, expected", [
    ("回执表-中川园区管委会", "回执表-中川园区管委会.xlsx"),
    ('回执表-A/B:C*D?"E"<F>|G', "回执表-A_B_C_D__E__F__G.xlsx"),
    ("  回执表\x00-x  ", "回执表_-x.xlsx"),
    ("长" * 200, "长" * 79 + "….xlsx"),
])
def test_attachment_filename_is_safe_to_save(stem, expected):
    assert attachment_filename(stem, ".xlsx") == expected


# -- sending --------------------------------------------------------------------------------------

def test_one_connection_and_one_login_for_a_batch(files):
    with SmtpSink(auth=True) as sink, SmtpBatch(smtp_settings(sink.port)) as batch:
        for number in range(1, 6):
            assert batch.send(message(files, number, to=f"u{number}@units.example.test")) == {}
        assert batch.connections_opened == 1
    handler = sink.handler
    assert handler.connections == 1
    assert handler.logins == [(OFFICE, PASSWORD)]
    assert sorted(handler.count_by_recipient()) == [f"u{n}@units.example.test" for n in range(1, 6)]
    assert all(item.mail_from == OFFICE for item in handler.received)


def test_no_login_when_the_server_offers_no_auth(files):
    with SmtpSink(auth=False) as sink, SmtpBatch(smtp_settings(sink.port)) as batch:
        batch.send(message(files))
    assert sink.handler.count_by_recipient() == {"gq02@units.xinqu.example": 1}
    assert sink.handler.logins == []


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=36500))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_modes_verify_the_server_and_deliver(files, tls_pair, security):
    server_ctx, client_ctx = tls_pair
    with SmtpSink(auth=True, server_tls=server_ctx, implicit_tls=security == "ssl") as sink:
        with SmtpBatch(smtp_settings(sink.port, security), ssl_context=client_ctx) as batch:
            batch.send(message(files))
        # Without trusting the certificate the connection is refused, not silently unverified.
        with SmtpBatch(smtp_settings(sink.port, security)) as batch:
            with pytest.raises(SmtpFailure) as refused:
                batch.send(message(files, 2))
    assert refused.value.kind == "fatal"
    assert [item.tls for item in sink.handler.received] == [True]
    assert sink.handler.logins == [(OFFICE, PASSWORD)]


def test_refusals_are_classified_with_the_servers_words(files):
    handler = SinkHandler(refuse_once={"grey@units.example.test": "451 4.7.1 Greylisted, try again later"},
                          refuse_always={"gone@units.example.test": "550 5.1.1 User unknown: gone"})
    with SmtpSink(handler) as sink, SmtpBatch(smtp_settings(sink.port)) as batch:
        with pytest.raises(SmtpFailure) as transient:
            batch.send(message(files, 1, to="grey@units.example.test"))
        with pytest.raises(SmtpFailure) as permanent:
            batch.send(message(files, 2, to="gone@units.example.test"))
        batch.send(message(files, 3, to="grey@units.example.test"))  # the same connection goes on
        assert batch.connections_opened == 1
    assert (transient.value.kind, transient.value.code) == ("transient", 451)
    assert (permanent.value.kind, permanent.value.code) == ("permanent", 550)
    assert "User unknown: gone" in permanent.value.server_text
    assert sink.handler.count_by_recipient() == {"grey@units.example.test": 1}


def test_a_dropped_connection_is_transient_and_the_next_send_reconnects(files):
    handler = SinkHandler(drop_at_data={2})
    with SmtpSink(handler) as sink, SmtpBatch(smtp_settings(sink.port)) as batch:
        batch.send(message(files, 1, to="a@units.example.test"))
        with pytest.raises(SmtpFailure) as dropped:
            batch.send(message(files, 2, to="b@units.example.test"))
        batch.send(message(files, 3, to="b@units.example.test"))
        assert batch.connections_opened == 2
    assert dropped.value.transient and dropped.value.connection_lost
    assert sink.handler.count_by_recipient() == {"a@units.example.test": 1, "b@units.example.test": 1}


def test_unreachable_server_is_transient_at_connect(files):
    with SmtpBatch(smtp_settings(free_port())) as batch:
        with pytest.raises(SmtpFailure) as failure:
            batch.send(message(files))
    assert (failure.value.kind, failure.value.stage) == ("transient", "connect")


@pytest.mark.parametrize("error, kind", [
    (smtplib.SMTPSenderRefused(553, b"5.7.1 Sender not allowed", OFFICE), "fatal"),
    (smtplib.SMTPSenderRefused(451, b"4.3.0 Try later", OFFICE), "transient"),
    (smtplib.SMTPDataError(554, b"DT:SPM 163 mx14, spam"), "permanent"),
    (smtplib.SMTPDataError(421, b"4.4.2 Timeout"), "transient"),
    (smtplib.SMTPRecipientsRefused({"a@x.test": (450, b"busy"), "b@x.test": (550, b"no")}), "permanent"),
    (smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication failed"), "fatal"),
    (ConnectionResetError(104, "Connection reset by peer"), "transient"),
    (TimeoutError("timed out"), "transient"),
])
def test_classification_table(error, kind):
    assert classify_smtp_error(error).kind == kind


def test_a_stopping_failure_tells_staff_what_to_check():
    login = classify_smtp_error(smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication failed"), stage="login")
    sender = classify_smtp_error(smtplib.SMTPSenderRefused(553, b"5.7.1 Sender not allowed", "x@y.test"))
    assert "NOTICEFLOW_SMTP_PASSWORD（授权码）" in login.what_to_check()
    assert "NOTICEFLOW_SMTP_* 设置" in sender.what_to_check()


def test_password_never_reaches_a_log(files, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with SmtpSink(auth=True) as sink, SmtpBatch(smtp_settings(sink.port)) as batch:
        batch.send(message(files))
    # A refused login: the failure and its text carry the server's words only.
    from aiosmtpd.smtp import AuthResult

    sink_handler = SinkHandler()
    sink_handler.authenticate = lambda *args: AuthResult(success=False, handled=False)
    with SmtpSink(sink_handler, auth=True) as refusing, SmtpBatch(smtp_settings(refusing.port)) as batch:
        with pytest.raises(SmtpFailure) as failure:
            batch.send(message(files))
    assert (failure.value.kind, failure.value.stage) == ("fatal", "login")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    out, err = capfd.readouterr()
    assert sink.handler.logins  # the password was used...
    for text in (logged, out, err, str(failure.value), repr(failure.value.__dict__)):
        assert PASSWORD not in text  # ...and appears nowhere


# -- the outbox -----------------------------------------------------------------------------------

def test_message_ids_are_deterministic_and_name_the_message():
    make = outbox.make_message_id
    assert make("notice", "XQ9", "YQ01", "issue", "Wenmingban.example") == "<notice.XQ9.YQ01.issue@wenmingban.example>"
    assert make("reminder", "XQ9", "YQ01", "urge", "wenmingban.example") != make("reminder", "XQ9", "YQ01", "gentle", "wenmingban.example")
    assert make("ack", "XQ9", "YQ01", "v 2@x", "d.example") == "<ack.XQ9.YQ01.v-2-x@d.example>"
    assert outbox.dedupe_key("xinqu-2023-9", "YQ01", "notice", "issue") == "xinqu-2023-9:YQ01:notice:issue"


@pytest.fixture
def campaign(nf_env) -> str:
    with session_scope() as session:
        session.add(Campaign(id="c1", title="t", token_prefix="C1", doc_number="d", source_dir=".",
                             office_email=OFFICE, deadline=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)))
    return "c1"


def item(code: str, to: str = "", campaign_id: str = "c1") -> outbox.OutboxItem:
    return outbox.OutboxItem(campaign_id=campaign_id, recipient_id=None, unit_code=code, kind="notice",
                             step="issue", to=(to or f"{code.lower()}@units.example.test",), subject="s",
                             message_id=outbox.make_message_id("notice", "C1", code, "issue", "wenmingban.example"))


def test_enqueue_inserts_once(campaign):
    for _ in range(2):
        with session_scope() as session:
            rows = outbox.enqueue(session, [item("A"), item("B")])
    with session_scope() as session:
        stored = session.exec(select(OutboundMessage)).all()
    assert sorted(r.dedupe_key for r in stored) == ["c1:A:notice:issue", "c1:B:notice:issue"]
    assert {r.id for r in stored} == {r.id for r in rows.values()}


def test_claim_is_won_once(campaign):
    with session_scope() as session:
        row_id = outbox.enqueue(session, [item("A")])["c1:A:notice:issue"].id
    with session_scope() as session:
        assert outbox.claim(session, row_id)
    with session_scope() as session:
        assert not outbox.claim(session, row_id)
        row = session.get(OutboundMessage, row_id)
        assert (row.state, row.attempts) == (OutboundState.sending, 1)


def test_a_row_left_sending_is_resent_with_the_same_message_id_and_an_event(campaign, files):
    with session_scope() as session:
        row = outbox.enqueue(session, [item("A")])["c1:A:notice:issue"]
    with session_scope() as session:
        outbox.claim(session, row.id)  # ...and then the process died
    with SmtpSink() as sink:
        report = outbox.deliver("c1", [row.id], lambda r: message(files, to=r.to_addrs[0], message_id=r.message_id),
                                connection=lambda: SmtpBatch(smtp_settings(sink.port)))
    assert report.resent_after_interruption == [row.id] and report.sent == [row.id]
    assert [m.message_id for m in sink.handler.received] == [row.message_id]
    with session_scope() as session:
        events = session.exec(select(Event).where(Event.kind == outbox.EVENT_RESEND)).all()
        assert session.get(OutboundMessage, row.id).state == OutboundState.sent
    assert [e.detail["message_id"] for e in events] == [row.message_id]


def test_deliver_retries_transient_and_bounces_permanent(campaign, files):
    handler = SinkHandler(refuse_once={"b@units.example.test": "451 4.7.1 Try again later"},
                          refuse_always={"c@units.example.test": "550 5.1.1 No such user"})
    with session_scope() as session:
        rows = outbox.enqueue(session, [item("A", "a@units.example.test"), item("B", "b@units.example.test"),
                                        item("C", "c@units.example.test")])
    ids = [rows[f"c1:{c}:notice:issue"].id for c in "ABC"]
    refused, waits = [], []
    with SmtpSink(handler) as sink:
        report = outbox.deliver("c1", ids, lambda r: message(files, to=r.to_addrs[0], message_id=r.message_id),
                                on_refused=lambda s, r, f: refused.append((r.id, f.code)),
                                retry=outbox.RetryPolicy((0.5, 2.0)), sleep=waits.append,
                                connection=lambda: SmtpBatch(smtp_settings(sink.port)))
    assert sorted(report.sent) == [ids[0], ids[1]] and report.bounced[0][0] == ids[2]
    assert refused == [(ids[2], 550)] and waits == [0.5]
    assert sink.handler.count_by_recipient() == {"a@units.example.test": 1, "b@units.example.test": 1}
    with session_scope() as session:
        states = {r.dedupe_key: (r.state, r.attempts, r.last_error) for r in session.exec(select(OutboundMessage))}
    assert states["c1:B:notice:issue"][:2] == (OutboundState.sent, 2)
    assert states["c1:C:notice:issue"][0] == OutboundState.failed
    assert "550 5.1.1 No such user" in states["c1:C:notice:issue"][2]


@pytest.mark.parametrize("prefetch, composed_in_sending_thread", [(0, True), (outbox.PREFETCH_DEPTH, False)])
def test_callbacks_commit_with_the_result_and_compose_runs_where_asked(campaign, files, prefetch,
                                                                       composed_in_sending_thread):
    with session_scope() as session:
        rows = outbox.enqueue(session, [item(code) for code in "ABCD"])
    ids = [rows[f"c1:{c}:notice:issue"].id for c in "ABCD"]
    threads, per_row, groups = set(), [], []

    def compose(row):
        threads.add(threading.current_thread() is threading.main_thread())
        return message(files, to=row.to_addrs[0], message_id=row.message_id)

    def on_sent(session, row):
        # In the transaction that records the result: the row reads as sent already.
        state = session.exec(select(OutboundMessage.state).where(OutboundMessage.id == row.id)).one()
        per_row.append((row.id, state))

    with SmtpSink() as sink:
        report = outbox.deliver("c1", ids, compose, on_sent=on_sent,
                                on_sent_group=lambda session, group: groups.append([r.id for r in group]),
                                prefetch=prefetch, connection=lambda: SmtpBatch(smtp_settings(sink.port)))
    assert report.sent == ids
    assert per_row == [(i, OutboundState.sent) for i in ids]
    assert sum(groups, []) == ids
    assert threads == {composed_in_sending_thread}


def test_transient_failures_that_outlast_the_retries_stay_pending(campaign, files):
    with session_scope() as session:
        row = outbox.enqueue(session, [item("A")])["c1:A:notice:issue"]
    report = outbox.deliver("c1", [row.id], lambda r: message(files, message_id=r.message_id),
                            retry=outbox.RetryPolicy((1.0, 1.0)), sleep=lambda s: None,
                            connection=lambda: SmtpBatch(smtp_settings(free_port())))  # nobody listens
    assert report.sent == [] and [d[0] for d in report.deferred] == [row.id]
    with session_scope() as session:
        stored = session.get(OutboundMessage, row.id)
    assert stored.state == OutboundState.pending and "Connection" in stored.last_error and stored.attempts == 0


def test_a_fatal_failure_stops_the_batch_and_keeps_the_row_pending(campaign, files):
    class RefuseSender(SinkHandler):
        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            return "553 5.7.1 Sender address rejected: not owned by user"

    with session_scope() as session:
        rows = outbox.enqueue(session, [item("A"), item("B")])
    ids = [rows["c1:A:notice:issue"].id, rows["c1:B:notice:issue"].id]
    with SmtpSink(RefuseSender()) as sink, pytest.raises(SmtpFailure) as stopped:
        outbox.deliver("c1", ids, lambda r: message(files, to=r.to_addrs[0], message_id=r.message_id),
                       connection=lambda: SmtpBatch(smtp_settings(sink.port)))
    assert stopped.value.kind == "fatal" and stopped.value.code == 553
    with session_scope() as session:
        assert [session.get(OutboundMessage, i).state for i in ids] == [OutboundState.pending] * 2


def test_a_failed_row_is_requeued_when_the_address_changes(campaign):
    with session_scope() as session:
        row = outbox.enqueue(session, [item("A", "old@units.example.test")])["c1:A:notice:issue"]
        outbox.mark_failed(session, row.id, "550 no such user")
    with session_scope() as session:
        outbox.enqueue(session, [item("A", "old@units.example.test")])
        assert session.get(OutboundMessage, row.id).state == OutboundState.failed  # same address: stays
    with session_scope() as session:
        outbox.enqueue(session, [item("A", "new@units.example.test")])
    with session_scope() as session:
        stored = session.get(OutboundMessage, row.id)
        events = session.exec(select(Event).where(Event.kind == outbox.EVENT_READDRESSED)).all()
    assert (stored.state, stored.to_addrs, stored.message_id) == (OutboundState.pending, ["new@units.example.test"],
                                                                  row.message_id)
    assert events[0].detail["previous_error"] == "550 no such user"


def test_sending_lock_excludes_other_holders_and_is_reentrant(campaign):
    outcome = {}

    def other_thread():
        try:
            with outbox.sending_lock("c1", wait_seconds=0.3):
                outcome["other"] = "acquired"
        except outbox.OutboxBusy as busy:
            outcome["other"] = str(busy)

    with outbox.sending_lock("c1"), outbox.sending_lock("c1"):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert "另一个进程" in outcome["other"]
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert outcome["other"] == "acquired"
