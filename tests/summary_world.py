"""A campaign in the database with units in every state, built directly (no mail): the input of the
summary, the xlsx export and the attachments bundle. Submissions, attachments and status changes are
written the way the collector writes them (Submission versions, Attachment rows under
outputs/<campaign>/attachments/<unit>/, transitions of the state machine)."""
from __future__ import annotations

import csv
import hashlib
import shutil
from datetime import date
from pathlib import Path

import yaml
from sqlmodel import select

from documents.outcomes import gather_unit_records
from documents.summary import summary_document
from forms.aggregate import aggregate
from forms.campaign import load_campaign
from forms.store import upsert_campaign
from mail.attachments import store_attachments
from mail.mime import ParsedAttachment
from models.clock import parse_instant
from models.db import session_scope
from models.settings import CAMPAIGNS_DIR, get_settings
from models.states import RecipientStatus, transition
from models.tables import Attachment, InboundMessage, Recipient, Submission, Unit

CID = "xinqu-2023-9"
ON_TIME = "2023-10-09T15:30:00"       # before the deadline (2023-10-10 18:00 Beijing)
LATE = "2023-10-12T09:15:00"
SUMMARY_DAY = date(2023, 10, 16)
KINDS = ("park", "department", "soe", "provincial")


def figures(definition, seed: int, **overrides) -> dict:
    """Valid values as the form reader stores them (JSON: hours as float), different per seed."""
    values = {}
    for key, spec in definition.form.iter_cells():
        if spec.type.value == "integer":
            values[key] = seed * (10 if key.endswith(("volunteers", "served")) else 1)
        elif spec.type.value == "number":
            values[key] = round(seed * 1.5, 1)
        elif spec.type.value == "phone":
            values[key] = "0931-8259130"
        else:
            values[key] = f"单位{seed}组织志愿者开展活动。群众反响良好！"
    values.update(overrides)
    return values


class SummaryWorld:
    def __init__(self, tmp_path: Path, units: list[tuple[str, str, str]] | None = None, form: str | None = None,
                 **campaign_changes):
        """The example campaign copied to tmp_path; `units` (code, name, kind) replaces its unit list,
        `form` its form.yaml, `campaign_changes` top-level or `summary_…` keys of campaign.yaml."""
        self.folder = tmp_path / "campaign" / CID
        shutil.copytree(CAMPAIGNS_DIR / CID, self.folder)
        if form is not None:
            (self.folder / "form.yaml").write_text(form, "utf-8")
        if units is not None:
            with open(self.folder / "units.csv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["code", "name", "kind", "email", "leader_email", "contact"])
                for code, name, kind in units:
                    writer.writerow([code, name, kind, f"{code.lower()}@units.example.test",
                                     f"leader.{code.lower()}@units.example.test", ""])
        if campaign_changes:
            spec_path = self.folder / "campaign.yaml"
            spec = yaml.safe_load(spec_path.read_text("utf-8"))
            for key, value in campaign_changes.items():
                if key.startswith("summary_"):
                    spec["summary"][key.removeprefix("summary_")] = value
                else:
                    spec[key] = value
            spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), "utf-8")
        self.definition = load_campaign(self.folder)
        self.codes = [unit.code for unit in self.definition.units]
        with session_scope() as session:
            upsert_campaign(session, self.definition)
        self._inbound = 0

    # -- what happens to units ----------------------------------------------------------------------
    def _recipient(self, session, code: str) -> Recipient:
        return session.exec(select(Recipient).join(Unit, Unit.id == Recipient.unit_id)
                            .where(Recipient.campaign_id == CID, Unit.code == code)).one()

    def status(self, code: str, *path: RecipientStatus, reason: str = "") -> None:
        """Move a unit through the given states (each a legal transition)."""
        with session_scope() as session:
            recipient = self._recipient(session, code)
            for target in path:
                transition(session, recipient, target, kind="test", reason=reason)

    def notify(self, *codes: str) -> None:
        for code in codes or self.codes:
            self.status(code, RecipientStatus.notified)

    def reply(self, code: str, values: dict | None, at: str = ON_TIME, *, valid: bool = True) -> None:
        """A Submission version, as the collector adds it; the first reply moves the status."""
        received = parse_instant(at)
        with session_scope() as session:
            recipient = self._recipient(session, code)
            versions = session.exec(select(Submission).where(Submission.recipient_id == recipient.id)).all()
            late = received > self.definition.spec.deadline
            session.add(Submission(recipient_id=recipient.id, version=len(versions) + 1, valid=valid,
                                   errors=[] if valid else [{"cell": "C5", "message": "应为数字"}],
                                   late=late, values=values or {}, received_at=received))
            current = RecipientStatus(recipient.status)
            if current not in (RecipientStatus.replied, RecipientStatus.late):
                transition(session, recipient, RecipientStatus.late if late else RecipientStatus.replied,
                           kind="submission_received")
            recipient.last_reply_at = received

    def attach(self, code: str, files: list[tuple[str, bytes]], at: str = ON_TIME) -> list[str]:
        """Attachments of one mail of the unit, stored as mail/attachments.py stores them; returns
        their stored paths (relative to the output directory)."""
        self._inbound += 1
        root = get_settings().output_dir / CID / "attachments"
        with session_scope() as session:
            recipient = self._recipient(session, code)
            inbound = InboundMessage(campaign_id=CID, recipient_id=recipient.id, folder="INBOX", uidvalidity=1,
                                     uid=self._inbound, sha256=hashlib.sha256(str(self._inbound).encode()).hexdigest(),
                                     raw_path=f"{CID}/mail/{self._inbound}.eml", received_at=parse_instant(at))
            session.add(inbound)
            session.flush()
            start = len(session.exec(select(Attachment).where(Attachment.recipient_id == recipient.id)).all()) + 1
            stored = store_attachments([ParsedAttachment(name, "application/octet-stream", data)
                                        for name, data in files], root, code, start_seq=start)
            paths = []
            for item in stored:
                path = f"{CID}/attachments/{item.stored_path}" if item.stored_path else ""
                session.add(Attachment(inbound_id=inbound.id, recipient_id=recipient.id, seq=item.seq,
                                       stored_path=path, original_name=item.original_name, sha256=item.sha256,
                                       size=item.size, sniffed_type=item.sniffed_type, verdict=item.verdict[:32]))
                paths.append(path)
        return paths

    # -- what the summary sees ------------------------------------------------------------------------
    def records(self):
        with session_scope() as session:
            return gather_unit_records(session, CID, self.codes)

    def aggregation(self):
        return aggregate(self.definition, [record.outcome() for record in self.records()])

    def document(self, day: date = SUMMARY_DAY):
        return summary_document(self.definition, self.aggregation(), day)


def synthetic_units(count: int, name=lambda n: f"测试单位{n:03d}") -> list[tuple[str, str, str]]:
    return [(f"T{n:03d}", name(n), KINDS[n % len(KINDS)]) for n in range(1, count + 1)]
