"""Attachment storage: generated names, sniffed extensions, the unit folder, atomic writes, limits,
and the optional OOXML guard."""
from __future__ import annotations

import hashlib
import io
import os
import zipfile

import pytest

from mail import attachments
from mail.attachments import (
    AttachmentLimits,
    printable_name,
    safe_extension,
    sanitize_unit_dir,
    sniff,
    store_attachments,
)
from mail.mime import ParsedAttachment
from mailcorpus import payloads


def attachment(name: str, data: bytes) -> ParsedAttachment:
    return ParsedAttachment(name, "application/octet-stream", data)


@pytest.mark.parametrize("data, name, extension", [
    (payloads.reply_form("XQ9-YQ01-AAAAAA", "x"), "report.pdf", ".xlsx"),
    (payloads.word_document("x"), "a.xlsx", ".docx"),
    (payloads.pdf(), "a.docx", ".pdf"),
    (payloads.png(), "a.exe", ".png"),
    (payloads.jpeg(), "a", ".jpg"),
    ("单位,场次\n".encode("gb18030"), "数据.CSV", ".csv"),
    ("单位,场次\n".encode(), "数据.sh", ".txt"),
    (b"<svg onload=alert(1)></svg>", "a.svg", ".txt"),
    (bytes(range(256)) * 4, "a.xlsx", ".bin"),
    (payloads.legacy_xls(), "a.xlsx", ".xls"),
    (payloads.encrypted_ooxml(), "a.xlsx", ".bin"),
    (payloads.windows_executable(), "a.pdf", ".bin"),
])
def test_extension_comes_from_content(data, name, extension):
    assert safe_extension(data, name) == extension


def test_plain_zip_and_opendocument():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photos/1.jpg", payloads.jpeg())
    assert sniff(buffer.getvalue()).extension == ".zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", "<x/>")
    assert sniff(buffer.getvalue()).extension == ".ods"


def test_excel4_macro_sheet_is_a_macro():
    source = zipfile.ZipFile(io.BytesIO(payloads.reply_form("XQ9-YQ01-AAAAAA", "x")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("xl/macrosheets/sheet1.xml", "<xm:macrosheet/>")
    assert sniff(buffer.getvalue()).problem == "macro"


@pytest.mark.parametrize("name, shown", [
    ("回执表\u202excod.exe", "回执表<U+202E>xcod.exe"),
    ("a\x00b\r\n", "a<U+0000>b<U+000D><U+000A>"),
    ("", "（无文件名）"),
    ("x" * 300, "x" * 254 + "…"),
    ("正常的名字.xlsx", "正常的名字.xlsx"),
])
def test_printable_name(name, shown):
    assert printable_name(name) == shown


@pytest.mark.parametrize("unit_dir, cleaned", [("YQ01", "YQ01"), ("../../etc", "______etc"), ("单位/01", "___01"),
                                                ("a b\x00c", "a_b_c"), ("_review", "_review")])
def test_unit_dir_is_one_safe_component(unit_dir, cleaned):
    assert sanitize_unit_dir(unit_dir) == cleaned


@pytest.mark.parametrize("unit_dir", ["", "..", "/", "中文"])
def test_unit_dir_without_usable_characters_is_refused(unit_dir, tmp_path):
    with pytest.raises(ValueError):
        store_attachments([attachment("a.pdf", payloads.pdf())], tmp_path, unit_dir)


def test_store_names_paths_and_sequence(tmp_path):
    data = payloads.pdf("x")
    stored = store_attachments([attachment("../a.pdf", data), attachment("a.pdf", data)], tmp_path / "store",
                               "../YQ01", start_seq=7)
    digest = hashlib.sha256(data).hexdigest()
    assert [item.stored_path for item in stored] == [f"___YQ01/007_{digest[:12]}.pdf", f"___YQ01/008_{digest[:12]}.pdf"]
    files = sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if path.is_file())
    assert files == [f"store/___YQ01/007_{digest[:12]}.pdf", f"store/___YQ01/008_{digest[:12]}.pdf"]
    assert (tmp_path / "store" / stored[0].stored_path).read_bytes() == data


def test_store_again_is_idempotent_and_leaves_no_temporary_files(tmp_path):
    items = [attachment("a.pdf", payloads.pdf("x"))]
    first = store_attachments(items, tmp_path, "YQ01")
    second = store_attachments(items, tmp_path, "YQ01")
    assert first == second
    assert os.listdir(tmp_path / "YQ01") == [first[0].stored_path.split("/")[1]]


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(attachments.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store_attachments([attachment("a.pdf", payloads.pdf())], tmp_path, "YQ01")
    assert os.listdir(tmp_path / "YQ01") == []


def test_per_message_limit_counts_only_stored_files(tmp_path):
    limits = AttachmentLimits(max_attachment_bytes=1000, max_message_bytes=1500)
    items = [attachment("exe", payloads.windows_executable()), attachment("1.pdf", payloads.pdf(size=800)),
             attachment("2.pdf", payloads.pdf(size=600)), attachment("3.pdf", payloads.pdf(size=800))]
    assert [item.verdict for item in store_attachments(items, tmp_path, "YQ01", limits=limits)] == [
        "unsafe_executable", "stored", "stored", "refused_size"]


@pytest.mark.skipif(attachments.check_ooxml is None, reason="forms/ooxml_guard.py is not present")
def test_ooxml_guard_refusals_are_reported(tmp_path):
    source = zipfile.ZipFile(io.BytesIO(payloads.reply_form("XQ9-YQ01-AAAAAA", "x")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("xl/media/padding.bin", b"\x00" * (12 * 1024 * 1024))  # inflates 1000:1
    [item] = store_attachments([attachment("回执表.xlsx", buffer.getvalue())], tmp_path, "YQ01")
    assert item.verdict == "unsafe_zip_bomb" and item.stored_path == ""
    assert item.message_zh.startswith("附件“回执表.xlsx”未接收：文件解压后体积异常")
    assert not (tmp_path / "YQ01").exists()
