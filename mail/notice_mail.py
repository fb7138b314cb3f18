"""The notice email each unit receives: its words, its two attachments (the notice and the unit's
own reply form) and the recipe that composes it.

Kept apart from the flow (flows.campaign) so that composing can run in a worker process
(mail.compose_worker) that imports this module and not Prefect.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from documents.chinese_text import chinese_date
from forms.campaign import CampaignDefinition, UnitRow
from forms.reply_form import reply_form_bytes, schema_fingerprint
from mail.composing import Recipe
from mail.outbound import Attachment, OutgoingEmail, attachment_filename
from mail.templating import RenderedEmail, render_email, render_subject
from models.clock import CHINA_TZ, now
from models.files import write_atomically
from models.settings import get_settings

NOTICE_TEMPLATE = "notice"
FORMS_DIR = "forms"
FORM_MANIFEST_FILE = ".made.json"  # what each form on disk was made for (see ReplyForms)


# -- words and names the unit sees ----------------------------------------------------------------

def chinese_deadline(deadline: datetime) -> str:
    """`2023年10月10日18时前` (Beijing time; minutes only when there are some)."""
    local = deadline.astimezone(CHINA_TZ)
    clock = f"{local.hour}时" + (f"{local.minute}分" if local.minute else "")
    return f"{chinese_date(local)}{clock}前"


def notice_attachment_name(definition: CampaignDefinition) -> str:
    notice = definition.spec.notice
    return attachment_filename(f"{notice.doc_number} {notice.title}", ".docx")


def form_attachment_name(unit: UnitRow) -> str:
    return attachment_filename(f"回执表-{unit.name}", ".xlsx")


def render_notice_email(definition: CampaignDefinition, unit: UnitRow, token: str) -> RenderedEmail:
    return render_email(NOTICE_TEMPLATE, **_notice_words(definition, unit, token))


def notice_subject(definition: CampaignDefinition, unit: UnitRow, token: str) -> str:
    """The subject alone (the outbox keeps it; the message itself is composed elsewhere)."""
    return render_subject(NOTICE_TEMPLATE, **_notice_words(definition, unit, token))


def _notice_words(definition: CampaignDefinition, unit: UnitRow, token: str) -> dict:
    spec = definition.spec
    return dict(
        unit={"name": unit.name, "code": unit.code},
        office={"name": spec.office.name, "short_name": spec.office.short_name},
        notice={"title": spec.notice.title, "doc_number": spec.notice.doc_number},
        contact={"name": spec.contact.name, "phone": spec.contact.phone, "email": spec.contact.email},
        deadline_text=chinese_deadline(spec.deadline),
        sent_date_text=chinese_date(now()),
        token=token, token_bracketed=f"【{token}】",
        notice_filename=notice_attachment_name(definition), form_filename=form_attachment_name(unit))


# -- the reply forms on disk ----------------------------------------------------------------------

def forms_folder(campaign_id: str) -> Path:
    return get_settings().campaign_dir(campaign_id) / FORMS_DIR


def form_attachment(definition: CampaignDefinition, unit: UnitRow, token: str, *, build: bool) -> Attachment:
    """The unit's form as an attachment; with `build`, made and written first."""
    path = forms_folder(definition.id) / f"{unit.code}.xlsx"
    if not build:
        return Attachment(path, form_attachment_name(unit))
    content = reply_form_bytes(definition, unit.name, token)
    # Not fsync'ed one by one: a form can always be made again, and a sync per unit would cost more
    # than sending its mail. A file that is not a readable zip (a power cut) is rebuilt.
    write_atomically(path, content, fsync=False)
    return Attachment(path, form_attachment_name(unit), content=content)


class ReplyForms:
    """Which forms under outputs/<id>/forms/<code>.xlsx are current: a manifest, saved after the
    forms, says what each was made for (code → token and a fingerprint of what the form shows
    besides the unit). A form is built only if missing, unreadable, or made for another token or
    another version of the form."""

    def __init__(self, definition: CampaignDefinition):
        self.definition = definition
        self.folder = forms_folder(definition.id)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._manifest_path = self.folder / FORM_MANIFEST_FILE
        self._made = json.loads(self._manifest_path.read_text("utf-8")) if self._manifest_path.exists() else {}
        self._units = {unit.code: unit for unit in definition.units}
        self._version = _form_version(definition)
        self._changed = False

    def needs_building(self, code: str, token: str) -> bool:
        return not (self._made.get(code) == self._made_for(token) and zipfile.is_zipfile(self.folder / f"{code}.xlsx"))

    def built(self, code: str, token: str) -> None:
        """Record a form written for `token` (call only once the file is in place)."""
        self._made[code] = self._made_for(token)
        self._changed = True

    def attachment(self, code: str, token: str) -> Attachment:
        """The unit's form as an attachment, built first if needed."""
        build = self.needs_building(code, token)
        attachment = form_attachment(self.definition, self._units[code], token, build=build)
        if build:
            self.built(code, token)
        return attachment

    def path(self, code: str, token: str) -> Path:
        return self.attachment(code, token).path

    def save(self) -> None:
        if self._changed:
            write_atomically(self._manifest_path, json.dumps(self._made, ensure_ascii=False, indent=0).encode())
            self._changed = False

    def _made_for(self, token: str) -> str:
        return f"{token} {self._version}"


def _form_version(definition: CampaignDefinition) -> str:
    """What a form shows besides the unit's name and token: its schema, the deadline, the contact."""
    spec = definition.spec
    facts = [schema_fingerprint(definition.form), spec.deadline.isoformat(), spec.contact.model_dump_json(),
             spec.office.email]
    return hashlib.sha256("\x1f".join(facts).encode()).hexdigest()[:16]


# -- composing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoticeContext:
    """What every notice of a batch shares (sent to the composing process with each batch: the
    campaign without its unit list, which can be thousands long)."""

    definition: CampaignDefinition
    notice: Attachment
    reply_to: str | None


@dataclass(frozen=True)
class NoticeJob:
    """What one notice needs besides the context."""

    unit: UnitRow
    token: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    message_id: str
    build_form: bool


def compose_notice(context: NoticeContext, job: NoticeJob) -> OutgoingEmail:
    definition = context.definition
    rendered = render_notice_email(definition, job.unit, job.token)
    form = form_attachment(definition, job.unit, job.token, build=job.build_form)
    return OutgoingEmail(to=job.to, cc=job.cc, subject=rendered.subject, text=rendered.text, html=rendered.html,
                         message_id=job.message_id, attachments=(context.notice, form), reply_to=context.reply_to)


def notice_recipe(definition: CampaignDefinition, notice_path: Path, reply_to: str | None,
                  tokens: dict[int, tuple[str, str]]) -> Recipe:
    """The recipe for a batch of notices. `tokens`: recipient id → (unit code, token). Forms are
    recorded in the manifest as they are composed; the caller saves it (`recipe.forms.save()`)."""
    forms = ReplyForms(definition)
    units = {unit.code: unit for unit in definition.units}
    context = NoticeContext(definition.model_copy(update={"units": []}),
                            Attachment(Path(notice_path), notice_attachment_name(definition), shared=True), reply_to)

    def job(row) -> NoticeJob:
        code, token = tokens[row.recipient_id]
        return NoticeJob(unit=units[code], token=token, to=tuple(row.to_addrs), cc=tuple(row.cc_addrs),
                         message_id=row.message_id, build_form=forms.needs_building(code, token))

    def composed(job: NoticeJob) -> None:
        if job.build_form:
            forms.built(job.unit.code, job.token)

    return NoticeRecipe(build=compose_notice, context=context, job=job, composed=composed, forms=forms)


@dataclass(frozen=True)
class NoticeRecipe(Recipe):
    forms: ReplyForms | None = None
