"""The embedded dev mail server, driven by the same clients the program uses (yagmail, imap-tools)."""
from __future__ import annotations

import email
import email.policy
import imaplib
import os
import re
import select
import signal
import socket
import smtplib
import subprocess
import sys
import time

import pytest
import yagmail
from imap_tools import MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError

from mail.devmail import DevMailServer
from models.settings import Settings, get_settings

UNIT = "zhongchuan@units.xinqu.example"
OTHER_UNIT = "lanzhou-xinqu-school@units.xinqu.example"
SENDER = "lzxqwmb@wenmingban.example"


def imap_login(server: DevMailServer, user: str, password: str) -> MailBoxUnencrypted:
    return MailBoxUnencrypted("127.0.0.1", server.imap_port, timeout=10).login(user, password)


def plain_message(to: str, subject: str, body: str = "正文") -> bytes:
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message.as_bytes()


def test_yagmail_round_trip_keeps_chinese_subject_and_attachment(devmail, tmp_path):
    settings = get_settings()
    subject = "关于报送2023年度志愿服务活动情况的通知（新文明办发〔2023〕9号）"
    attachment_name = "回执表（中川园区）.xlsx"
    attachment_bytes = os.urandom(4096)
    attachment = tmp_path / attachment_name
    attachment.write_bytes(attachment_bytes)

    sender = yagmail.SMTP(
        user=settings.smtp_user,
        password=settings.smtp_password.get_secret_value(),
        host=settings.smtp_host,
        port=settings.smtp_port,
        smtp_ssl=False,
        smtp_starttls=False,
    )
    try:
        result = sender.send(to=UNIT, subject=subject,
                             contents=yagmail.raw("请填写附件中的回执表后回复本邮件。"),
                             attachments=[str(attachment)])
    finally:
        sender.close()
    assert result == {}

    with imap_login(devmail, UNIT, settings.devmail_password.get_secret_value()) as mailbox:
        messages = list(mailbox.fetch(mark_seen=False))
    assert len(messages) == 1
    received = messages[0]
    assert received.subject == subject
    assert [a.filename for a in received.attachments] == [attachment_name]
    assert received.attachments[0].payload == attachment_bytes


def test_office_mailbox_receives_mail_sent_to_it(devmail):
    settings = get_settings()
    subject = "中川园区回执"
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as client:
        client.sendmail(UNIT, [settings.imap_user], plain_message(settings.imap_user, subject))

    with imap_login(devmail, settings.imap_user,
                    settings.imap_password.get_secret_value()) as mailbox:
        subjects = [message.subject for message in mailbox.fetch(mark_seen=False)]
    assert subjects == [subject]
    assert devmail.mailbox_messages(UNIT) == []


@pytest.mark.parametrize("which", ["unit with a wrong password", "office with the unit password",
                                   "unit with the office password", "not an address"])
def test_wrong_password_is_refused(devmail, which):
    user, password = {
        "unit with a wrong password": (UNIT, "wrong"),
        "office with the unit password": (devmail.office_user, devmail.other_password),
        "unit with the office password": (UNIT, devmail.office_password),
        "not an address": ("office", devmail.other_password),
    }[which]
    mailbox = MailBoxUnencrypted("127.0.0.1", devmail.imap_port, timeout=10)
    try:
        with pytest.raises(MailboxLoginError):
            mailbox.login(user, password)
    finally:
        mailbox.client.shutdown()


def test_logins_ignore_the_case_of_the_address(devmail):
    devmail.deliver(UNIT, plain_message(UNIT, "大小写"))
    with imap_login(devmail, UNIT.upper(), devmail.other_password) as mailbox:
        assert [message.subject for message in mailbox.fetch(mark_seen=False)] == ["大小写"]


def test_message_to_two_recipients_lands_in_both_mailboxes(devmail):
    raw = plain_message(f"{UNIT}, {OTHER_UNIT}", "两个收件人")
    with smtplib.SMTP("127.0.0.1", devmail.smtp_port, timeout=10) as client:
        client.login("anyone", "anything")
        refused = client.sendmail("", [UNIT.upper(), OTHER_UNIT], raw)
    assert refused == {}

    first = devmail.mailbox_messages(UNIT)
    second = devmail.mailbox_messages(OTHER_UNIT)
    assert len(first) == len(second) == 1
    # The delivering server prepends trace headers; the message itself arrives unchanged.
    assert first[0] == b"Return-Path: <>\r\nDelivered-To: " + UNIT.upper().encode() + b"\r\n" + raw
    assert second[0].endswith(raw) and b"Delivered-To: " + OTHER_UNIT.encode() in second[0]
    assert devmail.mailbox_messages(devmail.office_user) == []


def test_deliver_is_byte_exact_through_imap(devmail):
    # A GBK header the way old clients send it: 8-bit, unlabelled, with a GBK-only character.
    raw = ("Subject: 回执 堃\r\nFrom: unit@units.xinqu.example\r\n\r\n已填写。\r\n").encode("gb18030")
    devmail.deliver(devmail.office_user, raw)

    client = imaplib.IMAP4("127.0.0.1", devmail.imap_port, timeout=10)
    try:
        client.login(devmail.office_user, devmail.office_password)
        client.select("INBOX")
        status, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
    finally:
        client.logout()
    assert status == "OK"
    assert data[0][1] == raw
    assert devmail.mailbox_messages(devmail.office_user) == [raw]


def test_folders_flags_and_uid_move(devmail):
    devmail.deliver(devmail.office_user, plain_message(devmail.office_user, "第一封"))
    devmail.deliver(devmail.office_user, plain_message(devmail.office_user, "第二封"))

    client = imaplib.IMAP4("127.0.0.1", devmail.imap_port, timeout=10)
    try:
        client.login(devmail.office_user, devmail.office_password)
        assert client.xatom("ID", "NIL")[0] == "OK"
        assert client.create("Processed")[0] == "OK"
        client.select("INBOX")
        uids = client.uid("SEARCH", "ALL")[1][0].split()
        assert len(uids) == 2
        assert client.uid("STORE", uids[0], "+FLAGS", r"(\Seen)")[0] == "OK"
        assert client.uid("MOVE", uids[0], "Processed")[0] == "OK"
        assert client.uid("SEARCH", "ALL")[1][0].split() == [uids[1]]
        client.select("Processed")
        flags = client.uid("FETCH", "1:*", "(FLAGS)")[1][0]
    finally:
        client.logout()
    assert b"\\Seen" in flags
    assert [email.message_from_bytes(m, policy=email.policy.default)["Subject"]
            for m in devmail.mailbox_messages(devmail.office_user, "Processed")] == ["第一封"]
    assert len(devmail.mailbox_messages(devmail.office_user)) == 1
    with pytest.raises(KeyError):
        devmail.mailbox_messages(devmail.office_user, "NoSuchFolder")


def test_fixture_points_the_settings_at_the_server(devmail):
    settings = get_settings()
    assert (settings.smtp_port, settings.imap_port) == (devmail.smtp_port, devmail.imap_port)
    assert settings.smtp_security == settings.imap_security == "none"
    assert settings.imap_user == devmail.office_user
    assert settings.devmail_password.get_secret_value() == devmail.other_password
    assert settings.imap_password.get_secret_value() == devmail.office_password


def test_from_settings_uses_the_program_settings():
    settings = Settings(smtp_host="127.0.0.2", smtp_port=2525, imap_host="127.0.0.3",
                        imap_port=1143, imap_user="Office@Example.org", imap_password="p1",
                        devmail_password="p2")
    server = DevMailServer.from_settings(settings)
    assert (server.smtp_host, server.smtp_port, server.imap_host, server.imap_port) == (
        "127.0.0.2", 2525, "127.0.0.3", 1143)
    assert (server.office_user, server.office_password, server.other_password) == (
        "Office@Example.org", "p1", "p2")


def _read_until(stream, marker: str, seconds: float) -> str:
    text = ""
    deadline = time.monotonic() + seconds
    while marker not in text:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
            raise AssertionError(f"no {marker!r} within {seconds} s; output so far: {text!r}")
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"process ended before {marker!r}; output: {text!r}")
        text += chunk.decode("utf-8")
    return text


def test_serve_forever_prints_how_to_connect_and_stops_on_sigterm(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTICEFLOW_")}
    env.update({
        "NOTICEFLOW_SMTP_PORT": "0",
        "NOTICEFLOW_IMAP_PORT": "0",
        "NOTICEFLOW_IMAP_PASSWORD": "a-real-account-secret",
        "NOTICEFLOW_DEVMAIL_PASSWORD": "unit-pass",
        "PYTHONIOENCODING": "utf-8",
    })
    process = subprocess.Popen(
        [sys.executable, "-c", "from mail.devmail import serve_forever; serve_forever()"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        banner = _read_until(process.stdout, "Ctrl+C", 30)
        smtp_port = int(re.search(r"SMTP：127\.0\.0\.1:(\d+)", banner).group(1))
        imap_port = int(re.search(r"IMAP：127\.0\.0\.1:(\d+)", banner).group(1))
        assert "unit-pass" in banner
        assert "a-real-account-secret" not in banner

        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.sendmail(SENDER, [UNIT], plain_message(UNIT, "进程外"))
        with MailBoxUnencrypted("127.0.0.1", imap_port, timeout=10).login(UNIT, "unit-pass") as box:
            assert [message.subject for message in box.fetch(mark_seen=False)] == ["进程外"]

        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, banner + rest.decode("utf-8", "replace")
    assert "正在停止" in rest.decode("utf-8")


def test_a_busy_port_fails_the_start_and_leaves_nothing_running():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        server = DevMailServer(smtp_host="127.0.0.1", smtp_port=busy.getsockname()[1],
                               imap_host="127.0.0.1", imap_port=0, office_user="o@x.example",
                               office_password="a", other_password="b")
        with pytest.raises(OSError):
            server.start()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.imap_port), timeout=5).close()
    with pytest.raises(RuntimeError):
        server.mailbox_messages("o@x.example")
