"""Composing in the worker process (mail.composing): the same messages as in a thread, the
program's current settings in the worker, and nothing lost when composing fails or the worker dies.

The build functions below are module-level so that the worker process can import them by name.
"""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import os

import pytest
from sqlmodel import select

from mail import composing, outbox
from mail.outbound import OutgoingEmail, SmtpBatch
from models.clock import now
from models.db import session_scope
from models.settings import Settings
from models.tables import Campaign, OutboundMessage, OutboundState
from smtp_sink import SmtpSink

OFFICE = "lzxqwmb@wenmingban.example"
COUNT = outbox.PROCESS_COMPOSING_FROM + 5


def build_plain(context: dict, job: tuple[str, str, str]) -> OutgoingEmail:
    """Says which process built it, the program's clock and a setting, as the worker saw them."""
    code, to, message_id = job
    if code == context.get("fail_at"):
        raise ValueError(f"表格生成失败：{code}")
    if code == context.get("die_at"):
        os._exit(3)
    text = f"{code} pid={os.getpid()} date={now():%Y-%m-%d} marker={os.environ.get('NOTICEFLOW_TEST_MARKER')}"
    return OutgoingEmail(to=(to,), subject=f"通知 {code}", text=text, html=None, message_id=message_id)


@pytest.fixture
def campaign(nf_env) -> str:
    with session_scope() as session:
        session.add(Campaign(id="c1", title="t", token_prefix="C1", doc_number="d", source_dir=".",
                             office_email=OFFICE, deadline=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)))
    return "c1"


def queue_rows(count: int = COUNT) -> list[int]:
    items = [outbox.OutboxItem(campaign_id="c1", recipient_id=None, unit_code=f"U{n:03d}", kind="notice",
                               step="issue", to=(f"u{n:03d}@units.example.test",), subject="s",
                               message_id=outbox.make_message_id("notice", "C1", f"U{n:03d}", "issue",
                                                                 "wenmingban.example"))
             for n in range(count)]
    with session_scope() as session:
        rows = outbox.enqueue(session, items)
    return [rows[item.key].id for item in items]


def recipe(**context) -> composing.Recipe:
    def job(row: outbox.OutboxRow) -> tuple[str, str, str]:
        return row.dedupe_key.split(":")[1], row.to_addrs[0], row.message_id

    return composing.Recipe(build=build_plain, context=context, job=job)


def deliver(sink: SmtpSink, ids: list[int], compose) -> outbox.DeliveryReport:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=sink.port, smtp_security="none", smtp_user=OFFICE,
                        smtp_password="")
    return outbox.deliver("c1", ids, compose, retry=outbox.RetryPolicy(()),
                          connection=lambda: SmtpBatch(settings))


def texts(sink: SmtpSink) -> dict[str, str]:
    parsed = [email.message_from_bytes(r.raw, policy=email.policy.default) for r in sink.handler.received]
    return {m["To"]: m.get_body(("plain",)).get_content() for m in parsed}


def states() -> dict[str, OutboundState]:
    with session_scope() as session:
        return {r.dedupe_key.split(":")[1]: r.state for r in session.exec(select(OutboundMessage))}


def test_a_recipe_is_composed_in_the_worker_with_the_programs_current_settings(campaign, monkeypatch):
    ids = queue_rows()
    first, second = ids[:outbox.PROCESS_COMPOSING_FROM], ids[outbox.PROCESS_COMPOSING_FROM:]
    assert second
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-03-15T09:00:00+08:00")
    monkeypatch.setenv("NOTICEFLOW_TEST_MARKER", "first")
    with SmtpSink() as sink:
        report = deliver(sink, first, recipe())
        composed_in_worker = texts(sink)
    assert sorted(report.sent) == sorted(first)
    pids = {text.split("pid=")[1].split()[0] for text in composed_in_worker.values()}
    assert pids != {str(os.getpid())} and len(pids) == 1
    assert all("date=2023-03-15 marker=first" in text for text in composed_in_worker.values())

    # The worker is kept; a later round sees the settings as they are then.
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-11T09:00:00+08:00")
    monkeypatch.setenv("NOTICEFLOW_TEST_MARKER", "second")
    more = queue_rows(COUNT + outbox.PROCESS_COMPOSING_FROM)[COUNT:]
    with SmtpSink() as sink:
        deliver(sink, more, recipe())
        later = texts(sink)
    assert {text.split("pid=")[1].split()[0] for text in later.values()} == pids
    assert all("date=2023-10-11 marker=second" in text for text in later.values())

    # Below the threshold the same recipe is composed in this process.
    with SmtpSink() as sink:
        deliver(sink, second, recipe())
        here = texts(sink)
    assert len(here) == len(second)
    assert {text.split("pid=")[1].split()[0] for text in here.values()} == {str(os.getpid())}


def test_a_failure_while_composing_stops_the_batch_and_loses_nothing(campaign):
    ids = queue_rows()
    with SmtpSink() as sink:
        with pytest.raises(ValueError, match="表格生成失败：U050"):
            deliver(sink, ids, recipe(fail_at="U050"))
        assert len(sink.handler.received) == 50
        after_failure = states()
        assert [after_failure[f"U{n:03d}"] for n in range(50)] == [OutboundState.sent] * 50
        assert {after_failure[f"U{n:03d}"] for n in range(50, COUNT)} == {OutboundState.pending}

        report = deliver(sink, ids, recipe())  # fixed: the next run sends exactly the rest
    assert sorted(report.sent) == sorted(ids[50:])
    assert sorted(sink.handler.count_by_recipient().values()) == [1] * COUNT


def test_a_worker_that_dies_is_reported_and_replaced(campaign):
    ids = queue_rows()
    with SmtpSink() as sink:
        with pytest.raises(composing.WorkerFailed, match="exit code 3"):
            deliver(sink, ids, recipe(die_at="U030"))
        assert len(sink.handler.received) == 30
        assert {states()[f"U{n:03d}"] for n in range(30, COUNT)} == {OutboundState.pending}

        report = deliver(sink, ids, recipe())
    assert sorted(report.sent) == sorted(ids[30:])
    assert sorted(sink.handler.count_by_recipient().values()) == [1] * COUNT
