"""Shared fixtures. Each fixture undoes exactly what it set, so fixtures combine in any order."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from mail.devmail import DevMailServer
from models import db
from models.settings import DEFAULT_OFFICE_LOGIN, Settings, reload_settings

# Different from each other and from the documented defaults, so a test that confuses the office
# login with a unit's, or relies on a default, fails.
DEVMAIL_OFFICE_PASSWORD = "office-test-password"
DEVMAIL_UNIT_PASSWORD = "unit-test-password"


@pytest.fixture
def nf_env(tmp_path) -> Iterator[Settings]:
    """Output directory and SQLite database under tmp_path, a test signing secret."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOTICEFLOW_OUTPUT_DIR", str(tmp_path / "outputs"))
        patch.setenv("NOTICEFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'noticeflow.db'}")
        patch.setenv("NOTICEFLOW_SECRET", "test-secret-not-for-production")
        db.reset_engines()
        yield reload_settings()
    db.reset_engines()
    reload_settings()


@pytest.fixture
def devmail() -> Iterator[DevMailServer]:
    """A running dev mail server on loopback with free ports, and the NOTICEFLOW_SMTP_* /
    NOTICEFLOW_IMAP_* / NOTICEFLOW_DEVMAIL_PASSWORD environment pointing the program at it."""
    server = DevMailServer(
        smtp_host="127.0.0.1",
        smtp_port=0,
        imap_host="127.0.0.1",
        imap_port=0,
        office_user=DEFAULT_OFFICE_LOGIN,
        office_password=DEVMAIL_OFFICE_PASSWORD,
        other_password=DEVMAIL_UNIT_PASSWORD,
    )
    with server, pytest.MonkeyPatch.context() as patch:
        for protocol, port in (("SMTP", server.smtp_port), ("IMAP", server.imap_port)):
            patch.setenv(f"NOTICEFLOW_{protocol}_HOST", "127.0.0.1")
            patch.setenv(f"NOTICEFLOW_{protocol}_PORT", str(port))
            patch.setenv(f"NOTICEFLOW_{protocol}_USER", server.office_user)
            patch.setenv(f"NOTICEFLOW_{protocol}_PASSWORD", server.office_password)
            patch.setenv(f"NOTICEFLOW_{protocol}_SECURITY", "none")
        patch.setenv("NOTICEFLOW_DEVMAIL_PASSWORD", server.other_password)
        reload_settings()
        yield server
    reload_settings()
