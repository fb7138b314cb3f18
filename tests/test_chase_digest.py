"""The office's daily digest, read back from the office mailbox of a real dev mail server."""
from __future__ import annotations

import re

import pytest

from chase_helpers import CID, OFFICE, ChaseWorld, addresses, body, trimmed_seed
from models.states import RecipientStatus

ON_TIME, LATE, REJECTED, BOUNCED, REVIEW, EXEMPTED, WAITING, ESCALATED = (
    "YQ01", "YQ02", "YQ03", "YQ04", "YQ05", "YQ06", "YQ07", "YQ08")


@pytest.fixture
def world(nf_env, devmail, tmp_path, monkeypatch) -> ChaseWorld:
    world = ChaseWorld(monkeypatch, devmail, trimmed_seed(tmp_path, 8))
    world.notify()
    return world


def digests(world: ChaseWorld) -> list:
    return world.inbox(OFFICE)


def sections(text: str) -> dict[str, str]:
    """The digest's numbered sections ("一、已报（1个）" …) by title, each with its lines."""
    parts = re.split(r"^([一二三四五六七])、(\S+?)（(\d+)个）.*$", text, flags=re.M)
    found = {}
    for index in range(1, len(parts) - 1, 4):
        title, count, lines = parts[index + 1], int(parts[index + 2]), parts[index + 3]
        found[title] = (count, lines)
    return found


def names_in(lines: str, world: ChaseWorld) -> set[str]:
    return {code for code, unit in world.units.items() if f"{unit.name}（{code}）" in lines}


def test_digest_lists_where_every_unit_stands(world):
    from models.actions import exempt_unit
    from models.db import session_scope

    world.at("2023-10-09T11:00:00")
    world.reply(ON_TIME)
    world.reply(REJECTED, valid=False, errors=[{"cell": "D7", "label": "参与人数", "message": "不能为负数"}])
    world.set_status(BOUNCED, RecipientStatus.bounced, reason="550 用户不存在")
    world.set_status(REVIEW, RecipientStatus.needs_review, reason="识别码与发件邮箱不一致，请核对")
    with session_scope() as session:
        exempt_unit(session, CID, EXEMPTED, "该单位已撤并")
    world.chase("2023-10-10T09:00:00")  # 催报 for the waiting ones
    world.at("2023-10-10T16:30:00")
    world.reply(LATE, valid=False)  # not yet valid
    world.chase("2023-10-10T16:59:00")
    assert digests(world) == []

    world.chase("2023-10-10T17:00:00")
    [digest] = digests(world)
    assert digest["Subject"] == "报送日报（2023年10月10日）：新文明办发〔2023〕9号通知回执已报1个、未报4个"
    assert addresses(digest, "To") == [OFFICE] and addresses(digest, "Cc") == []
    text = body(digest)
    assert "截至2023年10月10日17时00分" in text and "2023年10月10日18时前" in text
    assert "共8个单位：已报1个，逾期已报0个，未报4个，退信1个，待核1个，已豁免1个。" in text
    found = sections(text)
    assert list(found) == ["已报", "逾期已报", "未报", "退信", "待核", "已豁免"]
    assert {title: (count, names_in(lines, world)) for title, (count, lines) in found.items()} == {
        "已报": (1, {ON_TIME}),
        "逾期已报": (0, set()),
        "未报": (4, {REJECTED, LATE, WAITING, ESCALATED}),
        "退信": (1, {BOUNCED}),
        "待核": (1, {REVIEW}),
        "已豁免": (1, {EXEMPTED}),
    }
    assert "无" in found["逾期已报"][1]
    assert "550 用户不存在" in found["退信"][1] and world.units[BOUNCED].email in found["退信"][1]
    assert "识别码与发件邮箱不一致" in found["待核"][1]
    assert "该单位已撤并" in found["已豁免"][1]
    waiting_lines = {line.split("（")[0].strip(" 0123456789."): line for line in found["未报"][1].splitlines()
                     if "（" in line}
    assert "所报回执有误" in waiting_lines[world.units[REJECTED].name]
    assert "所报回执有误" in waiting_lines[world.units[LATE].name]  # rejected with no readable errors
    assert "所报回执有误" not in waiting_lines[world.units[WAITING].name]
    assert "已发提醒1次" in waiting_lines[world.units[WAITING].name]
    assert "未到截止时间" in waiting_lines[world.units[WAITING].name]

    world.chase("2023-10-10T17:30:00")  # one digest a day, however many runs
    assert len(digests(world)) == 1


def test_digest_after_the_deadline_counts_late_replies_and_escalations(world):
    world.chase("2023-10-12T09:00:00")  # downtime: 督办 for everyone, all escalated
    world.at("2023-10-12T10:00:00")
    world.reply(LATE)
    world.chase("2023-10-12T17:05:00")
    [digest] = digests(world)
    found = sections(body(digest))
    assert found["逾期已报"][0] == 1 and names_in(found["逾期已报"][1], world) == {LATE}
    assert found["未报"][0] == 7
    assert found["未报"][1].count("已逾期，已督办") == 7
    assert "18时前报送（时限已过）" in body(digest)


def test_digest_only_on_working_days_and_while_someone_is_waiting(world):
    from models.db import session_scope
    from models.tables import Campaign

    world.chase("2023-10-06T17:00:00")  # 国庆节假期
    world.chase("2023-10-14T17:00:00")  # an ordinary Saturday
    assert digests(world) == []
    world.chase("2023-10-08T17:00:00")  # the make-up Sunday is a working day
    world.chase("2023-10-09T17:00:00")
    assert [d["Subject"].split("：")[0] for d in digests(world)] == ["报送日报（2023年10月8日）", "报送日报（2023年10月9日）"]

    world.at("2023-10-11T10:00:00")
    for code in world.codes[:-1]:
        world.reply(code)
    world.set_status(world.codes[-1], RecipientStatus.exempt, reason="免报")
    world.chase("2023-10-11T17:00:00")  # nobody waits, nothing needs review
    assert len(digests(world)) == 2

    world.set_status(world.codes[-1], RecipientStatus.notified)
    with session_scope() as session:
        session.get(Campaign, CID).active = False
    summary = world.chase("2023-10-12T17:00:00")  # a closed campaign is not chased at all
    assert "已结束" in summary
    assert len(digests(world)) == 2
    assert world.unit_inbox(world.codes[-1]) != [] and all(
        not m["Subject"].startswith("督办") for m in world.unit_inbox(world.codes[-1]))


def test_a_digest_that_could_not_go_out_is_not_sent_the_next_day(world, monkeypatch):
    import socket

    from models.settings import reload_settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("NOTICEFLOW_SMTP_PORT", str(closed_port))
    reload_settings()
    world.chase("2023-10-09T17:00:00")
    assert [row.state for row in world.outbox("digest")] == ["pending"]

    monkeypatch.setenv("NOTICEFLOW_SMTP_PORT", str(world.devmail.smtp_port))
    reload_settings()
    world.chase("2023-10-10T17:00:00")
    assert [d["Subject"].split("：")[0] for d in digests(world)] == ["报送日报（2023年10月10日）"]
    assert [(row.step, row.state) for row in world.outbox("digest")] == [
        ("2023-10-09", "skipped"), ("2023-10-10", "sent")]
