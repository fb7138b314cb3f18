"""Checks that an uploaded or emailed Office file is safe to hand to a parser, by content, never by
its name: zip bombs (entry count, declared and actually inflated size, ratio, overlapping entries),
path traversal, macro workbooks/documents renamed to .xlsx/.docx, and OLE files (legacy .xls/.doc,
or OOXML encrypted with a password), which no parser of ours can read.

`check_ooxml()` reads only the zip directory and streams each entry through a counter that stops as
soon as a limit is passed, so a bomb costs milliseconds, not its inflated size. `run_with_limits()`
then runs the parser itself in a child process with a memory and CPU cap and a wall-clock timeout.
"""
from __future__ import annotations

import io
import logging
import multiprocessing
import resource
import traceback
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

import filetype
from defusedxml import ElementTree

log = logging.getLogger(__name__)

MiB = 1024 * 1024
OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")   # a file, or an empty archive
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    max_file_size: int = 50 * MiB          # the file as received
    max_entries: int = 2000
    max_entry_size: int = 200 * MiB        # one member, inflated
    max_total_size: int = 300 * MiB        # all members, inflated
    max_ratio: float = 200.0               # inflated / compressed, for members past ratio_floor
    ratio_floor: int = 4 * MiB
    max_content_types_size: int = 1 * MiB
    parse_seconds: float = 30.0            # wall clock for the parser (run_with_limits)
    parse_cpu_seconds: int = 30
    parse_memory: int = 768 * MiB          # address space the parser may add to its process


DEFAULT_LIMITS = Limits()
# A reply form is tens of kilobytes; photos pasted into it are the most a unit adds.
FORM_LIMITS = replace(DEFAULT_LIMITS, max_file_size=20 * MiB, max_entries=500, max_entry_size=48 * MiB,
                      max_total_size=64 * MiB, parse_seconds=20.0, parse_cpu_seconds=20,
                      parse_memory=512 * MiB)


class UnsafeFile(Exception):
    """A file we will not parse. `message_zh` is for the unit or staff and says what to do."""

    def __init__(self, reason_code: str, message_zh: str, detail: str = ""):
        super().__init__(reason_code, message_zh, detail)
        self.reason_code = reason_code
        self.message_zh = message_zh
        self.detail = detail      # for maintainers' logs (English)

    def __str__(self) -> str:
        return f"{self.reason_code}: {self.message_zh}" + (f" ({self.detail})" if self.detail else "")


_SAVE_AS_PLAIN = "请在 Excel 或 WPS 中“另存为”普通的 Excel 工作簿（*.xlsx）或 Word 文档（*.docx）后重新发送。"
_MESSAGES = {
    "too_large": "文件过大，无法处理。请删除表格中不必要的图片或内容后重新发送，照片等材料可另附。",
    "not_zip": "文件不是有效的 Office 文档（.xlsx/.docx），可能已损坏或并非表格文件。" + _SAVE_AS_PLAIN,
    "corrupt_zip": "文件已损坏，无法打开。" + _SAVE_AS_PLAIN,
    "too_many_entries": "文件内部结构异常（包含的部件过多），无法打开。" + _SAVE_AS_PLAIN,
    "zip_bomb": "文件解压后体积异常（疑似“压缩炸弹”），为安全起见无法打开。" + _SAVE_AS_PLAIN,
    "path_traversal": "文件内部结构异常（含有非法路径），为安全起见无法打开。" + _SAVE_AS_PLAIN,
    "duplicate_entry": "文件内部结构异常（部件重复），为安全起见无法打开。" + _SAVE_AS_PLAIN,
    "encrypted_zip": "压缩包设置了密码，无法打开。请取消密码后重新发送。",
    "macro": "文件中含有宏（可能是 .xlsm/.docm 等文件改名而来），为安全起见无法打开。" + _SAVE_AS_PLAIN,
    "parse_limit": "文件内容过于庞大或复杂，无法在限定的时间和内存内读取。请删除多余内容后另存为 .xlsx 重新发送。",
}
_OLE_MESSAGES = {
    "encrypted": "文件设置了打开密码（已加密），无法读取。请在 Excel 或 WPS 中取消密码，"
                 "再另存为普通的 .xlsx（或 .docx）文件后重新发送。",
    "xls": "这是旧版 Excel 文件（.xls），无法读取。请在 Excel 或 WPS 中“另存为” Excel 工作簿（*.xlsx）后重新发送。",
    "doc": "这是旧版 Word 文件（.doc），无法读取。请在 Word 或 WPS 中“另存为” Word 文档（*.docx）后重新发送。",
    "unknown": "这是旧版 Office 文件或加密文件，无法读取。请取消密码（如有），" + _SAVE_AS_PLAIN,
}


def unsafe(reason_code: str, detail: str = "") -> UnsafeFile:
    return UnsafeFile(reason_code, _MESSAGES[reason_code], detail)


# Main-part content types of the OOXML packages we name. Macro-enabled ones are refused below.
_MAIN_CONTENT_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": "xlsx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml": "xltx",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": "docx",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml": "dotx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": "pptx",
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml": "ppsx",
}
_ODF_MIMETYPES = {
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.presentation": "odp",
}
_MACRO_PART_NAMES = {"vbaproject.bin", "vbadata.xml", "vbaprojectsignature.bin"}
_MACRO_CONTENT_MARKERS = ("macroenabled", "vbaproject", "macrosheet", "ms-office.vba")
_MACRO_FOLDERS = ("xl/macrosheets/",)            # Excel 4.0 macro sheets
_ODF_MACRO_FOLDERS = ("basic/", "scripts/")       # in an ODF package (one with a `mimetype` member)


def is_ole(data: bytes) -> bool:
    return data[:8] == OLE_MAGIC


def is_zip(data: bytes) -> bool:
    return data[:4] in ZIP_MAGICS


def check_ooxml(data: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """Return the sniffed kind of a zip-based file ("xlsx", "docx", "pptx", "ppsx", "xltx", "dotx",
    "ods", "odt", "odp", or "zip" for any other archive), or raise UnsafeFile."""
    if len(data) > limits.max_file_size:
        raise unsafe("too_large", f"{len(data)} bytes > {limits.max_file_size}")
    if is_ole(data):
        kind = _ole_kind(data)
        raise UnsafeFile("ole_legacy_or_encrypted", _OLE_MESSAGES[kind], f"OLE compound file ({kind})")
    if not is_zip(data):
        raise unsafe("not_zip", f"starts with {data[:8].hex()}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise unsafe("corrupt_zip", str(exc)) from None
    with archive:
        members = archive.infolist()
        _check_directory(members, limits)
        _check_macros(archive, members, limits)
        _inflate_within_limits(archive, members, limits)
        return _package_kind(archive, members, limits)


def sniff_kind(data: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """The kind of any attachment by its content: for zip and OLE files `check_ooxml()` decides (and
    may raise UnsafeFile); otherwise the file's extension by magic number ("pdf", "jpg", ...), or
    "bin" when unknown. Good for naming stored files."""
    if is_zip(data) or is_ole(data):
        return check_ooxml(data, limits)
    guess = filetype.guess(data[:8192])
    return guess.extension if guess else "bin"


def _ole_kind(data: bytes) -> str:
    # Stream names sit in the compound file's directory as UTF-16LE; their presence is enough to
    # tell the three cases apart for a helpful message.
    if "EncryptedPackage".encode("utf-16-le") in data:
        return "encrypted"
    if "Workbook".encode("utf-16-le") in data or "Book".encode("utf-16-le") in data:
        return "xls"
    if "WordDocument".encode("utf-16-le") in data:
        return "doc"
    return "unknown"


def _check_directory(members: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(members) > limits.max_entries:
        raise unsafe("too_many_entries", f"{len(members)} entries > {limits.max_entries}")
    seen: set[str] = set()
    declared_total = 0
    for info in members:
        name = info.filename
        if _unsafe_name(name):
            raise unsafe("path_traversal", f"member {name!r}")
        folded = name.lower()
        if folded in seen:
            raise unsafe("duplicate_entry", f"member {name!r} twice")
        seen.add(folded)
        if info.flag_bits & 0x1:
            raise unsafe("encrypted_zip", f"member {name!r} is encrypted")
        if info.file_size > limits.max_entry_size:
            raise unsafe("zip_bomb", f"{name!r} declares {info.file_size} bytes")
        declared_total += info.file_size
        if declared_total > limits.max_total_size:
            raise unsafe("zip_bomb", f"declared total {declared_total} bytes")
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise unsafe("zip_bomb", f"{name!r} ratio {info.file_size / max(info.compress_size, 1):.0f}")
    # Members whose compressed data overlap share bytes: the "overlapping files" zip bomb.
    spans = sorted((info.header_offset, info.header_offset + info.compress_size, info.filename)
                   for info in members)
    for (start, end, name), (next_start, _, next_name) in zip(spans, spans[1:]):
        if end > next_start:
            raise unsafe("zip_bomb", f"{name!r} overlaps {next_name!r}")


def _unsafe_name(name: str) -> bool:
    if "\x00" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return ".." in parts


def _check_macros(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], limits: Limits) -> None:
    odf = any(info.filename == "mimetype" for info in members)
    for info in members:
        folded = info.filename.lower()
        if (folded.rsplit("/", 1)[-1] in _MACRO_PART_NAMES or folded.startswith(_MACRO_FOLDERS)
                or (odf and folded.startswith(_ODF_MACRO_FOLDERS))):
            raise unsafe("macro", f"member {info.filename!r}")
    content_types = _read_small(archive, "[Content_Types].xml", limits)
    if content_types is not None:
        lowered = content_types.lower()
        for marker in _MACRO_CONTENT_MARKERS:
            if marker.encode() in lowered:
                raise unsafe("macro", f"content type mentions {marker!r}")


def _read_small(archive: zipfile.ZipFile, name: str, limits: Limits) -> bytes | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > limits.max_content_types_size:
        raise unsafe("zip_bomb", f"{name} declares {info.file_size} bytes")
    return _inflate(archive, info, limits.max_content_types_size, limits)


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, limits: Limits) -> bytes:
    return b"".join(_stream(archive, info, cap, limits))


def _stream(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, limits: Limits):
    """Yield the inflated member in chunks; stop (raise) as soon as it passes `cap` or the ratio."""
    inflated = 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                inflated += len(chunk)
                if inflated > cap:
                    raise unsafe("zip_bomb", f"{info.filename!r} inflates past {cap} bytes")
                if inflated > limits.ratio_floor and inflated > limits.max_ratio * max(info.compress_size, 1):
                    raise unsafe("zip_bomb", f"{info.filename!r} inflates past ratio {limits.max_ratio}")
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
        # A CRC mismatch here is also how a member that lies about its size ends.
        raise unsafe("corrupt_zip", f"{info.filename!r}: {exc}") from None


def _inflate_within_limits(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], limits: Limits) -> None:
    """Actually inflate every member, counting, because the declared sizes may lie."""
    total = 0
    for info in members:
        if info.is_dir():
            continue
        cap = min(limits.max_entry_size, limits.max_total_size - total)
        for chunk in _stream(archive, info, cap, limits):
            total += len(chunk)


def _package_kind(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], limits: Limits) -> str:
    names = {info.filename for info in members}
    if "mimetype" in names:
        mimetype = _read_small(archive, "mimetype", limits).decode("ascii", "replace").strip()
        if mimetype in _ODF_MIMETYPES:
            return _ODF_MIMETYPES[mimetype]
    content_types = _read_small(archive, "[Content_Types].xml", limits)
    if content_types is None:
        return "zip"
    try:
        root = ElementTree.fromstring(content_types)
    except Exception as exc:  # defusedxml raises its own errors for entity tricks
        raise unsafe("corrupt_zip", f"[Content_Types].xml: {exc}") from None
    for element in root:
        kind = _MAIN_CONTENT_TYPES.get((element.get("ContentType") or "").lower())
        if kind:
            return kind
    return "zip"


# --- Running a parser with resource limits. ---------------------------------------------------------

_forkserver_preloaded = False
# Imported once by the fork server, so a child starts warm whichever parser runs first.
PRELOAD_MODULES = ("forms.form_reader",)
_MEMORY_SLACK = 4 * MiB


def run_with_limits(fn, *args, limits: Limits = DEFAULT_LIMITS):
    """Call `fn(*args)` in a child process capped at `limits.parse_memory` more address space,
    `limits.parse_cpu_seconds` of CPU and `limits.parse_seconds` of wall clock; return its result
    or re-raise its exception. A child that passes a limit raises UnsafeFile("parse_limit").

    `fn`, its arguments and its result must pickle (module-level functions, plain data)."""
    global _forkserver_preloaded
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver" and not _forkserver_preloaded:
        context.set_forkserver_preload(sorted({*PRELOAD_MODULES, fn.__module__} - {"builtins"}))
        _forkserver_preloaded = True
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_limited_child, args=(sender, limits, fn, args), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(limits.parse_seconds):
            log.warning("parser %s ran past %ss; killed", getattr(fn, "__name__", fn), limits.parse_seconds)
            raise unsafe("parse_limit", f"{getattr(fn, '__name__', fn)} ran past {limits.parse_seconds}s")
        try:
            succeeded, payload = receiver.recv()
        except EOFError:
            child.join(5)
            if child.exitcode is not None and child.exitcode < 0:   # killed: SIGXCPU, SIGKILL, SIGSEGV
                log.warning("parser process killed by signal %s", -child.exitcode)
                raise unsafe("parse_limit", f"parser process killed by signal {-child.exitcode}") from None
            raise RuntimeError(f"parser process ended without an answer (exit code {child.exitcode}); "
                               "a __main__ that cannot be re-imported (e.g. stdin) breaks child processes") from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    if succeeded:
        return payload
    raise payload


def _current_address_space() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError):
        return 0


def _peak_address_space() -> int:
    try:
        with open("/proc/self/status") as handle:
            line = next(line for line in handle if line.startswith("VmPeak:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        return 0


def _limited_child(sender, limits: Limits, fn, args) -> None:
    memory = _current_address_space() + limits.parse_memory
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = max(1, int(limits.parse_cpu_seconds))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        outcome = (True, fn(*args))
    except BaseException as exc:  # handed to the parent, which re-raises it
        # Running out of memory surfaces as MemoryError or as whatever a C library makes of a failed
        # allocation (lxml: "unknown error"); the peak address space tells which it was.
        if isinstance(exc, MemoryError) or _peak_address_space() >= memory - _MEMORY_SLACK:
            exc = unsafe("parse_limit", f"parser reached its memory limit ({type(exc).__name__}: {exc})")
        outcome = (False, exc)
    try:
        sender.send(outcome)
    except Exception:
        failure = outcome[1] if not outcome[0] else None
        detail = "".join(traceback.format_exception(failure)) if failure else "result does not pickle"
        sender.send((False, RuntimeError(f"parser failed in child process: {detail}")))
    finally:
        sender.close()
