"""Working days of the People's Republic of China, as the State Council publishes them each year:
public holidays off, weekend make-up working days (调休) on. The data comes from chinese-calendar;
a date outside the years it covers is refused rather than guessed, because treating an unpublished
year as plain Monday-to-Friday would send reminders on holidays.

Days are Beijing days: an aware datetime is first converted to Asia/Shanghai, so an instant late
in the UTC evening counts on the next Chinese day."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache

import chinese_calendar

from models.clock import CHINA_TZ

DEADLINE_RULES = ("error", "earlier", "later")
_WEEKDAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_HOLIDAY_NAMES = {h.value: h.chinese for h in chinese_calendar.Holiday}
_ONE_DAY = timedelta(days=1)


class WorkdayError(ValueError):
    """A working-day question that cannot be answered as asked; the message is for staff."""


class CalendarRangeError(WorkdayError):
    """The date lies in a year the holiday data does not cover."""


class DeadlineOnHoliday(WorkdayError):
    """The deadline falls on a rest day and the campaign says that is an error."""


@cache
def covered_years() -> tuple[int, int]:
    """First and last year (inclusive) whose holidays and make-up days the installed data knows."""
    years = [d.year for d in chinese_calendar.holidays]
    return min(years), max(years)


def _beijing_day(value: date) -> date:
    if isinstance(value, datetime):
        return value.astimezone(CHINA_TZ).date() if value.tzinfo else value.date()
    return value


def _chinese_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _checked(value: date) -> date:
    day = _beijing_day(value)
    first, last = covered_years()
    if not first <= day.year <= last:
        raise CalendarRangeError(
            f"{_chinese_date(day)}不在节假日数据覆盖的年份内（{first}—{last}年），无法判断是否为工作日。"
            "请升级 chinese-calendar（pip install -U chinese-calendar），待国务院公布该年放假安排后再设置此日期")
    return day


def is_working_day(d: date) -> bool:
    """True on an ordinary weekday that is not a public holiday, and on a make-up working day."""
    return chinese_calendar.is_workday(_checked(d))


def rest_day_name(d: date) -> str | None:
    """What to call a rest day in a message: the holiday ("国庆节假期") or the weekday ("周六");
    None on a working day."""
    day = _checked(d)
    resting, holiday = chinese_calendar.get_holiday_detail(day)
    if not resting:
        return None
    if holiday:
        return f"{_HOLIDAY_NAMES.get(holiday, holiday)}假期"
    return _WEEKDAY_NAMES[day.weekday()]


def add_working_days(d: date, n: int) -> date:
    """The n-th working day after d (n > 0) or before d (n < 0); d itself is never counted.

    n == 0 means "on the day": d when it is a working day, otherwise the next working day after it
    (a step scheduled on a rest day happens when the office is next at work)."""
    day = _checked(d)
    if n == 0:
        while not is_working_day(day):
            day += _ONE_DAY
        return day
    step = _ONE_DAY if n > 0 else -_ONE_DAY
    remaining = abs(n)
    while remaining:
        day += step
        if is_working_day(day):
            remaining -= 1
    return day


def working_days_between(start: date, end: date) -> int:
    """Working days in (start, end] when end is later; minus the working days in (end, start] when
    end is earlier; 0 on the same day. Additive: between(a, b) + between(b, c) == between(a, c).
    Between two working days it undoes add_working_days. Whether a deadline has passed is
    `is_overdue`'s question: a deadline on Friday seen on Sunday is 0 working days away."""
    start_day, end_day = _checked(start), _checked(end)
    if start_day == end_day:
        return 0
    first, last = sorted((start_day, end_day))
    count = len(chinese_calendar.get_workdays(first + _ONE_DAY, last))
    return count if end_day > start_day else -count


def effective_deadline(deadline: datetime, rule: str) -> datetime:
    """The deadline the office actually means, in Beijing time. A deadline on any rest day (a public
    holiday or a plain weekend) is refused under "error", or moved to the previous ("earlier") or
    next ("later") working day at the same Beijing time of day."""
    if rule not in DEADLINE_RULES:
        raise ValueError(f"unknown deadline_on_holiday rule {rule!r}; expected one of {DEADLINE_RULES}")
    if deadline.tzinfo is None:
        raise ValueError("deadline must be timezone-aware")
    local = deadline.astimezone(CHINA_TZ)
    day = local.date()
    rest = rest_day_name(day)
    if rest is None:
        return local
    if rule == "error":
        raise DeadlineOnHoliday(
            f"截止时间 {_chinese_date(day)}（{rest}）不是工作日。请把 deadline 改到工作日，"
            "或把 deadline_on_holiday 设为 earlier（提前到前一个工作日）或 later（顺延到下一个工作日）")
    moved = add_working_days(day, -1 if rule == "earlier" else 1)
    return datetime.combine(moved, local.time(), CHINA_TZ)
