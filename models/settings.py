"""Configuration from the environment (NOTICEFLOW_*), optionally from a `.env` file."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = PROJECT_ROOT / "templates"
CAMPAIGNS_DIR = PROJECT_ROOT / "campaigns"

Security = Literal["ssl", "starttls", "none"]

# Documented defaults of the embedded mail server (`noticeflow devmail`): loopback only,
# unprivileged ports, so a fresh clone runs without any real mail account.
DEFAULT_SMTP_PORT = 8025
DEFAULT_IMAP_PORT = 8143
DEFAULT_OFFICE_LOGIN = "lzxqwmb@wenmingban.example"
DEFAULT_DEV_PASSWORD = "devmail"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTICEFLOW_", env_file=".env", extra="ignore")

    database_url: str | None = None
    output_dir: Path = PROJECT_ROOT / "outputs"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = DEFAULT_SMTP_PORT
    smtp_user: str = DEFAULT_OFFICE_LOGIN
    smtp_password: SecretStr = SecretStr(DEFAULT_DEV_PASSWORD)
    smtp_security: Security = "none"
    smtp_timeout: float = 30.0

    imap_host: str = "127.0.0.1"
    imap_port: int = DEFAULT_IMAP_PORT
    imap_user: str = DEFAULT_OFFICE_LOGIN
    imap_password: SecretStr = SecretStr(DEFAULT_DEV_PASSWORD)
    imap_security: Security = "none"
    imap_folder: str = "INBOX"
    imap_processed_folder: str = "Processed"

    web_base_url: str = "http://127.0.0.1:8000"  # where the staff page is reached: links in artifacts

    secret: SecretStr | None = None
    now: str | None = None
    devmail_password: SecretStr = SecretStr(DEFAULT_DEV_PASSWORD)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.output_dir / 'noticeflow.db'}"

    def campaign_dir(self, campaign_id: str) -> Path:
        """Where everything the program writes for one campaign goes."""
        return self.output_dir / campaign_id


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    """Forget cached settings (tests and the demo change the environment)."""
    get_settings.cache_clear()
    return get_settings()
