"""`collect_replies`: read the office mailbox and record every unit's reply (on a schedule).

    campaigns to collect for → fetch new mail by UID (raw .eml on disk and a row, before anything
    else) → the rows still to finish, in batches of BATCH_SIZE (one task run each: process every
    message in its own transaction, send the 回执/correction requests, move the messages to the
    Processed folder) → answers left unsent by earlier runs → report (artifacts, a Chinese summary)

Everything that makes this safe to kill and rerun lives in mail.ingest and mail.outbox; this file
only orders the steps. A task retry repeats nothing that was done: fetching continues from the UID
watermark, a message is claimed before it is processed, an answer already sent is not pending.
The outbox itself retries 4xx answers; SMTP trouble leaves answers queued for the next run.

The CLI (`noticeflow collect CAMPAIGN_ID`) runs `run_flow(collect_replies, campaign_id)` and prints
the returned Chinese summary; mail.ingest.CollectError carries a message for staff.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.runner import logger, publish_markdown, publish_table, run_task
from mail.classify import Kind
from mail.inbox import open_inbox
from mail.ingest import (
    DUPLICATE,
    ERROR,
    Scope,
    fetch_new_messages,
    open_answer_ids,
    process_batch,
    resolve_campaign_ids,
    send_answers,
    unfinished_ids,
)
from models.db import session_scope
from models.settings import get_settings

BATCH_SIZE = 50   # messages per task run: ~10 ms of Prefect overhead each, a few seconds of work

CLASSIFICATION_LABELS = {
    Kind.reply.value: "单位回复",
    Kind.bounce.value: "退信",
    Kind.auto_reply.value: "自动回复",
    Kind.unknown.value: "无法识别",
    DUPLICATE: "重复邮件",
    ERROR: "处理出错",
}


@task(name="plan-collection", cache_policy=NO_CACHE)
def plan_collection(campaign_id: str | None) -> list[str]:
    with session_scope() as session:
        return resolve_campaign_ids(session, campaign_id)


@task(name="fetch-new-mail", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=30)
def fetch_new_mail(campaign_ids: list[str]) -> int:
    """Store and record the new messages; a retry continues from the UID watermark."""
    scope = Scope(campaign_ids)
    with open_inbox(scope.settings) as inbox:
        return len(fetch_new_messages(inbox, scope))


@task(name="messages-to-finish", cache_policy=NO_CACHE)
def messages_to_finish() -> list[int]:
    with session_scope() as session:
        return unfinished_ids(session, get_settings().imap_folder)


@task(name="process-mail-batch", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)
def process_mail_batch(inbound_ids: list[int], campaign_ids: list[str]) -> dict:
    report = process_batch(inbound_ids, Scope(campaign_ids))
    logger().info("batch of %d: %d processed, %d answer(s) sent, %d moved", len(inbound_ids),
                  len(report.outcomes), report.answers.sent, report.moved)
    return {"outcomes": [o.as_row() for o in report.outcomes], "answers": asdict(report.answers),
            "moved": report.moved}


@task(name="send-open-answers", cache_policy=NO_CACHE)
def send_open_answers(campaign_ids: list[str]) -> dict:
    """Answers an earlier run enqueued but could not send (SMTP down, a crash); reports how many
    are still unsent afterwards."""
    report = asdict(send_answers(Scope(campaign_ids), campaign_ids))
    with session_scope() as session:
        report["still_open"] = sum(len(open_answer_ids(session, c)) for c in campaign_ids)
    return report


@flow(name="collect-replies")
def collect_replies(campaign_id: str | None = None) -> str:
    """收取回复：读取办公室邮箱中的新邮件，登记各单位的报送，发送回执或更正通知（可重复执行）。
    不指定活动时收取所有进行中的活动。"""
    campaign_ids = run_task(plan_collection, campaign_id)
    fetched = run_task(fetch_new_mail, campaign_ids)
    todo = run_task(messages_to_finish)
    logger().info("collect %s: %d new message(s), %d to finish", ", ".join(campaign_ids), fetched, len(todo))
    outcomes: list[dict] = []
    sent = moved = 0
    for start in range(0, len(todo), BATCH_SIZE):
        result = run_task(process_mail_batch, todo[start:start + BATCH_SIZE], campaign_ids)
        outcomes += result["outcomes"]
        sent += result["answers"]["sent"]
        moved += result["moved"]
    leftovers = run_task(send_open_answers, campaign_ids)
    sent += leftovers["sent"]
    report = {"campaigns": campaign_ids, "fetched": fetched, "outcomes": outcomes, "sent": sent,
              "moved": moved, "unsent": leftovers["still_open"],
              "smtp_errors": leftovers["errors"]}
    _publish(report)
    return summary_text(report)


# -- reporting -----------------------------------------------------------------------------------

def _counts(outcomes: list[dict]) -> Counter:
    return Counter(o["classification"] for o in outcomes)


def review_rows(outcomes: list[dict]) -> list[dict]:
    return [{"邮件编号": o["inbound_id"], "活动": o["campaign_id"] or "", "单位": o["unit_code"] or "未识别",
             "发件人": o["from_addr"], "主题": o["subject"][:80], "需要处理的事项": o["review_reason"]}
            for o in outcomes if o["needs_review"]]


def _publish(report: dict) -> None:
    outcomes = report["outcomes"]
    counts = _counts(outcomes)
    answers = Counter(o["answer"] for o in outcomes if o["answer"])
    key_part = report["campaigns"][0] if len(report["campaigns"]) == 1 else "all"
    lines = [f"## 收取回复：{'、'.join(report['campaigns'])}", "",
             "| 项目 | 数量 |", "|---|---|",
             f"| 新收到的邮件 | {report['fetched']} |",
             f"| 本次处理的邮件 | {len(outcomes)} |"]
    lines += [f"| {label} | {counts.get(kind, 0)} |" for kind, label in CLASSIFICATION_LABELS.items()]
    lines += [f"| 登记回执并发出回执 | {answers.get('ack', 0)} |",
              f"| 发出更正通知 | {answers.get('correction', 0)} |",
              f"| 本次发出的邮件 | {report['sent']} |",
              f"| 暂未发出（下次运行重试） | {report['unsent']} |",
              f"| 移入已处理文件夹 | {report['moved']} |",
              f"| 需要人工处理 | {sum(1 for o in outcomes if o['needs_review'])} |"]
    reviews = review_rows(outcomes)
    if reviews:
        lines += ["", "### 需要人工处理的邮件", ""]
        lines += [f"- 邮件 {r['邮件编号']}（{r['单位']}，{r['发件人'] or '无发件人'}）：{r['需要处理的事项']}"
                  for r in reviews]
    publish_markdown(f"collect-{key_part}", "\n".join(lines), description="收取回复情况")
    publish_table(f"collect-review-{key_part}", reviews, description="需要人工处理的邮件")


def summary_text(report: dict) -> str:
    outcomes = report["outcomes"]
    counts = _counts(outcomes)
    answers = Counter(o["answer"] for o in outcomes if o["answer"])
    parts = "，".join(f"{label} {counts[kind]}" for kind, label in CLASSIFICATION_LABELS.items() if counts.get(kind))
    lines = [f"收取回复（{'、'.join(report['campaigns'])}）：新邮件 {report['fetched']} 封，"
             f"本次处理 {len(outcomes)} 封" + (f"（{parts}）" if parts else "") + "；"
             f"回执 {answers.get('ack', 0)} 封，更正通知 {answers.get('correction', 0)} 封，"
             f"本次发出 {report['sent']} 封。"]
    reviews = review_rows(outcomes)
    if reviews:
        lines.append(f"有 {len(reviews)} 封邮件需要人工处理：")
        lines += [f"  - 邮件 {r['邮件编号']}（{r['单位']}，{r['发件人'] or '无发件人'}）："
                  + r["需要处理的事项"].replace("\n", " ") for r in reviews]
    if report["unsent"]:
        lines.append(f"另有 {report['unsent']} 封回执/更正通知暂未发出，下次收取时会自动重发"
                     + (f"（{'；'.join(report['smtp_errors'])}）" if report["smtp_errors"] else "") + "。")
    return "\n".join(lines)
