"""The IMAP layer (mail.inbox) and the raw-message store (mail.rawstore), against the dev mail
server's real IMAP server on loopback."""
from __future__ import annotations

import imaplib
import os

import pytest
from imap_tools import MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError

from mail import inbox as inbox_module
from mail.inbox import PROCESSED_KEYWORD, open_inbox, parse_fetch_response
from mail.rawstore import raw_relative_path, write_atomically
from models.settings import get_settings, reload_settings

OFFICE = "lzxqwmb@wenmingban.example"

# 8-bit GBK in a header, CRLF line ends and a trailing space: bytes a re-serialising client would change.
ODD_RAW = ("Subject: =?gb2312?B?u9jWtLHt?=\r\nX-Raw: ".encode() + "王堃".encode("gbk")
           + b" \r\nMessage-ID: <odd@units.example>\r\nFrom: yq01@units.xinqu.example\r\n\r\nbody line \r\n")


def message(n: int, size: int = 0) -> bytes:
    return (f"Message-ID: <m{n}@units.example>\r\nFrom: u{n}@units.example\r\nSubject: reply {n}\r\n\r\n"
            .encode() + b"x" * size + b"\r\n")


def office_client(devmail) -> MailBoxUnencrypted:
    settings = get_settings()
    return MailBoxUnencrypted("127.0.0.1", devmail.imap_port, timeout=10).login(
        settings.imap_user, settings.imap_password.get_secret_value(), initial_folder=None)


def flags_of(devmail, folder: str = "INBOX") -> dict[int, set[str]]:
    with office_client(devmail) as client:
        client.folder.set(folder)
        typ, data = client.client.uid("FETCH", "1:*", "(UID FLAGS)")
        assert typ == "OK"
        result = {}
        for line in data:
            text = (line[0] if isinstance(line, tuple) else line or b"").decode()
            if "UID" in text:
                uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                result[uid] = set(text.split("FLAGS (")[1].split(")")[0].split())
        return result


def test_login_refreshes_capabilities_and_sends_id(devmail):
    with open_inbox() as inbox:
        # pymap advertises MOVE and UIDPLUS only after login: a stale list would lack them.
        assert {"MOVE", "UIDPLUS", "ID"} <= inbox.capabilities
        assert set(inbox.client.capabilities) == set(inbox.capabilities)
        assert "noticeflow-devmail" in inbox.send_id()
        assert inbox.uidvalidity > 0


def test_a_wrong_password_is_refused(devmail, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_IMAP_PASSWORD", "wrong")
    reload_settings()
    with pytest.raises(MailboxLoginError):
        with open_inbox():
            pass


def test_the_processed_folder_is_created_once(devmail, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_IMAP_PROCESSED_FOLDER", "已处理/回执")
    reload_settings()
    for _ in range(2):
        with open_inbox() as inbox:
            assert inbox.processed_folder == "已处理/回执"
            assert inbox.mailbox.folder.exists("已处理/回执")
    assert devmail.mailbox_messages(OFFICE, "已处理/回执") == []


def test_fetch_returns_the_exact_bytes_and_leaves_messages_unread(devmail):
    devmail.deliver(OFFICE, ODD_RAW)
    devmail.deliver(OFFICE, message(2))
    with open_inbox() as inbox:
        uids = inbox.uids_after(0)
        fetched = list(inbox.fetch_raw(uids))
    assert [m.uid for m in fetched] == uids and len(uids) == 2
    assert fetched[0].raw == ODD_RAW == devmail.mailbox_messages(OFFICE)[0]
    assert fetched[0].internal_date is not None and fetched[0].internal_date.tzinfo is not None
    assert all("\\Seen" not in flags for flags in flags_of(devmail).values())


def test_uids_after_the_highest_one_are_none(devmail):
    # `UID n:*` matches the highest UID even when n is above it; the watermark must not refetch it.
    for n in range(3):
        devmail.deliver(OFFICE, message(n))
    with open_inbox() as inbox:
        uids = inbox.uids_after(0)
        assert inbox.uids_after(uids[-1]) == []
        assert inbox.uids_after(uids[-1] + 100) == []
        assert inbox.uids_after(uids[0]) == uids[1:]


def test_fetching_a_backlog_is_batched_by_size(devmail, monkeypatch):
    monkeypatch.setattr(inbox_module, "FETCH_BATCH_BYTES", 3000)
    sizes = [100, 2500, 2500, 10, 5000, 10]
    for n, size in enumerate(sizes):
        devmail.deliver(OFFICE, message(n, size))
    commands = []
    with open_inbox() as inbox:
        original = inbox.client.uid

        def recording(command, *args):
            if command == "FETCH" and "BODY.PEEK[]" in args[-1]:
                commands.append(args[0])
            return original(command, *args)

        monkeypatch.setattr(inbox.client, "uid", recording)
        fetched = list(inbox.fetch_raw(inbox.uids_after(0)))
    assert [m.raw for m in fetched] == [message(n, size) for n, size in enumerate(sizes)]
    assert len(commands) == 4   # [100, 2500] [2500, 10] [5000] [10]: no batch over the limit but a lone big one


def _deliver_and_mark_foreign_deleted(devmail) -> tuple[list[int], int]:
    for n in range(4):
        devmail.deliver(OFFICE, message(n))
    with office_client(devmail) as client:
        client.folder.set("INBOX")
        uids = [int(u) for u in client.uids("ALL")]
        # Someone else (a mail client) marked this one deleted and has not expunged yet.
        client.client.uid("STORE", str(uids[3]), "+FLAGS", r"(\Deleted)")
    return uids, uids[3]


@pytest.mark.parametrize("capabilities,method", [
    (None, "move"),
    ({"IMAP4REV1", "UIDPLUS"}, "copy+expunge"),
    ({"IMAP4REV1"}, "copy+flag"),
])
def test_moving_never_expunges_other_messages(devmail, capabilities, method):
    uids, foreign = _deliver_and_mark_foreign_deleted(devmail)
    with open_inbox() as inbox:
        if capabilities is not None:   # the same server, pretending to be an older one
            inbox.capabilities = frozenset(capabilities)
        assert inbox.move_to_processed(uids[:2]) == method
        # Repeating a move (a crash before it was recorded) is harmless.
        inbox.move_to_processed(uids[:2])
    processed = devmail.mailbox_messages(OFFICE, "Processed")
    flags = flags_of(devmail)
    assert foreign in flags and "\\Deleted" in flags[foreign]
    if method == "copy+flag":
        # Left in place, read; a repeated COPY may add a second copy to Processed, never lose one.
        assert set(flags) == set(uids)
        assert all("\\Seen" in flags[uid] for uid in uids[:2]) and "\\Seen" not in flags[uids[2]]
        assert set(processed) == {message(0), message(1)}
    else:
        assert set(flags) == {uids[2], foreign}
        assert processed == [message(0), message(1)]


def test_parse_fetch_response_handles_uid_after_the_literal_and_unsolicited_updates():
    data = [
        b"3 (FLAGS (\\Seen))",                                              # unsolicited
        (b'1 (INTERNALDATE "08-Oct-2023 10:00:00 +0800" BODY[] {5}', b"one\r\n"), b" UID 11)",
        (b"2 (UID 12 BODY[] {5}", b"two\r\n"), b")",
        b"4 (UID 99 FLAGS ())",                                             # unsolicited, after
    ]
    messages = list(parse_fetch_response(data))
    assert [(m.uid, m.raw) for m in messages] == [(11, b"one\r\n"), (12, b"two\r\n")]
    assert messages[0].internal_date.isoformat() == "2023-10-08T10:00:00+08:00"
    assert messages[1].internal_date is None


def test_the_processed_keyword_is_a_valid_imap_atom():
    assert imaplib.Commands["ID"]
    assert PROCESSED_KEYWORD.startswith("$") and PROCESSED_KEYWORD.isascii() and " " not in PROCESSED_KEYWORD


# -- the raw store ----------------------------------------------------------------------------------

def test_raw_files_are_written_whole_and_named_by_folder_uidvalidity_uid(tmp_path):
    relative = raw_relative_path("INBOX/回执 ../x", 4711, 12)
    assert relative.parts[0] == "mail" and ".." not in relative.parts
    assert relative.name == "0000000012.eml" and "4711" in relative.parts[1]
    path = write_atomically(tmp_path / relative, ODD_RAW)
    assert path.read_bytes() == ODD_RAW
    write_atomically(path, ODD_RAW)   # a rerun writes the same file again
    assert path.read_bytes() == ODD_RAW
    assert os.listdir(path.parent) == [path.name]   # no temporary file left behind
