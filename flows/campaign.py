"""`issue_notice`: the flow the office triggers once to send the notice to every unit.

    load + upsert the campaign → render the notice once (outputs/<id>/notice.docx) → plan the units
    still due → per batch of ~200 units (one task run, one SMTP connection): build the missing
    reply forms, enqueue the outbox rows, send → report (artifacts, a Chinese summary)

Exactly once comes from the outbox (mail.outbox), not from Prefect: every step can be killed and
run again. A unit is due while its notice row is absent or still pending/sending; a sent notice is
never sent again, a bounced one only after staff changed the unit's address in units.csv. Retries
of 4xx answers happen inside the batch (mail.outbox.deliver, with backoff); Prefect retries nothing
here, since a task retry cannot tell an accepted message from a lost one.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from documents.notice import NOTICE_FILE_NAME, render_notice
from flows.runner import logger, publish_markdown, publish_table, run_task
from forms.campaign import CampaignDefinition, UnitRow, load_campaign
from forms.reply_form import reply_form_bytes, schema_fingerprint
from forms.store import upsert_campaign
from mail import outbox
from mail.outbound import Attachment, OutgoingEmail, SmtpBatch, SmtpFailure, attachment_filename, sender_domain
from mail.templating import render_email
from models.files import write_atomically
from models.clock import CHINA_TZ, now
from models.db import session_scope
from models.settings import get_settings
from models.states import RecipientStatus, record_event, transition
from models.tables import OutboundMessage, OutboundState

NOTICE_KIND = "notice"
NOTICE_STEP = "issue"
NOTICE_TEMPLATE = "notice"
FORMS_DIR = "forms"
FORM_MANIFEST_FILE = ".made.json"  # what each form on disk was made for (see ReplyForms)
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


# -- words and names the unit sees ----------------------------------------------------------------

def chinese_deadline(deadline: datetime) -> str:
    """`2023年10月10日18时前` (Beijing time; minutes only when there are some)."""
    local = deadline.astimezone(CHINA_TZ)
    clock = f"{local.hour}时" + (f"{local.minute}分" if local.minute else "")
    return f"{chinese_date(local)}{clock}前"


def chinese_date(day) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def notice_attachment_name(definition: CampaignDefinition) -> str:
    notice = definition.spec.notice
    return attachment_filename(f"{notice.doc_number} {notice.title}", ".docx")


def form_attachment_name(unit: UnitRow) -> str:
    return attachment_filename(f"回执表-{unit.name}", ".xlsx")


def render_notice_email(definition: CampaignDefinition, unit: UnitRow, token: str):
    spec = definition.spec
    return render_email(
        NOTICE_TEMPLATE,
        unit={"name": unit.name, "code": unit.code},
        office={"name": spec.office.name, "short_name": spec.office.short_name},
        notice={"title": spec.notice.title, "doc_number": spec.notice.doc_number},
        contact={"name": spec.contact.name, "phone": spec.contact.phone, "email": spec.contact.email},
        deadline_text=chinese_deadline(spec.deadline),
        sent_date_text=chinese_date(now()),
        token=token, token_bracketed=f"【{token}】",
        notice_filename=notice_attachment_name(definition), form_filename=form_attachment_name(unit))


# -- files ----------------------------------------------------------------------------------------

def campaign_output_dir(campaign_id: str) -> Path:
    return get_settings().campaign_dir(campaign_id)


class ReplyForms:
    """Each unit's reply form under outputs/<id>/forms/<code>.xlsx, built only if missing or made
    for another token or another version of the form (a manifest, saved after the forms, says
    which: code → token and a fingerprint of what the form shows besides the unit).

    Forms are written atomically but not fsync'ed one by one: a form can always be made again, and
    a sync per unit would cost more than sending its mail. A file that is not a readable zip (a
    power cut right after writing it) is rebuilt."""

    def __init__(self, definition: CampaignDefinition):
        self.definition = definition
        self.folder = campaign_output_dir(definition.id) / FORMS_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self._manifest_path = self.folder / FORM_MANIFEST_FILE
        self._made = json.loads(self._manifest_path.read_text("utf-8")) if self._manifest_path.exists() else {}
        self._units = {unit.code: unit for unit in definition.units}
        self._version = _form_version(definition)
        self._changed = False

    def attachment(self, code: str, token: str) -> Attachment:
        """The unit's form as an attachment, built first if needed."""
        unit = self._units[code]
        path = self.folder / f"{code}.xlsx"
        made_for = f"{token} {self._version}"
        if self._made.get(code) == made_for and zipfile.is_zipfile(path):
            return Attachment(path, form_attachment_name(unit))
        content = reply_form_bytes(self.definition, unit.name, token)
        write_atomically(path, content, fsync=False)
        self._made[code] = made_for
        self._changed = True
        return Attachment(path, form_attachment_name(unit), content=content)

    def path(self, code: str, token: str) -> Path:
        return self.attachment(code, token).path

    def save(self) -> None:
        if self._changed:
            write_atomically(self._manifest_path, json.dumps(self._made, ensure_ascii=False, indent=0).encode())
            self._changed = False


def _form_version(definition: CampaignDefinition) -> str:
    """What a form shows besides the unit's name and token: its schema, the deadline, the contact."""
    spec = definition.spec
    facts = [schema_fingerprint(definition.form), spec.deadline.isoformat(), spec.contact.model_dump_json(),
             spec.office.email]
    return hashlib.sha256("\x1f".join(facts).encode()).hexdigest()[:16]


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
            wanted = m.to_addrs != [listed[m.unit_code].email]  # staff corrected the address
        else:
            wanted = m.state in outbox.OPEN_STATES
        if wanted:
            due.append(DueUnit(m.recipient_id, m.unit_code, m.token))
    return [due[i:i + batch_size] for i in range(0, len(due), batch_size)]


@task(name="send-notice-batch", cache_policy=NO_CACHE)
def send_notice_batch(definition: CampaignDefinition, notice_path: str, due: list[DueUnit],
                      retry_delays: list[float]) -> dict:
    """Forms, outbox rows and mail for one batch of units, over one SMTP connection."""
    spec = definition.spec
    units = {unit.code: unit for unit in definition.units}
    domain = sender_domain(spec.office.email)
    notice = Attachment(Path(notice_path), notice_attachment_name(definition), shared=True)
    reply_to = _reply_to(spec.office.email)
    with outbox.sending_lock(definition.id):
        forms = ReplyForms(definition)
        emails, items = {}, []
        for item in due:
            unit = units[item.code]
            emails[item.recipient_id] = (render_notice_email(definition, unit, item.token), unit, item.token)
            items.append(outbox.OutboxItem(
                campaign_id=definition.id, recipient_id=item.recipient_id, unit_code=item.code,
                kind=NOTICE_KIND, step=NOTICE_STEP, to=(unit.email,), subject=emails[item.recipient_id][0].subject,
                message_id=outbox.make_message_id(NOTICE_KIND, spec.token_prefix, item.code, NOTICE_STEP, domain)))
        with session_scope() as session:
            rows = outbox.enqueue(session, items)
        row_ids = [rows[i.key].id for i in items if rows[i.key].state in outbox.OPEN_STATES]

        def compose(row: OutboundMessage) -> OutgoingEmail:  # runs ahead of the sending, in a helper thread
            rendered, unit, token = emails[row.recipient_id]
            form = forms.attachment(unit.code, token)
            return OutgoingEmail(to=tuple(row.to_addrs), cc=tuple(row.cc_addrs), subject=rendered.subject,
                                 text=rendered.text, html=rendered.html, message_id=row.message_id,
                                 attachments=(notice, form), reply_to=reply_to)

        try:
            report = outbox.deliver(
                definition.id, row_ids, compose, on_sent_group=_mark_notified, on_refused=_mark_bounced,
                retry=outbox.RetryPolicy(tuple(retry_delays)),
                connection=lambda: SmtpBatch(sender_name=spec.office.short_name))
        except SmtpFailure as failure:
            raise IssueStopped(_stop_message(failure)) from None
        finally:
            forms.save()
    logger().info("notice batch: %d sent, %d bounced, %d deferred, %d resent after interruption, %d connection(s)",
                  len(report.sent), len(report.bounced), len(report.deferred),
                  len(report.resent_after_interruption), report.connections)
    return {"sent": len(report.sent), "bounced": len(report.bounced), "deferred": len(report.deferred),
            "resent": len(report.resent_after_interruption)}


def _reply_to(office_email: str) -> str | None:
    # Replies must reach the mailbox the collector reads, even if we send from another account.
    return office_email if office_email.lower() != get_settings().smtp_user.lower() else None


def _mark_notified(session, rows: list[OutboundMessage], *, recorded_late: bool = False) -> None:
    """The units whose notice the server accepted are notified."""
    recipients = outbox.recipients_of(session, rows)
    for row in rows:
        recipient = recipients[row.recipient_id]
        detail = {"message_id": row.message_id, "to": row.to_addrs}
        if recorded_late:
            detail["note"] = "recorded after an interrupted run"
        if RecipientStatus(recipient.status) in (RecipientStatus.pending, RecipientStatus.bounced):
            transition(session, recipient, RecipientStatus.notified, kind="notice.sent", detail=detail)
            recipient.notified_at = row.sent_at or now()
        else:  # staff changed the unit meanwhile (exempted it, say): keep their decision
            record_event(session, recipient.campaign_id, "notice.sent", recipient_id=recipient.id, detail=detail)


def _mark_bounced(session, row: OutboundMessage, failure: SmtpFailure) -> None:
    _bounce(session, row, failure.describe(), {"smtp_code": failure.code, "server_text": failure.server_text})


def _bounce(session, row: OutboundMessage, words: str, detail: dict) -> None:
    recipient = outbox.recipients_of(session, [row])[row.recipient_id]
    reason = f"通知邮件被对方邮件服务器拒收（{words}），请核对该单位邮箱后修改 units.csv，再执行 noticeflow issue 补发"
    detail = {"message_id": row.message_id, "to": row.to_addrs, **detail}
    if RecipientStatus(recipient.status) in (RecipientStatus.pending, RecipientStatus.notified):
        transition(session, recipient, RecipientStatus.bounced, kind="notice.bounced", reason=reason, detail=detail)
    else:
        record_event(session, recipient.campaign_id, "notice.bounced", recipient_id=recipient.id, detail=detail)


def _stop_message(failure: SmtpFailure) -> str:
    if failure.stage == "login":
        what = "发信邮箱登录失败，请检查 NOTICEFLOW_SMTP_USER 和 NOTICEFLOW_SMTP_PASSWORD（授权码）"
    else:
        what = "发信服务器拒绝了本机的发信请求，请检查 NOTICEFLOW_SMTP_* 设置和发信邮箱的状态"
    return (f"通知下发已停止：{what}。服务器回复：{failure.describe()}。"
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
