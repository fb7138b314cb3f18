"""Staff actions that go through the mail and forms pipeline, without Prefect:

- assign a message that matched no unit to the unit staff recognise; it is then handled exactly as
  if the collector had matched it (attachments stored under the unit, the form read, a Submission
  version, the status, the 回执 or correction request queued in the outbox);
- record a reply that came on paper or by phone, from the form file staff filled in: the same
  checks as an emailed attachment (size, content sniffing, the OOXML guard, the form read in a
  limited child process), then a Submission like any other;
- correct a unit's mailbox before its notice is sent again.

The record keeping is mail.ingest's own, so a reply counts the same whichever way it arrived. Each
action writes an Event naming the staff member. Errors are ActionError with a Chinese message."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import update
from sqlmodel import Session, select

from forms.campaign import Email
from forms.form_reader import FormReading, NotAReplyForm, read_reply_form
from forms.ooxml_guard import UnsafeFile
from mail import ingest
from mail.attachments import DEFAULT_LIMITS, XLSX_MIME
from mail.classify import Kind, classify
from mail.matching import MatchResult
from mail.mime import ParsedAttachment, parse_message
from mail.rawstore import read_raw
from models import tokens
from models.actions import EVENT_EMAIL_CORRECTED, ActionError, find_recipient
from models.clock import now
from models.states import record_event
from models.tables import Attachment, InboundMessage, Recipient, Submission, Unit

EVENT_ASSIGN = "staff.assign_message"
EVENT_OFFLINE_REPLY = "staff.offline_reply"
STAFF_MATCH_KEY = "staff"
CHANNELS = {"paper": "纸质", "phone": "电话"}
# Messages whose processing is finished; a `stored` one is still the collector's, a `failed` one
# breaks the pipeline itself and needs a maintainer first.
_ASSIGNABLE_STATES = (ingest.PROCESSED, ingest.MOVED, ingest.UID_EXPIRED)
_NOT_REPLIES = (Kind.bounce, Kind.auto_reply)
_email_address = TypeAdapter(Email)


# -- messages waiting for staff --------------------------------------------------------------------

def awaiting_assignment(inbound: InboundMessage) -> bool:
    """A processed message that matched no unit and was put to staff."""
    return (inbound.recipient_id is None and bool((inbound.detail or {}).get("needs_review"))
            and inbound.state in _ASSIGNABLE_STATES
            and inbound.classification not in (Kind.bounce.value, Kind.auto_reply.value, ingest.DUPLICATE))


def messages_awaiting_assignment(session: Session, campaign_id: str) -> list[InboundMessage]:
    rows = session.exec(select(InboundMessage).where(InboundMessage.campaign_id == campaign_id,
                                                     InboundMessage.recipient_id == None)  # noqa: E711
                        .order_by(InboundMessage.received_at, InboundMessage.id))
    return [row for row in rows if awaiting_assignment(row)]


# -- assigning a message -----------------------------------------------------------------------------

class _StaffAssignment(ingest._Processing):
    """The collector's handling of a reply, with the unit chosen by staff instead of matched."""

    def __init__(self, session: Session, scope: ingest.Scope, inbound: InboundMessage, unit_code: str):
        super().__init__(session, scope, inbound, None)
        self.unit_code = unit_code

    def assign(self) -> ingest.Outcome:
        raw = read_raw(self.scope.raw_file(self.inbound))
        self.parsed = parse_message(raw)
        classification = classify(raw, self.parsed, own_addresses=self.scope.own_addresses(self.session))
        if classification.kind in _NOT_REPLIES:
            raise ActionError("这封邮件是退信或自动回复，不是单位的报送，不能归属到单位。"
                              "退信请在单位页面更正邮箱后重新发送通知。")
        previous_reason = self.detail.pop("review_reason", "")
        self.detail.update(needs_review=False, resolved_review_reason=previous_reason)
        campaign = self.scope.campaign(self.session, self.inbound.campaign_id)
        return self._reply(campaign, classification, rerouted=True)

    def _match(self, campaign, form_tokens) -> MatchResult:
        for text in form_tokens:
            token = tokens.parse(text)
            if (token and token.prefix == campaign.token_prefix.upper() and token.unit_code != self.unit_code
                    and tokens.verify(token)):
                raise ActionError(f"邮件所附回执表上的编号 {token} 属于单位 {token.unit_code}，不是 {self.unit_code}。"
                                  "请核对后归属到正确的单位。")
        self.detail["match"] = {"unit": self.unit_code, "key": STAFF_MATCH_KEY, "reason": "",
                                "form_tokens": list(form_tokens)}
        return MatchResult(unit_code=self.unit_code, key=STAFF_MATCH_KEY, candidates=[], needs_review=False,
                           reason_zh="")


def assign_inbound_to_unit(session: Session, inbound_id: int, unit_code: str, actor: str) -> ingest.Outcome:
    """Treat the message `inbound_id` (one that matched no unit) as the reply of `unit_code`.
    Its 回执 or correction request waits in the outbox; `mail.ingest.send_answers` (any collect run)
    sends it. Returns what the processing did."""
    inbound = session.get(InboundMessage, inbound_id)
    if inbound is None or inbound.campaign_id is None:
        raise ActionError(f"找不到编号为 {inbound_id} 的待归属邮件，请刷新页面后重试")
    if not awaiting_assignment(inbound):
        raise ActionError(f"邮件 {inbound_id} 不在待归属列表中（可能已被归属或正在处理），请刷新页面查看")
    recipient = find_recipient(session, inbound.campaign_id, unit_code)
    unit = session.get(Unit, recipient.unit_id)
    # Claim the message: of two staff members assigning it at once, the second finds it taken.
    claimed = session.exec(update(InboundMessage).where(InboundMessage.id == inbound.id,
                                                        InboundMessage.recipient_id == None)  # noqa: E711
                           .values(recipient_id=recipient.id))
    if claimed.rowcount != 1:
        raise ActionError(f"邮件 {inbound_id} 刚刚已被归属，请刷新页面查看")
    state_before = inbound.state
    # The unit gets its own copies of the attachments (stored under its code); the copies kept while
    # the message belonged to nobody are no longer listed.
    for row in session.exec(select(Attachment).where(Attachment.inbound_id == inbound.id,
                                                     Attachment.recipient_id == None)):  # noqa: E711
        session.delete(row)
    session.flush()
    outcome = _StaffAssignment(session, ingest.Scope([inbound.campaign_id]), inbound, unit.code).assign()
    inbound.state = state_before   # where the message is on the mail server has not changed
    session.add(inbound)
    record_event(session, inbound.campaign_id, EVENT_ASSIGN, recipient_id=recipient.id, actor=actor,
                 detail={"inbound_id": inbound.id, "subject": inbound.subject[:200], "from": inbound.from_addr,
                         "version": outcome.submission_version, "answer": outcome.answer})
    session.flush()
    return outcome


# -- a reply on paper or by phone ----------------------------------------------------------------------

@dataclass
class _OfflineReceipt:
    """What the pipeline's record keeping reads from an InboundMessage, for a reply that has none."""

    received_at: datetime
    id: None = None
    detail: dict = field(default_factory=dict)


def record_offline_reply(session: Session, campaign_id: str, unit_code: str, file_bytes: bytes,
                         original_name: str, actor: str, channel: str = "paper") -> Submission:
    """Record the reply form staff filled in from a paper or phone reply as the unit's next
    Submission version (received now). Refused, with nothing stored, when the file fails the checks
    an emailed attachment must pass or is not this campaign's form, or carries another unit's token."""
    if channel not in CHANNELS:
        raise ActionError(f"报送方式只能是{'或'.join(CHANNELS.values())}")
    recipient = find_recipient(session, campaign_id, unit_code)
    unit = session.get(Unit, recipient.unit_id)
    limit = DEFAULT_LIMITS.max_attachment_bytes
    if not file_bytes:
        raise ActionError("上传的文件是空的，请选择填好的回执表（.xlsx）后重新上传")
    if len(file_bytes) > limit:
        raise ActionError(f"上传的文件超过 {limit // (1024 * 1024)} MB 的上限，请删除表中多余的图片后重新上传")
    scope = ingest.Scope([campaign_id])
    campaign = scope.campaign(session, campaign_id)
    reading = _read_form(file_bytes, campaign.schema)
    _check_token(session, reading, recipient, unit, campaign.token_prefix)

    processing = ingest._Processing(session, scope, _OfflineReceipt(received_at=now()), None)
    stored = processing._store(campaign, [ParsedAttachment(original_name or "回执表.xlsx", XLSX_MIME, file_bytes)],
                               recipient, unit)
    if stored[0].verdict != "stored":
        raise ActionError(stored[0].message_zh)
    attachment = processing._attachment_rows(campaign, stored, recipient)[0]
    submission = processing._add_submission(campaign, recipient, reading, attachment)
    submission.source = channel
    session.add(submission)
    processing._set_reply_status(campaign, recipient, submission)
    record_event(session, campaign_id, EVENT_OFFLINE_REPLY, recipient_id=recipient.id, actor=actor,
                 detail={"channel": channel, "version": submission.version, "valid": submission.valid,
                         "attachment_id": attachment.id, "file": stored[0].original_name})
    session.flush()
    return submission


def _read_form(data: bytes, schema) -> FormReading:
    try:
        return read_reply_form(data, schema)
    except UnsafeFile as error:
        raise ActionError(error.message_zh) from None
    except NotAReplyForm as error:
        raise ActionError(error.message_zh) from None


def _check_token(session: Session, reading: FormReading, recipient: Recipient, unit: Unit, prefix: str) -> None:
    """A form that proves it belongs to another unit is not recorded under this one. A form with no
    token, or one that does not verify (typed by hand, damaged), is the staff member's call."""
    for _, text in reading.tokens:
        token = tokens.parse(text)
        if token is None or str(token) == recipient.token or not tokens.verify(token):
            continue
        owner = session.exec(select(Unit.name).where(Unit.code == token.unit_code)).first()
        whose = f"单位“{owner}”（{token.unit_code}）" if owner and token.prefix == prefix.upper() else "其他活动"
        raise ActionError(f"这份回执表上的编号 {token} 属于{whose}，不是“{unit.name}”的。"
                          "请确认上传的文件，或在该单位的页面上登记。")


# -- the unit's mailbox ----------------------------------------------------------------------------------

def correct_unit_email(session: Session, campaign_id: str, unit_code: str, new_email: str, actor: str) -> Unit:
    """Set the unit's mailbox to `new_email` (checked like units.csv checks it), with an Event
    keeping the old one."""
    recipient = find_recipient(session, campaign_id, unit_code)
    unit = session.get(Unit, recipient.unit_id)
    address = _checked_email(new_email)
    if address == unit.email.lower():
        return unit
    taken = session.exec(select(Unit.code).where(Unit.email == address, Unit.id != unit.id)).first()
    if taken:
        raise ActionError(f"邮箱 {address} 已登记为单位 {taken} 的邮箱，请确认后再填写")
    record_event(session, campaign_id, EVENT_EMAIL_CORRECTED, recipient_id=recipient.id, actor=actor,
                 detail={"from": unit.email, "to": address})
    unit.email = address
    session.add(unit)
    session.flush()
    return unit


def _checked_email(value: str) -> str:
    try:
        return _email_address.validate_python(value or "")
    except ValidationError as error:
        cause = error.errors()[0].get("ctx", {}).get("error")
        raise ActionError(str(cause) if cause else "邮箱地址格式不正确，请写成 name@example.gov.cn 的形式") from None
