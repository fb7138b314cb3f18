"""What an inbound message is: a bounce, an auto-reply, a unit's reply, or something staff must see.

Bounces are recognised first: a bounce carries our own notice (and its blank reply form) inside,
and an auto-reply test or an attachment walk that ran first would mistake it for a submission.

X-Auto-Response-Suppress is not taken as a sign of an auto-reply on its own: it asks others not to
auto-reply, and Exchange adds it to ordinary mail too (for example mail through a distribution
list), so it would turn a unit's real submission into an ignored auto-reply. Exchange's
out-of-office replies are still recognised, by their "自动答复:"/"Automatic reply:" subject.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from enum import Enum
from typing import Iterable

from flufl import bounce as flufl_bounce

from mail.mime import (
    ParsedMessage,
    decode_header_value,
    html_to_text,
    load_message,
    parse_addresses,
    raw_header,
)


log = logging.getLogger(__name__)


class Kind(str, Enum):
    reply = "reply"
    bounce = "bounce"
    auto_reply = "auto_reply"
    unknown = "unknown"


@dataclass
class Classification:
    kind: Kind
    reason: str  # for maintainers' logs (English)
    bounced_addresses: list[str] = field(default_factory=list)
    original_message_ids: list[str] = field(default_factory=list)
    bounce_status: str = ""
    bounce_text: str = ""  # the server's own words
    reason_zh: str = ""  # for staff


# Local parts of the addresses that mail systems send notices from.
_SYSTEM_LOCAL_PARTS = re.compile(
    r"^(mailer-daemon|mailerdaemon|mail-daemon|maildaemon|postmaster|mdaemon|mail\.?delivery"
    r"|microsoftexchange[0-9a-f]*|bounces?|nobody)$",
    re.IGNORECASE,
)
_SYSTEM_NAMES = re.compile(r"mail delivery (sub)?system|mailer-daemon|postmaster|系统退信|邮件系统", re.IGNORECASE)
# Subjects that only a mail system writes: enough on their own. Anchored, so "回复：…" is not one.
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(来自\S*的退信|系统退信|undelivered mail returned to sender|undeliverable:|delivery status notification \(failure\)"
    r"|mail delivery failed|returned mail:|mail system error - returned mail|non[- ]?delivery report)",
    re.IGNORECASE,
)
# Subjects a person might also write ("退信问题"): a bounce only when a mail system sent them.
_LOOSE_BOUNCE_SUBJECT = re.compile(
    r"^\s*(退信|邮件退信|退信通知|投递失败|邮件投递失败|发送失败|邮件发送失败|无法投递|undelivered|undeliverable"
    r"|delivery failure|failure notice|message not delivered|delivery has failed)",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"delay|延迟|延时|暂时无法投递", re.IGNORECASE)
_FAILURE_WORDS = re.compile(
    r"undeliverable|could not be delivered|delivery (has )?failed|user unknown|unknown user|no such user"
    r"|does not exist|mailbox (is )?(unavailable|not found|full)|recipient address rejected|address rejected"
    r"|rejected|not found|退信|退回|无法投递|投递失败|无法发送|发送失败|不存在|被拒|拒收|无法送达",
    re.IGNORECASE,
)
# Outlook/Exchange out-of-office replies always carry one of these prefixes (in the user's language).
_AUTO_SUBJECT = re.compile(
    r"^\s*(自动回复|自动答复|自動回覆|自动回覆|自動応答|auto(matic)?[ _-]?reply|auto[ _-]?response|autoreply"
    r"|out of (the )?office|ooo\b|auto:|abwesenheitsnotiz|automatische antwort|réponse automatique)",
    re.IGNORECASE,
)
_STATUS_CODE = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b([45]\d\d)[ -]")
_ADDRESS = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_MESSAGE_ID_HEADER = re.compile(r"^message-id:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_PRECEDENCE_AUTO = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_BOUNCE_TEXT_LIMIT = 2000


def classify(raw: bytes, parsed: ParsedMessage, *, own_addresses: Iterable[str] = ()) -> Classification:
    """Classify one raw message. `own_addresses` (the office mailbox) are never reported as bounced
    and a message from them is not taken as a unit's reply."""
    own = {address.lower() for address in own_addresses}
    msg = load_message(raw)
    bounce = _bounce(raw, msg, parsed, own)
    if bounce is not None:
        return bounce
    auto = _auto_reply(msg, parsed)
    if auto is not None:
        return auto
    if not parsed.from_addr:
        return Classification(Kind.unknown, "no sender address", reason_zh="邮件没有发件地址，请人工查看。")
    if parsed.from_addr in own:
        return Classification(Kind.unknown, "sent from our own mailbox",
                              reason_zh="这封邮件来自本办公室邮箱，不是单位的回复，请人工查看。")
    if _is_system_sender(parsed):
        return Classification(Kind.unknown, f"notice from mail system {parsed.from_addr}",
                              reason_zh="这是邮件系统发来的通知（不是退信，也不是单位回复），请人工查看。")
    return Classification(Kind.reply, "message from a person")


def harvestable_attachments(parsed: ParsedMessage, classification: Classification):
    """The attachments the collector may store: none from a bounce (our own blank form is inside)
    or an auto-reply."""
    if classification.kind in (Kind.bounce, Kind.auto_reply):
        return []
    return list(parsed.attachments)


# --------------------------------------------------------------------------------------------
# Bounces


def _is_system_sender(parsed: ParsedMessage) -> bool:
    local = parsed.from_addr.split("@", 1)[0]
    return bool(_SYSTEM_LOCAL_PARTS.match(local) or _SYSTEM_NAMES.search(parsed.from_name or ""))


def _bounce(raw: bytes, msg: Message, parsed: ParsedMessage, own: set[str]) -> Classification | None:
    if msg.get_content_type() == "multipart/report":
        report_type = (msg.get_param("report-type") or "").lower()
        status_parts = [part for part in _children(msg) if part.get_content_type() in
                        ("message/delivery-status", "message/global-delivery-status")]
        if status_parts or report_type == "delivery-status":
            return _from_dsn(raw, msg, parsed, status_parts, own)
        if report_type == "disposition-notification" or any(
            part.get_content_type() == "message/disposition-notification" for part in _children(msg)
        ):
            return Classification(Kind.auto_reply, "read receipt (MDN)",
                                  original_message_ids=_mdn_message_ids(msg),
                                  reason_zh="已读回执，由对方邮件系统自动发出，不是报送材料。")
    from_system = _is_system_sender(parsed)
    if _BOUNCE_SUBJECT.match(parsed.subject) or (
        from_system and (_LOOSE_BOUNCE_SUBJECT.match(parsed.subject) or _mentions_failure(parsed))
    ):
        return _from_text(raw, msg, parsed, own)
    return None


def _children(msg: Message) -> list[Message]:
    payload = msg.get_payload()
    return [part for part in payload if isinstance(part, Message)] if isinstance(payload, list) else []


def _mentions_failure(parsed: ParsedMessage) -> bool:
    return bool(_FAILURE_WORDS.search(parsed.subject) or _FAILURE_WORDS.search(parsed.text[:4000]))


def _status_blocks(status_parts: list[Message]) -> list[Message]:
    blocks = []
    for part in status_parts:
        payload = part.get_payload()
        if isinstance(payload, list):
            # The first block describes the message (Reporting-MTA), the rest one recipient each.
            blocks.extend(block for block in payload if isinstance(block, Message)
                          and (block.get("final-recipient") or block.get("action")))
    return blocks


def _mta_failures(raw: bytes) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """(temporary, permanent) failed addresses by flufl.bounce's DSN and MTA-specific detectors.

    Its detectors call str methods on headers, which the stdlib returns as Header objects when they
    carry 8-bit bytes; the detectors only report ASCII addresses anyway, so they get a copy with
    every 8-bit byte masked."""
    try:
        return flufl_bounce.all_failures(load_message(re.sub(rb"[\x80-\xff]", b"?", raw)))
    except Exception:  # a detector tripping over a malformed bounce must not lose the message
        log.warning("flufl.bounce failed on a bounce; using the text fallback", exc_info=True)
        return frozenset(), frozenset()


def _recipient_address(block: Message) -> str:
    for header in ("final-recipient", "original-recipient", "x-actual-recipient"):
        value = block.get(header)
        if value:
            text = decode_header_value(str(value))
            address = text.split(";", 1)[-1].strip().strip("<>").strip()
            if "@" in address:
                return address.lower()
    return ""


def _from_dsn(raw: bytes, msg: Message, parsed: ParsedMessage, status_parts: list[Message],
              own: set[str]) -> Classification:
    blocks = _status_blocks(status_parts)
    if not blocks:  # declared a DSN but carries no recipient blocks: read it as text
        return _from_text(raw, msg, parsed, own)
    failed, delayed, statuses, diagnostics = [], [], [], []
    for block in blocks:
        action = str(block.get("action", "")).strip().lower()
        address = _recipient_address(block)
        status = str(block.get("status", "")).strip().split()[0] if block.get("status") else ""
        diagnostic = decode_header_value(str(block.get("diagnostic-code", "")))
        if action.startswith(("fail", "error")):
            failed.append(address)
            statuses.append(status)
            if diagnostic:
                diagnostics.append(diagnostic.split(";", 1)[-1].strip())
        elif action.startswith("delay"):
            delayed.append(address)
            statuses.append(status)
    temporary, permanent = _mta_failures(raw)
    for address in sorted(permanent):
        text = address.decode("ascii", "replace").lower()
        if text not in failed:
            failed.append(text)
    failed = _unique([address for address in failed if address and address not in own])
    original_ids = _returned_message_ids(msg, parsed)
    human_text = _bounce_human_text(parsed)
    server_words = "\n".join(_unique(diagnostics)) or human_text
    if failed:
        return Classification(
            Kind.bounce, "delivery status notification (RFC 3464): delivery failed",
            bounced_addresses=failed, original_message_ids=original_ids,
            bounce_status=next((status for status in statuses if status), "") or _status_from_text(server_words),
            bounce_text=server_words[:_BOUNCE_TEXT_LIMIT],
            reason_zh="退信：邮件无法投递到 " + "、".join(failed) + "。",
        )
    if delayed or temporary:
        return Classification(
            Kind.auto_reply, "delivery status notification: delivery delayed, not failed",
            original_message_ids=original_ids, bounce_status=next((s for s in statuses if s), ""),
            bounce_text=server_words[:_BOUNCE_TEXT_LIMIT],
            reason_zh="投递延迟通知：对方服务器暂未收下，系统会继续投递，暂不需处理。",
        )
    return Classification(
        Kind.auto_reply, "delivery status notification without failure (delivered/relayed)",
        original_message_ids=original_ids, bounce_text=server_words[:_BOUNCE_TEXT_LIMIT],
        reason_zh="投递状态通知（未失败），不需处理。",
    )


def _from_text(raw: bytes, msg: Message, parsed: ParsedMessage, own: set[str]) -> Classification:
    """Bounces without a DSN (QQ's 来自qq.com的退信, Coremail's 系统退信, old MTAs)."""
    temporary, permanent = _mta_failures(raw)
    addresses = [address.decode("ascii", "replace").lower() for address in sorted(permanent | temporary)]
    human_text = _bounce_human_text(parsed)
    original = _returned_original(msg)
    if not addresses:
        addresses = _addresses_from_returned_original(original, human_text)
    if not addresses:
        excluded = own | {parsed.from_addr}
        addresses = [address.lower() for address in _ADDRESS.findall(human_text)
                     if address.lower() not in excluded and not _SYSTEM_LOCAL_PARTS.match(address.split("@")[0])]
    addresses = _unique([address for address in addresses if address not in own])
    status = _status_from_text(human_text)
    if _DELAY_SUBJECT.search(parsed.subject) and not _BOUNCE_SUBJECT.match(parsed.subject):
        return Classification(Kind.auto_reply, "delivery delayed notice (no DSN)",
                              original_message_ids=_returned_message_ids(msg, parsed), bounce_status=status,
                              bounce_text=human_text[:_BOUNCE_TEXT_LIMIT],
                              reason_zh="投递延迟通知：对方服务器暂未收下，暂不需处理。")
    return Classification(
        Kind.bounce, "bounce recognised from the sender, subject and text (no DSN)",
        bounced_addresses=addresses, original_message_ids=_returned_message_ids(msg, parsed),
        bounce_status=status, bounce_text=_server_words(human_text)[:_BOUNCE_TEXT_LIMIT],
        reason_zh=("退信：邮件无法投递到 " + "、".join(addresses) + "。") if addresses
        else "退信：未能从退信中认出收件地址，请人工查看。",
    )


def _bounce_human_text(parsed: ParsedMessage) -> str:
    return parsed.text or html_to_text(parsed.html)


def _server_words(text: str) -> str:
    """The lines that carry the server's reason (codes, failure words), else the whole text."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    chosen = [line for line in lines if _STATUS_CODE.search(line) or _SMTP_REPLY.search(line)
              or _FAILURE_WORDS.search(line)]
    return "\n".join(chosen) if chosen else "\n".join(lines)


def _status_from_text(text: str) -> str:
    found = _STATUS_CODE.search(text or "")
    if found and not found.group(1).startswith("2"):
        return found.group(1)
    found = _SMTP_REPLY.search(text or "")
    return found.group(1) if found else ""


def _returned_original(msg: Message) -> Message | None:
    """The copy of our message that a bounce carries (message/rfc822 or text/rfc822-headers)."""
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop(0)
        ctype = part.get_content_type()
        if part is not msg and ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if part is not msg and ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            data = part.get_payload(decode=True) or b""
            return load_message(data)
        if part.is_multipart() and depth < 5:
            stack.extend((child, depth + 1) for child in _children(part))
    return None


def _addresses_from_returned_original(original: Message | None, human_text: str) -> list[str]:
    """The unit's address from the To of our returned notice; of To and Cc, the ones the text names."""
    if original is None:
        return []
    to = [address for _, address in parse_addresses(raw_header(original, "to")) if address]
    cc = [address for _, address in parse_addresses(raw_header(original, "cc")) if address]
    mentioned = [address for address in to + cc if address in human_text.lower()]
    return mentioned or to


def _returned_message_ids(msg: Message, parsed: ParsedMessage) -> list[str]:
    ids = []
    original = _returned_original(msg)
    if original is not None:
        ids.extend(re.findall(r"<[^<>\s]+>", raw_header(original, "message-id") or ""))
    # Some servers quote the original headers in the text part instead of attaching them.
    ids.extend(_MESSAGE_ID_HEADER.findall(parsed.text))
    if parsed.in_reply_to:
        ids.append(parsed.in_reply_to)
    ids.extend(parsed.references)
    return _unique(ids)


def _mdn_message_ids(msg: Message) -> list[str]:
    ids = []
    for part in _children(msg):
        if part.get_content_type() == "message/disposition-notification":
            payload = part.get_payload()
            blocks = payload if isinstance(payload, list) else [part]
            for block in blocks:
                value = block.get("original-message-id") if isinstance(block, Message) else None
                if value:
                    ids.extend(re.findall(r"<[^<>\s]+>", str(value)))
    return _unique(ids)


# --------------------------------------------------------------------------------------------
# Auto-replies


def _auto_reply(msg: Message, parsed: ParsedMessage) -> Classification | None:
    headers = parsed.headers
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return _auto(f"Auto-Submitted: {auto_submitted}")
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if name in headers and headers[name].strip().lower() not in ("no", "false", "0"):
            return _auto(f"{name}: {headers[name]}")
    if headers.get("x-autogenerated", "").strip().lower() == "reply":
        return _auto("X-AutoGenerated: Reply")
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in _PRECEDENCE_AUTO:
        return _auto(f"Precedence: {precedence}")
    if _AUTO_SUBJECT.match(parsed.subject):
        suppress = headers.get("x-auto-response-suppress")
        return _auto(f"subject {parsed.subject!r}" + (f", X-Auto-Response-Suppress: {suppress}" if suppress else ""))
    return None


def _auto(reason: str) -> Classification:
    return Classification(Kind.auto_reply, f"auto-reply ({reason})",
                          reason_zh="自动回复（如休假自动答复），不是报送材料，不予回复。")


def _unique(items: Iterable[str]) -> list[str]:
    seen, result = set(), []
    for item in items:
        if item and item not in seen:
            seen.add(item)
            result.append(item)
    return result

