"""`chase_overdue`: the scheduled sweep that reminds the late units and escalates to their leaders.

    the active campaigns (or the one named) → the units still owing a reply, cut into batches →
    per batch (one task run, one SMTP connection, under the campaign's sending lock): units past the
    deadline become overdue, each unit's step is decided, skipped steps are recorded, the due ones
    are rendered, enqueued and sent → the office's daily digest when due → artifacts and a Chinese
    summary

What is due, for whom, and every rule of the ladder and the digest: mail/reminders.py. Exactly once
comes from the outbox (mail.outbox) as for the notice: a run may be killed at any line and started
again, and two runs at the same moment send nothing twice. Level-triggered, so a plain cron
schedule (prefect.yaml) is all it needs, every day: the flow itself knows the working days, and a
missed run is made good by the next one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from documents.chinese_text import chinese_date
from flows.campaign import DEFAULT_BATCH_SIZE, DEFAULT_RETRY_DELAYS, NOTICE_KIND, NOTICE_STEP, _reply_to
from flows.runner import logger, publish_markdown, publish_table, run_task
from forms.campaign import CampaignSpec
from forms.ladder import deadline_of
from forms.workdays import working_days_between
from mail import outbox, reminders
from mail.notice_mail import chinese_deadline
from mail.outbound import OutgoingEmail, SmtpBatch, SmtpFailure, sender_domain
from mail.templating import RenderedEmail, render_email
from models.clock import CHINA_TZ, now
from models.db import session_scope


class ChaseStopped(RuntimeError):
    """The chase cannot go on (our SMTP account or settings); the message is for staff."""


# -- what the emails say --------------------------------------------------------------------------

def _common_context(spec: CampaignSpec, at: datetime) -> dict:
    deadline = deadline_of(spec)
    overdue = at > deadline
    return {
        "office": {"name": spec.office.name, "short_name": spec.office.short_name},
        "notice": {"title": spec.notice.title, "doc_number": spec.notice.doc_number},
        "contact": {"name": spec.contact.name, "phone": spec.contact.phone, "email": spec.contact.email},
        "deadline_text": chinese_deadline(deadline),
        "sent_date_text": chinese_date(at.astimezone(CHINA_TZ)),
        "overdue": overdue,
        "workdays_overdue": working_days_between(deadline, at) if overdue else 0,
    }


def render_reminder(spec: CampaignSpec, due: reminders.DueReminder, at: datetime) -> RenderedEmail:
    unit = due.unit
    notified = unit.notified_at.astimezone(CHINA_TZ) if unit.notified_at else None
    leader = unit.leader_email.lower()
    return render_email(
        due.template, **_common_context(spec, at),
        unit={"name": unit.name, "code": unit.code},
        step={"key": due.step.key, "label": due.step.label},
        notified_date_text=chinese_date(notified) if notified else "",
        leader_copied=leader in (*due.to, *due.cc) and leader != unit.email.lower(),
        errors=list(due.errors), token=unit.token, token_bracketed=f"【{unit.token}】")


def render_digest(spec: CampaignSpec, content: reminders.DigestContent) -> RenderedEmail:
    as_of = content.as_of
    return render_email(
        spec.digest.template, **_common_context(spec, as_of),
        date_text=chinese_date(as_of),
        as_of_text=f"{chinese_date(as_of)}{as_of.hour}时{as_of.minute:02d}分",
        total=content.total, replied=content.replied, late=content.late, awaiting=content.awaiting,
        bounced=content.bounced, needs_review=content.needs_review, exempt=content.exempt,
        not_notified=content.not_notified)


# -- tasks ----------------------------------------------------------------------------------------

@task(name="campaigns-to-chase", cache_policy=NO_CACHE)
def campaigns_to_chase(campaign_id: str | None) -> list[str]:
    """The named campaign if it is active, else every active campaign. UnknownCampaign if the named
    one does not exist."""
    with session_scope() as session:
        if campaign_id is None:
            return reminders.active_campaign_ids(session)
        campaign, _ = reminders.load_campaign_spec(session, campaign_id)
        return [campaign.id] if campaign.active else []


@task(name="plan-chase-batches", cache_policy=NO_CACHE)
def plan_chase_batches(campaign_id: str, batch_size: int) -> list[list[int]]:
    with session_scope() as session:
        ids = reminders.awaiting_recipient_ids(session, campaign_id)
    return [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]


@task(name="chase-batch", cache_policy=NO_CACHE)
def chase_batch(campaign_id: str, recipient_ids: list[int], at: datetime, retry_delays: list[float]) -> dict:
    """Decide, record and send for one batch of units over one SMTP connection. Everything from the
    decision to the last send happens under the campaign's sending lock, so a concurrent run
    decides only after this one has recorded what it did."""
    with outbox.sending_lock(campaign_id):
        with session_scope() as session:
            campaign, spec = reminders.load_campaign_spec(session, campaign_id)
            domain = sender_domain(spec.office.email)
            plan = reminders.plan_reminders(session, campaign_id, recipient_ids, at)
            reminders.record_skipped(session, campaign, plan.skipped, domain)
            emails, items = {}, []
            for due in plan.due:
                rendered = render_reminder(spec, due, at)
                item = reminders.reminder_item(campaign, due, rendered.subject, domain)
                emails[item.key] = (due, rendered)
                items.append(item)
            rows = outbox.enqueue(session, items)
        open_rows = {rows[i.key].id: i.key for i in items if rows[i.key].state in outbox.OPEN_STATES}
        notice_ids = {due.unit.code: outbox.make_message_id(NOTICE_KIND, campaign.token_prefix, due.unit.code,
                                                           NOTICE_STEP, domain) for due in plan.due}

        def compose(row: outbox.OutboxRow) -> OutgoingEmail | None:
            with session_scope() as session:
                if not reminders.still_awaiting(session, row):
                    return None
            due, rendered = emails[row.dedupe_key]
            thread = notice_ids[due.unit.code]  # shown in the unit's mail client under the notice
            return OutgoingEmail(to=tuple(row.to_addrs), cc=tuple(row.cc_addrs), subject=rendered.subject,
                                 text=rendered.text, html=rendered.html, message_id=row.message_id,
                                 reply_to=_reply_to(spec.office.email),
                                 headers={"In-Reply-To": thread, "References": thread})

        if not open_rows:
            report = outbox.DeliveryReport()
        else:
            report = _deliver(spec, campaign_id, list(open_rows), compose, retry_delays,
                              on_sent=reminders.on_reminder_sent(spec), on_refused=reminders.on_reminder_refused)

    def line(due: reminders.DueReminder | reminders.SkippedReminder, result: str, note: str = "") -> dict:
        return {"单位代码": due.unit.code, "单位名称": due.unit.name, "提醒": due.step.label,
                "应发时间": f"{due.due_at:%Y-%m-%d %H:%M}", "结果": result, "说明": note}

    by_row = {row_id: emails[key][0] for row_id, key in open_rows.items()}
    outcome = {
        "sent": [line(by_row[i], "已发送", "更正提醒" if by_row[i].correction else "") for i in report.sent],
        "bounced": [line(by_row[i], "退信", words) for i, words in report.bounced],
        "deferred": [line(by_row[i], "待重发", words) for i, words in report.deferred],
        "skipped": [line(s, "跳过", s.reason) for s in plan.skipped]
                   + [line(by_row[i], "跳过", "发送前该单位已报送或状态已变") for i in report.skipped],
        "overdue": [u.code for u in plan.became_overdue],
        "escalated": [by_row[i].unit.code for i in report.sent if by_row[i].step.escalates],
    }
    logger().info("chase %s batch: %d sent, %d skipped, %d bounced, %d deferred, %d newly overdue",
                  campaign_id, len(outcome["sent"]), len(outcome["skipped"]), len(outcome["bounced"]),
                  len(outcome["deferred"]), len(outcome["overdue"]))
    return outcome


@task(name="send-digest", cache_policy=NO_CACHE)
def send_digest(campaign_id: str, at: datetime, retry_delays: list[float]) -> str:
    """Today's digest to the office mailbox, once. Returns what happened: not_due, sent,
    already_sent, deferred or bounced."""
    with outbox.sending_lock(campaign_id):
        with session_scope() as session:
            campaign, spec = reminders.load_campaign_spec(session, campaign_id)
            reminders.retire_stale_digests(session, campaign_id, reminders.digest_step(at))
            step = reminders.digest_due(session, campaign, spec, at)
            if step is None:
                return "not_due"
            rendered = render_digest(spec, reminders.digest_content(session, campaign_id, at))
            item = reminders.digest_item(campaign, step, rendered.subject, sender_domain(spec.office.email))
            row = outbox.enqueue(session, [item])[item.key]
        if row.state not in outbox.OPEN_STATES:
            return "already_sent"

        def compose(row: outbox.OutboxRow) -> OutgoingEmail:
            return OutgoingEmail(to=tuple(row.to_addrs), subject=rendered.subject, text=rendered.text,
                                 html=rendered.html, message_id=row.message_id)

        report = _deliver(spec, campaign_id, [row.id], compose, retry_delays)
    if report.sent:
        return "sent"
    if report.bounced:
        logger().warning("digest for %s refused: %s", campaign_id, report.bounced[0][1])
        return "bounced"
    return "deferred" if report.deferred else "already_sent"


def _deliver(spec: CampaignSpec, campaign_id: str, row_ids: list[int], compose, retry_delays: list[float],
             **callbacks) -> outbox.DeliveryReport:
    try:
        return outbox.deliver(campaign_id, row_ids, compose, retry=outbox.RetryPolicy(tuple(retry_delays)),
                              connection=lambda: SmtpBatch(sender_name=spec.office.name), **callbacks)
    except SmtpFailure as failure:
        raise ChaseStopped(_stop_message(failure)) from None


def _stop_message(failure: SmtpFailure) -> str:
    return (f"催报已停止：{failure.what_to_check()}。服务器回复：{failure.describe()}。"
            "已发出的提醒不会重复发送，改正后再次执行 noticeflow chase 即可继续。")


# -- the flow -------------------------------------------------------------------------------------

@dataclass
class CampaignChase:
    """What one run did for one campaign."""

    campaign_id: str
    sent: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    bounced: list[dict] = field(default_factory=list)
    deferred: list[dict] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    digest: str = "not_due"

    def add(self, batch: dict) -> None:
        for name in ("sent", "skipped", "bounced", "deferred", "overdue", "escalated"):
            getattr(self, name).extend(batch[name])


@flow(name="chase-overdue")
def chase_overdue(campaign_id: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                  retry_delays: list[float] | None = None) -> str:
    """催报：按活动的催报阶梯向未报送的单位发送提醒、逾期督办，并向办公室发送每日报送日报
    （可重复执行，不会重复发送）。campaign_id 为空时处理所有进行中的活动。"""
    delays = list(DEFAULT_RETRY_DELAYS if retry_delays is None else retry_delays)
    at = now()
    campaign_ids = run_task(campaigns_to_chase, campaign_id)
    if not campaign_ids:
        return f"活动 {campaign_id} 已结束，不再催报。" if campaign_id else "没有进行中的活动，无需催报。"
    lines = []
    for cid in campaign_ids:
        result = CampaignChase(cid)
        for batch in run_task(plan_chase_batches, cid, batch_size):
            result.add(run_task(chase_batch, cid, batch, at, delays))
        result.digest = run_task(send_digest, cid, at, delays)
        _publish(result, at)
        lines.append(_summary(result, at))
    return "\n".join(lines)


_DIGEST_WORDS = {"not_due": "未到发送时间或无需发送", "sent": "已发送", "already_sent": "今日已发送过",
                 "deferred": "暂未发出，下次运行重试", "bounced": "被办公室邮箱拒收，请检查 office.email"}


def _publish(result: CampaignChase, at: datetime) -> None:
    markdown = "\n".join([
        f"## 催报：{result.campaign_id}（{at:%Y-%m-%d %H:%M}）",
        "",
        "| 项目 | 数量 |",
        "|---|---|",
        f"| 本次发出提醒 | {len(result.sent)} |",
        f"| 其中督办（抄送负责同志） | {len(result.escalated)} |",
        f"| 记为跳过（不再补发） | {len(result.skipped)} |",
        f"| 退信 | {len(result.bounced)} |",
        f"| 待重发 | {len(result.deferred)} |",
        f"| 本次转为逾期的单位 | {len(result.overdue)} |",
        "",
        f"每日报送日报：{_DIGEST_WORDS[result.digest]}",
    ])
    publish_markdown(f"chase-{result.campaign_id}", markdown, description="催报情况")
    publish_table(f"chase-actions-{result.campaign_id}",
                  result.sent + result.bounced + result.deferred + result.skipped,
                  description="本次催报发出和跳过的提醒")


def _summary(result: CampaignChase, at: datetime) -> str:
    lines = [f"催报（{result.campaign_id}，{chinese_date(at)}{at.hour}时{at.minute:02d}分）："
             f"本次发出提醒 {len(result.sent)} 封（其中督办 {len(result.escalated)} 封），"
             f"记为跳过 {len(result.skipped)} 个，新转为逾期 {len(result.overdue)} 个单位；"
             f"日报{_DIGEST_WORDS[result.digest]}。"]
    if result.bounced:
        lines.append(f"{len(result.bounced)} 个单位的提醒被退回，已标记为退信，请用 noticeflow status 查看原因并核对邮箱。")
    if result.deferred:
        lines.append(f"{len(result.deferred)} 封提醒暂时未能发出，下次运行会自动重试。")
    return "\n".join(lines)
