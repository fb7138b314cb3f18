"""The recipient state machine and the signed tokens."""
from __future__ import annotations

import os
import stat

import pytest
from sqlmodel import select

from forms.campaign import load_campaign
from forms.store import upsert_campaign
from models import tokens
from models.db import session_scope
from models.settings import PROJECT_ROOT, reload_settings
from models.states import (TRANSITIONS, IllegalTransition, RecipientStatus, check_transition, record_events, transition,
                           transition_many)
from models.tables import Event, Recipient

S = RecipientStatus
EXAMPLE = PROJECT_ROOT / "campaigns" / "xinqu-2023-9"


@pytest.mark.parametrize("current,target", [
    (S.pending, S.notified), (S.pending, S.bounced), (S.notified, S.replied), (S.notified, S.overdue),
    (S.overdue, S.escalated), (S.escalated, S.late), (S.bounced, S.replied), (S.replied, S.replied),
    (S.needs_review, S.replied), (S.notified, S.exempt), (S.exempt, S.notified),
])
def test_legal_transitions(current, target):
    check_transition(current, target)


@pytest.mark.parametrize("current,target", [
    (S.pending, S.replied), (S.pending, S.overdue), (S.replied, S.overdue), (S.replied, S.escalated),
    (S.late, S.replied), (S.escalated, S.overdue), (S.exempt, S.replied), (S.notified, S.pending),
])
def test_illegal_transitions_raise(current, target):
    with pytest.raises(IllegalTransition, match=f"{current.value} -> {target.value}"):
        check_transition(current, target)


def test_every_status_has_its_transitions_defined():
    assert set(TRANSITIONS) == set(RecipientStatus)
    assert all(S.exempt in targets for status, targets in TRANSITIONS.items() if status is not S.exempt)


def test_transition_writes_an_event_and_refuses_illegal_moves(nf_env):
    with session_scope() as session:
        upsert_campaign(session, load_campaign(EXAMPLE))
    with session_scope() as session:
        recipient = session.exec(select(Recipient)).first()
        transition(session, recipient, S.notified, kind="notice_sent", reason="250 OK")
    with session_scope() as session:
        recipient = session.exec(select(Recipient)).first()
        assert recipient.status == S.notified
        with pytest.raises(IllegalTransition):
            transition(session, recipient, S.pending, kind="oops")
    with session_scope() as session:
        events = session.exec(select(Event)).all()
        assert [(e.kind, e.from_status, e.to_status, e.detail["reason"]) for e in events] == [
            ("notice_sent", "pending", "notified", "250 OK")]
        assert session.exec(select(Recipient)).first().status == S.notified


def test_transition_many_moves_only_the_states_asked_for_with_an_event_each(nf_env):
    import datetime as dt

    with session_scope() as session:
        upsert_campaign(session, load_campaign(EXAMPLE))
    with session_scope() as session:
        first, second, third, fourth = session.exec(select(Recipient).order_by(Recipient.id).limit(4)).all()
        transition(session, second, S.bounced, kind="setup")
        transition(session, third, S.exempt, kind="setup")
        ids = [first.id, second.id, third.id]
        campaign_id = first.campaign_id
    at = dt.datetime(2023, 3, 15, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with session_scope() as session:
        moved = transition_many(session, campaign_id, {rid: {"message_id": f"<m{rid}>"} for rid in ids}, S.notified,
                                kind="notice.sent", when={S.pending, S.bounced},
                                values={rid: {"notified_at": at} for rid in ids})
        record_events(session, campaign_id, "notice.sent", {third.id: {"message_id": f"<m{third.id}>"}})
    assert moved == {first.id, second.id}
    with session_scope() as session:
        status = {r.id: (r.status, r.notified_at) for r in session.exec(select(Recipient))}
        events = session.exec(select(Event).where(Event.kind == "notice.sent").order_by(Event.id)).all()
    assert status[first.id] == status[second.id] == (S.notified, at)
    assert status[third.id] == (S.exempt, None) and status[fourth.id] == (S.pending, None)
    assert [(e.recipient_id, e.from_status, e.to_status, e.detail["message_id"]) for e in events] == [
        (first.id, "pending", "notified", f"<m{first.id}>"), (second.id, "bounced", "notified", f"<m{second.id}>"),
        (third.id, "", "", f"<m{third.id}>")]
    with session_scope() as session, pytest.raises(IllegalTransition):
        transition_many(session, campaign_id, {third.id: {}}, S.late, kind="oops", when={S.exempt})


def test_token_signs_verifies_and_detects_tampering(nf_env):
    token = tokens.sign("XQ9", "YQ01")
    assert str(token).startswith("XQ9-YQ01-") and len(token.signature) == 6
    assert tokens.verify(token)
    assert tokens.parse(f"回复：关于开展活动的通知{token.bracketed}") == token
    assert tokens.parse(f"Re: 通知 {str(token).lower()}") == token
    forged = tokens.Token("XQ9", "YQ02", token.signature)
    assert not tokens.verify(forged)
    altered = tokens.Token("XQ9", "YQ01", ("A" if token.signature[0] != "A" else "B") + token.signature[1:])
    assert not tokens.verify(altered)
    assert tokens.parse("no token here") is None


def test_token_depends_on_the_secret(nf_env, monkeypatch):
    first = tokens.sign("XQ9", "YQ01")
    monkeypatch.setenv("NOTICEFLOW_SECRET", "another secret")
    reload_settings()
    assert tokens.sign("XQ9", "YQ01") != first
    assert not tokens.verify(first)


def test_generated_secret_is_private_and_stable(nf_env, monkeypatch):
    monkeypatch.delenv("NOTICEFLOW_SECRET", raising=False)
    reload_settings()
    first = tokens.sign("XQ9", "YQ01")
    secret_file = nf_env.output_dir / tokens.SECRET_FILE_NAME
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    assert tokens.sign("XQ9", "YQ01") == first
