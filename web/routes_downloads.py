"""Downloads, addressed by a campaign and a fixed kind, or by a database id; never by a path."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlmodel import select

from forms.reply_form import reply_form_bytes
from mail.attachments import XLSX_MIME
from models.db import session_scope
from models.tables import Attachment, Campaign, InboundMessage, Recipient, Unit
from web.auth import require_staff
from web.campaigns import definition_of
from web.downloads import (CAMPAIGN_FILES, EML_MIME, attachment_name, bytes_download, campaign_file_name,
                           campaign_file_path, file_download, inside)

router = APIRouter()


def _missing(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what}不存在或尚未生成。")


@router.get("/campaigns/{campaign_id}/files/{kind}")
def campaign_file(request: Request, campaign_id: str, kind: str, staff: str = Depends(require_staff)):
    info = CAMPAIGN_FILES.get(kind)
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
    if info is None or campaign is None:
        raise _missing("该文件")
    path = campaign_file_path(request.app.state.settings.output_dir, campaign, kind)
    if path is None:
        raise _missing(info.label)
    return file_download(path, campaign_file_name(campaign, kind, path), info.media_type, info.ascii_name)


@router.get("/files/attachments/{attachment_id}")
def attachment(request: Request, attachment_id: int, staff: str = Depends(require_staff)):
    with session_scope() as session:
        row = session.get(Attachment, attachment_id)
    path = inside(request.app.state.settings.output_dir, row.stored_path) if row and row.stored_path else None
    if path is None:
        raise _missing("附件")
    name = attachment_name(row.original_name, row.stored_path)
    return file_download(path, name, row.sniffed_type, f"attachment-{row.id}{path.suffix}")


@router.get("/files/messages/{inbound_id}")
def raw_message(request: Request, inbound_id: int, staff: str = Depends(require_staff)):
    with session_scope() as session:
        row = session.get(InboundMessage, inbound_id)
    path = inside(request.app.state.settings.output_dir, row.raw_path) if row and row.raw_path else None
    if path is None:
        raise _missing("原始邮件")
    subject = " ".join((row.subject or "").split())[:60] or "无主题"
    return file_download(path, f"邮件{row.id}-{subject}.eml", EML_MIME, f"message-{row.id}.eml")


@router.get("/campaigns/{campaign_id}/units/{unit_code}/form")
def unit_form(campaign_id: str, unit_code: str, staff: str = Depends(require_staff)):
    """The unit's own reply form (with its token), for staff to fill in from a paper or phone reply."""
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        found = session.exec(select(Recipient, Unit).join(Unit, Unit.id == Recipient.unit_id)
                             .where(Recipient.campaign_id == campaign_id, Unit.code == unit_code.upper())).first()
    definition = definition_of(campaign) if campaign else None
    if found is None or definition is None:
        raise _missing("该单位的回执表")
    recipient, unit = found
    return bytes_download(reply_form_bytes(definition, unit.name, recipient.token), f"回执表-{unit.name}.xlsx",
                          XLSX_MIME, f"form-{unit.code}.xlsx")
