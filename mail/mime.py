"""Decoding inbound mail as Chinese mail clients really send it.

The stdlib parser splits the MIME tree; everything that decides what a person reads (headers, file
names, body text) is decoded here, because real clients break the standards in known ways:
headers labelled gb2312 that contain GBK-only characters, RFC 2047 words inside a quoted
`filename=`, RFC 2231 continuations, raw 8-bit headers, HTML-only bodies, Outlook's winmail.dat.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.policy
import email.utils
import quopri
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from email.parser import BytesHeaderParser
from html.parser import HTMLParser
from urllib.parse import unquote_to_bytes

import tnefparse
from tnefparse import properties as tnef_properties

# Labels that real clients put on GBK text; gb18030 is a superset of all of them.
_GB_LABELS = {
    "gb2312", "gb_2312", "gb_2312-80", "gb2312-80", "gb2312-1980", "csgb2312", "euc-cn", "x-euc-cn",
    "gbk", "x-gbk", "cp936", "ms936", "windows-936", "chinese", "iso-ir-58", "gb18030",
}
_CHARSET_ALIASES = {
    "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "x-unicode20utf8": "utf-8",
    "ks_c_5601-1987": "cp949", "big5": "big5hkscs", "iso-8859-1": "cp1252", "latin1": "cp1252",
    "us-ascii": "ascii", "ascii": "ascii", "ansi_x3.4-1968": "ascii",
}
# Nesting and size bounds for hostile messages; real client mail stays far below them.
MAX_MIME_DEPTH = 20
MAX_MIME_PARTS = 500
TNEF_CONTENT_TYPES = {"application/ms-tnef", "application/vnd.ms-tnef"}
_SIGNATURE_TYPES = {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
_RETURNED_ORIGINAL_TYPES = {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"}
_REPORT_STATUS_TYPES = {"message/delivery-status", "message/disposition-notification",
                        "message/global-delivery-status", "message/global-disposition-notification"}

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|fw|fwd|aw|wg|回复|答复|回覆|转发|转寄|轉寄)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)


@dataclass
class ParsedAttachment:
    original_name: str
    content_type: str
    data: bytes
    from_tnef: bool = False
    from_forwarded: bool = False


@dataclass
class ParsedMessage:
    message_id: str
    subject: str
    from_addr: str
    from_name: str
    to_addrs: list[str]
    in_reply_to: str
    references: list[str]
    date: datetime | None
    text: str
    html: str
    attachments: list[ParsedAttachment]
    headers: dict[str, str]
    # Messages attached as message/rfc822 (a forwarded reply), parsed the same way.
    forwarded: list["ParsedMessage"] = field(default_factory=list)
    # What could not be decoded as declared, for maintainers' logs.
    defects: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Charsets and header words


def normalise_charset(label: str | None) -> str | None:
    """A Python codec name for a MIME charset label, or None when the label is unknown."""
    if not label:
        return None
    name = label.strip().strip('"').lower().split("*", 1)[0]
    if name in _GB_LABELS:
        return "gb18030"
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):  # ValueError: a NUL inside the label
        return None


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Text from bytes: the declared charset if it fits, then UTF-8, then GB18030."""
    tried = []
    for codec in (normalise_charset(declared), "utf-8", "gb18030"):
        if codec and codec not in tried:
            tried.append(codec)
            try:
                return data.decode(codec)
            except (UnicodeDecodeError, LookupError):
                continue
    return data.decode(tried[0] if tried else "utf-8", errors="replace")


def _raw_bytes(value: str) -> bytes:
    # The bytes parser keeps 8-bit header bytes as surrogate escapes; get them back exactly.
    return value.encode("utf-8", "surrogateescape")


def _raw_to_text(value: str | bytes) -> str:
    """Header text with raw 8-bit bytes decoded (UTF-8, then GB18030); encoded words untouched."""
    data = value if isinstance(value, bytes) else _raw_bytes(value)
    if data.isascii():
        return data.decode("ascii")
    return decode_bytes(data)


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", "")


def _decode_word_payload(encoding: str, payload: str) -> bytes:
    if encoding.lower() == "b":
        compact = re.sub(r"[^A-Za-z0-9+/=]", "", payload).rstrip("=")
        compact += "=" * (-len(compact) % 4)
        try:
            return base64.b64decode(compact)
        except (binascii.Error, ValueError):
            return payload.encode("ascii", "replace")
    raw = payload.replace("_", " ").encode("utf-8", "surrogateescape")
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words wherever they stand (also inside quotes or glued to text).

    Adjacent words in one charset are joined as bytes before decoding, because clients split a
    long subject in the middle of a multi-byte character (and some even in the middle of a base64
    group, which is why such a run of B words is decoded as one text when it does not split evenly).
    """
    # ("word", charset, [(encoding, payload), ...]) | ("text", None, str)
    pieces: list[tuple[str, str | None, object]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[position:match.start()]
        if between and not (between.isspace() and pieces and pieces[-1][0] == "word"):
            pieces.append(("text", None, between))
        charset, encoding, payload = match.group(1), match.group(2).lower(), match.group(3)
        if pieces and pieces[-1][0] == "word" and normalise_charset(pieces[-1][1]) == normalise_charset(charset):
            pieces[-1][2].append((encoding, payload))
        else:
            pieces.append(("word", charset, [(encoding, payload)]))
        position = match.end()
    if position < len(text):
        pieces.append(("text", None, text[position:]))
    out = []
    for kind, charset, payload in pieces:
        out.append(decode_bytes(_join_words(payload), charset) if kind == "word" else payload)
    return "".join(out)


def _join_words(words: list[tuple[str, str]]) -> bytes:
    # A B word that does not end on a 4-character group was cut out of one base64 text.
    if all(encoding == "b" for encoding, _ in words) and any(len(text) % 4 for _, text in words[:-1]):
        return _decode_word_payload("b", "".join(text.rstrip("=") for _, text in words))
    return b"".join(_decode_word_payload(encoding, text) for encoding, text in words)


def decode_header_value(value: str | bytes | None) -> str:
    """A header as a person would read it: unfolded, 8-bit bytes and encoded words decoded, NFC."""
    if value is None:
        return ""
    text = _raw_to_text(value)
    return unicodedata.normalize("NFC", decode_words(_unfold(text))).strip()


def strip_reply_prefixes(subject: str) -> str:
    """The subject without leading Re:/Fw:/回复：/答复：/转发： (any number, any mix)."""
    return _REPLY_PREFIX.sub("", subject or "").strip()


def parse_addresses(value: str | None) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs; names decoded after the address list is split,
    so a decoded comma inside a name cannot split it."""
    if not value:
        return []
    text = _unfold(_raw_to_text(value))
    result = []
    for name, address in email.utils.getaddresses([text]):
        address = address.strip().lower()
        if not address and not name:
            continue
        result.append((decode_header_value(name), address))
    return result


# --------------------------------------------------------------------------------------------
# Header parameters (file names)


def _split_params(value: bytes) -> list[bytes]:
    pieces, current, quoted, escaped = [], bytearray(), False, False
    for byte in value:
        char = bytes([byte])
        if escaped:
            current += char
            escaped = False
        elif char == b"\\" and quoted:
            current += char
            escaped = True
        elif char == b'"':
            quoted = not quoted
            current += char
        elif char == b";" and not quoted:
            pieces.append(bytes(current))
            current = bytearray()
        else:
            current += char
    pieces.append(bytes(current))
    return pieces


def _unquote(value: bytes) -> bytes:
    value = value.strip()
    if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
        # Only \" and \\ are treated as escapes: Windows paths arrive with bare backslashes.
        return re.sub(rb'\\(["\\])', rb"\1", value[1:-1])
    return value


def header_params(raw_value: str | bytes | None) -> tuple[str, dict[str, str]]:
    """(main value, {parameter: decoded text}) from a raw Content-Type/Content-Disposition value.

    RFC 2231 (`name*=charset''%..`, continuations `name*0*=`, `name*1=`), RFC 2047 words inside
    quotes and raw 8-bit bytes are all decoded; gb2312 labels are read as GB18030.
    """
    if raw_value is None:
        return "", {}
    data = raw_value if isinstance(raw_value, bytes) else _raw_bytes(_unfold(raw_value))
    data = data.replace(b"\r", b"").replace(b"\n", b"")
    pieces = _split_params(data)
    main = pieces[0].strip().decode("ascii", "replace").lower()
    plain: dict[str, bytes] = {}
    extended: dict[str, dict[int, tuple[bool, bytes]]] = {}
    for piece in pieces[1:]:
        if b"=" not in piece:
            continue
        raw_name, raw_val = piece.split(b"=", 1)
        name = raw_name.strip().decode("ascii", "replace").lower()
        section = re.fullmatch(r"([^*]+)\*(\d+)(\*?)", name)
        if "*" not in name:
            plain.setdefault(name, _unquote(raw_val))
        elif name.endswith("*") and name.count("*") == 1:
            extended.setdefault(name[:-1], {})[0] = (True, _unquote(raw_val))
        elif section:
            base, index, encoded = section.group(1), int(section.group(2)), bool(section.group(3))
            extended.setdefault(base, {})[index] = (encoded, _unquote(raw_val))
    params: dict[str, str] = {}
    for name, sections in extended.items():
        params[name] = _join_rfc2231(sections)
    for name, raw in plain.items():
        if name not in params or not params[name]:
            params[name] = decode_header_value(raw)
    return main, params


def _join_rfc2231(sections: dict[int, tuple[bool, bytes]]) -> str:
    charset = None
    joined = bytearray()
    for position, index in enumerate(sorted(sections)):
        encoded, value = sections[index]
        if position == 0 and encoded and value.count(b"'") >= 2:
            label, _language, value = value.split(b"'", 2)
            charset = label.decode("ascii", "replace") or None
        joined += unquote_to_bytes(value) if encoded else value
    return unicodedata.normalize("NFC", decode_words(decode_bytes(bytes(joined), charset))).strip()


def raw_header(part: Message, name: str) -> str | None:
    """The first `name` header exactly as received (8-bit bytes as surrogate escapes), or None."""
    for key, value in part.raw_items():
        if key.lower() == name:
            return value
    return None


def attachment_filename(part: Message) -> str:
    """The file name a client meant, from Content-Disposition filename or Content-Type name."""
    _, disposition = header_params(raw_header(part, "content-disposition"))
    if disposition.get("filename"):
        return disposition["filename"]
    _, ctype = header_params(raw_header(part, "content-type"))
    return ctype.get("name", "")


# --------------------------------------------------------------------------------------------
# HTML to text


class _HTMLToText(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
              "blockquote", "pre", "hr", "section", "article", "header", "footer", "dd", "dt", "title"}
    _SKIP = {"script", "style", "head", "noscript", "template", "xml"}
    _CELL = {"td", "th"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.pieces.append("\n")
        elif tag in self._CELL:
            self.pieces.append("\t")

    def handle_startendtag(self, tag, attrs):
        if tag in self._BLOCK:
            self.pieces.append("\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.pieces.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.pieces.append(data)


def html_to_text(html: str) -> str:
    """Readable text from HTML: blocks become lines, cells are tab-separated, scripts dropped."""
    if not html:
        return ""
    parser = _HTMLToText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; an assertion on garbage must not lose the mail
        return re.sub(r"<[^>]*>", " ", html)
    text = "".join(parser.pieces).replace("\xa0", " ").replace("\u3000", " ")
    lines = [re.sub(r"[ \t\f\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --------------------------------------------------------------------------------------------
# TNEF (winmail.dat)


def unpack_tnef(data: bytes) -> tuple[list[ParsedAttachment], str]:
    """The files and the plain body inside an Outlook winmail.dat. Raises ValueError if unreadable."""
    try:
        tnef = tnefparse.TNEF(data, do_checksum=False)
    except Exception as exc:  # the decoder raises struct/index errors on damaged input
        raise ValueError(f"unreadable TNEF: {exc}") from exc
    # tnefparse strips trailing NUL bytes from MAPI binary data (PR_ATTACH_DATA_OBJ), which breaks
    # files such as .xlsx that end in NULs; the attAttachData object keeps the exact bytes.
    raw_data: list[bytes | None] = []
    titles: list[bytes | None] = []
    for obj in tnef.objects:
        if obj.name == tnefparse.TNEF.ATTATTACHRENDDATA:
            raw_data.append(None)
            titles.append(None)
        elif obj.level == tnefparse.TNEF.LVL_ATTACHMENT and raw_data:
            if obj.name == tnefparse.TNEF.ATTATTACHDATA:
                raw_data[-1] = obj.data
            elif obj.name == tnefparse.TNEF.ATTATTACHTITLE:
                titles[-1] = obj.data
    codepage = tnef.codepage or "cp1252"
    files = []
    for index, attachment in enumerate(tnef.attachments):
        name = ""
        mime_type = "application/octet-stream"
        for attr in attachment.mapi_attrs:
            if attr.name == tnef_properties.MAPI_ATTACH_LONG_FILENAME and isinstance(attr.data, str):
                name = name or attr.data
            elif attr.name == tnef_properties.MAPI_ATTACH_MIME_TAG and isinstance(attr.data, str):
                mime_type = attr.data.strip().lower() or mime_type
        if not name and index < len(titles) and titles[index]:
            name = decode_bytes(titles[index].rstrip(b"\x00"), codepage)
        payload = raw_data[index] if index < len(raw_data) and raw_data[index] is not None else attachment.data
        files.append(ParsedAttachment(unicodedata.normalize("NFC", name.strip()), mime_type, bytes(payload),
                                      from_tnef=True))
    body = tnef.body or ""
    if isinstance(body, bytes):
        body = decode_bytes(body.rstrip(b"\x00"), codepage)
    return files, body.strip("\x00").strip()


# --------------------------------------------------------------------------------------------
# Walking the MIME tree


@dataclass
class _Collector:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    forwarded: list[ParsedMessage] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    tnef_body: str = ""
    parts_seen: int = 0


def _part_text(part: Message, defects: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    charset = part.get_content_charset()
    if charset and not normalise_charset(charset):
        defects.append(f"unknown charset {charset!r}")
    return decode_bytes(payload, charset).replace("\r\n", "\n").replace("\r", "\n")


def _is_attachment(part: Message, filename: str) -> bool:
    disposition, _ = header_params(raw_header(part, "content-disposition"))
    if disposition == "attachment" or filename:
        return True
    return part.get_content_type() not in ("text/plain", "text/html")


def _transfer_decode(text: str, encoding: str) -> bytes:
    if encoding == "base64":
        compact = re.sub(r"\s", "", text)
        return base64.b64decode(compact + "=" * (-len(compact) % 4))
    return quopri.decodestring(_raw_bytes(text))


def _inner_message(part: Message) -> Message | None:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload and isinstance(payload[0], Message) else None
    encoding = str(raw_header(part, "content-transfer-encoding") or "").strip().lower()
    if encoding in ("base64", "quoted-printable"):
        # Some webmail encodes the attached message; the parser then sees a header-less part
        # whose payload is the encoded text.
        text = inner.get_payload() if inner is not None and not inner.keys() else payload
        if isinstance(text, str):
            try:
                return load_message(_transfer_decode(text, encoding))
            except (binascii.Error, ValueError):
                return None
    if inner is not None:
        return inner
    if isinstance(payload, str):
        return load_message(_raw_bytes(payload))
    return None


def _walk(part: Message, depth: int, out: _Collector, *, forwarded: bool, parent_type: str = "") -> None:
    out.parts_seen += 1
    if depth > MAX_MIME_DEPTH or out.parts_seen > MAX_MIME_PARTS:
        out.defects.append("MIME structure too deep or too many parts; the rest was not read")
        return
    ctype = part.get_content_type()
    # message/rfc822 counts as multipart for the stdlib (its payload is the inner message).
    if ctype in ("message/rfc822", "message/global"):
        inner = _inner_message(part)
        if inner is not None:
            nested = _parse_tree(inner, depth + 1, forwarded=True)
            out.forwarded.append(nested)
            out.attachments.extend(nested.attachments)
            out.defects.extend(nested.defects)
        return
    if part.is_multipart():
        if ctype == "multipart/report":
            _walk_report(part, depth, out, forwarded=forwarded)
            return
        for child in part.get_payload():
            if isinstance(child, Message):
                _walk(child, depth + 1, out, forwarded=forwarded, parent_type=ctype)
        return
    if ctype.startswith("multipart/"):
        # Declared multipart but no usable boundary: what is there is the body text.
        out.plain.append(_part_text(part, out.defects))
        return
    filename = attachment_filename(part)
    if ctype in _SIGNATURE_TYPES or ctype in ("text/rfc822-headers", "message/rfc822-headers"):
        return  # a signature, or the headers of a returned message: nothing a unit sent
    if ctype in TNEF_CONTENT_TYPES or filename.lower() == "winmail.dat":
        data = part.get_payload(decode=True) or b""
        try:
            files, body = unpack_tnef(data)
        except ValueError as exc:
            out.defects.append(str(exc))
            out.attachments.append(ParsedAttachment(filename or "winmail.dat", ctype, data, from_forwarded=forwarded))
            return
        for item in files:
            item.from_forwarded = forwarded
        out.attachments.extend(files)
        out.tnef_body = out.tnef_body or body
        return
    if not _is_attachment(part, filename):
        target = out.html if ctype == "text/html" else out.plain
        target.append(_part_text(part, out.defects))
        return
    if parent_type == "multipart/related" and raw_header(part, "content-id") and not filename:
        return  # an image embedded in the HTML (a signature logo), not something the unit sent
    data = part.get_payload(decode=True)
    if data is None:
        data = b""
    out.attachments.append(ParsedAttachment(filename, ctype, data, from_forwarded=forwarded))


def _walk_report(part: Message, depth: int, out: _Collector, *, forwarded: bool) -> None:
    """A DSN or read receipt: read the human-readable part; never harvest the returned original
    (it is our own notice with our own blank form)."""
    for child in part.get_payload():
        if not isinstance(child, Message):
            continue
        ctype = child.get_content_type()
        if ctype in _RETURNED_ORIGINAL_TYPES or ctype in _REPORT_STATUS_TYPES:
            continue
        _walk(child, depth + 1, out, forwarded=forwarded, parent_type="multipart/report")


def _parse_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _message_ids(value: str) -> list[str]:
    found = _MESSAGE_ID.findall(value or "")
    if found:
        return found
    return [f"<{item.strip('<>')}>" for item in (value or "").split() if "@" in item]


def _decoded_headers(msg: Message) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in msg.raw_items():
        headers.setdefault(name.lower(), decode_header_value(value))
    return headers


def _parse_tree(msg: Message, depth: int, *, forwarded: bool) -> ParsedMessage:
    out = _Collector()
    try:
        _walk(msg, depth, out, forwarded=forwarded)
    except RecursionError:
        out.defects.append("MIME structure too deep; the rest was not read")
    headers = _decoded_headers(msg)
    senders = parse_addresses(raw_header(msg, "from"))
    from_name, from_addr = senders[0] if senders else ("", "")
    recipients = parse_addresses(raw_header(msg, "to"))
    html = "\n".join(item for item in out.html if item.strip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(item for item in out.plain if item.strip())).strip()
    if not text:
        text = html_to_text(html) or out.tnef_body
    return ParsedMessage(
        message_id=(_message_ids(headers.get("message-id", "")) or [""])[0],
        subject=headers.get("subject", ""),
        from_addr=from_addr,
        from_name=from_name,
        to_addrs=[address for _, address in recipients if address],
        in_reply_to=(_message_ids(headers.get("in-reply-to", "")) or [""])[0],
        references=_message_ids(headers.get("references", "")),
        date=_parse_date(headers.get("date", "")),
        text=text,
        html=html,
        attachments=out.attachments,
        headers=headers,
        forwarded=out.forwarded,
        defects=out.defects,
    )


def load_message(raw: bytes) -> Message:
    """The stdlib tree of a raw message (compat32 keeps broken real-world headers as they came).

    The stdlib parser recurses once per nesting level, so a hostile message can exhaust the stack:
    then only the headers are returned, with an empty body."""
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        headers.set_payload("")
        headers.defects.append(TOO_DEEP)
        return headers


TOO_DEEP = "MIME structure too deep for the parser; only the headers were read"


def parse_message(raw: bytes) -> ParsedMessage:
    """Everything the collector needs from one raw message; never raises on malformed input."""
    msg = load_message(raw)
    if TOO_DEEP in msg.defects:
        parsed = _parse_tree(msg, MAX_MIME_DEPTH + 1, forwarded=False)
        parsed.defects = [TOO_DEEP]
        return parsed
    return _parse_tree(msg, 0, forwarded=False)
