"""The campaign's notice (通知) as an official document: outputs/<campaign>/notice.docx."""
from __future__ import annotations

from pathlib import Path

from documents.officialdoc import OfficialDocument, render_official_document
from forms.campaign import CampaignDefinition
from models.settings import get_settings

NOTICE_FILE_NAME = "notice.docx"


def notice_output_path(campaign_id: str) -> Path:
    """Where the issued notice lives: <output dir>/<campaign>/notice.docx."""
    return get_settings().campaign_dir(campaign_id) / NOTICE_FILE_NAME


def contact_note(definition: CampaignDefinition) -> str:
    """The 附注: who to call or write to about the notice."""
    contact = definition.spec.contact
    return f"联系人：{contact.name}，电话：{contact.phone}，邮箱：{contact.email}"


def notice_document(definition: CampaignDefinition) -> OfficialDocument:
    spec = definition.spec
    notice = spec.notice
    return OfficialDocument(
        mark=spec.office.mark,
        doc_number=notice.doc_number,
        title=notice.title,
        addressees=notice.addressees,
        body=definition.notice_body,
        issuer=spec.office.name,
        date=notice.date,
        printer=spec.office.name,
        printed_date=notice.printed_date or notice.date,
        attachments=tuple(notice.attachments),
        note=contact_note(definition),
        copy_to=tuple(notice.copy_to),
    )


def render_notice(definition: CampaignDefinition, out_path: Path) -> Path:
    """Render the campaign's notice to `out_path` (.docx) and return the path. The same definition
    always gives the same bytes."""
    return render_official_document(notice_document(definition), Path(out_path))
