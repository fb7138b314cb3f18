"""Byte-level MIME assembly for the corpus.

The corpus reproduces what clients put on the wire, quirks included (gb2312 labels on GBK bytes,
encoded words inside quotes, raw 8-bit headers), which a standards-following generator such as the
stdlib's would "fix". So messages are assembled here from explicit header lines and bodies.
"""
from __future__ import annotations

import base64
import quopri
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes

CRLF = b"\r\n"

Header = tuple[str, "str | bytes"]


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("ascii")


def b64_body(data: bytes, width: int = 76) -> bytes:
    encoded = base64.b64encode(data)
    return CRLF.join(encoded[i:i + width] for i in range(0, len(encoded), width)) + CRLF


def qp_body(data: bytes) -> bytes:
    return quopri.encodestring(data).replace(b"\r\n", b"\n").replace(b"\n", CRLF) + CRLF


def encoded_word(text: str, charset: str = "utf-8", *, codec: str | None = None, encoding: str = "B") -> str:
    """One RFC 2047 word; `codec` is what really encodes the text when the label lies (gb2312 on GBK)."""
    data = text.encode(codec or charset)
    if encoding.upper() == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    quoted = "".join(
        chr(byte) if chr(byte).isalnum() else ("_" if byte == 0x20 else f"={byte:02X}") for byte in data
    )
    return f"=?{charset}?Q?{quoted}?="


def split_encoded_words(text: str, charset: str, *, codec: str | None = None, chunk: int = 9,
                        separator: str = "\r\n ") -> str:
    """Encoded words of `chunk` bytes each, cut blindly through multi-byte characters, as some
    clients fold long subjects and file names."""
    data = text.encode(codec or charset)
    words = [f"=?{charset}?B?{base64.b64encode(data[i:i + chunk]).decode()}?="
             for i in range(0, len(data), chunk)]
    return separator.join(words)


def rfc2231(param: str, text: str, charset: str = "utf-8", *, codec: str | None = None,
            chunk: int | None = None, separator: str = ";\r\n\t") -> str:
    """`param*=charset''%..` or, with `chunk`, continuations `param*0*=…; param*1*=…`."""
    data = text.encode(codec or charset)
    if chunk is None:
        return f"{param}*={charset}''{quote_from_bytes(data, safe='')}"
    pieces = []
    for index, start in enumerate(range(0, len(data), chunk)):
        encoded = quote_from_bytes(data[start:start + chunk], safe="")
        pieces.append(f"{param}*{index}*={charset}''{encoded}" if index == 0 else f"{param}*{index}*={encoded}")
    return separator.join(pieces)


@dataclass
class Part:
    headers: list[Header]
    body: bytes = b""
    children: list["Part"] = field(default_factory=list)
    boundary: str = ""
    preamble: bytes = b""

    def render(self) -> bytes:
        out = b"".join(_header_line(name, value) for name, value in self.headers) + CRLF
        if self.children:
            out += self.preamble
            for child in self.children:
                out += b"--" + _b(self.boundary) + CRLF + child.render() + CRLF
            out += b"--" + _b(self.boundary) + b"--" + CRLF
        else:
            out += self.body
        return out


def _header_line(name: str, value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    return name.encode("ascii") + b": " + raw.replace(b"\r\n", b"\n").replace(b"\n", CRLF) + CRLF


def text_part(text: str, *, subtype: str = "plain", charset: str = "utf-8", codec: str | None = None,
              transfer: str = "base64", extra: list[Header] | None = None) -> Part:
    data = text.replace("\n", "\r\n").encode(codec or charset)
    body = {"base64": b64_body, "quoted-printable": qp_body}.get(transfer, lambda d: d + CRLF)(data)
    headers = [("Content-Type", f'text/{subtype}; charset="{charset}"'), ("Content-Transfer-Encoding", transfer)]
    return Part(headers + (extra or []), body)


def file_part(data: bytes, content_type: str, *, disposition: str | bytes | None = None,
              extra: list[Header] | None = None, transfer: str = "base64") -> Part:
    """A file; `content_type` and `disposition` are the full header values, so each test controls
    exactly how the name is written."""
    headers: list[Header] = [("Content-Type", content_type), ("Content-Transfer-Encoding", transfer)]
    if disposition is not None:
        headers.append(("Content-Disposition", disposition))
    body = b64_body(data) if transfer == "base64" else data + CRLF
    return Part(headers + (extra or []), body)


def multipart(subtype: str, children: list[Part], boundary: str, *, params: str = "",
              extra: list[Header] | None = None) -> Part:
    headers: list[Header] = [("Content-Type", f'multipart/{subtype};{params}\r\n\tboundary="{boundary}"')]
    return Part(headers + (extra or []), children=children, boundary=boundary,
                preamble=b"This is a multi-part message in MIME format." + CRLF + CRLF)


def message_part(inner: bytes, *, extra: list[Header] | None = None) -> Part:
    """An attached message (message/rfc822), as a forward-as-attachment or a bounce carries it."""
    return Part([("Content-Type", "message/rfc822")] + (extra or []), inner.rstrip(CRLF) + CRLF)


def message(headers: list[Header], body: Part) -> bytes:
    """A whole message: top-level headers, then the body part's own headers and content."""
    return b"".join(_header_line(name, value) for name, value in headers) + body.render()
