"""The staff actions that run the flows' own code after the page has answered: regenerating the
summary, sending a unit its notice again, sending the 回执 of a message staff assigned. Each is
recorded as an Event naming the staff member when it is asked for; a failure is recorded too, so the
page shows what happened on the next reload.

These run in the web process as plain functions (flows.runner.run_flow / run_task without a flow
run, or a real flow run when PREFECT_API_URL is set), never twice at once for the same thing."""
from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable

from sqlmodel import Session

from forms.campaign import load_campaign
from mail import outbox
from mail.staff_intake import correct_unit_email
from models.actions import ActionError, find_recipient
from models.db import session_scope
from models.states import record_event
from models.tables import Campaign, OutboundState, Unit

log = logging.getLogger(__name__)

EVENT_SUMMARY_REQUESTED = "staff.summary_requested"
EVENT_SUMMARY_FAILED = "staff.summary_failed"
EVENT_RESEND = "staff.resend_notice"
EVENT_RESEND_FAILED = "staff.resend_failed"

_running: set[tuple[str, ...]] = set()
_asked_again: set[tuple[str, ...]] = set()
_guard = threading.Lock()


def _coalesced(key: tuple[str, ...], job: Callable[[], None]) -> None:
    """Run `job` unless the same job is running in this process; then that run goes once more when
    it ends, so a request made during a run is never lost and never run twice at the same time."""
    with _guard:
        if key in _running:
            _asked_again.add(key)
            return
        _running.add(key)
    try:
        while True:
            job()
            with _guard:
                if key not in _asked_again:
                    _running.discard(key)
                    return
                _asked_again.discard(key)
    except BaseException:
        with _guard:
            _running.discard(key)
            _asked_again.discard(key)
        raise


# -- the summary -------------------------------------------------------------------------------------

def summary_available() -> bool:
    return importlib.util.find_spec("flows.summarize") is not None


def request_summary(session: Session, campaign_id: str, actor: str) -> None:
    if session.get(Campaign, campaign_id) is None:
        raise ActionError(f"找不到活动 {campaign_id}")
    if not summary_available():
        raise ActionError("本系统尚未安装情况通报的生成功能（flows/summarize.py），请联系维护人员。")
    record_event(session, campaign_id, EVENT_SUMMARY_REQUESTED, actor=actor)


def regenerate_summary(campaign_id: str, actor: str) -> None:
    """Run the summary flow now (flows.summarize.publish_summary): the .docx, the xlsx, the bundle."""
    def job() -> None:
        try:
            from flows.runner import run_flow
            from flows.summarize import publish_summary

            run_flow(publish_summary, campaign_id)
        except Exception as error:  # shown to staff on the board; the details go to the log
            log.exception("summary of %s failed", campaign_id)
            _record_failure(campaign_id, None, EVENT_SUMMARY_FAILED, actor, error)

    _coalesced(("summary", campaign_id), job)


# -- the notice, again, to a corrected address ------------------------------------------------------

def correct_email_and_plan_resend(session: Session, campaign_id: str, unit_code: str, new_email: str,
                                  actor: str) -> tuple[Unit, bool]:
    """Correct the unit's mailbox; True when its notice was refused and will be sent again (the
    caller then runs `resend_notice` once this session is committed)."""
    from flows.campaign import NOTICE_KIND, NOTICE_STEP

    recipient = find_recipient(session, campaign_id, unit_code)
    unit = session.get(Unit, recipient.unit_id)
    if (new_email or "").strip().lower() == unit.email.lower():
        raise ActionError(f"新邮箱与现在登记的邮箱（{unit.email}）相同，请填写更正后的邮箱")
    notice = outbox.rows_for(session, campaign_id, NOTICE_KIND, NOTICE_STEP).get(recipient.id)
    correct_unit_email(session, campaign_id, unit_code, new_email, actor)
    resend = notice is not None and notice.state == OutboundState.failed
    if resend:
        record_event(session, campaign_id, EVENT_RESEND, recipient_id=recipient.id, actor=actor,
                     detail={"to": [unit.email], "message_id": notice.message_id})
    return unit, resend


def resend_notice(campaign_id: str, unit_code: str, actor: str) -> None:
    """Send the unit's refused notice again, to the mailbox now in the database, with the issue
    flow's own tasks (same Message-ID: the outbox re-queues a failed row whose address changed)."""
    def job() -> None:
        try:
            from flows.campaign import DEFAULT_BATCH_SIZE, plan_notice_batches, render_notice_once, send_notice_batch
            from flows.runner import run_task

            with session_scope() as session:
                source_dir = session.get(Campaign, campaign_id).source_dir
            definition = load_campaign(source_dir)  # the issue tasks send to the mailbox in the database
            notice_path = run_task(render_notice_once, definition)
            due = [item for batch in run_task(plan_notice_batches, definition, DEFAULT_BATCH_SIZE)
                   for item in batch if item.code == unit_code]
            if due:
                run_task(send_notice_batch, definition, notice_path, due, [])
        except Exception as error:
            log.exception("resending the notice of %s to %s failed", campaign_id, unit_code)
            with session_scope() as session:
                recipient_id = find_recipient(session, campaign_id, unit_code).id
            _record_failure(campaign_id, recipient_id, EVENT_RESEND_FAILED, actor, error)

    _coalesced(("notice", campaign_id, unit_code), job)


# -- the 回执 of an assigned message ---------------------------------------------------------------------

def send_open_answers(campaign_id: str) -> None:
    """Send the 回执/correction requests waiting in the outbox (as a collect run would)."""
    from mail.ingest import Scope, send_answers

    report = send_answers(Scope([campaign_id]), [campaign_id])
    if report.errors:
        log.warning("answers of %s not sent now (the next collect run retries): %s", campaign_id, report.errors)


def _record_failure(campaign_id: str, recipient_id: int | None, kind: str, actor: str, error: Exception) -> None:
    text = getattr(error, "message_zh", None) or str(error) or type(error).__name__
    with session_scope() as session:
        record_event(session, campaign_id, kind, recipient_id=recipient_id, actor=actor,
                     detail={"error": text[:1000]})
