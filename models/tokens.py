"""Per-(campaign, unit) tokens like `XQ9-U017-7F3KQ2`: short enough for a subject line, signed with
NOTICEFLOW_SECRET, verifiable offline."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from models.settings import get_settings

SIGNATURE_LENGTH = 6
# Prefix and unit code: letters and digits; signature: RFC 4648 base32 (no 0/1/8/9 to confuse).
# Boundaries are ASCII-only on purpose: a token glued to Chinese text (`通知XQ9-…`) must still match.
TOKEN_PATTERN = re.compile(
    r"(?<![A-Z0-9])([A-Z][A-Z0-9]{1,15})-([A-Z0-9]{1,32})-([A-Z2-7]{%d})(?![A-Z0-9])" % SIGNATURE_LENGTH
)
SECRET_FILE_NAME = ".secret"


@dataclass(frozen=True)
class Token:
    prefix: str
    unit_code: str
    signature: str

    def __str__(self) -> str:
        return f"{self.prefix}-{self.unit_code}-{self.signature}"

    @property
    def bracketed(self) -> str:
        return f"【{self}】"


def _secret_bytes() -> bytes:
    settings = get_settings()
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode()
    path = Path(settings.output_dir) / SECRET_FILE_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Create with 0600 from the start: the secret is never readable by others, not even briefly.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_bytes().strip()


def derived_key(purpose: str) -> bytes:
    """A key for another use of the same secret (e.g. "staff-sessions"): stable across restarts, and
    knowing it reveals nothing about the key that signs the units' tokens."""
    return hmac.new(_secret_bytes(), f"noticeflow derived key: {purpose}".encode(), hashlib.sha256).digest()


def _signature(prefix: str, unit_code: str) -> str:
    digest = hmac.new(_secret_bytes(), f"{prefix}|{unit_code}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:SIGNATURE_LENGTH]


def sign(prefix: str, unit_code: str) -> Token:
    prefix, unit_code = prefix.upper(), unit_code.upper()
    return Token(prefix, unit_code, _signature(prefix, unit_code))


def parse(text: str) -> Token | None:
    """The first token-shaped string in `text`, verified or not (see `verify`)."""
    match = TOKEN_PATTERN.search(text.upper()) if text else None
    return Token(*match.groups()) if match else None


def find_all(text: str) -> list[Token]:
    return [Token(*m.groups()) for m in TOKEN_PATTERN.finditer(text.upper())] if text else []


def verify(token: Token) -> bool:
    return hmac.compare_digest(token.signature, _signature(token.prefix, token.unit_code))
