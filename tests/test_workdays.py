"""Chinese working days. Expected dates come from the State Council's published holiday schedules
(国办发明电), not from the library under test."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from forms.workdays import (
    CalendarRangeError,
    DeadlineOnHoliday,
    add_working_days,
    covered_years,
    effective_deadline,
    is_working_day,
    rest_day_name,
    working_days_between,
)
from models.clock import CHINA_TZ

BEIJING = timezone(timedelta(hours=8))


# 2023: 中秋节、国庆节 9月29日至10月6日放假，10月7日（周六）、10月8日（周日）上班.
@pytest.mark.parametrize("day, working", [
    (date(2023, 9, 28), True),    # Thursday before the holiday
    (date(2023, 9, 29), False),   # 中秋节
    (date(2023, 10, 2), False),   # 国庆节, a Monday
    (date(2023, 10, 6), False),   # Friday, rest day in lieu
    (date(2023, 10, 7), True),    # Saturday make-up working day
    (date(2023, 10, 8), True),    # Sunday make-up working day
    (date(2023, 10, 14), False),  # ordinary Saturday
    (date(2023, 10, 16), True),   # ordinary Monday
])
def test_national_day_2023(day, working):
    assert is_working_day(day) is working


# 2024: 春节 2月10日至17日放假，2月4日（周日）、2月18日（周日）上班.
@pytest.mark.parametrize("day, working", [
    (date(2024, 2, 4), True),
    (date(2024, 2, 9), True),     # 除夕 was a working day in 2024
    (date(2024, 2, 12), False),
    (date(2024, 2, 16), False),
    (date(2024, 2, 18), True),
])
def test_spring_festival_2024(day, working):
    assert is_working_day(day) is working


def test_add_working_days_crosses_national_day_and_counts_make_up_days():
    deadline = date(2023, 10, 10)
    assert add_working_days(deadline, -1) == date(2023, 10, 9)
    assert add_working_days(deadline, -2) == date(2023, 10, 8)   # Sunday make-up day
    assert add_working_days(deadline, -3) == date(2023, 10, 7)   # Saturday make-up day
    assert add_working_days(deadline, -4) == date(2023, 9, 28)   # the whole holiday is jumped
    assert add_working_days(deadline, 2) == date(2023, 10, 12)
    assert add_working_days(date(2023, 9, 28), 1) == date(2023, 10, 7)


def test_add_working_days_over_spring_festival():
    assert add_working_days(date(2024, 2, 9), 1) == date(2024, 2, 18)
    assert add_working_days(date(2024, 2, 18), -1) == date(2024, 2, 9)
    assert add_working_days(date(2024, 2, 19), -3) == date(2024, 2, 8)


def test_add_working_days_over_a_plain_weekend():
    friday, saturday, sunday, monday = (date(2023, 11, d) for d in (17, 18, 19, 20))
    assert add_working_days(friday, 1) == monday
    assert add_working_days(monday, -1) == friday
    assert add_working_days(saturday, 1) == monday
    assert add_working_days(sunday, -1) == friday
    assert add_working_days(friday, 5) == date(2023, 11, 24)


def test_zero_offset_keeps_a_working_day_and_rolls_a_rest_day_forward():
    assert add_working_days(date(2023, 10, 7), 0) == date(2023, 10, 7)
    assert add_working_days(date(2023, 11, 18), 0) == date(2023, 11, 20)
    assert add_working_days(date(2023, 10, 1), 0) == date(2023, 10, 7)


def test_a_datetime_counts_on_its_beijing_day():
    # 16:30 UTC on Friday 2023-09-28 is already 00:30 on the 中秋节 holiday in Beijing.
    late_utc = datetime(2023, 9, 28, 16, 30, tzinfo=timezone.utc)
    assert is_working_day(late_utc) is False
    assert is_working_day(datetime(2023, 9, 28, 15, 59, tzinfo=timezone.utc)) is True  # 23:59 in Beijing


def test_working_days_between():
    assert working_days_between(date(2023, 10, 7), date(2023, 10, 10)) == 3
    assert working_days_between(date(2023, 9, 28), date(2023, 10, 10)) == 4
    assert working_days_between(date(2023, 10, 10), date(2023, 10, 10)) == 0
    assert working_days_between(date(2023, 10, 12), date(2023, 10, 10)) == -2
    assert working_days_between(date(2023, 11, 17), date(2023, 11, 19)) == 0  # Friday to Sunday


def test_working_days_between_undoes_add_working_days_from_a_working_day():
    start = date(2023, 9, 25)
    for n in range(-15, 16):
        assert working_days_between(start, add_working_days(start, n)) == n


def test_working_days_between_is_additive():
    a, b, c = date(2023, 9, 30), date(2023, 10, 8), date(2023, 10, 21)
    assert working_days_between(a, b) + working_days_between(b, c) == working_days_between(a, c)
    assert working_days_between(c, a) == -working_days_between(a, c)


def test_rest_day_names_are_chinese():
    assert rest_day_name(date(2023, 10, 2)) == "国庆节假期"
    assert rest_day_name(date(2024, 2, 12)) == "春节假期"
    assert rest_day_name(date(2023, 11, 18)) == "周六"
    assert rest_day_name(date(2023, 10, 7)) is None


def test_years_outside_the_data_are_refused_in_chinese():
    first, last = covered_years()
    assert first <= 2023 <= last
    for outside in (date(last + 1, 3, 1), date(first - 1, 3, 1)):
        with pytest.raises(CalendarRangeError) as raised:
            is_working_day(outside)
        message = str(raised.value)
        assert f"{outside.year}年" in message and f"{first}—{last}年" in message
        assert "chinese-calendar" in message


def test_counting_past_the_last_covered_year_is_refused():
    _, last = covered_years()
    with pytest.raises(CalendarRangeError):
        add_working_days(date(last, 12, 28), 10)
    with pytest.raises(CalendarRangeError):
        working_days_between(date(last, 12, 1), date(last + 1, 1, 5))


SEED_DEADLINE = datetime(2023, 10, 10, 18, 0, tzinfo=BEIJING)


def test_a_working_day_deadline_is_kept_and_given_in_beijing_time():
    for rule in ("error", "earlier", "later"):
        kept = effective_deadline(SEED_DEADLINE, rule)
        assert kept == SEED_DEADLINE and kept.tzinfo is CHINA_TZ
    as_utc = SEED_DEADLINE.astimezone(timezone.utc)
    assert effective_deadline(as_utc, "error") == SEED_DEADLINE


HOLIDAY_DEADLINE = datetime(2023, 10, 2, 18, 0, tzinfo=BEIJING)


def test_holiday_deadline_under_error_names_the_date_and_the_holiday():
    with pytest.raises(DeadlineOnHoliday) as raised:
        effective_deadline(HOLIDAY_DEADLINE, "error")
    message = str(raised.value)
    assert "2023年10月2日" in message and "国庆节" in message
    assert "earlier" in message and "later" in message


def test_holiday_deadline_moves_earlier_or_later_at_the_same_time():
    earlier = effective_deadline(HOLIDAY_DEADLINE, "earlier")
    later = effective_deadline(HOLIDAY_DEADLINE, "later")
    assert earlier == datetime(2023, 9, 28, 18, 0, tzinfo=BEIJING)
    assert later == datetime(2023, 10, 7, 18, 0, tzinfo=BEIJING)  # the Saturday make-up day


def test_spring_festival_deadline_moves_to_the_sunday_make_up_day():
    deadline = datetime(2024, 2, 12, 17, 30, tzinfo=BEIJING)
    assert effective_deadline(deadline, "later") == datetime(2024, 2, 18, 17, 30, tzinfo=BEIJING)
    assert effective_deadline(deadline, "earlier") == datetime(2024, 2, 9, 17, 30, tzinfo=BEIJING)
    with pytest.raises(DeadlineOnHoliday, match="春节"):
        effective_deadline(deadline, "error")


def test_weekend_deadline_is_a_rest_day_too():
    saturday = datetime(2023, 11, 18, 18, 0, tzinfo=BEIJING)
    with pytest.raises(DeadlineOnHoliday, match="周六"):
        effective_deadline(saturday, "error")
    assert effective_deadline(saturday, "earlier") == datetime(2023, 11, 17, 18, 0, tzinfo=BEIJING)
    assert effective_deadline(saturday, "later") == datetime(2023, 11, 20, 18, 0, tzinfo=BEIJING)


def test_the_beijing_date_of_the_deadline_decides():
    # 2023-09-28 17:00 UTC is a working Thursday in UTC but 01:00 on the 中秋节 holiday in Beijing.
    utc_deadline = datetime(2023, 9, 28, 17, 0, tzinfo=timezone.utc)
    with pytest.raises(DeadlineOnHoliday, match="中秋"):
        effective_deadline(utc_deadline, "error")
    assert effective_deadline(utc_deadline, "later") == datetime(2023, 10, 7, 1, 0, tzinfo=BEIJING)


def test_unknown_rule_and_naive_deadline_are_programming_errors():
    with pytest.raises(ValueError):
        effective_deadline(SEED_DEADLINE, "ignore")
    with pytest.raises(ValueError):
        effective_deadline(SEED_DEADLINE.replace(tzinfo=None), "error")
