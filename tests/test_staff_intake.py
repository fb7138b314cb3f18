"""Staff actions through the mail and forms pipeline (mail/staff_intake.py), the staff accounts
(models/staff.py) and `noticeflow staff add` (web/cli_support.py), without HTTP."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlmodel import select

from forms.campaign import load_campaign
from forms.reply_form import reply_form_bytes
from mail import staff_intake
from models import tokens
from models.actions import ActionError
from models.clock import now
from models.db import session_scope
from models.staff import (BASE_DELAY, FREE_ATTEMPTS, MAX_DELAY, StaffAccount, StaffError, add_staff, lock_delay,
                          verify_staff)
from models.tables import Attachment, Campaign, Event, InboundMessage, Recipient, Submission, Unit
from web.cli_support import PasswordEntryError, add_staff_interactive
from forms.form_filling import fill_reply_form
from web_world import CID, STRANGER, build_scene, copy_scene, deliver, figures, message_bytes


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return build_scene(tmp_path_factory.mktemp("intake-scene"), unit_count=13)


@pytest.fixture
def world(scene, tmp_path, monkeypatch):
    copy_scene(scene, tmp_path, monkeypatch)
    return scene


def recipient_of(session, code: str) -> tuple[Recipient, Unit]:
    return session.exec(select(Recipient, Unit).join(Unit, Unit.id == Recipient.unit_id)
                        .where(Recipient.campaign_id == CID, Unit.code == code)).one()


def definition():
    with session_scope() as session:
        return load_campaign(session.get(Campaign, CID).source_dir)


def form_for(code: str, seed: int, *, token: str | None = None) -> bytes:
    spec = definition()
    with session_scope() as session:
        recipient, unit = recipient_of(session, code)
    return fill_reply_form(reply_form_bytes(spec, unit.name, recipient.token if token is None else token), spec.form,
                figures(spec.form, seed))


# -- assigning a message ------------------------------------------------------------------------------------

def test_a_message_that_matched_nobody_is_processed_as_the_chosen_units_reply(world):
    with session_scope() as session:
        waiting = staff_intake.messages_awaiting_assignment(session, CID)
        assert [m.id for m in waiting] == [world.stranger_id]
        review_copies = session.exec(select(Attachment).where(Attachment.inbound_id == world.stranger_id)).all()
        assert [a.recipient_id for a in review_copies] == [None]
        outcome = staff_intake.assign_inbound_to_unit(session, world.stranger_id, "yq10", "张敏")
    assert (outcome.unit_code, outcome.answer, outcome.submission_version) == ("YQ10", "ack", 1)
    with session_scope() as session:
        recipient, _ = recipient_of(session, "YQ10")
        inbound = session.get(InboundMessage, world.stranger_id)
        (submission,) = session.exec(select(Submission).where(Submission.recipient_id == recipient.id)).all()
        (attachment,) = session.exec(select(Attachment).where(Attachment.inbound_id == world.stranger_id)).all()
        events = session.exec(select(Event).where(Event.recipient_id == recipient.id).order_by(Event.id)).all()
        assert staff_intake.messages_awaiting_assignment(session, CID) == []
    assert submission.valid and submission.values["articles"] == figures(definition().form, 10)["articles"]
    assert submission.attachment_id == attachment.id and attachment.recipient_id == recipient.id
    assert inbound.match_key == "staff" and inbound.detail["needs_review"] is False
    assert "无法判断" in inbound.detail["resolved_review_reason"]
    assert recipient.status.value == "late"
    assert [(e.kind, e.actor) for e in events][-2:] == [("submission_received", "system"),
                                                        ("staff.assign_message", "张敏")]


def test_assignment_is_refused_for_what_is_not_waiting_for_a_unit(world):
    with session_scope() as session:
        matched = session.exec(select(InboundMessage).where(InboundMessage.recipient_id != None)).first()  # noqa: E711
    for inbound_id, code, words in ((matched.id, "YQ10", "不在待归属列表"), (99999, "YQ10", "找不到"),
                                    (world.stranger_id, "NOPE", "没有代码为 NOPE 的单位")):
        with pytest.raises(ActionError, match=words), session_scope() as session:
            staff_intake.assign_inbound_to_unit(session, inbound_id, code, "张敏")
    with session_scope() as session:
        assert len(staff_intake.messages_awaiting_assignment(session, CID)) == 1
        assert session.exec(select(Event).where(Event.kind == staff_intake.EVENT_ASSIGN)).all() == []


def test_a_message_whose_form_names_another_unit_can_only_go_to_that_unit(world):
    spec = definition()
    with session_scope() as session:
        subject_token = recipient_of(session, "YQ01")[0].token
    outcome = deliver(message_bytes(STRANGER, f"回复【{subject_token}】", form_for("BM03", 8)))
    assert outcome.needs_review and outcome.unit_code is None   # the keys disagree: staff decide
    with pytest.raises(ActionError, match="属于单位 BM03"), session_scope() as session:
        staff_intake.assign_inbound_to_unit(session, outcome.inbound_id, "YQ01", "张敏")
    with session_scope() as session:
        assert outcome.inbound_id in [m.id for m in staff_intake.messages_awaiting_assignment(session, CID)]
        result = staff_intake.assign_inbound_to_unit(session, outcome.inbound_id, "BM03", "张敏")
    assert result.submission_version == 1 and result.answer == "ack"
    with session_scope() as session:
        submission = session.exec(select(Submission).where(Submission.inbound_id == outcome.inbound_id)).one()
    assert submission.values["articles"] == figures(spec.form, 8)["articles"]


# -- paper and phone replies ---------------------------------------------------------------------------------

def test_a_paper_reply_becomes_the_units_next_version(world):
    with session_scope() as session:
        before = session.exec(select(Submission).join(Recipient).join(Unit).where(Unit.code == "YQ04")).all()
        submission = staff_intake.record_offline_reply(session, CID, "YQ04", form_for("YQ04", 44), "纸质回执.xlsx",
                                                       "张敏", "paper")
    assert [s.version for s in before] == [1] and not before[0].valid
    assert (submission.version, submission.valid, submission.source) == (2, True, "paper")
    assert submission.inbound_id is None and submission.received_at == now()
    with session_scope() as session:
        recipient, _ = recipient_of(session, "YQ04")
        attachment = session.get(Attachment, submission.attachment_id)
        event = session.exec(select(Event).where(Event.kind == staff_intake.EVENT_OFFLINE_REPLY)).one()
    assert recipient.status.value == "replied"   # it had answered on time, with errors; now corrected
    assert attachment.stored_path.startswith(f"{CID}/attachments/YQ04/") and attachment.original_name == "纸质回执.xlsx"
    assert (event.actor, event.detail["channel"], event.detail["attachment_id"]) == ("张敏", "paper", attachment.id)


def test_a_form_whose_token_does_not_verify_is_the_staff_members_call(world):
    garbled = "XQ9-YQ10-AAAAAA"
    assert not tokens.verify(tokens.parse(garbled))
    with session_scope() as session:
        submission = staff_intake.record_offline_reply(session, CID, "YQ10", form_for("YQ10", 3, token=garbled),
                                                       "a.xlsx", "张敏", "phone")
    assert submission.valid and submission.source == "phone"


@pytest.mark.parametrize("channel, data, words", [
    ("email", None, "报送方式"),
    ("paper", b"", "空的"),
    ("paper", b"%PDF-1.4 not a workbook", "xlsx"),
    ("paper", "foreign", "财政局"),
])
def test_an_offline_reply_is_refused_with_nothing_stored(world, channel, data, words):
    if data is None:
        data = form_for("YQ10", 1)
    if data == "foreign":
        spec = definition()
        with session_scope() as session:
            other = recipient_of(session, "BM03")[0].token
        data = fill_reply_form(reply_form_bytes(spec, "财政局", other), spec.form, figures(spec.form, 1))
    with pytest.raises(ActionError, match=words), session_scope() as session:
        staff_intake.record_offline_reply(session, CID, "YQ10", data, "x.xlsx", "张敏", channel)
    with session_scope() as session:
        recipient, _ = recipient_of(session, "YQ10")
        assert session.exec(select(Submission).where(Submission.recipient_id == recipient.id)).all() == []
        assert recipient.status.value == "overdue"


# -- the unit's mailbox ---------------------------------------------------------------------------------------

def test_correcting_a_units_email(world):
    with session_scope() as session:
        with pytest.raises(ActionError, match="格式不正确"):
            staff_intake.correct_unit_email(session, CID, "YQ08", "yq08 at units", "张敏")
        taken = recipient_of(session, "YQ01")[1].email
        with pytest.raises(ActionError, match="YQ01"):
            staff_intake.correct_unit_email(session, CID, "YQ08", taken.upper(), "张敏")
        old = recipient_of(session, "YQ08")[1].email
        unit = staff_intake.correct_unit_email(session, CID, "YQ08", " New.YQ08@Units.Xinqu.Example ", "张敏")
    assert unit.email == "new.yq08@units.xinqu.example"
    with session_scope() as session:
        event = session.exec(select(Event).where(Event.kind == staff_intake.EVENT_EMAIL_CORRECTED)).one()
    assert (event.actor, event.detail) == ("张敏", {"from": old, "to": "new.yq08@units.xinqu.example"})


# -- staff accounts -----------------------------------------------------------------------------------------

def test_staff_accounts_keep_only_an_argon2_hash(nf_env):
    with session_scope() as session:
        for name, password, words in (("", "long enough pw", "用户名"), ("张 三", "long enough pw", "空格"),
                                      ("张三", "short", "至少")):
            with pytest.raises(StaffError, match=words):
                add_staff(session, name, password)
        account = add_staff(session, "张三", "long enough pw")
        assert account.password_hash.startswith("$argon2id$") and "long enough pw" not in account.password_hash
        assert PasswordHasher().verify(account.password_hash, "long enough pw")
        with pytest.raises(StaffError, match="已存在"):
            add_staff(session, "张三", "another password")
        add_staff(session, "张三", "another password", replace=True)
    with session_scope() as session:
        assert verify_staff(session, "张三", "long enough pw").ok is False
    with session_scope() as session:
        assert verify_staff(session, "张三", "another password").ok


def test_the_lock_doubles_after_the_free_attempts_and_a_right_password_resets_it(nf_env, monkeypatch):
    assert [lock_delay(n) for n in range(FREE_ATTEMPTS)] == [timedelta(0)] * FREE_ATTEMPTS
    assert lock_delay(FREE_ATTEMPTS) == BASE_DELAY and lock_delay(FREE_ATTEMPTS + 1) == 2 * BASE_DELAY
    assert lock_delay(50) == MAX_DELAY
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-12T10:00:00")
    with session_scope() as session:
        add_staff(session, "li", "right password")
    for _ in range(FREE_ATTEMPTS):
        with session_scope() as session:
            result = verify_staff(session, "li", "wrong")
    assert result.retry_after == BASE_DELAY.total_seconds()
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-12T10:00:29")
    with session_scope() as session:
        assert verify_staff(session, "li", "right password").retry_after == 1
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-12T10:00:30")
    with session_scope() as session:
        assert verify_staff(session, "li", "right password").ok
    with session_scope() as session:
        account = session.exec(select(StaffAccount).where(StaffAccount.name == "li")).one()
        assert (account.failed_attempts, account.locked_until) == (0, None)
        assert verify_staff(session, "li", "wrong").retry_after == 0   # the count starts again


def test_staff_add_reads_the_password_from_standard_input(nf_env):
    message = add_staff_interactive("王芳", stdin=io.StringIO("piped password 1\nignored second line\n"))
    assert "王芳" in message
    with session_scope() as session:
        assert verify_staff(session, "王芳", "piped password 1").ok
    with pytest.raises(StaffError, match="至少"):
        add_staff_interactive("赵六", stdin=io.StringIO("short\n"))
    assert issubclass(PasswordEntryError, ValueError)
