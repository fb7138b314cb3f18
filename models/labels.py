"""The Chinese words staff read for a unit's status and for the campaign's counts: one place, used by
the staff page and by anything that exports them (the summary's tables, the xlsx)."""
from __future__ import annotations

from models.states import RecipientStatus

S = RecipientStatus

STATUS_LABELS: dict[RecipientStatus, str] = {
    S.pending: "待发送",
    S.notified: "已通知",
    S.replied: "已报送",
    S.late: "逾期报送",
    S.overdue: "逾期未报",
    S.escalated: "已督办",
    S.bounced: "退信",
    S.needs_review: "待核",
    S.exempt: "免报",
}

# The campaign's counts, by the field names of forms.aggregate.Counts.
COUNT_LABELS: dict[str, str] = {
    "units": "单位总数",
    "should_report": "应报",
    "reported": "已报",
    "on_time": "按时",
    "late": "逾期",
    "not_reported": "未报",
    "bounced": "退信",
    "needs_review": "待核",
    "exempt": "免报",
    "awaiting_correction": "待更正",
}


def status_label(status: RecipientStatus | str) -> str:
    """The label of a status value; an unknown value is shown as it is rather than hidden."""
    try:
        return STATUS_LABELS[RecipientStatus(status)]
    except ValueError:
        return str(status)
