"""Crash tests: `collect` in a subprocess dies at every step of the pipeline (fault injection: the
process calls os._exit at a named point) and at random moments (SIGKILL); a clean rerun follows;
then everything is counted — one row per message, one submission per reply, exactly one answer
per reply, every message moved once, nothing left in the inbox.

The only duplicate an answer may get is the one SMTP cannot rule out: a crash after the server
accepted it and before that was recorded. It is then sent again with the same Message-ID (the
outbox's rule), so a unit still sees one message; the counts below allow exactly those copies.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlmodel import func, select

from mail.ingest import FAULT_ENV, FAULT_EXIT_CODE
from mail.outbox import FAULT_EXIT_ENV as OUTBOX_FAULT_ENV
from models.db import session_scope
from models.settings import PROJECT_ROOT
from models.tables import Attachment, InboundMessage, OutboundMessage, OutboundState, Recipient, Submission, Unit
from test_collect_flow import (
    BEFORE_DEADLINE,
    CAMPAIGN_ID,
    OFFICE,
    Units,
    bounce_for,
    figures,
    issue,
    parse,
)

OUTBOX_FAULT_EXIT_CODE = 86
COLLECT = ("from flows.runner import run_flow; from flows.collect import collect_replies; "
           f"print(run_flow(collect_replies, {CAMPAIGN_ID!r}))")
RUN_TIMEOUT = 300
# Submissions each unit makes in the scenario below.
EXPECTED_VERSIONS = {"T001": 1, "T002": 1, "T003": 2, "T004": 2, "T005": 1, "T006": 1}


@pytest.fixture
def mailbox_full(nf_env, devmail, tmp_path, monkeypatch):
    """Notices sent to 8 units, then 11 messages in the office inbox: 8 unit replies (one with
    errors, two units twice), an auto-reply, a bounce with our blank form inside, a stranger."""
    definition = issue(tmp_path, monkeypatch, 8)
    units = Units(devmail, definition)
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    replies = []
    for n, code in enumerate(["T001", "T002", "T003", "T004", "T005", "T006", "T003", "T004"], start=1):
        values = figures(definition.form, n)
        if code == "T002":
            values["ruoshi.hours"] = -3
        replies.append((code, units.send(units.reply(code, values))))
    auto = units.mail(units.email("T007"), "自动回复：外出", "我正在休假。", answering=units.notice("T007"))
    auto["Auto-Submitted"] = "auto-replied"
    units.send(auto)
    devmail.deliver(OFFICE, bounce_for(units, "T008"))
    units.send(units.mail("someone@elsewhere.example.test", "咨询", "请问这个表怎么填？"))
    assert len(devmail.mailbox_messages(OFFICE)) == 11
    return units, replies


def start_collect(**extra_env: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", FAULT_ENV, OUTBOX_FAULT_ENV)}
    env.update(extra_env)
    return subprocess.Popen([sys.executable, "-c", COLLECT], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_collect(**extra_env: str) -> tuple[int, str]:
    process = start_collect(**extra_env)
    out, err = process.communicate(timeout=RUN_TIMEOUT)
    return process.returncode, out + err


def progress() -> int:
    """Steps done so far: rows recorded plus rows processed plus rows moved."""
    with session_scope() as session:
        states = Counter(session.exec(select(InboundMessage.state)).all())
    return sum(states.values()) + states["processed"] + 2 * states["moved"]


def assert_nothing_lost_or_doubled(units: Units, replies, *, resent_allowed: int) -> None:
    devmail = units.devmail
    with session_scope() as session:
        rows = session.exec(select(InboundMessage)).all()
        per_unit = dict(session.exec(select(Unit.code, func.count()).join(Recipient, Recipient.unit_id == Unit.id)
                                     .join(Submission, Submission.recipient_id == Recipient.id)
                                     .group_by(Unit.code)).all())
        versions = session.exec(select(Submission.recipient_id, Submission.version)).all()
        answers = session.exec(select(OutboundMessage).where(OutboundMessage.kind.in_(["ack", "correction"]))).all()
        attachments = session.exec(select(func.count()).select_from(Attachment)).one()
    # Every message recorded once, processed once, moved once.
    assert len(rows) == 11
    assert len({(r.folder, r.uidvalidity, r.uid) for r in rows}) == 11
    assert Counter(r.classification for r in rows) == Counter(reply=9, auto_reply=1, bounce=1)
    assert {r.state for r in rows} == {"moved"}
    assert devmail.mailbox_messages(OFFICE) == []
    assert len(devmail.mailbox_messages(OFFICE, "Processed")) == 11
    # One submission per reply, versions without gaps; the forms stored once each.
    assert per_unit == EXPECTED_VERSIONS
    by_recipient: dict[int, list[int]] = {}
    for recipient_id, version in versions:
        by_recipient.setdefault(recipient_id, []).append(version)
    assert all(sorted(numbers) == list(range(1, len(numbers) + 1)) for numbers in by_recipient.values())
    assert attachments == len(replies)
    # Exactly one answer per reply in the unit's mailbox (by Message-ID); copies only from the SMTP window.
    assert len(answers) == len(replies) and {a.state for a in answers} == {OutboundState.sent}
    copies = 0
    for code, reply in replies:
        received = units.answers_to(reply, units.email(code))
        assert len({m["Message-ID"] for m in received}) == 1, (code, reply["Subject"])
        copies += len(received) - 1
    assert copies <= resent_allowed
    for code in ("T007", "T008"):
        assert [parse(raw)["Message-ID"] for raw in devmail.mailbox_messages(units.email(code))] == [
            f"<notice.XQ9.{code}.issue@wenmingban.example>"]
    assert devmail.mailbox_messages("someone@elsewhere.example.test") == []


@pytest.mark.parametrize("env_name,spec,exit_code,resent", [
    (FAULT_ENV, "stored:4", FAULT_EXIT_CODE, 0),        # raw file written, row not yet committed
    (FAULT_ENV, "recorded:1", FAULT_EXIT_CODE, 0),      # rows committed, nothing processed
    (FAULT_ENV, "processed:5", FAULT_EXIT_CODE, 0),     # the 5th message's transaction committed
    (OUTBOX_FAULT_ENV, "3", OUTBOX_FAULT_EXIT_CODE, 1),  # the 3rd answer accepted by SMTP, not recorded
    (FAULT_ENV, "answered:1", FAULT_EXIT_CODE, 0),      # answers sent, messages not moved
    (FAULT_ENV, "moved:1", FAULT_EXIT_CODE, 0),         # moved on the server, not recorded as moved
])
def test_a_crash_at_each_step_then_a_rerun(mailbox_full, env_name, spec, exit_code, resent):
    units, replies = mailbox_full
    code, output = run_collect(**{env_name: spec})
    assert code == exit_code, output
    code, output = run_collect()
    assert code == 0, output
    assert_nothing_lost_or_doubled(units, replies, resent_allowed=resent)


def test_sigkill_at_random_moments_then_a_rerun(mailbox_full):
    units, replies = mailbox_full
    seed = int(os.environ.get("NOTICEFLOW_CRASH_SEED", time.time_ns() % 100_000))
    chance = random.Random(seed)
    kills = 0
    for _ in range(3):
        target = progress() + chance.randint(1, 12)
        process = start_collect()
        deadline = time.monotonic() + RUN_TIMEOUT
        while process.poll() is None and progress() < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(chance.uniform(0, 0.2))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=RUN_TIMEOUT)
    print(f"random kills: seed {seed}, {kills} kill(s)")
    assert kills >= 1, f"seed {seed}: every run finished before it could be killed"
    code, output = run_collect()
    assert code == 0, f"seed {seed}: {output}"
    assert_nothing_lost_or_doubled(units, replies, resent_allowed=kills)
