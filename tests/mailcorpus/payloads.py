"""File contents the corpus attaches: real small Office files, images, PDFs, and hostile ones.

The corpus asserts stored bytes and names, not form contents, so a reply form here is a small real
workbook carrying the unit's token in a cell (the form reader is tested elsewhere).
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib

import docx
import openpyxl


def reply_form(token: str, unit_name: str, *, sessions: int = 3) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "回执表"
    sheet["A1"] = "识别码"
    sheet["B1"] = token
    sheet["A2"] = "填报单位"
    sheet["B2"] = unit_name
    sheet["A3"] = "活动场次"
    sheet["B3"] = sessions
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def form_token(data: bytes) -> str:
    """What the form reader would extract: the token cell of a corpus reply form."""
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return str(workbook.active["B1"].value)


def word_document(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pdf(text: str = "summary", *, size: int = 0) -> bytes:
    body = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n% " + text.encode("utf-8") + b"\n")
    if size > len(body):
        body += b"%" + b"x" * (size - len(body) - 8) + b"\n"
    return body + b"%%EOF\n"


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg(marker: bytes = b"photo") -> bytes:
    # SOI + APP0 JFIF header + a comment + EOI: enough for content sniffing.
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comment = b"\xff\xfe" + struct.pack(">H", len(marker) + 2) + marker
    return b"\xff\xd8" + app0 + comment + b"\xff\xd9"


def windows_executable() -> bytes:
    header = bytearray(b"MZ" + b"\x90\x00" + b"\x00" * 56)
    header[0x3C:0x40] = struct.pack("<I", 0x40)
    return bytes(header) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 200


def macro_workbook_renamed(token: str, unit_name: str) -> bytes:
    """An .xlsm saved under an .xlsx name: the workbook plus vbaProject.bin and the macro type."""
    source = zipfile.ZipFile(io.BytesIO(reply_form(token, unit_name)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(
                    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                    b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
                ).replace(b"</Types>", b'<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>')
            target.writestr(info.filename, data)
        target.writestr("xl/vbaProject.bin", compound_file({"VBA": b"Attribute VB_Name = \"Module1\"" * 200}))
    return buffer.getvalue()


# --- A minimal compound file (OLE2/CFB, version 3) writer -------------------------------------------

_SECTOR = 512
_FREE, _END, _FAT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD


def _directory_entry(name: str, kind: int, start: int, size: int, *, child: int = _FREE,
                     right: int = _FREE) -> bytes:
    encoded = (name + "\x00").encode("utf-16-le") if name else b""
    entry = encoded.ljust(64, b"\x00")
    entry += struct.pack("<HBB", len(encoded), kind, 1)  # name length, type, colour (black)
    entry += struct.pack("<III", _FREE, right, child)  # left, right, child
    entry += b"\x00" * 16 + struct.pack("<I", 0) + b"\x00" * 16  # CLSID, state bits, times
    entry += struct.pack("<IQ", start, size)
    return entry


def compound_file(streams: dict[str, bytes]) -> bytes:
    """A valid CFB container with the given streams, each padded to at least 4096 bytes so that it
    lives in regular sectors (no mini stream needed). The first stream starts at sector 0."""
    names = list(streams)
    sectors: list[bytes] = []
    fat: list[int] = []
    starts = []
    sizes = []
    for name in names:
        data = streams[name].ljust(4096, b"\x00")
        count = (len(data) + _SECTOR - 1) // _SECTOR
        data = data.ljust(count * _SECTOR, b"\x00")
        start = len(sectors)
        starts.append(start)
        sizes.append(len(data))
        for index in range(count):
            sectors.append(data[index * _SECTOR:(index + 1) * _SECTOR])
            fat.append(start + index + 1 if index < count - 1 else _END)
    directory_sector = len(sectors)
    # Siblings sorted by (length, upper-case name): a chain to the right is a valid (degenerate) tree.
    order = sorted(range(len(names)), key=lambda i: (len(names[i]), names[i].upper()))
    entries = [b""] * (len(names) + 1)
    entries[0] = _directory_entry("Root Entry", 5, _END, 0, child=order[0] + 1)
    for position, index in enumerate(order):
        right = order[position + 1] + 1 if position + 1 < len(order) else _FREE
        entries[index + 1] = _directory_entry(names[index], 2, starts[index], sizes[index], right=right)
    directory = b"".join(entries).ljust(_SECTOR, b"\x00")
    while len(directory) % _SECTOR:
        directory += b"\x00"
    for offset in range(0, len(directory), _SECTOR):
        sectors.append(directory[offset:offset + _SECTOR])
        fat.append(len(sectors) if offset + _SECTOR < len(directory) else _END)
    fat_sector = len(sectors)
    fat.append(_FAT)
    fat_bytes = b"".join(struct.pack("<I", value) for value in fat).ljust(_SECTOR, b"\xff")
    sectors.append(fat_bytes)
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16
    header += struct.pack("<HHHHH", 0x003E, 0x0003, 0xFFFE, 9, 6) + b"\x00" * 6
    header += struct.pack("<IIIIIIIII", 0, 1, directory_sector, 0, 4096, _END, 0, _END, 0)
    header += struct.pack("<I", fat_sector) + struct.pack("<I", _FREE) * 108
    return header + b"".join(sectors)


def legacy_xls() -> bytes:
    """An Excel 97-2003 workbook as WPS still saves by default: the Workbook stream starts with a
    BIFF8 BOF record."""
    bof = b"\x09\x08\x10\x00\x00\x06\x05\x00" + b"\x00" * 12
    return compound_file({"Workbook": bof + b"\x0a\x00\x00\x00"})


def encrypted_ooxml() -> bytes:
    """A password-protected .xlsx: an OLE container with EncryptionInfo and EncryptedPackage."""
    return compound_file({
        "EncryptionInfo": b"\x04\x00\x04\x00\x40\x00\x00\x00" + b"<encryption/>",
        "EncryptedPackage": struct.pack("<Q", 4096) + bytes(range(256)) * 8,
    })
