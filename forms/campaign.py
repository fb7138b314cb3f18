"""A campaign is one folder: `campaign.yaml`, `units.csv`, the notice body, the form schema.
`load_campaign()` turns it into validated objects; every error names the file, the line and the
field in Chinese and says what to do."""
from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forms.errors import CampaignError, Problem, translate_pydantic
from forms.ladder import schedule
from forms.schema import FormSchema
from forms.sources import read_units_csv, read_yaml_with_lines
from forms.workdays import WorkdayError

DOC_NUMBER_PATTERN = re.compile(r"^[^〔〕]+〔\d{4}〕[1-9]\d*号$")
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$")
CAMPAIGN_FILE = "campaign.yaml"
ROLES = ("unit", "leader", "office")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_email(value: str) -> str:
    value = value.strip()
    if not EMAIL_PATTERN.match(value):
        raise ValueError(f"邮箱地址“{value}”格式不正确，请写成 name@example.gov.cn 的形式")
    return value.lower()


def _check_doc_number(value: str) -> str:
    if not DOC_NUMBER_PATTERN.match(value):
        raise ValueError(f"发文字号“{value}”不符合 GB/T 9704 格式，应如“新文明办发〔2023〕9号”"
                         "（六角括号、四位年份、序号不加“第”和前导零）")
    return value


Email = Annotated[str, AfterValidator(_check_email)]
DocNumber = Annotated[str, AfterValidator(_check_doc_number)]


class Contact(_Strict):
    name: str = Field(min_length=1)
    phone: str = Field(min_length=1)
    email: Email


class Office(_Strict):
    name: str = Field(min_length=1)          # 署名 and 印发机关
    short_name: str = Field(min_length=1)    # 简称, used in emails ("新区文明办")
    mark: str = Field(min_length=1)          # 发文机关标志 ("…办公室文件")
    email: Email


class OfficialDocument(_Strict):
    """What the 版头, 主体 and 版记 of an official document need."""

    doc_number: DocNumber
    title: str = Field(min_length=1)
    addressees: str = Field(min_length=1)
    date: date
    copy_to: list[str] = Field(default_factory=list)
    printed_date: date | None = None


class Notice(OfficialDocument):
    body: str = Field(min_length=1)  # a file in the campaign folder
    attachments: list[str] = Field(default_factory=list)


class Summary(_Strict):
    doc_number: DocNumber
    title: str = Field(min_length=1)
    next_steps: list[str] = Field(min_length=1)
    copy_to: list[str] = Field(default_factory=list)


class UnitKind(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)


class LadderStep(_Strict):
    """One rung of the reminder ladder: when (working days from the deadline, time of day), what
    (a template in templates/email/), to whom."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)
    template: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    offset_workdays: int = Field(ge=-30, le=30)
    at: time
    to: list[Literal["unit", "leader", "office"]] = Field(min_length=1)
    cc: list[Literal["unit", "leader", "office"]] = Field(default_factory=list)
    escalates: bool = False


class Digest(_Strict):
    at: time = time(17, 0)
    template: str = "digest"


class CampaignSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{1,62}$")
    token_prefix: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,15}$")
    office: Office
    contact: Contact
    notice: Notice
    deadline: datetime
    deadline_on_holiday: Literal["error", "earlier", "later"] = "error"
    unit_kinds: list[UnitKind] = Field(min_length=1)
    units: str = "units.csv"
    form: str = "form.yaml"
    ladder: list[LadderStep] = Field(default_factory=list)
    digest: Digest | None = None
    summary: Summary

    @field_validator("deadline")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("截止时间必须带时区，请写成 2023-10-10T18:00:00+08:00 的形式")
        return value

    @model_validator(mode="after")
    def _unique_steps(self):
        keys = [s.key for s in self.ladder]
        if len(set(keys)) != len(keys):
            raise ValueError("催报阶梯（ladder）中有重复的 key，请改为各不相同")
        return self


class UnitRow(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{1,32}$")
    name: str = Field(min_length=1, max_length=200)
    kind: str
    email: Email
    leader_email: Email
    contact: str = ""


class CampaignDefinition(BaseModel):
    """Everything one campaign folder says, validated."""

    model_config = ConfigDict(frozen=True)

    directory: Path
    spec: CampaignSpec
    units: list[UnitRow]
    form: FormSchema
    notice_body: str

    @property
    def id(self) -> str:
        return self.spec.id

    def kind_label(self, key: str) -> str:
        return next(k.label for k in self.spec.unit_kinds if k.key == key)


def _load_model(model, data, path: Path, lines: dict) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CampaignError(translate_pydantic(exc, path, lines)) from None


def _check_units(rows: list[tuple[int, dict]], path: Path, kinds: set[str]) -> list[UnitRow]:
    problems: list[Problem] = []
    units: list[UnitRow] = []
    seen_codes: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    for line, raw in rows:
        try:
            unit = UnitRow.model_validate(raw)
        except ValidationError as exc:
            problems.extend(translate_pydantic(exc, path, {}, line=line))
            continue
        if unit.kind not in kinds:
            problems.append(Problem(path, line, "kind", f"单位类别“{unit.kind}”未在 campaign.yaml 的 "
                                    f"unit_kinds 中定义，可用：{'、'.join(sorted(kinds))}"))
        if unit.code in seen_codes:
            problems.append(Problem(path, line, "code", f"单位代码“{unit.code}”与第{seen_codes[unit.code]}行重复，"
                                    "每个单位的代码必须唯一"))
        if unit.email in seen_emails:
            problems.append(Problem(path, line, "email", f"邮箱“{unit.email}”与第{seen_emails[unit.email]}行重复，"
                                    "请为每个单位填写各自的邮箱"))
        seen_codes.setdefault(unit.code, line)
        seen_emails.setdefault(unit.email, line)
        units.append(unit)
    if not rows:
        problems.append(Problem(path, 1, "", "单位名单为空，请至少填写一个单位"))
    if problems:
        raise CampaignError(problems)
    return units


def _check_addressees(spec: CampaignSpec, path: Path, lines: dict) -> None:
    """A 主送 too long for the 版记 (where it goes when page 1 cannot hold it) is found at load
    time, not when the notice or the summary is rendered."""
    from documents.addressees import imprint_fits, imprint_lines

    for field, copy_to in (("notice", spec.notice.copy_to), ("summary", spec.summary.copy_to)):
        if not imprint_fits(spec.notice.addressees, copy_to):
            raise CampaignError([Problem(
                path, lines.get(("notice", "addressees")), "notice.addressees",
                f"主送机关名称过多，移至版记后约{imprint_lines(spec.notice.addressees, copy_to)}行，一页排不下"
                f"（{field} 的抄送一并计入）。请改用统称（如“各有关单位”），并将单位名单作为附件")])


def _check_calendar(spec: CampaignSpec, path: Path, lines: dict) -> None:
    """A deadline not after the notice's date, a deadline on a rest day (under deadline_on_holiday: error) or a ladder step in a year the
    holiday data does not cover is a campaign error, found at load time rather than at send time."""
    if spec.deadline.date() <= spec.notice.date:
        raise CampaignError([Problem(path, lines.get(("deadline",)), "deadline",
                                     f"截止时间 {spec.deadline:%Y-%m-%d} 不晚于成文日期 {spec.notice.date}，"
                                     "请检查 deadline 与 notice.date")])
    try:
        schedule(spec)
    except WorkdayError as exc:
        raise CampaignError([Problem(path, lines.get(("deadline",)), "deadline", str(exc))]) from None


def _check_email_templates(spec: CampaignSpec, path: Path, lines: dict) -> None:
    """Every email the ladder and the digest name must exist now, not fail on the day it is due."""
    from models.settings import TEMPLATES_DIR

    named = [(("ladder", i, "template"), step.template) for i, step in enumerate(spec.ladder)]
    if spec.digest:
        named.append((("digest", "template"), spec.digest.template))
    problems = [Problem(path, lines.get(loc), ".".join(map(str, loc)),
                        f"找不到邮件模板“{name}”（templates/email/{name}.subject.j2 与 {name}.txt.j2），"
                        "请检查模板名称或先添加模板")
                for loc, name in named
                if not all((TEMPLATES_DIR / "email" / f"{name}.{part}.j2").is_file() for part in ("subject", "txt"))]
    if problems:
        raise CampaignError(problems)


def load_campaign(directory: str | Path) -> CampaignDefinition:
    """Read and validate a campaign folder. Raises CampaignError listing every problem found."""
    directory = Path(directory).resolve()
    spec_path = directory / CAMPAIGN_FILE
    if not spec_path.is_file():
        raise CampaignError([Problem(spec_path, None, "", f"找不到 {CAMPAIGN_FILE}，请确认活动目录是否正确")])
    data, lines = read_yaml_with_lines(spec_path)
    spec: CampaignSpec = _load_model(CampaignSpec, data, spec_path, lines)
    _check_calendar(spec, spec_path, lines)
    _check_addressees(spec, spec_path, lines)
    _check_email_templates(spec, spec_path, lines)

    form_path = directory / spec.form
    if not form_path.is_file():
        raise CampaignError([Problem(spec_path, lines.get(("form",)), "form",
                                     f"找不到回执表定义文件 {spec.form}，请检查文件名")])
    form_data, form_lines = read_yaml_with_lines(form_path)
    form: FormSchema = _load_model(FormSchema, form_data, form_path, form_lines)

    body_path = directory / spec.notice.body
    if not body_path.is_file():
        raise CampaignError([Problem(spec_path, lines.get(("notice", "body")), "notice.body",
                                     f"找不到通知正文文件 {spec.notice.body}，请检查文件名")])
    units_path = directory / spec.units
    if not units_path.is_file():
        raise CampaignError([Problem(spec_path, lines.get(("units",)), "units",
                                     f"找不到单位名单 {spec.units}，请检查文件名")])
    units = _check_units(read_units_csv(units_path), units_path, {k.key for k in spec.unit_kinds})
    return CampaignDefinition(directory=directory, spec=spec, units=units, form=form,
                              notice_body=body_path.read_text(encoding="utf-8").strip())
