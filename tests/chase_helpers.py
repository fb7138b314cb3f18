"""A small world for chase tests: the seed campaign (its ladder, deadline and calendar unchanged) with
its first few units, notified before the ladder starts, a real dev mail server, and the one clock
moved with NOTICEFLOW_NOW."""
from __future__ import annotations

import email
import email.policy
import json
import shutil
from datetime import datetime
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

from sqlmodel import select
from typer.testing import CliRunner

from flows.cli import app
from flows.escalate import chase_overdue
from flows.runner import run_flow
from forms.campaign import load_campaign
from forms.store import upsert_campaign
from models.clock import now, parse_instant
from models.db import session_scope
from models.states import RecipientStatus, transition
from models.tables import Event, OutboundMessage, Recipient, Submission, Unit
from models.settings import CAMPAIGNS_DIR

CID = "xinqu-2023-9"
OFFICE = "lzxqwmb@wenmingban.example"
NOTIFIED_AT = "2023-09-25T10:00:00"


def trimmed_seed(tmp_path: Path, unit_count: int) -> Path:
    target = tmp_path / "campaign" / CID
    shutil.copytree(CAMPAIGNS_DIR / CID, target)
    lines = (CAMPAIGNS_DIR / CID / "units.csv").read_text("utf-8").splitlines()
    (target / "units.csv").write_text("\n".join(lines[:unit_count + 1]) + "\n", "utf-8")
    return target


class ChaseWorld:
    def __init__(self, monkeypatch, devmail, campaign_dir: Path):
        self.monkeypatch = monkeypatch
        self.devmail = devmail
        self.definition = load_campaign(campaign_dir)
        self.codes = [unit.code for unit in self.definition.units]
        self.units = {unit.code: unit for unit in self.definition.units}
        self.at(NOTIFIED_AT)
        with session_scope() as session:
            upsert_campaign(session, self.definition)

    # -- time and runs --------------------------------------------------------------------------
    def at(self, when: str) -> datetime:
        self.monkeypatch.setenv("NOTICEFLOW_NOW", when)
        return now()

    def chase(self, when: str | None = None) -> str:
        if when:
            self.at(when)
        return run_flow(chase_overdue, CID, retry_delays=[])

    # -- what happens to units ----------------------------------------------------------------------
    def notify(self, *codes: str, when: str = NOTIFIED_AT) -> None:
        self.at(when)
        with session_scope() as session:
            for code in codes or self.codes:
                recipient = self.recipient(session, code)
                transition(session, recipient, RecipientStatus.notified, kind="notice.sent")
                recipient.notified_at = now()

    def reply(self, code: str, *, valid: bool = True, errors: list | None = None) -> None:
        """What the collector does with a reply: a new Submission version; a valid one moves the unit
        to replied (before the deadline) or late."""
        with session_scope() as session:
            recipient = self.recipient(session, code)
            versions = session.exec(select(Submission).where(Submission.recipient_id == recipient.id)).all()
            late = now() > self.definition.spec.deadline
            session.add(Submission(recipient_id=recipient.id, version=len(versions) + 1, valid=valid,
                                   errors=errors or [], late=late, values={}, received_at=now()))
            recipient.last_reply_at = now()
            if valid:
                target = RecipientStatus.late if late else RecipientStatus.replied
                transition(session, recipient, target, kind="reply.accepted")

    def set_status(self, code: str, status: RecipientStatus, reason: str = "") -> None:
        with session_scope() as session:
            transition(session, self.recipient(session, code), status, kind="test.set", reason=reason)

    @staticmethod
    def recipient(session, code: str) -> Recipient:
        return session.exec(select(Recipient).join(Unit, Unit.id == Recipient.unit_id)
                            .where(Recipient.campaign_id == CID, Unit.code == code)).one()

    def token(self, code: str) -> str:
        with session_scope() as session:
            return self.recipient(session, code).token

    # -- what can be observed ---------------------------------------------------------------------
    def inbox(self, address: str) -> list[EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default)
                for raw in self.devmail.mailbox_messages(address)]

    def unit_inbox(self, code: str) -> list[EmailMessage]:
        return self.inbox(self.units[code].email)

    def leader_inbox(self, code: str) -> list[EmailMessage]:
        return self.inbox(self.units[code].leader_email)

    def status(self) -> dict[str, dict]:
        result = CliRunner().invoke(app, ["status", CID, "--json"])
        assert result.exit_code == 0, result.output
        return {unit["code"]: unit for unit in json.loads(result.stdout)["units"]}

    def statuses(self) -> dict[str, str]:
        return {code: unit["status"] for code, unit in self.status().items()}

    def outbox(self, kind: str = "reminder") -> list[OutboundMessage]:
        with session_scope() as session:
            return list(session.exec(select(OutboundMessage).where(OutboundMessage.kind == kind)
                                     .order_by(OutboundMessage.id)))

    def events(self, kind: str) -> list[Event]:
        with session_scope() as session:
            return list(session.exec(select(Event).where(Event.kind == kind).order_by(Event.id)))


def body(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def addresses(message: EmailMessage, header: str) -> list[str]:
    return [addr.lower() for _, addr in getaddresses(message.get_all(header, []))]


def beijing(text: str) -> datetime:
    return parse_instant(text)
