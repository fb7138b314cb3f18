"""Staff actions on a unit, shared by the CLI and the staff page. Each one is a state transition with
its Event (who, when, why), so the audit trail shows every decision a person made."""
from __future__ import annotations

from sqlmodel import Session, select

from models.states import IllegalTransition, RecipientStatus, transition
from models.tables import Campaign, Recipient, Unit

EVENT_EXEMPT = "staff.exempt"
# detail {"from": the address units.csv had, "to": the corrected one}: a reload keeps "to" while
# units.csv still says "from" (forms.store).
EVENT_EMAIL_CORRECTED = "staff.email_corrected"


class ActionError(ValueError):
    """A staff action that cannot be done as asked; the message is Chinese and says what to do."""


def find_recipient(session: Session, campaign_id: str, unit_code: str) -> Recipient:
    """The unit `unit_code` within campaign `campaign_id`, or an ActionError naming what is missing."""
    if session.get(Campaign, campaign_id) is None:
        raise ActionError(f"找不到活动 {campaign_id}，请检查活动编号（可用 noticeflow status 查看）")
    code = unit_code.strip().upper()
    recipient = session.exec(select(Recipient).join(Unit, Unit.id == Recipient.unit_id)
                             .where(Recipient.campaign_id == campaign_id, Unit.code == code)).first()
    if recipient is None:
        raise ActionError(f"活动 {campaign_id} 中没有代码为 {code} 的单位，"
                          f"请用 noticeflow status {campaign_id} 查看各单位的代码")
    return recipient


def exempt_unit(session: Session, campaign_id: str, unit_code: str, reason: str, actor: str = "cli") -> Recipient:
    """Excuse a unit from this campaign: it gets no further reminder and is listed as 已豁免.
    The reason is required and kept with the Event. Raises ActionError (Chinese) when the campaign
    or the unit does not exist, the reason is empty, or the unit is already exempt."""
    reason = (reason or "").strip()
    if not reason:
        raise ActionError("请写明豁免原因（--reason），例如“该单位已撤并”或“经领导同意免报”")
    recipient = find_recipient(session, campaign_id, unit_code)
    if recipient.status == RecipientStatus.exempt:
        raise ActionError(f"单位 {unit_code.strip().upper()} 已是豁免状态（原因：{recipient.status_reason}），无需重复操作")
    try:
        transition(session, recipient, RecipientStatus.exempt, kind=EVENT_EXEMPT, actor=actor, reason=reason)
    except IllegalTransition:  # every state may go to exempt today; kept for a future state that may not
        raise ActionError(f"单位 {unit_code.strip().upper()} 当前状态为 {RecipientStatus(recipient.status).value}，"
                          "不能标记为豁免") from None
    session.flush()
    return recipient
