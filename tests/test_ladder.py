"""The reminder ladder: when each step falls due and which one a run acts on. The seed campaign's
ladder (温馨提示 -3, 催报 0, 督办 +2 working days) is read from campaigns/xinqu-2023-9."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from forms.campaign import CampaignSpec, LadderStep
from forms.ladder import Decision, deadline_of, decide, is_overdue, schedule
from forms.sources import read_yaml_with_lines
from forms.workdays import DeadlineOnHoliday
from models.clock import CHINA_TZ
from models.settings import CAMPAIGNS_DIR

BEIJING = timezone(timedelta(hours=8))


def beijing(*args) -> datetime:
    return datetime(*args, tzinfo=BEIJING)


@pytest.fixture(scope="module")
def seed() -> CampaignSpec:
    data, _ = read_yaml_with_lines(CAMPAIGNS_DIR / "xinqu-2023-9" / "campaign.yaml")
    return CampaignSpec.model_validate(data)


def with_deadline(spec: CampaignSpec, deadline: datetime, rule: str = "error") -> CampaignSpec:
    return spec.model_copy(update={"deadline": deadline, "deadline_on_holiday": rule})


def due_times(spec: CampaignSpec) -> dict[str, datetime]:
    return {item.step.key: item.due_at for item in schedule(spec)}


def keys(items) -> list[str]:
    return [item.step.key for item in items]


def test_seed_ladder_around_national_day(seed):
    assert seed.deadline == beijing(2023, 10, 10, 18, 0)
    assert [(s.key, s.offset_workdays) for s in seed.ladder] == [("gentle", -3), ("urge", 0), ("supervise", 2)]
    timed = schedule(seed)
    assert keys(timed) == ["gentle", "urge", "supervise"]
    assert [item.due_at for item in timed] == [
        beijing(2023, 10, 7, 9, 0),    # Saturday, a make-up working day
        beijing(2023, 10, 10, 9, 0),
        beijing(2023, 10, 12, 9, 0),
    ]
    assert all(item.due_at.tzinfo is CHINA_TZ for item in timed)
    assert timed[0].due_at.weekday() == 5


def test_schedule_is_sorted_by_due_time_whatever_the_yaml_order(seed):
    shuffled = seed.model_copy(update={"ladder": list(reversed(seed.ladder))})
    assert keys(schedule(shuffled)) == ["gentle", "urge", "supervise"]


def test_holiday_deadline_rules_shift_the_whole_ladder(seed):
    on_holiday = beijing(2023, 10, 2, 18, 0)
    with pytest.raises(DeadlineOnHoliday, match="国庆节"):
        schedule(with_deadline(seed, on_holiday, "error"))

    earlier = with_deadline(seed, on_holiday, "earlier")
    assert deadline_of(earlier) == beijing(2023, 9, 28, 18, 0)
    assert due_times(earlier) == {
        "gentle": beijing(2023, 9, 25, 9, 0),
        "urge": beijing(2023, 9, 28, 9, 0),
        "supervise": beijing(2023, 10, 8, 9, 0),   # Sunday make-up day after the holiday
    }

    later = with_deadline(seed, on_holiday, "later")
    assert deadline_of(later) == beijing(2023, 10, 7, 18, 0)
    assert due_times(later) == {
        "gentle": beijing(2023, 9, 26, 9, 0),
        "urge": beijing(2023, 10, 7, 9, 0),
        "supervise": beijing(2023, 10, 9, 9, 0),
    }


def test_spring_festival_ladder(seed):
    # 2024: 春节 2月10日至17日放假，2月18日（周日）上班.
    spec = with_deadline(seed, beijing(2024, 2, 19, 18, 0))
    assert due_times(spec) == {
        "gentle": beijing(2024, 2, 8, 9, 0),
        "urge": beijing(2024, 2, 19, 9, 0),
        "supervise": beijing(2024, 2, 21, 9, 0),
    }
    spec = with_deadline(seed, beijing(2024, 2, 14, 18, 0), "later")
    assert due_times(spec)["urge"] == beijing(2024, 2, 18, 9, 0)


def test_weekend_ladder(seed):
    spec = with_deadline(seed, beijing(2023, 11, 20, 18, 0))  # a Monday
    assert due_times(spec) == {
        "gentle": beijing(2023, 11, 15, 9, 0),
        "urge": beijing(2023, 11, 20, 9, 0),
        "supervise": beijing(2023, 11, 22, 9, 0),
    }
    saturday = beijing(2023, 11, 18, 18, 0)
    with pytest.raises(DeadlineOnHoliday, match="周六"):
        schedule(with_deadline(seed, saturday))
    assert due_times(with_deadline(seed, saturday, "earlier"))["urge"] == beijing(2023, 11, 17, 9, 0)
    assert due_times(with_deadline(seed, saturday, "later"))["urge"] == beijing(2023, 11, 20, 9, 0)


def test_nothing_is_due_before_the_first_step(seed):
    assert decide(seed, beijing(2023, 10, 7, 8, 59), set()) == Decision(send=None, skip=[])


def test_each_step_in_turn_when_every_run_happens(seed):
    done: set[str] = set()
    sent = []
    for now in (beijing(2023, 10, 7, 9, 5), beijing(2023, 10, 9, 9, 5), beijing(2023, 10, 10, 9, 5),
                beijing(2023, 10, 11, 9, 5), beijing(2023, 10, 12, 9, 5), beijing(2023, 10, 20, 9, 5)):
        decision = decide(seed, now, done)
        assert decision.skip == []
        if decision.send:
            sent.append(decision.send.step.key)
            done.add(decision.send.step.key)
    assert sent == ["gentle", "urge", "supervise"]


def test_downtime_sends_the_latest_due_step_and_skips_the_stale_ones(seed):
    decision = decide(seed, beijing(2023, 10, 13, 10, 0), set())
    assert decision.send is not None and decision.send.step.key == "supervise"
    assert decision.send.step.label == "督办" and decision.send.step.cc == ["leader"]
    assert keys(decision.skip) == ["gentle", "urge"]


def test_repeated_decision_after_recording_does_nothing(seed):
    now = beijing(2023, 10, 13, 10, 0)
    first = decide(seed, now, set())
    done = {first.send.step.key, *keys(first.skip)}
    assert decide(seed, now, done) == Decision(send=None, skip=[])
    assert decide(seed, now + timedelta(days=30), done) == Decision(send=None, skip=[])


def test_a_step_already_done_is_not_sent_again_and_older_ones_are_not_revived(seed):
    now = beijing(2023, 10, 10, 12, 0)
    # 催报 was sent; 温馨提示 never was (e.g. a run stopped before recording the skip).
    decision = decide(seed, now, {"urge"})
    assert decision.send is None
    assert keys(decision.skip) == ["gentle"]
    assert decide(seed, now, {"urge", "gentle"}) == Decision(send=None, skip=[])


def test_skipped_steps_count_as_done(seed):
    decision = decide(seed, beijing(2023, 10, 11, 9, 0), {"gentle"})
    assert decision.send.step.key == "urge" and decision.skip == []
    assert decide(seed, beijing(2023, 10, 11, 9, 0), {"gentle", "urge"}).send is None


def test_due_exactly_at_due_at(seed):
    urge_at = beijing(2023, 10, 10, 9, 0)
    just_before = decide(seed, urge_at - timedelta(microseconds=1), {"gentle"})
    assert just_before.send is None
    at = decide(seed, urge_at, {"gentle"})
    assert at.send is not None and at.send.step.key == "urge"


def test_now_in_utc_is_the_same_instant(seed):
    urge_at_utc = datetime(2023, 10, 10, 1, 0, tzinfo=timezone.utc)   # 09:00 in Beijing
    assert decide(seed, urge_at_utc - timedelta(seconds=1), {"gentle"}).send is None
    assert decide(seed, urge_at_utc, {"gentle"}).send.step.key == "urge"
    # 2023-10-12 00:30 UTC is still 08:30 in Beijing: 督办 is not yet due.
    early_utc = datetime(2023, 10, 12, 0, 30, tzinfo=timezone.utc)
    assert decide(seed, early_utc, {"gentle", "urge"}).send is None


def test_deadline_written_in_utc_schedules_on_beijing_days(seed):
    spec = with_deadline(seed, datetime(2023, 10, 10, 10, 0, tzinfo=timezone.utc))
    assert due_times(spec) == due_times(seed)


def test_a_naive_now_is_refused(seed):
    with pytest.raises(ValueError):
        decide(seed, datetime(2023, 10, 13, 10, 0), set())
    with pytest.raises(ValueError):
        is_overdue(seed, datetime(2023, 10, 13, 10, 0))


def test_steps_due_at_the_same_instant_keep_yaml_order(seed):
    twin = LadderStep(key="notify_office", label="通报办公室", template="reminder_supervise",
                      offset_workdays=2, at=time(9, 0), to=["office"])
    spec = seed.model_copy(update={"ladder": [*seed.ladder, twin]})
    decision = decide(spec, beijing(2023, 10, 12, 9, 0), {"gentle", "urge"})
    assert decision.send.step.key == "notify_office"
    assert keys(decision.skip) == ["supervise"]


def test_is_overdue(seed):
    deadline = beijing(2023, 10, 10, 18, 0)
    assert not is_overdue(seed, deadline)
    assert is_overdue(seed, deadline + timedelta(seconds=1))
    assert not is_overdue(seed, datetime(2023, 10, 10, 9, 59, tzinfo=timezone.utc))
    assert is_overdue(seed, datetime(2023, 10, 10, 10, 1, tzinfo=timezone.utc))


def test_is_overdue_uses_the_moved_deadline(seed):
    later = with_deadline(seed, beijing(2023, 10, 2, 18, 0), "later")
    assert not is_overdue(later, beijing(2023, 10, 5, 12, 0))
    assert is_overdue(later, beijing(2023, 10, 7, 18, 1))
