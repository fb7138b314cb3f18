"""A campaign's definition as the staff page needs it, read once per load of the campaign.

The spec (deadline, unit kinds) comes from the database copy (Campaign.definition), so the board
needs no file; the form schema (labels of the figures) and the unit list come from the campaign
folder. Both are cached under (campaign id, Campaign.loaded_at, folder): `noticeflow load` or
`issue` changes loaded_at, and the next page shows the new definition."""
from __future__ import annotations

import logging
import threading
from datetime import datetime

from forms.campaign import CampaignDefinition, CampaignSpec, load_campaign
from forms.errors import CampaignError
from forms.ladder import deadline_of
from forms.workdays import WorkdayError, working_days_between
from models.clock import CHINA_TZ
from models.tables import Campaign

log = logging.getLogger(__name__)

_lock = threading.Lock()
_specs: dict[tuple, CampaignSpec] = {}
_definitions: dict[tuple, CampaignDefinition | None] = {}


def _key(campaign: Campaign) -> tuple:
    return campaign.id, campaign.loaded_at, campaign.source_dir


def spec_of(campaign: Campaign) -> CampaignSpec:
    key = _key(campaign)
    with _lock:
        spec = _specs.get(key)
    if spec is None:
        spec = CampaignSpec.model_validate(campaign.definition)
        with _lock:
            _specs[key] = spec
    return spec


def definition_of(campaign: Campaign) -> CampaignDefinition | None:
    """The campaign folder, loaded; None (logged) when it cannot be read any more."""
    key = _key(campaign)
    with _lock:
        if key in _definitions:
            return _definitions[key]
    try:
        definition = load_campaign(campaign.source_dir)
    except (CampaignError, OSError) as error:
        log.warning("campaign folder %s of %s cannot be read: %s", campaign.source_dir, campaign.id, error)
        definition = None
    with _lock:
        _definitions[key] = definition
    return definition


def kind_labels(campaign: Campaign) -> dict[str, str]:
    return {kind.key: kind.label for kind in spec_of(campaign).unit_kinds}


def effective_deadline(campaign: Campaign) -> datetime:
    """The deadline the office means (after the campaign's rule for a deadline on a rest day)."""
    try:
        return deadline_of(spec_of(campaign)).astimezone(CHINA_TZ)
    except WorkdayError:
        return campaign.deadline.astimezone(CHINA_TZ)


def time_left_text(deadline: datetime, at: datetime) -> str:
    """`还剩 3 个工作日`, `今天截止`, `已过截止时间 2 个工作日` (working days of the Chinese calendar)."""
    try:
        if at <= deadline:
            days = working_days_between(at, deadline)
            return "今天截止" if at.astimezone(CHINA_TZ).date() == deadline.astimezone(CHINA_TZ).date() \
                else f"还剩 {days} 个工作日"
        days = working_days_between(deadline, at)
        return f"已过截止时间 {days} 个工作日" if days else "已过截止时间（今天）"
    except WorkdayError:
        return "已过截止时间" if at > deadline else "未到截止时间"
