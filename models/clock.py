"""The one clock. Nothing else calls datetime.now(): NOTICEFLOW_NOW moves the whole program in time."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

CHINA_TZ = ZoneInfo("Asia/Shanghai")


def parse_instant(text: str) -> datetime:
    """An ISO time; one without an offset is taken as Beijing time (the offices' clock)."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=CHINA_TZ)
    return value


def now() -> datetime:
    """The current instant, aware, in Asia/Shanghai. Read from the environment on every call so a
    test or the demo can step the clock without restarting anything."""
    override = os.environ.get("NOTICEFLOW_NOW") or _dotenv_now()
    if override:
        return parse_instant(override).astimezone(CHINA_TZ)
    return datetime.now(timezone.utc).astimezone(CHINA_TZ)


def _dotenv_now() -> str | None:
    from models.settings import get_settings

    return get_settings().now


def today():
    return now().date()
