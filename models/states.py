"""The recipient state machine: every legal transition is listed here and nowhere else."""
from __future__ import annotations

from enum import Enum


class RecipientStatus(str, Enum):
    pending = "pending"            # loaded, notice not yet sent
    notified = "notified"          # notice delivered to the unit's server
    replied = "replied"            # a reply arrived on time
    late = "late"                  # a reply arrived after the deadline
    overdue = "overdue"            # deadline passed, no reply
    escalated = "escalated"        # overdue and escalated to the unit's leader
    bounced = "bounced"            # the unit's address refused our mail
    needs_review = "needs_review"  # staff must look (a forged token, disagreeing keys, a big-file link)
    exempt = "exempt"              # staff excused the unit, with a reason


S = RecipientStatus
# A unit may always be exempted; a reply may come from any waiting state (also from another mailbox
# after a bounce; `replied` after the deadline when a form sent on time is corrected late); staff may
# release a unit from exemption or review back to waiting.
_WAITING = {S.notified, S.overdue, S.escalated, S.bounced, S.needs_review}
TRANSITIONS: dict[RecipientStatus, set[RecipientStatus]] = {
    S.pending: {S.notified, S.bounced, S.exempt},
    S.notified: {S.replied, S.late, S.overdue, S.bounced, S.needs_review, S.exempt},
    S.overdue: {S.replied, S.late, S.escalated, S.bounced, S.needs_review, S.exempt},
    S.escalated: {S.replied, S.late, S.bounced, S.needs_review, S.exempt},
    S.bounced: {S.notified, S.replied, S.late, S.overdue, S.needs_review, S.exempt},
    S.needs_review: {S.notified, S.replied, S.late, S.overdue, S.escalated, S.bounced, S.exempt},
    S.replied: {S.replied, S.needs_review, S.exempt},
    S.late: {S.late, S.needs_review, S.exempt},
    S.exempt: {S.pending, S.notified, S.overdue},
}

# States in which a unit still owes a reply (reminders may be due).
AWAITING_REPLY = frozenset({S.notified, S.overdue, S.escalated})
# States that count as "has reported" in the summary.
REPORTED = frozenset({S.replied, S.late})


class IllegalTransition(ValueError):
    def __init__(self, current: RecipientStatus, target: RecipientStatus):
        super().__init__(f"illegal recipient transition {current.value} -> {target.value}")
        self.current, self.target = current, target


def check_transition(current: RecipientStatus, target: RecipientStatus) -> None:
    if target not in TRANSITIONS[RecipientStatus(current)]:
        raise IllegalTransition(RecipientStatus(current), RecipientStatus(target))


def transition(session, recipient, target: RecipientStatus, *, kind: str, actor: str = "system",
               reason: str = "", detail: dict | None = None):
    """Move a recipient to `target` and write the Event row in the same unit of work."""
    from models.clock import now
    from models.tables import Event

    current = RecipientStatus(recipient.status)
    check_transition(current, target)
    at = now()
    recipient.status = target
    recipient.status_reason = reason
    recipient.updated_at = at
    session.add(recipient)
    event = Event(campaign_id=recipient.campaign_id, recipient_id=recipient.id, kind=kind,
                  from_status=current.value, to_status=RecipientStatus(target).value, actor=actor,
                  detail={"reason": reason, **(detail or {})}, at=at)
    session.add(event)
    return event


def record_event(session, campaign_id: str, kind: str, *, recipient_id: int | None = None,
                 actor: str = "system", detail: dict | None = None):
    """An audit row for something that is not a status change (a reminder sent, a staff download)."""
    from models.clock import now
    from models.tables import Event

    event = Event(campaign_id=campaign_id, recipient_id=recipient_id, kind=kind, actor=actor,
                  detail=detail or {}, at=now())
    session.add(event)
    return event


def transition_many(session, campaign_id: str, moves: dict[int, dict], target: RecipientStatus, *,
                    kind: str, when: frozenset[RecipientStatus] | set[RecipientStatus], actor: str = "system",
                    reason: str = "", values: dict[int, dict] | None = None) -> set[int]:
    """`transition` for many recipients in a few statements (a batch of notices is thousands).

    `moves`: recipient id → the Event's detail. Each recipient whose status is in `when` moves to
    `target` (`values`: further columns for it, by id); returns the ids moved, the caller decides
    what the others get. Rows are read with FOR UPDATE (PostgreSQL) and updated only if their
    status is still the one read."""
    from sqlalchemy import and_, bindparam, select

    from models.clock import now
    from models.tables import Recipient

    table = Recipient.__table__
    if not moves:
        return set()
    current = dict(session.execute(select(table.c.id, table.c.status)
                                   .where(table.c.id.in_(list(moves))).with_for_update()).all())
    moving = {rid: RecipientStatus(status) for rid, status in current.items() if RecipientStatus(status) in when}
    if not moving:
        return set()
    for status in set(moving.values()):
        check_transition(status, target)
    at, target = now(), RecipientStatus(target)
    extra = values or {}
    columns = sorted({name for rid in moving for name in extra.get(rid, {})})
    update = (table.update().where(and_(table.c.id == bindparam("rid"), table.c.status == bindparam("was")))
              .values(status=target, status_reason=reason, updated_at=at,
                      **{name: bindparam(f"new_{name}") for name in columns}))
    session.execute(update, [{"rid": rid, "was": was, **{f"new_{name}": extra[rid][name] for name in columns}}
                             for rid, was in moving.items()])
    _insert_events(session, [
        {"campaign_id": campaign_id, "recipient_id": rid, "kind": kind, "from_status": was.value,
         "to_status": target.value, "actor": actor, "detail": {"reason": reason, **moves[rid]}, "at": at}
        for rid, was in moving.items()])
    return set(moving)


def record_events(session, campaign_id: str, kind: str, details: dict[int, dict], *, actor: str = "system") -> None:
    """`record_event` for many recipients at once: recipient id → detail."""
    from models.clock import now

    at = now()
    _insert_events(session, [{"campaign_id": campaign_id, "recipient_id": rid, "kind": kind, "from_status": "",
                              "to_status": "", "actor": actor, "detail": detail, "at": at}
                             for rid, detail in details.items()])


def _insert_events(session, rows: list[dict]) -> None:
    """Event rows as plain values, one executemany (ORM objects would cost more than the insert)."""
    from sqlalchemy import insert

    from models.tables import Event

    if rows:
        session.execute(insert(Event.__table__), rows)
