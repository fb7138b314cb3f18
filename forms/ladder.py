"""When each rung of a campaign's reminder ladder falls due, and which one to act on now.

Level-triggered: the answer depends only on the campaign, the clock and what was already done for
one recipient, so a missed run or a repeated run changes nothing. After downtime only the most
advanced due step is sent; the older ones that were never sent are reported as skipped, never
fired late in a burst."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from forms.workdays import add_working_days, effective_deadline
from models.clock import CHINA_TZ

if TYPE_CHECKING:  # forms.campaign may call into this module while loading a campaign
    from forms.campaign import CampaignSpec, LadderStep


@dataclass(frozen=True)
class StepSchedule:
    step: LadderStep
    due_at: datetime  # aware, Asia/Shanghai


@dataclass(frozen=True)
class Decision:
    send: StepSchedule | None
    skip: list[StepSchedule] = field(default_factory=list)


def deadline_of(spec: CampaignSpec) -> datetime:
    """The campaign's deadline after its deadline_on_holiday rule, in Beijing time."""
    return effective_deadline(spec.deadline, spec.deadline_on_holiday)


def _due_at(step: LadderStep, deadline_day) -> datetime:
    day = add_working_days(deadline_day, step.offset_workdays)
    # A bare "09:00" in campaign.yaml is Beijing time; an explicit offset is honoured.
    zone = step.at.tzinfo or CHINA_TZ
    return datetime.combine(day, step.at.replace(tzinfo=None), zone).astimezone(CHINA_TZ)


def schedule(spec: CampaignSpec) -> list[StepSchedule]:
    """Every step with the instant it falls due, earliest first; steps due at the same instant keep
    their order in campaign.yaml, so the later-listed one counts as the more advanced."""
    deadline_day = deadline_of(spec).date()
    timed = [StepSchedule(step, _due_at(step, deadline_day)) for step in spec.ladder]
    return sorted(timed, key=lambda item: item.due_at)


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (use models.clock.now())")
    return now


def decide(spec: CampaignSpec, now: datetime, already_done: set[str]) -> Decision:
    """What to do for one recipient at `now`. `already_done` holds the keys of steps already sent
    or skipped for that recipient.

    Sends the most advanced step that is due (due_at <= now) unless it is already done; every other
    due step not yet done is skipped. A step already done is never sent again, and an older step is
    never sent once a later one is due, so stale reminders never go out."""
    now = _require_aware(now)
    due = [item for item in schedule(spec) if item.due_at <= now]
    if not due:
        return Decision(send=None, skip=[])
    latest, older = due[-1], due[:-1]
    send = None if latest.step.key in already_done else latest
    # Skips are also reported when the latest step is already done: that happens only if a run
    # stopped between recording the send and recording the skips, and this repairs the record.
    skip = [item for item in older if item.step.key not in already_done]
    return Decision(send=send, skip=skip)


def is_overdue(spec: CampaignSpec, now: datetime) -> bool:
    """True once `now` is strictly later than the effective deadline."""
    return _require_aware(now) > deadline_of(spec)
