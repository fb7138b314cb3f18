"""The staff actions (POST only, each behind login and the CSRF check). Each one does its work in one
transaction, leaves a message for the next page and redirects (303) back to where it came from;
slow work (the summary, sending mail) runs after the answer, as a background task."""
from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse
from sqlalchemy.exc import IntegrityError

from mail.attachments import DEFAULT_LIMITS
from mail.staff_intake import CHANNELS, assign_inbound_to_unit, record_offline_reply
from models.actions import ActionError, exempt_unit
from models.db import session_scope
from web import actions
from web.auth import acting_staff
from web.templating import flash

router = APIRouter()
_UPLOAD_LIMIT = DEFAULT_LIMITS.max_attachment_bytes   # the limit of one emailed attachment
_READ_CHUNK = 1024 * 1024


def _board(campaign_id: str) -> str:
    return f"/campaigns/{quote(campaign_id, safe='')}"


def _unit(campaign_id: str, unit_code: str) -> str:
    return f"{_board(campaign_id)}/units/{quote(unit_code.upper(), safe='')}"


def _back(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


@router.post("/campaigns/{campaign_id}/summary")
def regenerate_summary(request: Request, campaign_id: str, background: BackgroundTasks,
                       staff: str = Depends(acting_staff)):
    try:
        with session_scope() as session:
            actions.request_summary(session, campaign_id, staff)
    except ActionError as error:
        flash(request, str(error), "error")
        return _back(_board(campaign_id))
    background.add_task(actions.regenerate_summary, campaign_id, staff)
    flash(request, "已开始重新生成情况通报、汇总表和附件材料，通常几秒钟内完成，请稍后刷新本页查看。")
    return _back(_board(campaign_id))


@router.post("/campaigns/{campaign_id}/units/{unit_code}/exempt")
def exempt(request: Request, campaign_id: str, unit_code: str, reason: str = Form(""),
           staff: str = Depends(acting_staff)):
    try:
        with session_scope() as session:
            exempt_unit(session, campaign_id, unit_code, reason, actor=staff)
    except ActionError as error:
        flash(request, str(error).replace("（--reason）", ""), "error")
    else:
        flash(request, f"已将单位 {unit_code.upper()} 标记为免报（原因：{reason.strip()}）。")
    return _back(_unit(campaign_id, unit_code))


@router.post("/campaigns/{campaign_id}/messages/{inbound_id}/assign")
def assign(request: Request, campaign_id: str, inbound_id: int, background: BackgroundTasks,
           unit_code: str = Form(""), staff: str = Depends(acting_staff)):
    code = unit_code.strip().split(" ", 1)[0].upper()
    try:
        with session_scope() as session:
            outcome = assign_inbound_to_unit(session, inbound_id, code, staff)
    except ActionError as error:
        flash(request, str(error), "error")
        return _back(f"{_board(campaign_id)}/review")
    background.add_task(actions.send_open_answers, campaign_id)
    if outcome.submission_version:
        answer = "回执" if outcome.answer == "ack" else "更正通知"
        flash(request, f"已将邮件 {inbound_id} 归属到单位 {code}，登记为第 {outcome.submission_version} 版报送，"
                       f"并向发件人发出{answer}。")
    else:
        flash(request, f"已将邮件 {inbound_id} 归属到单位 {code}。邮件中没有可读取的回执表，已请发件人补发。")
    return _back(_unit(campaign_id, code))


@router.post("/campaigns/{campaign_id}/units/{unit_code}/offline-reply")
def offline_reply(request: Request, campaign_id: str, unit_code: str, channel: str = Form("paper"),
                  form_file: UploadFile | None = File(None), staff: str = Depends(acting_staff)):
    data = _read_capped(form_file)
    if data is None:
        flash(request, f"文件超过 {_UPLOAD_LIMIT // (1024 * 1024)} MB 的上限，未登记。请删除表中多余的图片后重新上传。",
              "error")
        return _back(_unit(campaign_id, unit_code))
    name = (form_file.filename if form_file else "") or ""
    try:
        with session_scope() as session:
            submission = record_offline_reply(session, campaign_id, unit_code, data, name, staff, channel)
    except ActionError as error:
        flash(request, str(error), "error")
    except IntegrityError:   # another version of this unit was recorded at the same moment
        flash(request, "该单位刚刚有另一份报送被登记，本次未登记。请刷新页面核对后重新上传。", "error")
    else:
        verdict = "校验通过" if submission.valid else f"有 {len(submission.errors)} 处错误，请核对"
        flash(request, f"已登记单位 {unit_code.upper()} 的{CHANNELS[channel]}报送（第 {submission.version} 版，{verdict}）。",
              "ok" if submission.valid else "error")
    return _back(_unit(campaign_id, unit_code))


@router.post("/campaigns/{campaign_id}/units/{unit_code}/email")
def correct_email(request: Request, campaign_id: str, unit_code: str, background: BackgroundTasks,
                  email: str = Form(""), staff: str = Depends(acting_staff)):
    try:
        with session_scope() as session:
            unit, resend = actions.correct_email_and_plan_resend(session, campaign_id, unit_code, email, staff)
            address = unit.email
    except ActionError as error:
        flash(request, str(error), "error")
        return _back(_unit(campaign_id, unit_code))
    if resend:
        background.add_task(actions.resend_notice, campaign_id, unit_code.upper(), staff)
        flash(request, f"邮箱已更正为 {address}，正在重新发送通知（原 Message-ID），请稍后刷新本页查看发送结果。")
    else:
        flash(request, f"邮箱已更正为 {address}。该单位的通知没有被退回，不会重复发送；之后的催报和回执将发往新邮箱。")
    return _back(_unit(campaign_id, unit_code))


def _read_capped(upload: UploadFile | None) -> bytes | None:
    """The uploaded bytes, or None past the limit (read no further than one chunk beyond it)."""
    if upload is None:
        return b""
    chunks, size = [], 0
    while chunk := upload.file.read(_READ_CHUNK):
        size += len(chunk)
        if size > _UPLOAD_LIMIT:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
