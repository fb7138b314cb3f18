"""The campaign the corpus answers: the example campaign's office, units and our outgoing notice."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Callable

from mail.outbox import make_message_id
from models.settings import CAMPAIGNS_DIR

from . import payloads
from .mimebuild import encoded_word, file_part, message, multipart, rfc2231, text_part

PREFIX = "XQ9"
OTHER_PREFIX = "XQ8"  # an earlier campaign of the same office
OFFICE = "lzxqwmb@wenmingban.example"
OFFICE_NAME = "新区文明办"
OFFICE_DOMAIN = "wenmingban.example"
NOTICE_TITLE = "关于组织开展“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动的通知"
BLANK_FORM_NAME = "学雷锋志愿服务主题实践活动开展情况统计表.xlsx"


def _units() -> dict[str, tuple[str, str]]:
    with open(CAMPAIGNS_DIR / "xinqu-2023-9" / "units.csv", encoding="utf-8") as handle:
        return {row["code"]: (row["name"], row["email"]) for row in csv.DictReader(handle)}


UNITS = _units()


def unit_name(code: str) -> str:
    return UNITS[code][0]


def unit_email(code: str) -> str:
    return UNITS[code][1]


def notice_message_id(unit: str, step: str = "issue", prefix: str = PREFIX) -> str:
    return make_message_id("notice", prefix, unit, step, OFFICE_DOMAIN)


@dataclass
class Signer:
    """Signs tokens with the test secret (models.tokens.sign), as the issue flow does."""

    sign: Callable[[str, str], object]

    def token(self, unit: str, prefix: str = PREFIX) -> str:
        return str(self.sign(prefix, unit))

    def subject(self, unit: str) -> str:
        return f"【{self.token(unit)}】{NOTICE_TITLE}"


def our_notice(signer: Signer, unit: str, *, step: str = "issue") -> bytes:
    """The notice as we send it (what a bounce returns and a forward quotes), with the unit's blank
    form: RFC 2231 file name plus an RFC 2047 name, as the outbound mail writes it."""
    form = payloads.reply_form(signer.token(unit), unit_name(unit), sessions=0)
    body = multipart("mixed", [
        text_part(f"{unit_name(unit)}：\n\n现将《{NOTICE_TITLE}》印发给你们，请于10月10日前报送回执表。\n\n{OFFICE_NAME}"),
        file_part(form, f'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet;\r\n\tname="{encoded_word(BLANK_FORM_NAME)}"',
                  disposition="attachment;\r\n\t" + rfc2231("filename", BLANK_FORM_NAME)),
    ], "===============0511843187482317396==")
    return message([
        ("From", f"{encoded_word(OFFICE_NAME)} <{OFFICE}>"),
        ("To", unit_email(unit)),
        ("Subject", encoded_word(signer.subject(unit))),
        ("Date", "Thu, 14 Sep 2023 09:00:00 +0800"),
        ("Message-ID", notice_message_id(unit, step)),
        ("MIME-Version", "1.0"),
    ], body)
