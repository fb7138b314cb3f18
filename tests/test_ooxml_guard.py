"""The attachment guard, against hostile files built here: zip bombs (honest and lying directories,
overlapping members), traversal names, macro workbooks renamed .xlsx, OLE files, non-zips."""
from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import docx
import pytest
from openpyxl import Workbook

from forms import ooxml_guard
from forms.ooxml_guard import (DEFAULT_LIMITS, FORM_LIMITS, MAX_PARSE_WORKERS, MiB, OLE_MAGIC, UnsafeFile,
                               check_ooxml, run_with_limits, sniff_kind, stop_parse_workers)

MACRO_CONTENT_TYPE = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"


def plain_xlsx() -> bytes:
    workbook = Workbook()
    workbook.active["A1"] = "活动场次"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def plain_docx() -> bytes:
    document = docx.Document()
    document.add_paragraph("情况说明")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def rebuild(data: bytes, *, add: dict[str, bytes] | None = None, edit=None) -> bytes:
    """A copy of a zip with members added, or each member's bytes passed through `edit`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info.filename, edit(info.filename, content) if edit else content)
        for name, content in (add or {}).items():
            target.writestr(name, content)
    return out.getvalue()


def bomb_xlsx(megabytes: int) -> bytes:
    """A real xlsx whose sheet inflates to `megabytes` of spaces; a few hundred KB on disk."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain_xlsx())) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                target.writestr(info.filename, source.read(info))
        with target.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b" " * MiB
            for _ in range(megabytes):
                member.write(chunk)
    return out.getvalue()


def central_directory(data: bytes):
    """Yield (offset of the central-directory record, member name)."""
    end = data.rfind(b"PK\x05\x06")
    count = struct.unpack_from("<H", data, end + 10)[0]
    offset = struct.unpack_from("<I", data, end + 16)[0]
    for _ in range(count):
        assert data[offset:offset + 4] == b"PK\x01\x02"
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, offset + 28)
        yield offset, data[offset + 46:offset + 46 + name_length].decode()
        offset += 46 + name_length + extra_length + comment_length


@pytest.fixture
def inflated_bytes(monkeypatch):
    """Counts the bytes the guard actually inflates."""
    counter = {"bytes": 0}
    original = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        chunk = original(self, n)
        counter["bytes"] += len(chunk)
        return chunk

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    return counter


def test_plain_office_files_pass_with_their_kind():
    assert check_ooxml(plain_xlsx()) == "xlsx"
    assert check_ooxml(plain_docx()) == "docx"
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("照片/1.jpg", b"\xff\xd8\xff" + b"0" * 100)
    assert check_ooxml(plain_zip.getvalue()) == "zip"


def test_honest_zip_bomb_is_refused_from_the_directory_alone(inflated_bytes):
    bomb = bomb_xlsx(300)
    assert len(bomb) < 1 * MiB
    inflated_bytes["bytes"] = 0
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(bomb)
    assert caught.value.reason_code == "zip_bomb"
    assert "压缩炸弹" in caught.value.message_zh and ".xlsx" in caught.value.message_zh
    assert inflated_bytes["bytes"] == 0


def understate(data: bytes, name: str, size: int) -> bytes:
    """Make the central directory claim that member `name` inflates to only `size` bytes."""
    data = bytearray(data)
    for offset, member in central_directory(bytes(data)):
        if member != name:
            continue
        if struct.unpack_from("<I", data, offset + 24)[0] == 0xFFFFFFFF:
            name_length = struct.unpack_from("<H", data, offset + 28)[0]
            extra = offset + 46 + name_length
            assert struct.unpack_from("<H", data, extra)[0] == 0x0001   # the Zip64 field
            struct.pack_into("<Q", data, extra + 4, size)
        else:
            struct.pack_into("<I", data, offset + 24, size)
    return bytes(data)


def test_bomb_that_understates_its_size_stops_early(inflated_bytes):
    bomb = understate(bomb_xlsx(300), "xl/worksheets/sheet1.xml", 2048)
    inflated_bytes["bytes"] = 0
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(bomb)
    assert caught.value.reason_code in {"zip_bomb", "corrupt_zip"}
    # Stopped near the claimed size, far from the 300 MB the member really holds.
    assert inflated_bytes["bytes"] < 1 * MiB


def test_overlapping_members_are_refused():
    data = bytearray(plain_xlsx())
    records = list(central_directory(bytes(data)))
    first_offset = struct.unpack_from("<I", data, records[0][0] + 42)[0]
    struct.pack_into("<I", data, records[1][0] + 42, first_offset)
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(bytes(data))
    assert caught.value.reason_code == "zip_bomb"   # found in the directory, before any inflating


def test_too_many_entries_are_refused():
    many = {f"xl/media/{i}.xml": b"x" for i in range(DEFAULT_LIMITS.max_entries + 1)}
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(rebuild(plain_xlsx(), add=many))
    assert caught.value.reason_code == "too_many_entries"


@pytest.mark.parametrize("name", ["../evil.xml", "xl/../../etc/cron.d/x", "/etc/passwd", "C:/Windows/x.dll",
                                  "xl\\..\\..\\x.xml"])
def test_traversal_member_names_are_refused(name):
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(rebuild(plain_xlsx(), add={name: b"x"}))
    assert caught.value.reason_code == "path_traversal"


def test_duplicate_member_names_are_refused():
    with pytest.warns(UserWarning):
        data = rebuild(plain_xlsx(), add={"xl/workbook.xml": b"<workbook/>"})
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(data)
    assert caught.value.reason_code == "duplicate_entry"


def test_macro_project_is_refused_whatever_the_name_says():
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(rebuild(plain_xlsx(), add={"xl/vbaProject.bin": OLE_MAGIC + b"\0" * 512}))
    assert caught.value.reason_code == "macro"
    assert "宏" in caught.value.message_zh and ".xlsx" in caught.value.message_zh


def test_macro_enabled_content_type_is_refused():
    renamed_xlsm = rebuild(plain_xlsx(), edit=lambda name, content: content.replace(
        XLSX_CONTENT_TYPE.encode(), MACRO_CONTENT_TYPE.encode()) if name == "[Content_Types].xml" else content)
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(renamed_xlsm)
    assert caught.value.reason_code == "macro"


def test_ole_files_are_refused_with_the_right_advice():
    encrypted = OLE_MAGIC + b"\0" * 500 + "EncryptedPackage".encode("utf-16-le") + b"\0" * 100
    legacy_xls = OLE_MAGIC + b"\0" * 500 + "Workbook".encode("utf-16-le") + b"\0" * 100
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(encrypted)
    assert caught.value.reason_code == "ole_legacy_or_encrypted"
    assert "密码" in caught.value.message_zh
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(legacy_xls)
    assert caught.value.reason_code == "ole_legacy_or_encrypted"
    assert ".xls" in caught.value.message_zh and "另存为" in caught.value.message_zh


@pytest.mark.rendered
def test_real_legacy_xls_from_libreoffice_is_refused(tmp_path):
    if not shutil.which("soffice"):
        pytest.skip("LibreOffice is not installed")
    source = tmp_path / "回执表.xlsx"
    source.write_bytes(plain_xlsx())
    subprocess.run(["soffice", f"-env:UserInstallation=file://{tmp_path}/profile", "--headless",
                    "--convert-to", "xls", "--outdir", str(tmp_path / "out"), str(source)],
                   check=True, capture_output=True, timeout=180)
    legacy = (tmp_path / "out" / "回执表.xls").read_bytes()
    # Renamed back to .xlsx, as units do: the content decides.
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(legacy)
    assert caught.value.reason_code == "ole_legacy_or_encrypted"


def test_non_zip_and_broken_zip_are_refused():
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(b"%PDF-1.7\n" + b"0" * 100)
    assert caught.value.reason_code == "not_zip"
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(plain_xlsx()[:2000])
    assert caught.value.reason_code == "corrupt_zip"


def test_encrypted_zip_members_are_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("secret.txt", b"not really encrypted")
    data = bytearray(out.getvalue())
    for offset, _ in central_directory(bytes(data)):
        struct.pack_into("<H", data, offset + 8, 0x1)   # general purpose flag: encrypted
    struct.pack_into("<H", data, 6, 0x1)                 # the same flag in the local header
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(bytes(data))
    assert caught.value.reason_code == "encrypted_zip"


def test_oversized_file_is_refused_before_anything_else():
    with pytest.raises(UnsafeFile) as caught:
        check_ooxml(plain_xlsx() + b"\0" * (FORM_LIMITS.max_file_size + 1), FORM_LIMITS)
    assert caught.value.reason_code == "too_large"


def test_sniff_kind_names_any_attachment():
    assert sniff_kind(b"%PDF-1.7\n" + b"0" * 100) == "pdf"
    assert sniff_kind(b"\x89PNG\r\n\x1a\n" + b"\0" * 100) == "png"
    assert sniff_kind(b"just some text") == "bin"
    assert sniff_kind(plain_docx()) == "docx"
    with pytest.raises(UnsafeFile):
        sniff_kind(bomb_xlsx(300))


def test_run_with_limits_returns_results_and_reraises_errors():
    assert run_with_limits(len, b"abc") == 3
    with pytest.raises(ValueError):
        run_with_limits(int, "不是数字")


def test_run_with_limits_stops_a_memory_hog():
    limits = replace(DEFAULT_LIMITS, parse_memory=128 * MiB)
    with pytest.raises(UnsafeFile) as caught:
        run_with_limits(bytearray, 1024 * MiB, limits=limits)
    assert caught.value.reason_code == "parse_limit"


def test_run_with_limits_stops_a_parser_that_hangs():
    limits = replace(DEFAULT_LIMITS, parse_seconds=1.0)
    with pytest.raises(UnsafeFile) as caught:
        run_with_limits(time.sleep, 60, limits=limits)
    assert caught.value.reason_code == "parse_limit"


def test_many_calls_in_a_row_reuse_one_worker():
    pids = [run_with_limits(os.getpid) for _ in range(12)]
    assert len(set(pids)) == 1
    assert pids[0] != os.getpid()
    with pytest.raises(ValueError):
        run_with_limits(int, "不是数字")
    assert run_with_limits(os.getpid) == pids[0]   # an ordinary error keeps the worker


@pytest.mark.parametrize("breach, limits", [
    ((bytearray, 1024 * MiB), replace(DEFAULT_LIMITS, parse_memory=128 * MiB)),
    ((time.sleep, 60), replace(DEFAULT_LIMITS, parse_seconds=1.0)),
    ((signal.raise_signal, signal.SIGKILL), DEFAULT_LIMITS),     # the worker dies mid-call
], ids=["memory", "timeout", "crash"])
def test_a_breach_replaces_the_worker_and_the_calls_after_it_work(breach, limits):
    before = run_with_limits(os.getpid)
    with pytest.raises(UnsafeFile) as caught:
        run_with_limits(*breach, limits=limits)
    assert caught.value.reason_code == "parse_limit"
    after = [run_with_limits(os.getpid) for _ in range(3)]
    assert len(set(after)) == 1 and after[0] != before
    assert run_with_limits(len, b"abc") == 3
    assert not os.path.exists(f"/proc/{before}")   # the worker that breached is gone, and reaped


def allocated(size: int) -> int:
    """Runs in the worker: takes `size` bytes and answers with a small number."""
    return len(bytearray(size))


def test_the_memory_cap_holds_for_every_call_of_a_reused_worker():
    limits = replace(DEFAULT_LIMITS, parse_memory=128 * MiB)
    worker = run_with_limits(os.getpid, limits=limits)
    for _ in range(3):   # each call may take most of the cap again: the cap is per call
        assert run_with_limits(allocated, 96 * MiB, limits=limits) == 96 * MiB
    assert run_with_limits(os.getpid, limits=limits) == worker
    with pytest.raises(UnsafeFile) as caught:
        run_with_limits(allocated, 160 * MiB, limits=limits)
    assert caught.value.reason_code == "parse_limit"


def test_calls_from_several_threads_share_a_few_workers():
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: (run_with_limits(len, b"x" * n), run_with_limits(os.getpid)), range(40)))
    assert [length for length, _ in results] == list(range(40))
    assert len({pid for _, pid in results}) <= MAX_PARSE_WORKERS


def test_stopped_workers_end_and_a_new_one_starts_on_demand():
    first = run_with_limits(os.getpid)
    stop_parse_workers()
    assert not os.path.exists(f"/proc/{first}")
    assert run_with_limits(os.getpid) != first


def test_a_worker_is_replaced_after_its_share_of_calls(monkeypatch):
    monkeypatch.setattr(ooxml_guard, "CALLS_PER_WORKER", 3)
    stop_parse_workers()
    pids = [run_with_limits(os.getpid) for _ in range(7)]
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5] != pids[6]
