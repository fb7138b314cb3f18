"""The chase (flows/escalate.py, mail/reminders.py) walked with the one clock against a real dev mail
server: the seed campaign's ladder (温馨提示 -3, 催报 0, 督办 +2 working days from 10 October 2023,
across the National Day holiday and its make-up working days)."""
from __future__ import annotations

import json
import socket

import pytest
from aiosmtpd.controller import Controller

from chase_helpers import CID, OFFICE, ChaseWorld, addresses, body, trimmed_seed
from flows.escalate import chase_batch, chase_overdue
from flows.runner import run_flow
from forms.campaign import LadderStep
from mail import reminders
from mail.reminders import SKIP_BEFORE_NOTICE, SKIP_SUPERSEDED
from models.actions import ActionError, exempt_unit
from models.db import session_scope
from models.settings import reload_settings
from models.states import RecipientStatus
from models.status import UnknownCampaign
from models.tables import Unit

NEVER, ON_TIME, REJECTED, EXEMPTED, BOUNCED, LATE = "YQ01", "YQ02", "YQ03", "YQ04", "YQ05", "YQ06"
DEADLINE_TEXT = "2023年10月10日18时前"


@pytest.fixture
def world(nf_env, devmail, tmp_path, monkeypatch) -> ChaseWorld:
    world = ChaseWorld(monkeypatch, devmail, trimmed_seed(tmp_path, 6))
    world.notify()
    return world


def subjects(world: ChaseWorld, code: str) -> list[str]:
    return [message["Subject"] for message in world.unit_inbox(code)]


def mail_counts(world: ChaseWorld) -> dict[str, int]:
    return {code: len(world.unit_inbox(code)) for code in world.codes}


def test_walk_the_seed_ladder(world):
    world.set_status(BOUNCED, RecipientStatus.bounced, reason="550 mailbox unavailable")

    world.chase("2023-10-06T10:00:00")  # 国庆节假期: nothing is due
    world.chase("2023-10-07T08:59:00")  # the make-up Saturday, a minute before the first step
    assert mail_counts(world) == dict.fromkeys(world.codes, 0)

    world.chase("2023-10-07T09:00:00")  # 温馨提示 on the make-up working day
    for code in (NEVER, ON_TIME, REJECTED, EXEMPTED, LATE):
        [gentle] = world.unit_inbox(code)
        assert gentle["Subject"].startswith("温馨提示")
        assert f"【{world.token(code)}】" in gentle["Subject"]
        assert addresses(gentle, "To") == [world.units[code].email]
        assert addresses(gentle, "Cc") == []
        assert world.units[code].name in body(gentle) and DEADLINE_TEXT in body(gentle)
    assert world.unit_inbox(BOUNCED) == []

    world.chase("2023-10-08T09:00:00")  # the make-up Sunday: a working day, but no step is due
    assert mail_counts(world)[NEVER] == 1

    world.at("2023-10-09T15:00:00")
    world.reply(ON_TIME)
    world.reply(REJECTED, valid=False, errors=[{"cell": "C5", "label": "开展活动次数", "message": "应填写整数"}])
    with session_scope() as session:
        exempt_unit(session, CID, EXEMPTED, "该单位已撤并", actor="staff:税国斌")
    world.chase("2023-10-09T15:05:00")
    assert mail_counts(world) == {NEVER: 1, ON_TIME: 1, REJECTED: 1, EXEMPTED: 1, BOUNCED: 0, LATE: 1}

    world.chase("2023-10-10T09:00:00")  # 催报 on the deadline day; the rejected unit gets the correction
    assert subjects(world, NEVER)[-1].startswith("催报：请于")
    assert subjects(world, LATE)[-1].startswith("催报：请于")
    correction = world.unit_inbox(REJECTED)[-1]
    assert correction["Subject"].startswith("催报：请更正")
    assert f"【{world.token(REJECTED)}】" in correction["Subject"]
    assert "C5 开展活动次数：应填写整数" in body(correction)
    assert mail_counts(world) == {NEVER: 2, ON_TIME: 1, REJECTED: 2, EXEMPTED: 1, BOUNCED: 0, LATE: 2}

    world.chase("2023-10-10T18:00:00")  # the deadline itself is not past it
    assert world.statuses()[NEVER] == "notified"
    world.chase("2023-10-10T18:01:00")
    assert world.statuses() == {NEVER: "overdue", ON_TIME: "replied", REJECTED: "overdue",
                                EXEMPTED: "exempt", BOUNCED: "bounced", LATE: "overdue"}
    assert mail_counts(world) == {NEVER: 2, ON_TIME: 1, REJECTED: 2, EXEMPTED: 1, BOUNCED: 0, LATE: 2}

    world.at("2023-10-11T10:00:00")
    world.reply(LATE)
    world.chase()
    assert mail_counts(world) == {NEVER: 2, ON_TIME: 1, REJECTED: 2, EXEMPTED: 1, BOUNCED: 0, LATE: 2}

    world.chase("2023-10-12T09:00:00")  # 督办 to the unit, its leader in cc
    supervise = world.unit_inbox(NEVER)[-1]
    assert supervise["Subject"].startswith("督办：")
    assert f"【{world.token(NEVER)}】" in supervise["Subject"]
    assert addresses(supervise, "To") == [world.units[NEVER].email]
    assert addresses(supervise, "Cc") == [world.units[NEVER].leader_email]
    text = body(supervise)
    assert DEADLINE_TEXT in text and "报送时限已过2个工作日" in text and "抄送贵单位负责同志" in text
    [leader_copy] = world.leader_inbox(NEVER)
    assert leader_copy["Message-ID"] == supervise["Message-ID"]
    correction = world.unit_inbox(REJECTED)[-1]
    assert correction["Subject"].startswith("督办：请更正")
    assert addresses(correction, "Cc") == [world.units[REJECTED].leader_email]
    for code in (ON_TIME, EXEMPTED, BOUNCED, LATE):
        assert world.leader_inbox(code) == []

    world.chase("2023-10-12T09:00:00")  # the same instant again
    world.chase("2023-10-13T09:00:00")
    world.chase("2023-10-16T09:00:00")
    assert mail_counts(world) == {NEVER: 3, ON_TIME: 1, REJECTED: 3, EXEMPTED: 1, BOUNCED: 0, LATE: 2}

    status = world.status()
    assert {code: unit["status"] for code, unit in status.items()} == {
        NEVER: "escalated", ON_TIME: "replied", REJECTED: "escalated", EXEMPTED: "exempt",
        BOUNCED: "bounced", LATE: "late"}
    assert {code: unit["reminders_sent"] for code, unit in status.items()} == {
        NEVER: 3, ON_TIME: 1, REJECTED: 3, EXEMPTED: 1, BOUNCED: 0, LATE: 2}
    assert status[REJECTED]["errors"] == ["C5 开展活动次数：应填写整数"]
    assert sorted(e.detail["step"] for e in world.events("reminder.sent")) == sorted(
        ["gentle"] * 5 + ["urge"] * 3 + ["supervise"] * 2)
    assert len(world.events("chase.overdue")) == 3 and len(world.events("chase.escalated")) == 2
    assert {row.state for row in world.outbox()} == {"sent"}  # nothing was ever skipped on this walk


def test_a_reply_on_the_morning_of_a_step_stops_it(world):
    world.chase("2023-10-07T09:00:00")
    world.at("2023-10-10T08:30:00")
    world.reply(NEVER)
    world.chase("2023-10-10T09:00:00")
    assert len(world.unit_inbox(NEVER)) == 1
    assert len(world.unit_inbox(ON_TIME)) == 2
    assert world.status()[NEVER]["reminders_sent"] == 1


def test_after_downtime_one_reminder_and_the_rest_recorded_skipped(world):
    summary = world.chase("2023-10-13T10:00:00")  # the first run since the notice
    for code in world.codes:
        [only] = world.unit_inbox(code)
        assert only["Subject"].startswith("督办：")
        assert addresses(only, "Cc") == [world.units[code].leader_email]
    rows = world.outbox()
    assert sorted((row.step, row.state) for row in rows) == sorted(
        [("gentle", "skipped"), ("urge", "skipped"), ("supervise", "sent")] * len(world.codes))
    assert {row.last_error for row in rows if row.state == "skipped"} == {SKIP_SUPERSEDED}
    assert set(world.statuses().values()) == {"escalated"}
    assert {unit["reminders_sent"] for unit in world.status().values()} == {1}
    assert f"本次发出提醒 {len(world.codes)} 封" in summary and f"记为跳过 {2 * len(world.codes)} 个" in summary

    world.chase("2023-10-16T10:00:00")
    assert mail_counts(world) == dict.fromkeys(world.codes, 1)


def test_downtime_ending_on_a_rest_day_waits_for_the_next_working_day(world):
    world.chase("2023-10-14T10:00:00")  # an ordinary Saturday after the holiday
    assert mail_counts(world) == dict.fromkeys(world.codes, 0)
    assert world.outbox() == []
    assert set(world.statuses().values()) == {"overdue"}  # a fact of the clock, mailed or not

    world.chase("2023-10-16T08:00:00")  # Monday
    for code in world.codes:
        assert subjects(world, code) == [subjects(world, NEVER)[0].replace(world.units[NEVER].name,
                                                                           world.units[code].name)
                                         .replace(world.token(NEVER), world.token(code))]
    assert subjects(world, NEVER)[0].startswith("督办：")


def free_port() -> int:
    with socket.socket() as probe:  # bound and closed again: nobody listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_reminder_that_could_not_go_out_is_not_sent_late(world, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_SMTP_PORT", str(free_port()))
    reload_settings()
    summary = world.chase("2023-10-07T09:00:00")
    assert "暂时未能发出" in summary
    assert {row.state for row in world.outbox()} == {"pending"}

    monkeypatch.setenv("NOTICEFLOW_SMTP_PORT", str(world.devmail.smtp_port))
    reload_settings()
    world.chase("2023-10-10T09:00:00")
    for code in world.codes:
        assert [s[:3] for s in subjects(world, code)] == ["催报："]
    assert sorted((row.step, row.state) for row in world.outbox()) == sorted(
        [("gentle", "skipped"), ("urge", "sent")] * len(world.codes))


def test_a_unit_notified_after_a_step_fell_due_does_not_get_it(nf_env, devmail, tmp_path, monkeypatch):
    world = ChaseWorld(monkeypatch, devmail, trimmed_seed(tmp_path, 2))
    world.notify(NEVER)
    world.notify(ON_TIME, when="2023-10-10T11:00:00")  # its address was fixed after the 催报 went out
    world.chase("2023-10-10T11:30:00")
    assert subjects(world, NEVER)[0].startswith("催报")
    assert world.unit_inbox(ON_TIME) == []
    skipped = [row for row in world.outbox() if row.state == "skipped"]
    assert sorted(row.step for row in skipped) == ["gentle", "gentle", "urge"]
    assert {row.last_error for row in skipped if row.dedupe_key.split(":")[1] == ON_TIME} == {SKIP_BEFORE_NOTICE}

    world.chase("2023-10-12T09:00:00")
    assert subjects(world, ON_TIME)[0].startswith("督办：")


def test_exempt_and_bounced_units_get_nothing(world):
    world.set_status(BOUNCED, RecipientStatus.bounced, reason="550 no such user")
    with session_scope() as session:
        recipient = exempt_unit(session, CID, EXEMPTED.lower(), "  该单位已撤并  ")
        assert recipient.status == RecipientStatus.exempt
    for when in ("2023-10-07T09:00:00", "2023-10-10T09:00:00", "2023-10-11T09:00:00", "2023-10-12T09:00:00"):
        world.chase(when)
    assert world.unit_inbox(EXEMPTED) == [] and world.unit_inbox(BOUNCED) == []
    assert world.leader_inbox(EXEMPTED) == [] and world.leader_inbox(BOUNCED) == []
    assert len(world.unit_inbox(NEVER)) == 3
    statuses = world.statuses()
    assert (statuses[EXEMPTED], statuses[BOUNCED]) == ("exempt", "bounced")
    [event] = world.events("staff.exempt")
    assert (event.from_status, event.to_status, event.actor, event.detail["reason"]) == (
        "notified", "exempt", "cli", "该单位已撤并")


def test_exempting_a_unit_stops_a_reminder_already_queued(world):
    """A reminder row planned but not yet sent when staff exempt the unit is skipped at send time."""
    at = world.at("2023-10-07T09:00:00")
    original = reminders.still_awaiting

    def exempt_first(session, row):
        with session_scope() as other:
            if world.recipient(other, NEVER).status != RecipientStatus.exempt:
                exempt_unit(other, CID, NEVER, "领导批准免报")
        return original(session, row)

    with session_scope() as session:
        ids = reminders.awaiting_recipient_ids(session, CID)
    world.monkeypatch.setattr(reminders, "still_awaiting", exempt_first)
    outcome = chase_batch.fn(CID, ids, at, [])
    assert world.unit_inbox(NEVER) == []
    assert len(outcome["sent"]) == len(world.codes) - 1
    assert [line["单位代码"] for line in outcome["skipped"]] == [NEVER]
    assert {row.dedupe_key.split(":")[1]: row.state for row in world.outbox()}[NEVER] == "skipped"


@pytest.mark.parametrize(("campaign_id", "code", "reason", "message"), [
    ("no-such-campaign", "YQ01", "已撤并", "找不到活动 no-such-campaign"),
    (CID, "ZZ99", "已撤并", "没有代码为 ZZ99 的单位"),
    (CID, "YQ01", "   ", "请写明豁免原因"),
])
def test_exempt_refuses_in_chinese(world, campaign_id, code, reason, message):
    with pytest.raises(ActionError, match=message), session_scope() as session:
        exempt_unit(session, campaign_id, code, reason)
    assert world.events("staff.exempt") == []
    assert world.statuses()["YQ01"] == "notified"


def test_exempting_twice_is_refused_and_keeps_the_first_reason(world):
    with session_scope() as session:
        exempt_unit(session, CID, NEVER, "已撤并")
    with pytest.raises(ActionError, match="已是豁免状态（原因：已撤并）"), session_scope() as session:
        exempt_unit(session, CID, NEVER, "另一个原因")
    assert [e.detail["reason"] for e in world.events("staff.exempt")] == ["已撤并"]


class RefusingRelay:
    """An SMTP server that refuses some recipients for good (550) and hands every other message to
    the dev mail server: a unit whose mail server no longer knows its mailbox."""

    def __init__(self, devmail, refused: set[str]):
        self.devmail, self.refused = devmail, {a.lower() for a in refused}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refused:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            self.devmail.deliver(address, envelope.original_content)
        return "250 OK"


@pytest.fixture
def refusing_relay(world, monkeypatch):
    port = free_port()
    relay = Controller(RefusingRelay(world.devmail, {world.units[NEVER].email}), hostname="127.0.0.1", port=port)
    relay.start()
    monkeypatch.setenv("NOTICEFLOW_SMTP_PORT", str(port))
    reload_settings()
    yield relay
    relay.stop()


def test_a_refused_reminder_marks_the_unit_bounced(world, refusing_relay):
    world.chase("2023-10-07T09:00:00")
    unit_status = world.status()[NEVER]
    assert unit_status["status"] == "bounced"
    assert "催报邮件被对方邮件服务器拒收" in unit_status["errors"][0] and "User unknown" in unit_status["errors"][0]
    assert len(world.unit_inbox(ON_TIME)) == 1  # the others went on
    world.chase("2023-10-12T09:00:00")
    assert world.leader_inbox(NEVER) == []  # the ladder stopped for it: no 督办 to its leader
    assert [(row.step, row.state) for row in world.outbox() if row.dedupe_key.split(":")[1] == NEVER] == [
        ("gentle", "failed")]
    assert [s[:3] for s in subjects(world, ON_TIME)] == ["温馨提", "督办："]


def test_office_mailbox_is_untouched_by_the_ladder(world):
    world.chase("2023-10-07T09:00:00")
    assert world.inbox(OFFICE) == []


def test_each_address_once_and_never_both_in_to_and_cc():
    step = LadderStep(key="supervise", label="督办", template="reminder_supervise", offset_workdays=2,
                      at="09:00", to=["unit", "office"], cc=["leader", "unit", "office", "leader"])
    unit = Unit(code="YQ01", name="中川园区管委会", kind="park", email="YQ01@units.example",
                leader_email="leader@units.example")
    assert reminders.addresses(step, unit, "Office@wmb.example") == (
        ("yq01@units.example", "office@wmb.example"), ("leader@units.example",))
    unit.leader_email = unit.email  # a small unit whose head reads the unit's own mailbox
    assert reminders.addresses(step, unit, "office@wmb.example") == (
        ("yq01@units.example", "office@wmb.example"), ())


@pytest.mark.prefect
@pytest.mark.filterwarnings("ignore")
def test_the_prefect_flow_publishes_what_it_sent_and_skipped(world):
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    world.at("2023-10-13T10:00:00")
    with prefect_test_harness(server_startup_timeout=120):
        summary = chase_overdue(CID, retry_delays=[])  # a real flow run, its tasks real task runs
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts()}
    assert f"本次发出提醒 {len(world.codes)} 封" in summary
    report = artifacts[f"chase-{CID}"].data
    assert f"| 本次发出提醒 | {len(world.codes)} |" in report
    assert f"| 记为跳过（不再补发） | {2 * len(world.codes)} |" in report
    actions = artifacts[f"chase-actions-{CID}"].data
    actions = json.loads(actions) if isinstance(actions, str) else actions
    assert sorted((row["单位代码"], row["提醒"], row["结果"], row["说明"]) for row in actions) == sorted(
        [(code, "督办", "已发送", "") for code in world.codes]
        + [(code, label, "跳过", SKIP_SUPERSEDED) for code in world.codes for label in ("温馨提示", "催报")])


def test_without_a_campaign_id_every_active_campaign_is_chased(world):
    world.at("2023-10-07T09:00:00")
    summary = run_flow(chase_overdue, retry_delays=[])
    assert summary.startswith(f"催报（{CID}，2023年10月7日9时00分）")
    assert mail_counts(world) == dict.fromkeys(world.codes, 1)


def test_an_unknown_campaign_is_named_in_chinese(world):
    with pytest.raises(UnknownCampaign, match="找不到活动 xinqu-2099-1"):
        run_flow(chase_overdue, "xinqu-2099-1", retry_delays=[])
