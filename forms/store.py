"""Putting a validated campaign into the database: Campaign, Unit, Recipient (with its token)."""
from __future__ import annotations

from sqlmodel import Session, select

from forms.campaign import CampaignDefinition
from models import tokens
from models.clock import now
from models.tables import Campaign, Recipient, Unit


def upsert_campaign(session: Session, definition: CampaignDefinition) -> Campaign:
    """Create or update the campaign, its units and recipients. Statuses and history are never
    reset by a reload: loading twice is harmless."""
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

    existing = {u.code: u for u in session.exec(select(Unit).where(Unit.code.in_([r.code for r in definition.units])))}
    recipients = {r.unit_id: r for r in session.exec(select(Recipient).where(Recipient.campaign_id == spec.id))}
    for row in definition.units:
        unit = existing.get(row.code) or Unit(code=row.code)
        unit.name, unit.kind, unit.email = row.name, row.kind, row.email
        unit.leader_email, unit.contact = row.leader_email, row.contact
        session.add(unit)
        session.flush()
        if unit.id not in recipients:
            session.add(Recipient(campaign_id=spec.id, unit_id=unit.id,
                                  token=str(tokens.sign(spec.token_prefix, row.code)), updated_at=now()))
    session.flush()
    return campaign


def campaign_recipients(session: Session, campaign_id: str) -> list[tuple[Recipient, Unit]]:
    """Recipients with their units, in the order of the campaign's unit list (code order as stored)."""
    rows = session.exec(select(Recipient, Unit).join(Unit, Unit.id == Recipient.unit_id)
                        .where(Recipient.campaign_id == campaign_id).order_by(Recipient.id))
    return list(rows)
