"""Checks that an uploaded or emailed Office file is safe to hand to a parser, by content, never by
its name: zip bombs (entry count, declared and actually inflated size, ratio, overlapping entries),
path traversal, macro workbooks/documents renamed to .xlsx/.docx, and OLE files (legacy .xls/.doc,
or OOXML encrypted with a password), which no parser of ours can read.

`check_ooxml()` reads only the zip directory and streams each entry through a counter that stops as
soon as a limit is passed, so a bomb costs milliseconds, not its inflated size. `run_with_limits()`
then runs the parser itself in a worker process with a memory and CPU cap and a wall-clock timeout
for each call.
"""
from __future__ import annotations

import atexit
import io
import logging
import math
import multiprocessing
import os
import resource
import sys
import threading
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
#
# Parsers run in long-lived worker processes (started from a fork server, which has the parser
# modules imported already), one call at a time each. Starting a process per file cost three times
# the parsing itself. The limits still hold per call: before each call the worker caps its own
# address space and CPU time relative to what it uses at that moment, and the caller waits for the
# answer no longer than the wall-clock limit. A call that passes a limit ends its worker (killed on
# a timeout; the process is not trusted after running out of memory) and the next call gets a fresh
# one, so one hostile file costs one restart, not the collector.

# Imported once by the fork server, so a worker starts warm whichever parser runs first.
PRELOAD_MODULES = ("forms.form_reader",)
# Workers running at once: parsing is CPU-bound, so one per core is all that helps.
MAX_PARSE_WORKERS = max(1, min(4, os.cpu_count() or 1))
# A worker is replaced after this many calls, so slow leaks in a parser cannot pile up.
CALLS_PER_WORKER = 1000
_MEMORY_SLACK = 4 * MiB
_STOP_GRACE_SECONDS = 2.0


def run_with_limits(fn, *args, limits: Limits = DEFAULT_LIMITS):
    """Call `fn(*args)` in a worker process capped at `limits.parse_memory` more address space,
    `limits.parse_cpu_seconds` of CPU and `limits.parse_seconds` of wall clock for this call; return
    its result or re-raise its exception. A call that passes a limit raises UnsafeFile("parse_limit")
    and its worker is replaced. Safe to call from several threads (up to MAX_PARSE_WORKERS run at once).

    `fn`, its arguments and its result must pickle (module-level functions, plain data)."""
    return _pool.run(fn, args, limits)


def stop_parse_workers() -> None:
    """End the idle worker processes and wait for them (the next call starts a new one). For a
    clean exit, and for measuring: a worker's CPU time counts for its parent once it has ended."""
    _pool.stop_idle()


class _WorkerLost(Exception):
    """The worker could not take the call (it had died idle, or cannot judge memory any more): the
    call goes to a fresh worker."""


class _Worker:
    """One worker process and the pipe to it; used by one thread at a time."""

    def __init__(self, context):
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=_worker_main, args=(child_end,), daemon=True,
                                        name="noticeflow-parser")
        self._process.start()
        child_end.close()
        self.calls = 0
        self.idle = True        # waiting for a call; False while one runs or after one got no answer
        self.retired = False    # must not take another call

    @property
    def reusable(self) -> bool:
        return self.idle and not self.retired and self.calls < CALLS_PER_WORKER and self._process.is_alive()

    def call(self, fn, args, limits: Limits):
        name = getattr(fn, "__name__", repr(fn))
        try:
            self._connection.send((fn, args, limits))
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.retired = True
            raise _WorkerLost(f"worker ended while idle: {exc}") from None
        self.idle, self.calls = False, self.calls + 1
        if not self._connection.poll(limits.parse_seconds):
            log.warning("parser %s ran past %ss; worker killed", name, limits.parse_seconds)
            raise unsafe("parse_limit", f"{name} ran past {limits.parse_seconds}s")
        try:
            answer = self._connection.recv()
        except (EOFError, ConnectionResetError):
            self._process.join(5)
            code = self._process.exitcode
            if code is not None and code < 0:   # killed: SIGXCPU, SIGKILL, SIGSEGV
                log.warning("parser process killed by signal %s", -code)
                raise unsafe("parse_limit", f"parser process killed by signal {-code}") from None
            raise RuntimeError(f"parser process ended without an answer (exit code {code}); a __main__ "
                               "that cannot be re-imported (e.g. stdin) breaks child processes") from None
        self.idle = True
        if answer == _STALE:
            self.retired = True
            raise _WorkerLost("worker cannot judge memory at this limit")
        succeeded, payload, self.retired = answer
        if succeeded:
            return payload
        raise payload

    def stop(self) -> None:
        self._connection.close()
        if self.idle:      # it reads the end of its pipe and exits
            self._process.join(_STOP_GRACE_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


class _WorkerPool:
    def __init__(self, size: int):
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._preloaded = False

    def run(self, fn, args, limits: Limits):
        with self._slots:
            for attempt in range(2):
                worker = self._take(fn)
                try:
                    return worker.call(fn, args, limits)
                except _WorkerLost as lost:
                    if attempt:
                        raise RuntimeError(f"parser workers keep failing: {lost}") from None
                finally:
                    self._give_back(worker)

    def _take(self, fn) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()     # the most recently used: it is warm
                if worker.reusable:
                    return worker
                worker.stop()
        return _Worker(self._context(fn))

    def _give_back(self, worker: _Worker) -> None:
        if worker.reusable:
            with self._lock:
                self._idle.append(worker)
        else:
            worker.stop()

    def _context(self, fn):
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        with self._lock:
            if method == "forkserver" and not self._preloaded:
                module = getattr(fn, "__module__", None)
                extra = {module} if module and module not in sys.builtin_module_names else set()
                context.set_forkserver_preload(sorted({*PRELOAD_MODULES, *extra}))
                self._preloaded = True
        return context

    def stop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


_pool = _WorkerPool(MAX_PARSE_WORKERS)
atexit.register(stop_parse_workers)


def _fresh_pool_after_fork() -> None:
    # A forked copy of this process must not share the parent's workers (nor its locks).
    global _pool
    _pool = _WorkerPool(MAX_PARSE_WORKERS)


os.register_at_fork(after_in_child=_fresh_pool_after_fork)


# --- The worker's side. ---

_STALE = "stale"


def _worker_main(connection) -> None:
    """Take calls until the pipe closes or a call leaves the process unfit for another."""
    while True:
        try:
            fn, args, limits = connection.recv()
        except EOFError:
            return
        except Exception as exc:   # e.g. the function's module does not import here
            answer = (False, RuntimeError(f"parser call could not be read: {exc!r}"), False)
        else:
            answer = _limited_call(fn, args, limits)
        try:
            _answer(connection, answer)
        except OSError:    # the caller is gone (it timed out, or ended)
            return
        if answer == _STALE or answer[2]:
            return


def _limited_call(fn, args, limits: Limits):
    """(succeeded, result or exception, retire) for one call under this call's limits."""
    memory = _current_address_space() + limits.parse_memory
    if _peak_address_space() >= memory - _MEMORY_SLACK:
        # The process once came this close to the cap: a failure would look like running out of memory.
        return _STALE
    cpu = math.ceil(_cpu_seconds_used()) + max(1, int(limits.parse_cpu_seconds))
    out_of_memory = False
    try:
        _set_soft_limit(resource.RLIMIT_AS, memory)
        _set_soft_limit(resource.RLIMIT_CPU, cpu)
        outcome = (True, fn(*args))
    except BaseException as exc:  # handed to the caller, which re-raises it
        # Running out of memory surfaces as MemoryError or as whatever a C library makes of a failed
        # allocation (lxml: "unknown error"); the peak address space tells which it was.
        out_of_memory = isinstance(exc, MemoryError) or _peak_address_space() >= memory - _MEMORY_SLACK
        if out_of_memory:
            exc = unsafe("parse_limit", f"parser reached its memory limit ({type(exc).__name__}: {exc})")
        outcome = (False, exc)
    finally:
        # Between calls the worker is unlimited again: reading the next call's file needs room.
        _set_soft_limit(resource.RLIMIT_AS, None)
        _set_soft_limit(resource.RLIMIT_CPU, None)
    # A worker that ran out of memory, or came close, is retired: its heap may be in any state.
    return (*outcome, out_of_memory or _peak_address_space() >= memory - _MEMORY_SLACK)


def _answer(connection, answer) -> None:
    try:
        connection.send(answer)
    except OSError:
        raise
    except Exception:   # the result or the exception does not pickle
        failure = answer[1] if not answer[0] else None
        detail = "".join(traceback.format_exception(failure)) if failure else "result does not pickle"
        connection.send((False, RuntimeError(f"parser failed in child process: {detail}"), answer[2]))


def _set_soft_limit(which: int, value: int | None) -> None:
    """Set the soft limit (None: back to the hard limit). The hard limit stays, so it can be raised
    again for the next call."""
    _, hard = resource.getrlimit(which)
    if value is None or (hard != resource.RLIM_INFINITY and value > hard):
        value = hard
    resource.setrlimit(which, (value, hard))


def _cpu_seconds_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
