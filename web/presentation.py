"""Words and formats of the staff page: times in Beijing time, the history's event names, the
colour class of a status. The status words themselves are models.labels' (shared with exports)."""
from __future__ import annotations

from datetime import datetime

from models.clock import CHINA_TZ
from models.labels import STATUS_LABELS
from models.states import RecipientStatus

EVENT_LABELS = {
    "notice.sent": "通知已发送",
    "notice.bounced": "通知被退回",
    "submission_received": "收到报送",
    "reply_recorded_status_kept": "收到报送（状态未变）",
    "submission_rejected": "收到报送（有错误，已请更正）",
    "bounce_received": "收到退信",
    "auto_reply_received": "收到自动回复",
    "answer_refused": "回执被对方拒收",
    "reply_needs_review": "转人工核对",
    "chase.overdue": "已过截止时间",
    "chase.escalated": "已督办",
    "chase.bounced": "催报邮件被退回",
    "reminder.sent": "催报已发送",
    "reminder.skipped": "催报未发送",
    "outbox.readdressed": "按新地址重发",
    "outbox.resend_after_interruption": "中断后重发",
    "staff.exempt": "标记免报",
    "staff.assign_message": "人工归属邮件",
    "staff.offline_reply": "登记纸质/电话报送",
    "staff.email_corrected": "更正邮箱",
    "staff.resend_notice": "重新发送通知",
    "staff.resend_failed": "重新发送通知失败",
    "staff.summary_requested": "重新生成汇总",
    "staff.summary_failed": "生成汇总失败",
    "summary.published": "情况通报已生成",
}
# Detail keys worth showing in the history, with their Chinese names.
EVENT_DETAIL_LABELS = {
    "reason": "原因", "to": "收件地址", "from": "原地址", "version": "版本", "valid": "校验通过",
    "channel": "方式", "step": "阶段", "subject": "主题", "file": "文件", "error": "错误", "inbound_id": "邮件编号",
    "answer": "答复", "status": "状态", "date": "通报日期", "reported": "已报", "not_reported": "未报",
}
# One colour family per status; the page always shows the words too (never colour alone).
STATUS_TONES = {
    RecipientStatus.pending: "muted", RecipientStatus.notified: "info", RecipientStatus.replied: "good",
    RecipientStatus.late: "fair", RecipientStatus.overdue: "bad", RecipientStatus.escalated: "worse",
    RecipientStatus.bounced: "alert", RecipientStatus.needs_review: "warn", RecipientStatus.exempt: "muted",
}
FILE_TYPE_LABELS = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel 表格",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word 文档",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PPT 演示文稿",
    "application/pdf": "PDF 文件", "application/zip": "压缩包", "text/plain": "文本",
}
FILE_FAMILY_LABELS = {"image": "图片", "video": "视频", "audio": "音频"}
SOURCE_LABELS = {"email": "邮件", "paper": "纸质", "phone": "电话"}
CHANNEL_WORDS = {"paper": "纸质", "phone": "电话"}


def status_tone(status: str) -> str:
    try:
        return STATUS_TONES[RecipientStatus(status)]
    except ValueError:
        return "muted"


def status_options() -> list[tuple[str, str]]:
    return [(status.value, label) for status, label in STATUS_LABELS.items()]


def beijing(value: datetime | None, with_seconds: bool = False) -> str:
    if value is None:
        return "—"
    local = value.astimezone(CHINA_TZ)
    return local.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def chinese_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    local = value.astimezone(CHINA_TZ)
    weekday = "一二三四五六日"[local.weekday()]
    return f"{local.year}年{local.month}月{local.day}日（星期{weekday}）{local:%H:%M}"


def event_label(kind: str) -> str:
    return EVENT_LABELS.get(kind, kind)


def event_details(detail: dict | None) -> list[tuple[str, str]]:
    """The parts of an Event's detail a person can use, in a fixed order."""
    shown = []
    for key, label in EVENT_DETAIL_LABELS.items():
        value = (detail or {}).get(key)
        if value in (None, "", [], {}):
            continue
        if isinstance(value, bool):
            value = "是" if value else "否"
        elif isinstance(value, (list, tuple)):
            value = "、".join(str(v) for v in value)
        elif key == "channel":
            value = CHANNEL_WORDS.get(value, value)
        shown.append((label, str(value)))
    return shown



def file_type(media_type: str | None) -> str:
    """What a stored file is, in words (from its sniffed content type)."""
    if not media_type:
        return "—"
    return FILE_TYPE_LABELS.get(media_type) or FILE_FAMILY_LABELS.get(media_type.split("/", 1)[0]) or "其他文件"
