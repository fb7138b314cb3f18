"""Composing a batch's messages ahead of the sending, so that building a unit's form and MIME
message overlaps with waiting for the SMTP server.

Two ways, the same order and the same results:
- `ThreadComposer`: a helper thread. For a few messages, or composing that reads the database.
- `ProcessComposer`: a worker process, for a `Recipe` and many messages. Building a form and a
  message costs about as much CPU as sending it; in a thread that work holds the GIL whenever the
  sending thread comes back from the server, and each such wait stretches the batch. A process
  overlaps the two for real. The worker is started once per program and kept (its imports take
  about half a second); `prestart()` lets a flow start it while it does other work.

A worker's environment is the program's at the time it started; each round brings the current
NOTICEFLOW_* settings with it (a test or the demo may have moved the clock or the folders).
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from dataclasses import dataclass
from queue import Empty, Full, Queue
from typing import Any, Callable, Iterator

from mail.outbound import AttachmentCache, OutgoingEmail, compose_message

log = logging.getLogger(__name__)

SETTINGS_PREFIX = "NOTICEFLOW_"
_STOP_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class Recipe:
    """How to compose a batch's messages in any process.

    `build(context, job)` makes one message (None: no longer due); it is a module-level function
    and `context` (what every message shares) pickles, so both can go to a worker process. `job(row)`
    runs in the sending process and returns the little that differs per message (picklable).
    `composed(job)`, if given, runs in the sending process once that message is built."""

    build: Callable[[Any, Any], OutgoingEmail | None]
    context: Any
    job: Callable[[Any], Any]
    composed: Callable[[Any], None] | None = None

    def compose_here(self, row) -> OutgoingEmail | None:
        job = self.job(row)
        message = self.build(self.context, job)
        if self.composed is not None:
            self.composed(job)
        return message


Composed = tuple[int, list[str] | None, bytes | None]  # row id, envelope, raw (None: nothing to send)


class ThreadComposer:
    """Composes in queue order, in a helper thread up to `depth` messages ahead of the sending (0:
    in the sending thread itself, just before each message)."""

    _DONE = object()

    def __init__(self, queue, rows, compose: Callable[[Any], OutgoingEmail | None], smtp, depth: int):
        self._work = (list(queue), rows, compose, smtp)
        self._items: Queue | None = Queue(maxsize=depth) if depth > 0 else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-composer", daemon=True) if depth > 0 else None

    def __enter__(self) -> "ThreadComposer":
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._thread is None:
            return
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting for room
            try:
                self._items.get(timeout=0.05)
            except Empty:
                pass
        self._thread.join()

    def _compose_all(self) -> Iterator[Composed]:
        queue, rows, compose, smtp = self._work
        for row_id in queue:
            message = compose(rows[row_id])
            yield (row_id, None, None) if message is None else (row_id, *smtp.compose(message))

    def _run(self) -> None:
        try:
            for item in self._compose_all():
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the sending thread, raised there
            self._put(error)
            return
        self._put(self._DONE)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def results(self, before_wait: Callable[[], None]) -> Iterator[Composed]:
        if self._thread is None:
            yield from self._compose_all()
            return
        while True:
            try:
                item = self._items.get_nowait()
            except Empty:
                before_wait()  # e.g. do not hold the database's write lock while we wait
                item = self._items.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class ProcessComposer:
    """Composes a Recipe's messages in the worker process, in queue order. Falls back to a
    ThreadComposer when the worker is in use by another thread."""

    def __init__(self, queue, rows, recipe: Recipe, smtp, depth: int):
        self._queue, self._rows, self._recipe, self._smtp, self._depth = list(queue), rows, recipe, smtp, depth
        self._worker: _Worker | None = None
        self._fallback: ThreadComposer | None = None
        self._finished = False

    def __enter__(self) -> "ProcessComposer":
        self._worker = _take_worker()
        if self._worker is None:
            self._fallback = ThreadComposer(self._queue, self._rows, self._recipe.compose_here, self._smtp,
                                            self._depth).__enter__()
            return self
        self._jobs = [self._recipe.job(self._rows[row_id]) for row_id in self._queue]
        self._worker.start_round(self._recipe, self._smtp.from_address, self._smtp.sender_name, self._jobs)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fallback is not None:
            self._fallback.__exit__(*exc_info)
            return
        # A round given up halfway leaves the worker composing messages nobody will read: end it.
        _give_back(self._worker, reusable=self._finished)

    def results(self, before_wait: Callable[[], None]) -> Iterator[Composed]:
        if self._fallback is not None:
            yield from self._fallback.results(before_wait)
            return
        for row_id, job in zip(self._queue, self._jobs):
            if not self._worker.ready():
                before_wait()
            answer = self._worker.next_result()
            if answer is None:
                yield row_id, None, None
                continue
            if self._recipe.composed is not None:
                self._recipe.composed(job)
            yield (row_id, *answer)
        self._finished = True


def prestart() -> None:
    """Start the worker process now (if it is not running), without waiting for it."""
    worker = _take_worker()
    if worker is not None:
        _give_back(worker, reusable=True)


# -- the worker process ---------------------------------------------------------------------------

class WorkerFailed(RuntimeError):
    """The composing process ended without an answer."""


class _Worker:
    def __init__(self):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no locks copied from threads
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=_worker_main, args=(child_end,), daemon=True,
                                        name="noticeflow-composer")
        self._process.start()
        child_end.close()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def start_round(self, recipe: Recipe, from_address: str, sender_name: str | None, jobs: list) -> None:
        settings = {k: v for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIX)}
        self._connection.send((settings, recipe.build, recipe.context, from_address, sender_name, jobs))

    def ready(self) -> bool:
        return self._connection.poll()

    def next_result(self) -> tuple[list[str], bytes] | None:
        try:
            succeeded, payload = self._connection.recv()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            self._process.join(_STOP_GRACE_SECONDS)
            raise WorkerFailed(f"composing process ended without an answer (exit code {self._process.exitcode})") from None
        if not succeeded:
            raise payload
        return payload

    def stop(self) -> None:
        self._connection.close()  # an idle worker reads the end of its pipe and exits
        self._process.join(_STOP_GRACE_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(_STOP_GRACE_SECONDS)


_guard = threading.Lock()
_idle: _Worker | None = None
_busy = False


def _take_worker() -> _Worker | None:
    """The worker, started if needed; None while another thread uses it."""
    global _idle, _busy
    with _guard:
        if _busy:
            return None
        worker, _idle = _idle, None
        if worker is not None and not worker.alive:
            worker.stop()
            worker = None
        _busy = True
    if worker is None:
        try:
            worker = _Worker()
        except BaseException:
            with _guard:
                _busy = False
            raise
    return worker


def _give_back(worker: _Worker, *, reusable: bool) -> None:
    global _idle, _busy
    if not reusable:
        worker.stop()
        worker = None
    with _guard:
        _idle, _busy = worker, False


def stop_worker() -> None:
    """End the idle worker (the next ProcessComposer starts a new one)."""
    global _idle
    with _guard:
        worker, _idle = _idle, None
    if worker is not None:
        worker.stop()


def _forget_after_fork() -> None:
    # A forked copy of this process must not talk to the parent's worker.
    global _idle, _busy, _guard
    _idle, _busy, _guard = None, False, threading.Lock()


atexit.register(stop_worker)
os.register_at_fork(after_in_child=_forget_after_fork)


def _worker_main(connection) -> None:
    """Compose round after round until the pipe closes."""
    cache = AttachmentCache()  # the shared attachments, encoded once (keyed by path, size and mtime)
    try:
        while True:
            settings, build, context, from_address, sender_name, jobs = connection.recv()
            _apply_settings(settings)
            for job in jobs:
                try:
                    message = build(context, job)
                    answer = None if message is None else (
                        message.recipients,
                        compose_message(message, from_address=from_address, sender_name=sender_name, cache=cache))
                except Exception as error:  # the sending process raises it; this round is over
                    connection.send((False, _picklable(error)))
                    break
                connection.send((True, answer))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the sending process is gone (finished, or killed): so is the work


def _apply_settings(settings: dict[str, str]) -> None:
    current = {k: v for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIX)}
    if current == settings:
        return
    for name in current.keys() - settings.keys():
        del os.environ[name]
    os.environ.update(settings)
    from models.settings import reload_settings

    reload_settings()


def _picklable(error: BaseException) -> BaseException:
    import pickle

    try:
        pickle.dumps(error)
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
