"""Which unit a message belongs to, and by which key.

Keys, strongest first: the signed token inside the reply form, the token in the subject, the thread
(In-Reply-To/References against our Message-IDs), the sender address. Units often answer with a new
mail from another mailbox, so a strong key decides even when the sender is unknown. Nothing is ever
assigned silently when in doubt: a token that does not verify, or keys naming different units,
send the message to staff review.

Tokens with another campaign's prefix are not ours: they are never used as keys. When such a token
verifies and nothing of this campaign points at a unit, the message belongs to the other campaign
(`other_campaign_tokens`, no review here); it also stops a sender-only match, because the unit was
answering the other notice.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterable

from mail.classify import Classification
from mail.mime import ParsedMessage
from models import tokens

FORM_TOKEN = "form_token"
SUBJECT_TOKEN = "subject_token"
IN_REPLY_TO = "in_reply_to"
SENDER = "sender"
ORIGINAL_MESSAGE_ID = "original_message_id"
FINAL_RECIPIENT = "final_recipient"

# Strongest first; the key recorded for a match is the strongest one that named the unit.
_REPLY_KEYS = (FORM_TOKEN, SUBJECT_TOKEN, IN_REPLY_TO)
_KEY_LABELS_ZH = {
    FORM_TOKEN: "回执表中的编号",
    SUBJECT_TOKEN: "邮件主题中的编号",
    IN_REPLY_TO: "邮件往来记录",
    SENDER: "发件地址",
    ORIGINAL_MESSAGE_ID: "退回的原邮件",
    FINAL_RECIPIENT: "退信中的收件地址",
}


@dataclass
class MatchCandidate:
    key: str
    unit_code: str
    detail: str


@dataclass
class MatchResult:
    unit_code: str | None
    key: str | None
    candidates: list[MatchCandidate]
    needs_review: bool
    reason_zh: str
    invalid_tokens: list[str] = field(default_factory=list)
    other_campaign_tokens: list[str] = field(default_factory=list)


def match_reply(
    parsed: ParsedMessage,
    *,
    form_tokens: Iterable[str],
    token_prefix: str,
    message_id_to_unit: Callable[[str], str | None],
    address_to_unit: Callable[[str], str | None],
) -> MatchResult:
    """Match a reply (classified as such) to a unit of the campaign whose tokens start `token_prefix`."""
    prefix = token_prefix.upper()
    candidates: list[MatchCandidate] = []
    invalid: list[str] = []
    foreign: list[str] = []

    def consider(key: str, token: tokens.Token) -> None:
        if token.prefix != prefix:
            if tokens.verify(token) and str(token) not in foreign:
                foreign.append(str(token))
            return  # a token-shaped string of someone else (or noise such as ISO-9001-REPORT)
        if tokens.verify(token):
            _add(candidates, MatchCandidate(key, token.unit_code, str(token)))
        elif str(token) not in invalid:
            invalid.append(str(token))

    for text in form_tokens:
        for token in tokens.find_all(_normalise(str(text))):
            consider(FORM_TOKEN, token)
    for subject in _subjects(parsed):
        for token in tokens.find_all(_normalise(subject)):
            consider(SUBJECT_TOKEN, token)
    for message_id in _thread_ids(parsed):
        unit = message_id_to_unit(message_id)
        if unit:
            _add(candidates, MatchCandidate(IN_REPLY_TO, unit, message_id))
    sender_unit = address_to_unit(parsed.from_addr) if parsed.from_addr else None
    if sender_unit:
        _add(candidates, MatchCandidate(SENDER, sender_unit, parsed.from_addr))

    if invalid:
        return MatchResult(None, None, candidates, True,
                           f"编号 {'、'.join(invalid)} 校验不通过（可能被改动或伪造），请人工核对这封邮件属于哪个单位。",
                           invalid_tokens=invalid, other_campaign_tokens=foreign)
    return _decide(candidates, _REPLY_KEYS, SENDER, foreign, invalid)


def match_bounce(
    classification: Classification,
    *,
    message_id_to_unit: Callable[[str], str | None],
    address_to_unit: Callable[[str], str | None],
) -> MatchResult:
    """The unit a bounce is about: by our Message-ID in the returned original, else by the failed
    recipient address. Both naming different units, or neither naming one, goes to review."""
    candidates: list[MatchCandidate] = []
    for message_id in classification.original_message_ids:
        unit = message_id_to_unit(message_id)
        if unit:
            _add(candidates, MatchCandidate(ORIGINAL_MESSAGE_ID, unit, message_id))
    for address in classification.bounced_addresses:
        unit = address_to_unit(address)
        if unit:
            _add(candidates, MatchCandidate(FINAL_RECIPIENT, unit, address))
    return _decide(candidates, (ORIGINAL_MESSAGE_ID, FINAL_RECIPIENT), None, [], [])


def _decide(candidates: list[MatchCandidate], strong_keys: tuple[str, ...], weak_key: str | None,
            foreign: list[str], invalid: list[str]) -> MatchResult:
    strong = [c for c in candidates if c.key in strong_keys]
    weak = [c for c in candidates if c.key == weak_key]
    units = _unique(c.unit_code for c in strong)
    weak_units = _unique(c.unit_code for c in weak)
    if len(units) > 1 or (units and weak_units and weak_units != units) or len(weak_units) > 1:
        return MatchResult(None, None, candidates, True,
                           "各项线索指向不同单位：" + "；".join(
                               f"{_KEY_LABELS_ZH[c.key]}（{c.detail}）→ {c.unit_code}" for c in candidates)
                           + "。请人工确认这封邮件属于哪个单位。",
                           invalid_tokens=invalid, other_campaign_tokens=foreign)
    if units:
        best = min(strong, key=lambda c: strong_keys.index(c.key))
        return MatchResult(best.unit_code, best.key, candidates, False,
                           f"根据{_KEY_LABELS_ZH[best.key]}（{best.detail}）确认为 {best.unit_code}。",
                           invalid_tokens=invalid, other_campaign_tokens=foreign)
    if foreign:
        return MatchResult(None, None, candidates, False,
                           f"邮件中的编号 {'、'.join(foreign)} 属于另一项通知，本通知不处理。",
                           invalid_tokens=invalid, other_campaign_tokens=foreign)
    if weak_units:
        best = weak[0]
        return MatchResult(best.unit_code, best.key, candidates, False,
                           f"仅根据发件地址 {best.detail} 判断为 {best.unit_code}（可信度较低：邮件中没有编号）。",
                           invalid_tokens=invalid, other_campaign_tokens=foreign)
    return MatchResult(None, None, candidates, True,
                       "无法判断这封邮件来自哪个单位（没有有效编号，发件地址也不在名单中），请人工归属。",
                       invalid_tokens=invalid, other_campaign_tokens=foreign)


def _normalise(text: str) -> str:
    # Chinese input methods turn a typed token into full-width letters (ＸＱ９－…); NFKC undoes that.
    return unicodedata.normalize("NFKC", text or "")


def _subjects(parsed: ParsedMessage) -> list[str]:
    subjects = [parsed.subject]
    for inner in parsed.forwarded:
        subjects.extend(_subjects(inner))
    return subjects


def _thread_ids(parsed: ParsedMessage) -> list[str]:
    ids = ([parsed.in_reply_to] if parsed.in_reply_to else []) + list(parsed.references)
    for inner in parsed.forwarded:
        ids.extend(_thread_ids(inner))
    return _unique(ids)


def _add(candidates: list[MatchCandidate], candidate: MatchCandidate) -> None:
    if candidate not in candidates:
        candidates.append(candidate)


def _unique(items: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
