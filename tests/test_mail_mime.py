"""Decoding details the corpus does not isolate: each odd file-name form, header words, addresses,
HTML to text, broken structures."""
from __future__ import annotations

import base64

import pytest

from mail.mime import (
    attachment_filename,
    decode_bytes,
    decode_header_value,
    header_params,
    html_to_text,
    load_message,
    normalise_charset,
    parse_addresses,
    parse_message,
    strip_reply_prefixes,
)


def gbk_b64(text: str) -> str:
    return base64.b64encode(text.encode("gbk")).decode()


def part_with(disposition: bytes, content_type: bytes = b"application/octet-stream") -> bytes:
    return (b"From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n--x\r\nContent-Type: " + content_type + b"\r\n"
            + (b"Content-Disposition: " + disposition + b"\r\n" if disposition else b"")
            + b"Content-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--x--\r\n")


# The seven forms of one name seen from Chinese clients (the note: every stock parser got some wrong).
ODD_FILENAMES = [
    ("rfc2231 gb2312 label, GBK-only character",
     b"attachment; filename*=gb2312''" + "".join(f"%{b:02X}" for b in "王堃回执表.xlsx".encode("gbk")).encode(), b"application/octet-stream"),
    ("rfc2231 continuations cutting a character",
     b"attachment;\r\n\tfilename*0*=utf-8''%E7%8E%8B%E5%A0;\r\n\tfilename*1*=%83%E5%9B%9E%E6%89%A7%E8%A1%A8.xlsx", b"application/octet-stream"),
    ("rfc2047 inside quotes",
     f'attachment; filename="=?GBK?B?{gbk_b64("王堃回执表.xlsx")}?="'.encode(), b"application/octet-stream"),
    ("raw utf-8", b'attachment; filename="' + "王堃回执表.xlsx".encode() + b'"', b"application/octet-stream"),
    ("raw gbk", b'attachment; filename="' + "王堃回执表.xlsx".encode("gbk") + b'"', b"application/octet-stream"),
    ("name only, rfc2047", b"attachment", f'application/octet-stream; name="=?gb2312?B?{gbk_b64("王堃回执表.xlsx")}?="'.encode()),
    ("encoded and plain continuation sections",
     b"attachment; filename*0*=UTF-8''%E7%8E%8B%E5%A0%83%E5%9B%9E%E6%89%A7%E8%A1%A8; filename*1=\".xlsx\"",
     b"application/octet-stream"),
]


@pytest.mark.parametrize("label, disposition, content_type", ODD_FILENAMES, ids=[item[0] for item in ODD_FILENAMES])
def test_every_odd_filename_form_decodes(label, disposition, content_type):
    parsed = parse_message(part_with(disposition, content_type))
    assert [item.original_name for item in parsed.attachments] == ["王堃回执表.xlsx"]


def test_filename_prefers_disposition_rfc2231_over_a_garbled_name():
    msg = load_message(part_with(b"attachment; filename*=utf-8''%E5%9B%9E%E6%89%A7.xlsx",
                                 b'application/octet-stream; name="tcmime.1234.bin"'))
    assert attachment_filename(msg.get_payload()[1]) == "回执.xlsx"


def test_header_params_keeps_windows_backslashes_and_unescapes_quotes():
    main, params = header_params('attachment; filename="C:\\Temp\\a \\"b\\".xlsx"; size=12')
    assert main == "attachment"
    assert params == {"filename": 'C:\\Temp\\a "b".xlsx', "size": "12"}


@pytest.mark.parametrize("raw, expected", [
    (f"=?gb2312?B?{gbk_b64('王堃')}?=", "王堃"),
    ("=?utf-8?Q?=E5=9B=9E=E5=A4=8D_Re?=", "回复 Re"),
    ("回复:=?utf-8?B?5Zue5omn?=", "回复:回执"),  # glued to text, no space
    ("=?utf-8?B?5Zue?= =?utf-8?B?5omn?=", "回执"),  # whitespace between words dropped
    ("=?utf-8?B?5Z?= =?utf-8?B?ue5omn?=", "回执"),  # base64 split mid-byte-group
    ("=?x-unknown?B?5Zue5omn?=", "回执"),  # unknown label: UTF-8 guess
    ("=?utf-8*zh-cn?B?5Zue5omn?=", "回执"),  # RFC 2231 language suffix on the charset
    ("plain\r\n folded", "plain folded"),
    ("=?GB2312?B?oaQ=?=", "·"),  # 0xA1A4: gb2312 gives U+30FB, GBK/GB18030 the middle dot
])
def test_decode_header_value(raw, expected):
    assert decode_header_value(raw) == expected


def test_raw_8bit_header_bytes():
    assert decode_header_value("回执".encode("gbk")) == "回执"
    assert decode_header_value("回执".encode()) == "回执"


def test_charset_labels():
    assert normalise_charset("GB2312") == normalise_charset("x-gbk") == normalise_charset("cp936") == "gb18030"
    assert normalise_charset("utf8") == "utf-8"
    assert normalise_charset("no-such-charset") is None
    assert decode_bytes("堃".encode("gbk"), "gb2312") == "堃"
    assert decode_bytes(b"\xff\xfe\xfa", "us-ascii").startswith("\ufffd") or decode_bytes(b"\xff\xfe\xfa", "us-ascii")


def test_addresses_split_before_names_are_decoded():
    value = f"=?utf-8?B?{base64.b64encode('张三, 办公室'.encode()).decode()}?= <A@B.example>, c@d.example"
    assert parse_addresses(value) == [("张三, 办公室", "a@b.example"), ("", "c@d.example")]


@pytest.mark.parametrize("subject, expected", [
    ("回复：答复: Re[2]: Fw：转发：FW:【XQ9-YQ01-ABCDEF】通知", "【XQ9-YQ01-ABCDEF】通知"),
    ("RE: AW: 回覆：通知", "通知"),
    ("Return of goods", "Return of goods"),
])
def test_strip_reply_prefixes(subject, expected):
    assert strip_reply_prefixes(subject) == expected


def test_html_to_text():
    html = ("<html><head><title>t</title><style>p{}</style></head><body><p>第一段&nbsp;文字</p>"
            "<div>第二段<br>换行</div><table><tr><td>场次</td><td>3</td></tr></table>"
            "<script>alert('x')</script>&lt;tag&gt; &amp; &#x56DE;</body></html>")
    assert html_to_text(html) == "第一段 文字\n\n第二段\n换行\n\n场次 3\n\n<tag> & 回"


def test_multipart_without_boundary_is_read_as_text():
    raw = b"From: a@b.example\r\nContent-Type: multipart/mixed\r\n\r\njust text\r\n"
    parsed = parse_message(raw)
    assert parsed.text == "just text" and parsed.attachments == []


def test_missing_or_bad_date_and_ids():
    raw = (b"From: a@b.example\r\nDate: not a date\r\nMessage-ID: bare-id@host\r\n"
           b"References: <a@x> <b@y>\r\nIn-Reply-To: junk <b@y> junk\r\n\r\nhi\r\n")
    parsed = parse_message(raw)
    assert parsed.date is None
    assert parsed.message_id == "<bare-id@host>"
    assert parsed.references == ["<a@x>", "<b@y>"] and parsed.in_reply_to == "<b@y>"


def test_broken_tnef_is_kept_as_a_file():
    raw = part_with(b'attachment; filename="winmail.dat"', b"application/ms-tnef")
    parsed = parse_message(raw)
    assert [(item.original_name, item.from_tnef) for item in parsed.attachments] == [("winmail.dat", False)]
    assert parsed.defects and parsed.defects[0].startswith("unreadable TNEF")


def test_pgp_signature_part_is_not_an_attachment():
    raw = (b"From: a@b.example\r\nContent-Type: multipart/signed; boundary=s; protocol=\"application/pgp-signature\"\r\n\r\n"
           b"--s\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--s\r\nContent-Type: application/pgp-signature; "
           b"name=\"signature.asc\"\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\n--s--\r\n")
    parsed = parse_message(raw)
    assert parsed.text == "signed text" and parsed.attachments == []
