"""A campaign in every state, for the staff page's tests: the seed campaign's units, notices sent
(one refused), replies collected by the real pipeline (mail.ingest processing raw messages on disk:
valid, with errors, late, one from a stranger that matches no unit), reminders, an escalation, a
review case, an exemption, and the documents on disk (the notice; the summary, its xlsx and bundle
by the summary flow). Time is moved with NOTICEFLOW_NOW."""
from __future__ import annotations

import email.policy
import email.utils
import hashlib
import shutil
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import select

from documents.notice import NOTICE_FILE_NAME, render_notice
from documents.summary import SUMMARY_FILE_PREFIX
from flows.runner import run_flow
from flows.summarize import publish_summary
from forms.campaign import load_campaign
from forms.reply_form import reply_form_bytes
from forms.form_filling import fill_reply_form
from forms.schema import FormSchema
from forms.store import upsert_campaign
from mail import ingest
from mail.rawstore import write_atomically
from models import db
from models.actions import exempt_unit
from models.clock import now
from models.db import session_scope
from models.settings import CAMPAIGNS_DIR, DEFAULT_OFFICE_LOGIN, get_settings, reload_settings
from models.staff import add_staff
from models.states import RecipientStatus, transition
from models.tables import InboundMessage, OutboundMessage, OutboundState, Recipient, Unit

import synthetic

CID = "xinqu-2023-9"
OFFICE = DEFAULT_OFFICE_LOGIN
ISSUED_AT = "2023-10-08T09:00:00"
BEFORE_DEADLINE = "2023-10-09T15:30:00"
AFTER_DEADLINE = "2023-10-11T09:00:00"
NOW = "2023-10-12T10:00:00"
STAFF_NAME = "张敏"
STAFF_PASSWORD = "qiuzhi-2023-wmb"
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
STRANGER = "wangli1985@mail.example.test"
SECRET = "web-test-secret"


def figures(schema: FormSchema, seed: int) -> dict[str, object]:
    return synthetic.figures(schema, seed, step=10)




# The units the scene gives a part to; every other unit is notified and stays silent (overdue), the
# last one of the list is never notified (pending).
SCENE_UNITS = ("YQ01", "YQ02", "YQ03", "YQ04", "YQ05", "YQ06", "YQ07", "YQ08", "YQ09", "YQ10", "BM01", "BM02")


def message_bytes(sender: str, subject: str, form: bytes | None, body: str = "报送材料见附件，请查收。") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = OFFICE
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain=sender.split("@")[1])
    message.set_content(body)
    if form is not None:
        message.add_attachment(form, maintype=XLSX[0], subtype=XLSX[1], filename="回执表（已填写）.xlsx")
    return message.as_bytes(policy=email.policy.SMTP)


def deliver(raw: bytes) -> ingest.Outcome:
    """A message as the collector records and processes it (no IMAP server needed for that part):
    the raw file on disk, a `stored` row, then mail.ingest's processing."""
    with session_scope() as session:
        uid = ingest.last_seen_uid(session, "INBOX", 1) + 1
    relative = Path(CID) / "mail" / "INBOX-1" / f"{uid:010d}.eml"
    output_dir = Path(get_settings().output_dir)
    write_atomically(output_dir / relative, raw)
    with session_scope() as session:
        row = InboundMessage(campaign_id=CID, folder="INBOX", uidvalidity=1, uid=uid,
                             sha256=hashlib.sha256(raw).hexdigest(), raw_path=relative.as_posix(), size=len(raw),
                             state=ingest.STORED, detail={"content_sha256": ingest.content_sha256(raw)},
                             received_at=now())
        session.add(row)
        session.flush()
        inbound_id = row.id
    return ingest.process_message(inbound_id, ingest.Scope([CID]))


class WebWorld:
    def __init__(self, tmp_path: Path, monkeypatch, unit_count: int | None = None):
        self.monkeypatch = monkeypatch
        campaign_dir = tmp_path / "campaign" / CID
        shutil.copytree(CAMPAIGNS_DIR / CID, campaign_dir)
        if unit_count is not None:
            lines = (campaign_dir / "units.csv").read_text("utf-8").splitlines()
            (campaign_dir / "units.csv").write_text("\n".join(lines[:unit_count + 1]) + "\n", "utf-8")
        self.definition = load_campaign(campaign_dir)
        self.schema = self.definition.form
        self.units = {unit.code: unit for unit in self.definition.units}
        self.codes = list(self.units)
        self.output_dir = Path(get_settings().output_dir)
        self.at(ISSUED_AT)
        with session_scope() as session:
            upsert_campaign(session, self.definition)
            add_staff(session, STAFF_NAME, STAFF_PASSWORD)
        render_notice(self.definition, self.output_dir / CID / NOTICE_FILE_NAME)

    # -- time and lookups -----------------------------------------------------------------------------
    def at(self, when: str):
        self.monkeypatch.setenv("NOTICEFLOW_NOW", when)
        return now()

    def token(self, code: str) -> str:
        with session_scope() as session:
            return self._recipient(session, code).token

    def status(self, code: str) -> str:
        with session_scope() as session:
            return RecipientStatus(self._recipient(session, code).status).value

    @staticmethod
    def _recipient(session, code: str) -> Recipient:
        return session.exec(select(Recipient).join(Unit, Unit.id == Recipient.unit_id)
                            .where(Recipient.campaign_id == CID, Unit.code == code)).one()

    # -- what the program did ----------------------------------------------------------------------------
    def notify(self, codes, *, refused=()) -> None:
        """The notices as the issue flow records them: an outbox row each, the unit notified or bounced."""
        with session_scope() as session:
            for code in codes:
                recipient = self._recipient(session, code)
                failed = code in refused
                session.add(OutboundMessage(
                    dedupe_key=f"{CID}:{code}:notice:issue", campaign_id=CID, recipient_id=recipient.id,
                    kind="notice", step="issue", message_id=f"<notice.XQ9.{code}.issue@wenmingban.example>",
                    to_addrs=[self.units[code].email], subject="通知", attempts=1,
                    state=OutboundState.failed if failed else OutboundState.sent,
                    last_error="550 5.1.1 User unknown" if failed else "", sent_at=None if failed else now()))
                if failed:
                    transition(session, recipient, RecipientStatus.bounced, kind="notice.bounced",
                               reason="通知邮件被对方邮件服务器拒收（550 5.1.1 User unknown），请核对该单位邮箱")
                else:
                    transition(session, recipient, RecipientStatus.notified, kind="notice.sent",
                               detail={"to": [self.units[code].email]})
                    recipient.notified_at = now()

    def remind(self, code: str, step: str) -> None:
        with session_scope() as session:
            recipient = self._recipient(session, code)
            session.add(OutboundMessage(
                dedupe_key=f"{CID}:{code}:reminder:{step}", campaign_id=CID, recipient_id=recipient.id,
                kind="reminder", step=step, message_id=f"<reminder.XQ9.{code}.{step}@wenmingban.example>",
                to_addrs=[self.units[code].email], subject="催报", state=OutboundState.sent, attempts=1, sent_at=now()))

    def move(self, code: str, target: RecipientStatus, kind: str, reason: str = "") -> None:
        with session_scope() as session:
            transition(session, self._recipient(session, code), target, kind=kind, reason=reason)

    def form(self, code: str, values: dict, *, token: bool = True) -> bytes:
        unit = self.units[code]
        return fill_reply_form(reply_form_bytes(self.definition, unit.name, self.token(code) if token else ""), self.schema,
                    values)

    def reply(self, code: str, values: dict) -> ingest.Outcome:
        unit = self.units[code]
        return deliver(message_bytes(unit.email, f"回复：关于报送情况【{self.token(code)}】", self.form(code, values)))

    # -- the summary on disk --------------------------------------------------------------------------------
    def write_summary(self) -> Path:
        """The 情况通报, the 汇总表 and the bundle, as the summary flow writes them (flow body, no server)."""
        run_flow(publish_summary, CID)
        return sorted((self.output_dir / CID).glob(f"{SUMMARY_FILE_PREFIX}*.docx"))[-1]

    # -- the whole scene ---------------------------------------------------------------------------------------
    def populate(self) -> "WebWorld":
        """Every status on the board, as a real campaign gets there."""
        codes = self.codes
        pending = codes[-1]
        assert pending not in SCENE_UNITS, "the scene needs one unit beyond the ones it uses"
        self.notify([c for c in codes if c != pending], refused={"YQ08"})
        self.at(BEFORE_DEADLINE)
        for seed, code in enumerate(("YQ01", "YQ02", "YQ03", "BM01", "BM02"), start=1):
            self.reply(code, figures(self.schema, seed))
        self.reply("YQ04", figures(self.schema, 4) | {"xuanjiang.sessions": "十几场", "phone": None})
        self.remind("YQ06", "gentle")
        self.remind("YQ07", "gentle")
        self.at(AFTER_DEADLINE)
        self.reply("YQ05", figures(self.schema, 5))
        stranger_form = self.form("YQ10", figures(self.schema, 10), token=False)
        self.stranger = deliver(message_bytes(STRANGER, "统计表", stranger_form))
        for code in codes:
            if self.status(code) == "notified":
                self.move(code, RecipientStatus.overdue, "chase.overdue")
        self.remind("YQ06", "urge")
        self.move("YQ06", RecipientStatus.escalated, "chase.escalated")
        self.move("YQ07", RecipientStatus.needs_review, "reply_needs_review",
                  "单位来信附有网盘链接，回执表可能在链接中，请下载核对")
        with session_scope() as session:
            exempt_unit(session, CID, "YQ09", "该单位已撤并，经领导同意免报", actor="李主任")
        self.at(NOW)
        self.summary_path = self.write_summary()
        return self


# -- one scene per test module, a fresh copy for each test ----------------------------------------------------

@dataclass(frozen=True)
class Scene:
    root: Path
    stranger_id: int
    summary_name: str


def point_at(patch, root: Path) -> None:
    """The program's output directory and database under `root`."""
    patch.setenv("NOTICEFLOW_OUTPUT_DIR", str(root / "outputs"))
    patch.setenv("NOTICEFLOW_DATABASE_URL", f"sqlite:///{root / 'noticeflow.db'}")
    patch.setenv("NOTICEFLOW_SECRET", SECRET)
    db.reset_engines()
    reload_settings()


def build_scene(root: Path, unit_count: int | None = None) -> Scene:
    with pytest.MonkeyPatch.context() as patch:
        point_at(patch, root)
        world = WebWorld(root, patch, unit_count).populate()
        scene = Scene(root, world.stranger.inbound_id, world.summary_path.name)
        db.reset_engines()   # closes the database, so a copy of the file is complete
    reload_settings()
    return scene


def copy_scene(scene: Scene, target: Path, patch) -> None:
    """Point the program at a copy of the scene (files and database) under `target`, at NOW."""
    shutil.copytree(scene.root / "outputs", target / "outputs", symlinks=True)
    shutil.copy(scene.root / "noticeflow.db", target / "noticeflow.db")
    point_at(patch, target)
    patch.setenv("NOTICEFLOW_NOW", NOW)
