"""A TNEF (winmail.dat) writer, laid out as Outlook writes it (MS-OXTNEF).

tnefparse only reads TNEF, so the demo's Outlook unit and the test corpus build the stream here:
signature and key, the message attributes (version, OEM code page, message class, MAPI properties with the body), then per file
attAttachRendData, attAttachTitle (8.3 name in the OEM code page), attAttachData and attAttachment
(MAPI properties: the long Unicode file name, the MIME tag and, as Outlook also does, a second
copy of the data as PR_ATTACH_DATA_OBJ).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

SIGNATURE = 0x223E9F78
LVL_MESSAGE, LVL_ATTACHMENT = 0x01, 0x02
# Attribute ids (low word) and their TNEF types (high word).
ATP_STRING, ATP_WORD, ATP_BYTE, ATP_DWORD = 0x0001, 0x0007, 0x0006, 0x0008
ATT_TNEF_VERSION = 0x9006
ATT_OEM_CODEPAGE = 0x9007
ATT_MESSAGE_CLASS = 0x8008
ATT_MSG_PROPS = 0x9003
ATT_ATTACH_REND_DATA = 0x9002
ATT_ATTACH_TITLE = 0x8010
ATT_ATTACH_DATA = 0x800F
ATT_ATTACHMENT = 0x9005
# MAPI property types and tags.
PT_LONG, PT_UNICODE, PT_BINARY = 0x0003, 0x001F, 0x0102
PR_BODY = 0x1000
PR_INTERNET_CPID = 0x3FDE
PR_ATTACH_DATA_OBJ = 0x3701
PR_ATTACH_EXTENSION = 0x3703
PR_ATTACH_METHOD = 0x3705
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_MIME_TAG = 0x370E


@dataclass
class TnefFile:
    long_name: str
    data: bytes
    mime_tag: str
    short_name: str  # what attAttachTitle carries, encoded in the OEM code page


def _attribute(level: int, kind: int, attribute_id: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BHHI", level, attribute_id, kind, len(data)) + data + struct.pack("<H", checksum)


def _padded(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _mapi_props(props: list[tuple[int, int, object]]) -> bytes:
    out = struct.pack("<I", len(props))
    for prop_type, prop_id, value in props:
        out += struct.pack("<HH", prop_type, prop_id)
        if prop_type == PT_LONG:
            out += struct.pack("<i", value)
        else:
            data = (value + "\x00").encode("utf-16-le") if prop_type == PT_UNICODE else value
            out += struct.pack("<II", 1, len(data)) + _padded(data)
    return out


def build_tnef(files: list[TnefFile], *, body: str = "", oem_codepage: int = 936, key: int = 0x1A2B) -> bytes:
    oem = f"cp{oem_codepage}"
    out = struct.pack("<IH", SIGNATURE, key)
    out += _attribute(LVL_MESSAGE, ATP_DWORD, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000))
    out += _attribute(LVL_MESSAGE, ATP_BYTE, ATT_OEM_CODEPAGE, struct.pack("<II", oem_codepage, 0))
    out += _attribute(LVL_MESSAGE, ATP_WORD, ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\x00")
    message_props = [(PT_LONG, PR_INTERNET_CPID, 65001)]
    if body:
        message_props.append((PT_UNICODE, PR_BODY, body))
    out += _attribute(LVL_MESSAGE, ATP_BYTE, ATT_MSG_PROPS, _mapi_props(message_props))
    for item in files:
        rendering = struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0)  # attach by value, no position
        out += _attribute(LVL_ATTACHMENT, ATP_BYTE, ATT_ATTACH_REND_DATA, rendering)
        out += _attribute(LVL_ATTACHMENT, ATP_STRING, ATT_ATTACH_TITLE, item.short_name.encode(oem) + b"\x00")
        out += _attribute(LVL_ATTACHMENT, ATP_BYTE, ATT_ATTACH_DATA, item.data)
        extension = "." + item.long_name.rsplit(".", 1)[-1] if "." in item.long_name else ""
        props = [
            (PT_LONG, PR_ATTACH_METHOD, 1),
            (PT_UNICODE, PR_ATTACH_LONG_FILENAME, item.long_name),
            (PT_UNICODE, PR_ATTACH_EXTENSION, extension),
            (PT_UNICODE, PR_ATTACH_MIME_TAG, item.mime_tag),
            (PT_BINARY, PR_ATTACH_DATA_OBJ, item.data),
        ]
        out += _attribute(LVL_ATTACHMENT, ATP_BYTE, ATT_ATTACHMENT, _mapi_props(props))
    return out
