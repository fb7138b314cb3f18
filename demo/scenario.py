"""The demo: the example campaign from the notice to the 情况通报, with the clock stepping through
the campaign (NOTICEFLOW_NOW) and simulated units answering as real offices do.

Roles, by the unit's place in units.csv: the first nine show every path once (a modern client, Foxmail,
Outlook with winmail.dat, a personal mailbox, a forwarded reply, a wrong form corrected after the
correction request, a bounced address, a late reply, no reply at all); the rest repeat a mix."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from demo import units as sim
from forms.campaign import CampaignDefinition
from models.clock import CHINA_TZ

SPECIAL_ROLES = ["plain", "foxmail", "outlook", "personal", "forwarded", "corrected", "bounce", "late", "never"]
REPEATING_ROLES = ["plain", "foxmail", "plain", "foxmail", "late", "never"]
ON_TIME_STYLES = {"plain": sim.plain_reply, "foxmail": sim.foxmail_reply, "outlook": sim.outlook_tnef_reply,
                  "personal": sim.new_mail_from_another_mailbox, "forwarded": sim.forwarded_reply}


def role_of(index: int) -> str:
    return SPECIAL_ROLES[index] if index < len(SPECIAL_ROLES) else REPEATING_ROLES[index % len(REPEATING_ROLES)]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CHINA_TZ)


@dataclass
class Step:
    when: str
    label: str
    action: Callable[[], str]


@dataclass
class DemoResult:
    campaign_id: str
    output_dir: Path
    summary_path: Path
    export_path: Path
    bundle_path: Path
    roles: dict[str, str]
    received: dict[str, dict[str, int]] = field(default_factory=dict)
    status: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"campaign": self.campaign_id, "summary": str(self.summary_path), "export": str(self.export_path),
                "bundle": str(self.bundle_path), "roles": self.roles, "received": self.received,
                "status": self.status}


def prepare_campaign_copy(source: Path, target: Path, unit_limit: int | None) -> Path:
    """The demo works on a copy: the shipped campaign is never touched, and a shortened run keeps the
    first `unit_limit` units."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    if unit_limit:
        lines = (target / "units.csv").read_text(encoding="utf-8").splitlines()
        (target / "units.csv").write_text("\n".join(lines[: unit_limit + 1]) + "\n", encoding="utf-8")
    return target


class Scenario:
    def __init__(self, definition: CampaignDefinition, mail_server, run_flow_fn, flows, say: Callable[[str], None]):
        self.definition = definition
        self.mail = mail_server
        self.run_flow = run_flow_fn
        self.flows = flows
        self.say = say
        self.office = definition.spec.office.email
        self.roles = {unit.code: role_of(i) for i, unit in enumerate(definition.units)}

    # -- the units -------------------------------------------------------------------------------

    def _units(self, *roles: str):
        return [u for u in self.definition.units if self.roles[u.code] in roles]

    def _notice(self, unit) -> sim.ReceivedNotice:
        return sim.received_notice(self.mail.mailbox_messages(unit.email), self.office)

    def _send_to_office(self, raw: bytes) -> None:
        self.mail.deliver(self.office, raw)

    def bounces_come_back(self) -> str:
        for unit in self._units("bounce"):
            notice_id = self._notice(unit).message_id
            self._send_to_office(sim.delivery_failure(unit, self.office, notice_id, _now()))
        return f"{len(self._units('bounce'))} 个单位的邮箱退信"

    def on_time_replies(self) -> str:
        count = 0
        for unit in self._units(*ON_TIME_STYLES, "corrected"):
            notice = self._notice(unit)
            broken = self.roles[unit.code] == "corrected"
            form = sim.filled_form(self.definition, notice, unit, broken=broken)
            style = sim.plain_reply if broken else ON_TIME_STYLES[self.roles[unit.code]]
            self._send_to_office(style(unit, self.office, notice, form, _now()))
            count += 1
        return f"{count} 个单位按时回复（其中 1 份回执表有误）"

    def corrections_come_back(self) -> str:
        fixed = 0
        for unit in self._units("corrected"):
            messages = self.mail.mailbox_messages(unit.email)
            if sim.latest_from_office(messages, self.office, subject_contains="更正") is None:
                continue
            notice = self._notice(unit)
            form = sim.filled_form(self.definition, notice, unit)
            self._send_to_office(sim.plain_reply(unit, self.office, notice, form, _now(),
                                                 body="您好！已按更正要求修改回执表，请查收。\n"))
            fixed += 1
        return f"{fixed} 个单位按更正要求重新报送"

    def late_replies(self) -> str:
        for unit in self._units("late"):
            notice = self._notice(unit)
            self._send_to_office(sim.foxmail_reply(unit, self.office, notice,
                                                   sim.filled_form(self.definition, notice, unit), _now()))
        return f"{len(self._units('late'))} 个单位逾期回复"

    # -- the timeline ----------------------------------------------------------------------------

    def steps(self) -> list[Step]:
        cid = self.definition.id
        flows = self.flows
        collect = lambda: self.run_flow(flows.collect_replies, cid)
        chase = lambda: self.run_flow(flows.chase_overdue, cid)
        return [
            Step("2023-03-15T09:00", "办公室触发：下发通知", lambda: self.run_flow(flows.issue_notice, str(self.definition.directory))),
            Step("2023-03-15T09:20", "个别单位邮箱退信", self.bounces_come_back),
            Step("2023-03-15T09:30", "收取邮件", collect),
            Step("2023-09-25T10:00", "各单位陆续回复", self.on_time_replies),
            Step("2023-09-25T16:00", "收取邮件、发送回执与更正要求", collect),
            Step("2023-09-27T10:00", "单位更正后重新报送", self.corrections_come_back),
            Step("2023-09-27T16:00", "收取邮件", collect),
            Step("2023-10-07T09:10", "催报（调休工作日）：温馨提示", chase),
            Step("2023-10-10T09:10", "催报：截止当日", chase),
            Step("2023-10-10T18:10", "截止后：标记逾期", chase),
            Step("2023-10-11T10:00", "逾期单位补报", self.late_replies),
            Step("2023-10-11T10:30", "收取邮件", collect),
            Step("2023-10-12T09:10", "督办：抄送单位领导", chase),
            Step("2023-10-12T17:10", "每日报送日报", chase),
            Step("2023-10-12T18:00", "生成情况通报、汇总表和附件材料包",
                 lambda: self.run_flow(flows.publish_summary, cid, "2023-10-12")),
        ]

    def run(self) -> None:
        steps = self.steps()
        for number, step in enumerate(steps, 1):
            os.environ["NOTICEFLOW_NOW"] = at(step.when).isoformat()
            outcome = step.action()
            first_line = str(outcome).strip().splitlines()[0] if outcome else ""
            self.say(f"[{number:>2}/{len(steps)}] {step.when.replace('T', ' ')}  {step.label}  {first_line}")

    def mail_received(self) -> dict[str, dict[str, int]]:
        """How many emails from the office each unit's mailbox and its leader's hold, by subject kind."""
        counts = {}
        for unit in self.definition.units:
            counts[unit.code] = {
                "unit": _count_from(self.mail.mailbox_messages(unit.email), self.office),
                "leader": _count_from(self.mail.mailbox_messages(unit.leader_email), self.office),
            }
        return counts


def _now() -> datetime:
    from models.clock import now

    return now()


def _count_from(messages: list[bytes], sender: str) -> int:
    return sum(1 for raw in messages if sim.parse_message(raw).from_addr.lower() == sender.lower())


def write_report(result: DemoResult, path: Path) -> None:
    path.write_text(json.dumps(result.as_json(), ensure_ascii=False, indent=2), encoding="utf-8")
