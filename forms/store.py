"""Putting a validated campaign into the database: Campaign, Unit, Recipient (with its token)."""
from __future__ import annotations

from sqlalchemy import insert
from sqlmodel import Session, select

from forms.campaign import CampaignDefinition
from models import tokens
from models.clock import now
from models.actions import EVENT_EMAIL_CORRECTED
from models.tables import Campaign, Event, Recipient, Unit


def upsert_campaign(session: Session, definition: CampaignDefinition) -> Campaign:
    """Create or update the campaign, its units and recipients. Statuses and history are never
    reset by a reload: loading twice is harmless. A mailbox staff corrected on the staff page is
    kept while units.csv still lists the address it replaced; a different address in units.csv
    (the list was edited since) wins."""
    spec = definition.spec
    campaign = session.get(Campaign, spec.id) or Campaign(id=spec.id)
    campaign.title = spec.notice.title
    campaign.token_prefix = spec.token_prefix
    campaign.doc_number = spec.notice.doc_number
    campaign.deadline = spec.deadline
    campaign.source_dir = str(definition.directory)
    campaign.office_email = spec.office.email
    campaign.definition = spec.model_dump(mode="json")
    campaign.loaded_at = now()
    session.add(campaign)

    rows = {row.code: _unit_values(row) for row in definition.units}
    existing = session.exec(select(Unit).where(Unit.code.in_(list(rows)))).all()
    corrected = _staff_corrections(session, [unit.id for unit in existing])
    for unit in existing:            # a reload: the ORM writes only what changed
        values = rows[unit.code]
        replaced, correction = corrected.get(unit.id, ("", ""))
        if values["email"].lower() == replaced and unit.email.lower() == correction:
            values = {**values, "email": unit.email}
        for key, value in values.items():
            setattr(unit, key, value)
    session.flush()                  # the campaign row first: new recipients refer to it
    # New rows go in as plain values, one executemany per table: ORM objects would cost more than
    # the insert, and the ORM would insert them one by one to learn their ids. The ids are then
    # read back in one query.
    known = {unit.code for unit in existing}
    _insert(session, Unit, [values for code, values in rows.items() if code not in known])
    unit_ids = dict(session.exec(select(Unit.code, Unit.id).where(Unit.code.in_(list(rows)))).all())
    enrolled = set(session.exec(select(Recipient.unit_id).where(Recipient.campaign_id == spec.id)))
    at = now()
    _insert(session, Recipient, [
        {"campaign_id": spec.id, "unit_id": unit_ids[code], "token": str(tokens.sign(spec.token_prefix, code)),
         "updated_at": at}
        for code in rows if unit_ids[code] not in enrolled])
    return campaign


def _staff_corrections(session: Session, unit_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Unit id → (address replaced, address now) of the latest mailbox correction by staff."""
    if not unit_ids:
        return {}
    events = session.exec(select(Recipient.unit_id, Event.detail).join(Recipient, Recipient.id == Event.recipient_id)
                          .where(Event.kind == EVENT_EMAIL_CORRECTED, Recipient.unit_id.in_(unit_ids))
                          .order_by(Event.at, Event.id)).all()
    return {unit_id: (str(detail.get("from", "")).lower(), str(detail.get("to", "")).lower())
            for unit_id, detail in events}


def _unit_values(row) -> dict:
    return {"code": row.code, "name": row.name, "kind": row.kind, "email": row.email,
            "leader_email": row.leader_email, "contact": row.contact}


def _insert(session: Session, table, rows: list[dict]) -> None:
    """New rows in one statement; columns left out take the table's defaults (a new recipient is
    pending)."""
    if rows:
        session.exec(insert(table), params=rows)


def campaign_recipients(session: Session, campaign_id: str) -> list[tuple[Recipient, Unit]]:
    """Recipients with their units, in the order of the campaign's unit list (code order as stored)."""
    rows = session.exec(select(Recipient, Unit).join(Unit, Unit.id == Recipient.unit_id)
                        .where(Recipient.campaign_id == campaign_id).order_by(Recipient.id))
    return list(rows)
