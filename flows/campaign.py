"""`issue_notice`: the flow the office triggers once to send the notice to every unit.

    load + upsert the campaign → render the notice once (outputs/<id>/notice.docx) → plan the units
    still due → per batch of ~200 units (one task run, one SMTP connection): enqueue the outbox
    rows, compose each unit's email with its reply form (mail.notice_mail; in a worker process
    when there are many) ahead of the sending, send → report (artifacts, a Chinese summary)

Exactly once comes from the outbox (mail.outbox), not from Prefect: every step can be killed and
run again. A unit is due while its notice row is absent or still pending/sending; a sent notice is
never sent again, a bounced one only after staff changed the unit's address in units.csv. Retries
of 4xx answers happen inside the batch (mail.outbox.deliver, with backoff); Prefect retries nothing
here, since a task retry cannot tell an accepted message from a lost one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from documents.notice import NOTICE_FILE_NAME, render_notice
from flows.runner import logger, publish_markdown, publish_table, run_task
from forms.campaign import CampaignDefinition, load_campaign
from forms.store import upsert_campaign
from mail import composing, outbox
from mail.notice_mail import notice_recipe, notice_subject
from mail.outbound import SmtpBatch, SmtpFailure, sender_domain
from models.clock import now
from models.db import session_scope
from models.settings import get_settings
from models.states import RecipientStatus, record_event, record_events, transition, transition_many
from models.tables import OutboundState

NOTICE_KIND = "notice"
NOTICE_STEP = "issue"
DEFAULT_BATCH_SIZE = 200
DEFAULT_RETRY_DELAYS = (5.0, 30.0, 120.0)


class IssueStopped(RuntimeError):
    """The batch cannot go on (our SMTP account or settings); the message is for staff."""


@dataclass(frozen=True)
class DueUnit:
    """What a batch needs to know about one unit (plain data: cheap to hand to a task run)."""

    recipient_id: int
    code: str
    token: str
    email: str  # as in the database: units.csv, or what staff corrected it to


def campaign_output_dir(campaign_id: str) -> Path:
    return get_settings().campaign_dir(campaign_id)


# -- tasks ----------------------------------------------------------------------------------------

@task(name="prepare-campaign", cache_policy=NO_CACHE)
def prepare_campaign(campaign_dir: str) -> CampaignDefinition:
    definition = load_campaign(campaign_dir)
    with session_scope() as session:
        upsert_campaign(session, definition)
    return definition


@task(name="render-notice", cache_policy=NO_CACHE)
def render_notice_once(definition: CampaignDefinition) -> str:
    """outputs/<id>/notice.docx. Rendered again on each run until the first unit got it; from then
    on kept as it is, so every unit receives the same document."""
    path = campaign_output_dir(definition.id) / NOTICE_FILE_NAME
    with outbox.sending_lock(definition.id):
        with session_scope() as session:
            rows = outbox.rows_for(session, definition.id, NOTICE_KIND, NOTICE_STEP).values()
            delivered = any(row.state in (OutboundState.sent, OutboundState.sending) for row in rows)
        if path.exists() and delivered:
            return str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.stem}.part{path.suffix}")
        render_notice(definition, partial)
        os.replace(partial, path)
    return str(path)


@task(name="reconcile-notice-status", cache_policy=NO_CACHE)
def reconcile_notice_status(definition: CampaignDefinition) -> int:
    """Units whose notice was sent (or refused) by a run that died before recording what that
    means for the unit: record it now. Returns how many were repaired."""
    with outbox.sending_lock(definition.id), session_scope() as session:
        lost = {m.recipient_id for m in outbox.campaign_messages(session, definition.id, NOTICE_KIND, NOTICE_STEP)
                if m.status == RecipientStatus.pending and m.state in (OutboundState.sent, OutboundState.failed)}
        if not lost:
            return 0
        rows = [row for recipient_id, row in outbox.rows_for(session, definition.id, NOTICE_KIND, NOTICE_STEP).items()
                if recipient_id in lost]
        _mark_notified(session, [row for row in rows if row.state == OutboundState.sent], recorded_late=True)
        for row in rows:
            if row.state == OutboundState.failed:
                _bounce(session, row, row.last_error, {"note": "recorded after an interrupted run"})
    return len(lost)


@task(name="plan-notice-batches", cache_policy=NO_CACHE)
def plan_notice_batches(definition: CampaignDefinition, batch_size: int) -> list[list[DueUnit]]:
    """The units whose notice is still due, in the order of units.csv, cut into batches."""
    listed = {unit.code: unit for unit in definition.units}
    with session_scope() as session:
        messages = outbox.campaign_messages(session, definition.id, NOTICE_KIND, NOTICE_STEP)
    due = []
    for m in messages:
        if m.unit_code not in listed:
            continue  # dropped from units.csv since
        if m.state is None:
            wanted = m.status == RecipientStatus.pending
        elif m.state == OutboundState.failed:
            wanted = m.to_addrs != [m.unit_email]  # the address was corrected since
        else:
            wanted = m.state in outbox.OPEN_STATES
        if wanted:
            due.append(DueUnit(m.recipient_id, m.unit_code, m.token, m.unit_email))
    return [due[i:i + batch_size] for i in range(0, len(due), batch_size)]


@task(name="send-notice-batch", cache_policy=NO_CACHE)
def send_notice_batch(definition: CampaignDefinition, notice_path: str, due: list[DueUnit],
                      retry_delays: list[float]) -> dict:
    """Forms, outbox rows and mail for one batch of units, over one SMTP connection."""
    spec = definition.spec
    units = {unit.code: unit for unit in definition.units}
    domain = sender_domain(spec.office.email)
    with outbox.sending_lock(definition.id):
        items = [outbox.OutboxItem(
            campaign_id=definition.id, recipient_id=item.recipient_id, unit_code=item.code, kind=NOTICE_KIND,
            step=NOTICE_STEP, to=(item.email,), subject=notice_subject(definition, units[item.code], item.token),
            message_id=outbox.make_message_id(NOTICE_KIND, spec.token_prefix, item.code, NOTICE_STEP, domain))
            for item in due]
        with session_scope() as session:
            rows = outbox.enqueue(session, items)
        row_ids = [rows[i.key].id for i in items if rows[i.key].state in outbox.OPEN_STATES]
        recipe = notice_recipe(definition, Path(notice_path), _reply_to(spec.office.email),
                               {item.recipient_id: (item.code, item.token) for item in due})
        try:
            report = outbox.deliver(
                definition.id, row_ids, recipe, on_sent_group=_mark_notified, on_refused=_mark_bounced,
                retry=outbox.RetryPolicy(tuple(retry_delays)),
                connection=lambda: SmtpBatch(sender_name=spec.office.short_name))
        except SmtpFailure as failure:
            raise IssueStopped(_stop_message(failure)) from None
        finally:
            recipe.forms.save()
    logger().info("notice batch: %d sent, %d bounced, %d deferred, %d resent after interruption, %d connection(s)",
                  len(report.sent), len(report.bounced), len(report.deferred),
                  len(report.resent_after_interruption), report.connections)
    return {"sent": len(report.sent), "bounced": len(report.bounced), "deferred": len(report.deferred),
            "resent": len(report.resent_after_interruption)}


def _reply_to(office_email: str) -> str | None:
    # Replies must reach the mailbox the collector reads, even if we send from another account.
    return office_email if office_email.lower() != get_settings().smtp_user.lower() else None


def _mark_notified(session, rows: list[outbox.OutboxRow], *, recorded_late: bool = False) -> None:
    """The units whose notice the server accepted are notified (pending or bounced before); for
    a unit staff changed meanwhile (exempted it, say) the Event alone, keeping their decision."""
    if not rows:
        return
    campaign_id = rows[0].campaign_id
    details = {}
    for row in rows:
        details[row.recipient_id] = {"message_id": row.message_id, "to": row.to_addrs}
        if recorded_late:
            details[row.recipient_id]["note"] = "recorded after an interrupted run"
    sent_at = {row.recipient_id: {"notified_at": row.sent_at or now()} for row in rows}
    moved = transition_many(session, campaign_id, details, RecipientStatus.notified,
                            kind="notice.sent", when={RecipientStatus.pending, RecipientStatus.bounced},
                            values=sent_at)
    record_events(session, campaign_id, "notice.sent",
                  {rid: detail for rid, detail in details.items() if rid not in moved})


def _mark_bounced(session, row: outbox.OutboxRow, failure: SmtpFailure) -> None:
    _bounce(session, row, failure.describe(), {"smtp_code": failure.code, "server_text": failure.server_text})


def _bounce(session, row: outbox.OutboxRow, words: str, detail: dict) -> None:
    recipient = outbox.recipients_of(session, [row])[row.recipient_id]
    reason = f"通知邮件被对方邮件服务器拒收（{words}），请核对该单位邮箱后修改 units.csv，再执行 noticeflow issue 补发"
    detail = {"message_id": row.message_id, "to": row.to_addrs, **detail}
    if RecipientStatus(recipient.status) in (RecipientStatus.pending, RecipientStatus.notified):
        transition(session, recipient, RecipientStatus.bounced, kind="notice.bounced", reason=reason, detail=detail)
    else:
        record_event(session, recipient.campaign_id, "notice.bounced", recipient_id=recipient.id, detail=detail)


def _stop_message(failure: SmtpFailure) -> str:
    return (f"通知下发已停止：{failure.what_to_check()}。服务器回复：{failure.describe()}。"
            "已发出的邮件不会重复发送，改正后再次执行 noticeflow issue 即可继续。")


@task(name="notice-report", cache_policy=NO_CACHE)
def notice_report(definition: CampaignDefinition) -> dict:
    """Where every listed unit stands with its notice, for the artifacts and the CLI."""
    listed = {unit.code for unit in definition.units}
    with session_scope() as session:
        messages = outbox.campaign_messages(session, definition.id, NOTICE_KIND, NOTICE_STEP)
    counts = {"total": 0, "sent": 0, "bounced": 0, "pending": 0, "not_sent": 0}
    failures = []
    for m in messages:
        if m.unit_code not in listed:
            continue
        counts["total"] += 1
        if m.state == OutboundState.sent:
            counts["sent"] += 1
        elif m.state in (OutboundState.failed, *outbox.OPEN_STATES):
            bounced = m.state == OutboundState.failed
            counts["bounced" if bounced else "pending"] += 1
            failures.append({"单位代码": m.unit_code, "单位名称": m.unit_name, "邮箱": m.unit_email,
                             "情况": "退信" if bounced else "待重发", "服务器回复": m.last_error})
        else:
            counts["not_sent"] += 1  # exempted before the notice went out, or skipped
    return {"counts": counts, "failures": failures}


# -- the flow -------------------------------------------------------------------------------------

@flow(name="issue-notice")
def issue_notice(campaign_dir: str, batch_size: int = DEFAULT_BATCH_SIZE,
                 retry_delays: list[float] | None = None) -> str:
    """下发通知：生成公文和各单位回执表，向每个单位发送一封通知邮件（可重复执行，不会重复发送）。"""
    delays = list(DEFAULT_RETRY_DELAYS if retry_delays is None else retry_delays)
    definition = run_task(prepare_campaign, campaign_dir)
    if len(definition.units) >= outbox.PROCESS_COMPOSING_FROM:
        composing.prestart()  # its start-up overlaps with rendering the notice
    notice_path = run_task(render_notice_once, definition)
    run_task(reconcile_notice_status, definition)
    batches = run_task(plan_notice_batches, definition, batch_size)
    logger().info("campaign %s: %d unit(s) due in %d batch(es)", definition.id,
                  sum(len(b) for b in batches), len(batches))
    sent_now = 0
    for batch in batches:
        sent_now += run_task(send_notice_batch, definition, notice_path, batch, delays)["sent"]
    report = run_task(notice_report, definition)
    _publish(definition, report, sent_now)
    return _summary(definition, report["counts"], sent_now)


def _publish(definition: CampaignDefinition, report: dict, sent_now: int) -> None:
    c = report["counts"]
    markdown = "\n".join([
        f"## 通知下发：{definition.spec.notice.doc_number}",
        "",
        f"**{definition.spec.notice.title}**",
        "",
        "| 项目 | 数量 |",
        "|---|---|",
        f"| 单位总数 | {c['total']} |",
        f"| 已送达 | {c['sent']} |",
        f"| 退信 | {c['bounced']} |",
        f"| 待发送 | {c['pending']} |",
        f"| 未发送（已豁免等） | {c['not_sent']} |",
        f"| 本次运行发出 | {sent_now} |",
    ])
    publish_markdown(f"issue-{definition.id}", markdown, description="通知下发情况")
    publish_table(f"issue-failures-{definition.id}", report["failures"], description="退信和待重发的单位")


def _summary(definition: CampaignDefinition, c: dict, sent_now: int) -> str:
    lines = [f"通知下发（{definition.spec.notice.doc_number}）：本次发出 {sent_now} 封；"
             f"共 {c['total']} 个单位，已送达 {c['sent']}，退信 {c['bounced']}，待发送 {c['pending']}。"]
    if c["bounced"]:
        lines.append("退信的单位请用 noticeflow status 查看原因，核对邮箱后修改 units.csv，"
                     "再执行 noticeflow issue 补发（只发给改了邮箱的单位）。")
    if c["pending"]:
        lines.append("部分邮件暂时未能发出（对方服务器要求稍后再试或连接中断），请稍后再次执行 noticeflow issue。")
    if not c["bounced"] and not c["pending"]:
        lines.append("全部单位均已发出通知。")
    return "\n".join(lines)
