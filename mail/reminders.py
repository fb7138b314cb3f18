"""Who is chased with what, now: the Prefect-free core of the chase (flows/escalate.py runs it).

The rules, decided here once:

- **Who.** The ladder runs only for units that were notified and still owe a reply: status
  `notified`, `overdue` or `escalated`. Units `pending` (notice not sent yet), `bounced` (nothing
  reaches them until staff fix the address and the notice is sent again), `exempt`, `needs_review`
  (staff must look first), `replied` and `late` get nothing. A reply stops every further step at
  once, and a unit that changes state between planning and sending is skipped at send time
  (`still_awaiting`).
- **When.** Level-triggered: each run computes from the database and the clock which step is due
  (`forms.ladder.decide`) and sends the most advanced due step not yet sent; older due steps never
  sent are recorded `skipped`, so after downtime one reminder goes out, not a burst. Reminders go
  out on working days only: a run on a rest day sends and records nothing, and the next run on a
  working day catches up. A step that fell due before the unit was notified is recorded skipped,
  never sent: a unit notified late must not get a 督办 minutes after its notice.
- **What.** A unit whose reply was rejected — its newest Submission is not valid — gets
  `reminder_correction` (naming the errors) instead of the step's template, under the same step
  key, so the step still counts once. Every ladder email is an outbox row of kind
  `models.status.REMINDER_KIND`, step = the ladder key, Message-ID from the same facts.
- **State.** `notified → overdue` on the first run after the effective deadline (any day, it is a
  fact of the clock); `overdue → escalated` when a step marked `escalates` is sent. A reminder the
  unit's server refuses (5xx) marks the unit `bounced`, with the server's words.
- **Digest.** One email a day to the office mailbox; its step key is the Beijing date, so there is
  one per day whatever the number of runs. Due from `digest.at` until the end of that day, only on
  working days, only while the campaign is active and some unit still awaits a reply or needs
  review. A digest of an earlier day that never went out is retired (`skipped`), not sent late.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from forms.campaign import CampaignSpec, LadderStep
from forms.ladder import decide, deadline_of
from forms.workdays import is_working_day
from mail import outbox
from mail.outbound import SmtpFailure
from models.clock import CHINA_TZ
from models.states import AWAITING_REPLY, RecipientStatus, record_event, transition
from models.status import REMINDER_KIND, UnknownCampaign, latest_submission_errors, campaign_status
from models.tables import Campaign, OutboundMessage, OutboundState, Recipient, Unit

CORRECTION_TEMPLATE = "reminder_correction"
DIGEST_KIND = "digest"
# The digest belongs to no unit; unit codes are upper case, so this can never collide with one.
DIGEST_ADDRESSEE = "office"

EVENT_OVERDUE = "chase.overdue"
EVENT_ESCALATED = "chase.escalated"
EVENT_BOUNCED = "chase.bounced"
EVENT_SENT = "reminder.sent"
EVENT_SKIPPED = "reminder.skipped"

SKIP_SUPERSEDED = "已有更晚一级的提醒到期，此级不再补发"
SKIP_BEFORE_NOTICE = "此级提醒在通知送达前已到期，不再补发"
SKIP_STALE_DIGEST = "当日未能发出的日报已过期，不再补发"
# Steps already acted on: never sent again. A `failed` row (refused) also counts: the unit is then
# `bounced` and its next step waits for staff, not for a retry against the same refusal.
_DONE = (OutboundState.sent, OutboundState.skipped, OutboundState.failed)


# -- the campaign -------------------------------------------------------------------------------

def load_campaign_spec(session: Session, campaign_id: str) -> tuple[Campaign, CampaignSpec]:
    """The campaign row and its definition as loaded (Campaign.definition), so the chase needs no
    access to the campaign folder."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise UnknownCampaign(f"找不到活动 {campaign_id}，请先执行 noticeflow load 或 noticeflow issue")
    return campaign, CampaignSpec.model_validate(campaign.definition)


def active_campaign_ids(session: Session) -> list[str]:
    return list(session.exec(select(Campaign.id).where(Campaign.active == True).order_by(Campaign.id)))  # noqa: E712


def awaiting_recipient_ids(session: Session, campaign_id: str) -> list[int]:
    """Recipients the ladder may concern now (it re-reads each one before acting)."""
    return list(session.exec(select(Recipient.id).where(Recipient.campaign_id == campaign_id,
                                                        Recipient.status.in_(list(AWAITING_REPLY)))
                             .order_by(Recipient.id)))


# -- the plan of one run --------------------------------------------------------------------------

@dataclass(frozen=True)
class UnitRef:
    recipient_id: int
    code: str
    name: str
    token: str
    email: str
    leader_email: str
    notified_at: datetime | None


@dataclass(frozen=True)
class DueReminder:
    """One ladder email to send now."""

    unit: UnitRef
    step: LadderStep
    due_at: datetime
    template: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    errors: tuple[str, ...] = ()  # the rejected reply's errors (correction variant only)

    @property
    def correction(self) -> bool:
        return self.template == CORRECTION_TEMPLATE


@dataclass(frozen=True)
class SkippedReminder:
    unit: UnitRef
    step: LadderStep
    due_at: datetime
    reason: str


@dataclass
class ChasePlan:
    campaign_id: str
    now: datetime
    due: list[DueReminder] = field(default_factory=list)
    skipped: list[SkippedReminder] = field(default_factory=list)
    became_overdue: list[UnitRef] = field(default_factory=list)
    rest_day: bool = False


def plan_reminders(session: Session, campaign_id: str, recipient_ids: list[int], now: datetime) -> ChasePlan:
    """Moves notified units past the deadline to `overdue` and decides each unit's step.

    Writes the overdue transitions only; the caller records the skips (`record_skipped`) and sends
    the due ones. Call under `mail.outbox.sending_lock(campaign_id)`, so two runs never decide on
    the same unit at once."""
    _, spec = load_campaign_spec(session, campaign_id)
    plan = ChasePlan(campaign_id, now, rest_day=not is_working_day(now))
    overdue = now > deadline_of(spec)
    done = _done_steps(session, campaign_id, recipient_ids)
    rejected = latest_submission_errors(session, campaign_id)
    rows = session.exec(select(Recipient, Unit).join(Unit, Unit.id == Recipient.unit_id)
                        .where(Recipient.id.in_(recipient_ids)).order_by(Recipient.id).with_for_update()).all()
    for recipient, unit in rows:
        if RecipientStatus(recipient.status) not in AWAITING_REPLY:
            continue  # replied, exempted or bounced since the batch was cut
        ref = UnitRef(recipient.id, unit.code, unit.name, recipient.token, unit.email, unit.leader_email,
                      recipient.notified_at)
        if overdue and recipient.status == RecipientStatus.notified:
            transition(session, recipient, RecipientStatus.overdue, kind=EVENT_OVERDUE,
                       detail={"deadline": deadline_of(spec).isoformat()})
            plan.became_overdue.append(ref)
        if plan.rest_day:
            continue
        decision = decide(spec, now, done.get(recipient.id, set()))
        send = decision.send
        if send is not None and _before_notice(ref, send.due_at):
            send = None
        for item in [*decision.skip, *([decision.send] if decision.send is not None and send is None else [])]:
            reason = SKIP_BEFORE_NOTICE if _before_notice(ref, item.due_at) else SKIP_SUPERSEDED
            plan.skipped.append(SkippedReminder(ref, item.step, item.due_at, reason))
        if send is not None:
            errors = rejected.get(recipient.id)
            to, cc = addresses(send.step, unit, spec.office.email)
            template = send.step.template if errors is None else CORRECTION_TEMPLATE
            plan.due.append(DueReminder(ref, send.step, send.due_at, template, to, cc, tuple(errors or ())))
    session.flush()
    return plan


def _before_notice(unit: UnitRef, due_at: datetime) -> bool:
    return unit.notified_at is not None and due_at < unit.notified_at


def _done_steps(session: Session, campaign_id: str, recipient_ids: list[int]) -> dict[int, set[str]]:
    rows = session.exec(select(OutboundMessage.recipient_id, OutboundMessage.step)
                        .where(OutboundMessage.campaign_id == campaign_id, OutboundMessage.kind == REMINDER_KIND,
                               OutboundMessage.recipient_id.in_(recipient_ids),
                               OutboundMessage.state.in_(list(_DONE))))
    done: dict[int, set[str]] = defaultdict(set)
    for recipient_id, step in rows:
        done[recipient_id].add(step)
    return done


def addresses(step: LadderStep, unit: Unit, office_email: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The step's to/cc roles as addresses: each address once, and never in cc when it is in to."""
    by_role = {"unit": unit.email, "leader": unit.leader_email, "office": office_email}
    to = tuple(dict.fromkeys(by_role[role].lower() for role in step.to))
    cc = tuple(a for a in dict.fromkeys(by_role[role].lower() for role in step.cc) if a not in to)
    return to, cc


# -- the outbox -----------------------------------------------------------------------------------

def reminder_message_id(token_prefix: str, unit_code: str, step: str, domain: str) -> str:
    return outbox.make_message_id(REMINDER_KIND, token_prefix, unit_code, step, domain)


def reminder_item(campaign: Campaign, due: DueReminder, subject: str, domain: str) -> outbox.OutboxItem:
    return outbox.OutboxItem(
        campaign_id=campaign.id, recipient_id=due.unit.recipient_id, unit_code=due.unit.code,
        kind=REMINDER_KIND, step=due.step.key, to=due.to, cc=due.cc, subject=subject,
        message_id=reminder_message_id(campaign.token_prefix, due.unit.code, due.step.key, domain))


def record_skipped(session: Session, campaign: Campaign, skipped: list[SkippedReminder], domain: str) -> int:
    """A `skipped` outbox row per skipped step (and an Event), so that step is never sent later.
    Returns how many rows this call moved to `skipped`."""
    if not skipped:
        return 0
    items = [outbox.OutboxItem(
        campaign_id=campaign.id, recipient_id=s.unit.recipient_id, unit_code=s.unit.code, kind=REMINDER_KIND,
        step=s.step.key, to=(s.unit.email,), subject=f"（未发送）{s.step.label}",
        message_id=reminder_message_id(campaign.token_prefix, s.unit.code, s.step.key, domain)) for s in skipped]
    rows = outbox.enqueue(session, items)
    moved = 0
    for item, skip in zip(items, skipped):
        row = rows[item.key]
        if row.state not in outbox.OPEN_STATES:
            continue
        outbox.mark_skipped(session, row.id, skip.reason)
        record_event(session, campaign.id, EVENT_SKIPPED, recipient_id=skip.unit.recipient_id,
                     detail={"step": skip.step.key, "label": skip.step.label,
                             "due_at": skip.due_at.isoformat(), "reason": skip.reason})
        moved += 1
    session.flush()
    return moved


def still_awaiting(session: Session, row: outbox.OutboxRow) -> bool:
    """Checked right before sending: a unit that replied or was exempted meanwhile gets nothing."""
    recipient = session.get(Recipient, row.recipient_id)
    return recipient is not None and RecipientStatus(recipient.status) in AWAITING_REPLY


def on_reminder_sent(spec: CampaignSpec):
    """The outbox's on_sent callback: an Event, and `overdue → escalated` for an escalating step."""
    escalating = {step.key for step in spec.ladder if step.escalates}

    def record(session: Session, row: outbox.OutboxRow) -> None:
        recipient = session.get(Recipient, row.recipient_id)
        detail = {"step": row.step, "message_id": row.message_id, "to": row.to_addrs, "cc": row.cc_addrs}
        record_event(session, row.campaign_id, EVENT_SENT, recipient_id=row.recipient_id, detail=detail)
        if row.step in escalating and recipient.status == RecipientStatus.overdue:
            transition(session, recipient, RecipientStatus.escalated, kind=EVENT_ESCALATED, detail=detail)

    return record


def on_reminder_refused(session: Session, row: outbox.OutboxRow, failure: SmtpFailure) -> None:
    """The outbox's on_refused callback: the unit's server refused the reminder for good."""
    recipient = session.get(Recipient, row.recipient_id)
    detail = {"step": row.step, "message_id": row.message_id, "to": row.to_addrs,
              "smtp_code": failure.code, "server_text": failure.server_text}
    if RecipientStatus(recipient.status) in AWAITING_REPLY:
        reason = (f"催报邮件被对方邮件服务器拒收（{failure.describe()}），请与该单位电话核实邮箱，"
                  "修改 units.csv 后重新下发通知")
        transition(session, recipient, RecipientStatus.bounced, kind=EVENT_BOUNCED, reason=reason, detail=detail)
    else:
        record_event(session, row.campaign_id, EVENT_BOUNCED, recipient_id=recipient.id, detail=detail)


# -- the daily digest -----------------------------------------------------------------------------

def digest_step(now: datetime) -> str:
    return now.astimezone(CHINA_TZ).date().isoformat()


def digest_message_id(token_prefix: str, step: str, domain: str) -> str:
    return outbox.make_message_id(DIGEST_KIND, token_prefix, DIGEST_ADDRESSEE, step, domain)


def digest_due(session: Session, campaign: Campaign, spec: CampaignSpec, now: datetime) -> str | None:
    """Today's digest step key when a digest is due now (see the module docstring), else None."""
    local = now.astimezone(CHINA_TZ)
    if spec.digest is None or not campaign.active or not is_working_day(local):
        return None
    if local.time() < spec.digest.at:
        return None
    waiting = set(AWAITING_REPLY) | {RecipientStatus.needs_review}
    someone = session.exec(select(Recipient.id).where(Recipient.campaign_id == campaign.id,
                                                      Recipient.status.in_(list(waiting))).limit(1)).first()
    return digest_step(local) if someone is not None else None


def retire_stale_digests(session: Session, campaign_id: str, today: str) -> int:
    """Digests of earlier days still pending (the mail server was down): skipped, never sent late."""
    stale = session.exec(select(OutboundMessage.id).where(
        OutboundMessage.campaign_id == campaign_id, OutboundMessage.kind == DIGEST_KIND,
        OutboundMessage.step != today, OutboundMessage.state == OutboundState.pending)).all()
    for row_id in stale:
        outbox.mark_skipped(session, row_id, SKIP_STALE_DIGEST)
    return len(stale)


@dataclass(frozen=True)
class DigestUnit:
    code: str
    name: str
    note: str = ""


@dataclass
class DigestContent:
    """Where every unit stands, grouped as the office reads it."""

    as_of: datetime
    deadline: datetime
    replied: list[DigestUnit] = field(default_factory=list)       # 已报
    late: list[DigestUnit] = field(default_factory=list)          # 逾期已报
    awaiting: list[DigestUnit] = field(default_factory=list)      # 未报
    bounced: list[DigestUnit] = field(default_factory=list)       # 退信
    needs_review: list[DigestUnit] = field(default_factory=list)  # 待核
    exempt: list[DigestUnit] = field(default_factory=list)        # 已豁免
    not_notified: list[DigestUnit] = field(default_factory=list)  # 通知尚未送达

    @property
    def total(self) -> int:
        return sum(len(group) for group in (self.replied, self.late, self.awaiting, self.bounced,
                                            self.needs_review, self.exempt, self.not_notified))

    @property
    def overdue(self) -> bool:
        return self.as_of > self.deadline


_AWAITING_NOTES = {"notified": "未到截止时间", "overdue": "已逾期", "escalated": "已逾期，已督办"}


def digest_content(session: Session, campaign_id: str, now: datetime) -> DigestContent:
    """The digest's facts, from the same report as `noticeflow status --json`."""
    _, spec = load_campaign_spec(session, campaign_id)
    report = campaign_status(session, campaign_id)
    rejected = latest_submission_errors(session, campaign_id)
    codes = dict(session.exec(select(Unit.code, Recipient.id).join(Unit, Unit.id == Recipient.unit_id)
                              .where(Recipient.campaign_id == campaign_id)).all())
    reasons = dict(session.exec(select(Unit.code, Recipient.status_reason)
                                .join(Unit, Unit.id == Recipient.unit_id)
                                .where(Recipient.campaign_id == campaign_id)).all())
    content = DigestContent(as_of=now.astimezone(CHINA_TZ), deadline=deadline_of(spec))
    for unit in report["units"]:
        status, code, name = unit["status"], unit["code"], unit["name"]
        if status in ("replied", "late"):
            when = datetime.fromisoformat(unit["last_reply_at"]) if unit["last_reply_at"] else None
            note = f"{when.month}月{when.day}日{when.hour}时{when.minute:02d}分报送" if when else ""
            (content.replied if status == "replied" else content.late).append(DigestUnit(code, name, note))
        elif status in _AWAITING_NOTES:
            parts = [_AWAITING_NOTES[status]]
            if unit["reminders_sent"]:
                parts.append(f"已发提醒{unit['reminders_sent']}次")
            if codes.get(code) in rejected:
                parts.append("所报回执有误，待更正后重报")
            content.awaiting.append(DigestUnit(code, name, "，".join(parts)))
        elif status == "bounced":
            content.bounced.append(DigestUnit(code, name, f"{unit['email']}：{reasons.get(code) or '邮件被退回'}"))
        elif status == "needs_review":
            content.needs_review.append(DigestUnit(code, name, reasons.get(code) or "需人工核对"))
        elif status == "exempt":
            content.exempt.append(DigestUnit(code, name, reasons.get(code, "")))
        else:
            content.not_notified.append(DigestUnit(code, name))
    return content


def digest_item(campaign: Campaign, step: str, subject: str, domain: str) -> outbox.OutboxItem:
    return outbox.OutboxItem(
        campaign_id=campaign.id, recipient_id=None, unit_code=DIGEST_ADDRESSEE, kind=DIGEST_KIND, step=step,
        to=(campaign.office_email,), subject=subject,
        message_id=digest_message_id(campaign.token_prefix, step, domain))
