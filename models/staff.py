"""Staff accounts of the staff page: a name, an Argon2 password hash, and the state of login
throttling. Passwords are never stored or logged; only argon2-cffi's hash is kept.

Throttling: the first FREE_ATTEMPTS wrong passwords in a row for a name cost nothing; from then on
every wrong password locks the name for a delay that doubles each time (BASE_DELAY, 2×, 4× …, at
most MAX_DELAY). While locked, attempts are refused without looking at the password, so guessing
gets slower and slower. A right password resets the count. Names that have no account are throttled
the same way (in memory), so the answers do not tell which names exist. Time is models.clock's."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Column
from sqlmodel import Field, Session, SQLModel, select

from models.clock import now
from models.db import UTCDateTime

FREE_ATTEMPTS = 3
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 8
MAX_NAME_LENGTH = 64
_UNKNOWN_NAMES_KEPT = 10_000

_hasher = PasswordHasher()
# Checked against when the name has no account, so a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("no account has this password")


class StaffAccount(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=MAX_NAME_LENGTH)
    password_hash: str
    failed_attempts: int = 0
    locked_until: Optional[datetime] = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    last_login_at: Optional[datetime] = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class StaffError(ValueError):
    """An account cannot be created as asked; the message is Chinese and says what to do."""


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    name: str = ""
    retry_after: int = 0      # seconds until the next attempt is looked at (0: try again now)

    @property
    def message_zh(self) -> str:
        if self.ok:
            return ""
        if self.retry_after:
            return f"连续登录失败次数过多，请在 {_wait_text(self.retry_after)}后再试。"
        return "用户名或密码不正确，请重新输入。"


def normalise_name(name: str) -> str:
    return unicodedata.normalize("NFKC", name or "").strip()


def add_staff(session: Session, name: str, password: str, *, replace: bool = False) -> StaffAccount:
    """Create the account `name` (or, with `replace`, set a new password for an existing one)."""
    name = normalise_name(name)
    if not name or len(name) > MAX_NAME_LENGTH or any(unicodedata.category(c)[0] in "CZ" for c in name):
        raise StaffError(f"用户名不能为空、不能含空格或控制字符，且不超过 {MAX_NAME_LENGTH} 个字符，例如“张三”或 zhangsan")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise StaffError(f"密码至少需要 {MIN_PASSWORD_LENGTH} 个字符，请重新设置")
    account = session.exec(select(StaffAccount).where(StaffAccount.name == name)).first()
    if account is not None and not replace:
        raise StaffError(f"用户 {name} 已存在；如需重设密码，请使用重设密码的选项")
    account = account or StaffAccount(name=name, password_hash="")
    account.password_hash = _hasher.hash(password)
    account.failed_attempts, account.locked_until = 0, None
    session.add(account)
    session.flush()
    return account


def find_staff(session: Session, name: str) -> StaffAccount | None:
    return session.exec(select(StaffAccount).where(StaffAccount.name == normalise_name(name))).first()


def verify_staff(session: Session, name: str, password: str) -> LoginResult:
    """Check a login attempt and record its outcome (the caller commits)."""
    name = normalise_name(name)
    at = now()
    account = find_staff(session, name) if name else None
    if account is None:
        return _unknown_name_attempt(name, at)
    if account.locked_until is not None and at < account.locked_until:
        return LoginResult(False, retry_after=_seconds_until(account.locked_until, at))
    if _password_matches(account.password_hash, password):
        if _hasher.check_needs_rehash(account.password_hash):
            account.password_hash = _hasher.hash(password)
        account.failed_attempts, account.locked_until, account.last_login_at = 0, None, at
        session.add(account)
        return LoginResult(True, name=account.name)
    account.failed_attempts += 1
    account.locked_until = _lock_after(account.failed_attempts, at)
    session.add(account)
    return LoginResult(False, retry_after=_seconds_until(account.locked_until, at))


def lock_delay(failures: int) -> timedelta:
    """How long a name stays locked after `failures` wrong passwords in a row."""
    if failures < FREE_ATTEMPTS:
        return timedelta(0)
    doublings = min(failures - FREE_ATTEMPTS, 16)   # far past MAX_DELAY already; keeps the number small
    return min(BASE_DELAY * 2 ** doublings, MAX_DELAY)


def _lock_after(failures: int, at: datetime) -> datetime | None:
    delay = lock_delay(failures)
    return at + delay if delay else None


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


_unknown_failures: dict[str, tuple[int, datetime | None]] = {}


def _unknown_name_attempt(name: str, at: datetime) -> LoginResult:
    failures, locked_until = _unknown_failures.get(name, (0, None))
    if locked_until is not None and at < locked_until:
        return LoginResult(False, retry_after=_seconds_until(locked_until, at))
    _password_matches(_DUMMY_HASH, "")
    if len(_unknown_failures) >= _UNKNOWN_NAMES_KEPT:
        _unknown_failures.clear()
    failures += 1
    locked_until = _lock_after(failures, at)
    _unknown_failures[name] = (failures, locked_until)
    return LoginResult(False, retry_after=_seconds_until(locked_until, at))


def _seconds_until(moment: datetime | None, at: datetime) -> int:
    if moment is None or moment <= at:
        return 0
    return max(1, int((moment - at).total_seconds() + 0.999))


def _wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} 秒"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} 分 {rest} 秒" if rest else f"{minutes} 分钟"
