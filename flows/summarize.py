"""`publish_summary`: the 情况通报 of a campaign, its data export and its attachments bundle.

    the campaigns due → per campaign: gather each unit's latest valid submission and aggregate →
    outputs/<id>/summary-<YYYY-MM-DD>.docx → 汇总表.xlsx → 附件材料.zip → an audit event and a
    markdown artifact with the headline figures and links to the files on the staff page

Scheduled daily (prefect.yaml) it acts on every active campaign whose deadline has passed; run on
demand for one campaign it does so whatever the deadline. Everything it writes is a function of the
database and the summary date: a re-run, or a run killed half-way and started again, writes the same
files (each one atomically).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlmodel import select

from documents.bundle import BUNDLE_FILE_NAME, BundleReport, build_bundle
from documents.export import EXPORT_FILE_NAME, write_export
from documents.outcomes import UnitRecord, campaign_deadline, campaign_figures, campaign_row
from documents.summary import Measures, render_summary, summary_output_path, unit_numbers
from documents.summary_words import figure, measure_words
from flows.runner import logger, publish_markdown, run_task
from forms.aggregate import Aggregation
from forms.campaign import CampaignDefinition, load_campaign
from forms.errors import CampaignError
from models import clock
from models.db import session_scope
from models.settings import get_settings
from models.states import record_event
from models.tables import Campaign

EVENT_PUBLISHED = "summary.published"
NAMES_IN_ARTIFACT = 20


class SummaryError(ValueError):
    """The summary cannot be made as asked; the message is for staff."""


def file_links(campaign_id: str) -> dict[str, str]:
    """Where the staff page serves the newest summary, the export and the bundle of a campaign."""
    base = f"{get_settings().web_base_url.rstrip('/')}/campaigns/{campaign_id}/files"
    return {"summary": f"{base}/summary", "export": f"{base}/export", "attachments": f"{base}/attachments"}


def parse_summary_date(text: str | None) -> date:
    """The summary's date (its 成文日期 and file name): the given YYYY-MM-DD, or today's."""
    if text is None or not str(text).strip():
        return clock.today()
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise SummaryError(f"通报日期“{text}”格式不对，请写成 2023-10-16 的形式") from None


class SummaryData:
    """What one campaign's files are made from. A plain class on purpose: Prefect does not walk
    through it looking for futures when it is handed to a task (10,000 units)."""

    def __init__(self, definition: CampaignDefinition, records: list[UnitRecord], aggregation: Aggregation,
                 day: date):
        self.definition, self.records, self.aggregation, self.day = definition, records, aggregation, day

    @property
    def campaign_id(self) -> str:
        return self.definition.id


@dataclass(frozen=True)
class SummaryFiles:
    summary: Path
    export: Path
    bundle: BundleReport


# -- tasks ----------------------------------------------------------------------------------------

@task(name="campaigns-to-summarize", cache_policy=NO_CACHE)
def campaigns_to_summarize(campaign_id: str | None) -> list[str]:
    """The named campaign (UnknownCampaign if there is none), else every active campaign whose
    deadline has passed."""
    with session_scope() as session:
        if campaign_id is not None:
            return [campaign_row(session, campaign_id).id]
        at = clock.now()
        campaigns = session.exec(select(Campaign).where(Campaign.active == True).order_by(Campaign.id))  # noqa: E712
        return [c.id for c in campaigns if campaign_deadline(c) <= at]


@task(name="gather-summary-data", cache_policy=NO_CACHE)
def gather_summary_data(campaign_id: str, day: date) -> SummaryData:
    with session_scope() as session:
        source_dir = campaign_row(session, campaign_id).source_dir
    try:
        definition = load_campaign(source_dir)
    except CampaignError as exc:
        raise SummaryError(f"读取活动目录 {source_dir} 失败，无法生成通报：\n"
                           + "\n".join(f"  - {p}" for p in exc.problems)) from None
    with session_scope() as session:
        records, aggregation = campaign_figures(session, definition)
    return SummaryData(definition, records, aggregation, day)


@task(name="render-summary", cache_policy=NO_CACHE)
def render_summary_file(data: SummaryData) -> Path:
    path = summary_output_path(data.campaign_id, data.day)
    return render_summary(data.definition, data.aggregation, data.day, path)


@task(name="export-xlsx", cache_policy=NO_CACHE)
def export_file(data: SummaryData) -> Path:
    path = get_settings().campaign_dir(data.campaign_id) / EXPORT_FILE_NAME
    return write_export(data.definition, data.aggregation, data.records, data.day, path)


@task(name="bundle-attachments", cache_policy=NO_CACHE)
def bundle_file(data: SummaryData) -> BundleReport:
    path = get_settings().campaign_dir(data.campaign_id) / BUNDLE_FILE_NAME
    with session_scope() as session:
        report = build_bundle(session, data.campaign_id, unit_numbers(data.aggregation), path)
    if report.missing:
        logger().warning("campaign %s: %d recorded attachment(s) missing on disk: %s", data.campaign_id,
                         len(report.missing), ", ".join(report.missing[:10]))
    return report


# -- the flow -------------------------------------------------------------------------------------

@flow(name="publish-summary")
def publish_summary(campaign_id: str | None = None, summary_date: str | None = None) -> str:
    """生成情况通报（Word）、汇总表（Excel）和附件材料包。campaign_id 为空时处理所有已过截止时间的
    进行中活动；summary_date（YYYY-MM-DD）为通报的成文日期，默认今天。返回通报文件的路径（多个活动时每行一个）。"""
    day = parse_summary_date(summary_date)
    paths = []
    for cid in run_task(campaigns_to_summarize, campaign_id):
        data = run_task(gather_summary_data, cid, day)
        files = SummaryFiles(run_task(render_summary_file, data), run_task(export_file, data),
                             run_task(bundle_file, data))
        _record(data, files)
        publish_markdown(f"summary-{cid}", summary_markdown(data, files), description="情况通报")
        logger().info("summary of %s as of %s: %s", cid, day.isoformat(), files.summary)
        paths.append(str(files.summary))
    return "\n".join(paths)


def _record(data: SummaryData, files: SummaryFiles) -> None:
    c = data.aggregation.counts
    with session_scope() as session:
        record_event(session, data.campaign_id, EVENT_PUBLISHED, detail={
            "date": data.day.isoformat(), "summary": files.summary.name, "export": files.export.name,
            "bundle": files.bundle.path.name, "attachments": files.bundle.files,
            "should_report": c.should_report, "reported": c.reported, "late": c.late, "not_reported": c.not_reported})


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def md(text: str) -> str:
    """Text of a unit shown literally in markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _names(outcomes) -> str:
    names = [md(o.name) for o in outcomes[:NAMES_IN_ARTIFACT]]
    more = len(outcomes) - len(names)
    return "、".join(names) + (f" 等 {len(outcomes)} 个" if more > 0 else "")


def summary_markdown(data: SummaryData, files: SummaryFiles) -> str:
    spec, a, c = data.definition.spec, data.aggregation, data.aggregation.counts
    links = file_links(data.campaign_id)
    rows = [("应报单位", c.should_report), ("已报送", c.reported), ("其中按时报送", c.on_time),
            ("其中逾期报送", c.late), ("未报送", c.not_reported), ("其中退信", c.bounced),
            ("其中回执有误待更正", c.awaiting_correction), ("免报", c.exempt)]
    lines = [f"## 情况通报：{md(spec.summary.doc_number)}（截至 {data.day.isoformat()}）", "",
             f"**{md(spec.summary.title)}**", "", "| 项目 | 数量 |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in rows]
    for measure, total in Measures.of(data.definition.form).totals(a):
        lines.append(f"| {md(measure.label)} | {md(figure(total, measure.decimals) + measure_words(measure.label)[1])} |")
    lines += ["", "文件（在办公室工作页面下载）：", "",
              f"- [情况通报（Word）]({links['summary']})：{md(files.summary.name)}",
              f"- [汇总表（Excel）]({links['export']})：{md(files.export.name)}",
              f"- [附件材料（zip，{files.bundle.files} 个文件）]({links['attachments']})：{md(files.bundle.path.name)}"]
    if files.bundle.missing:
        lines.append(f"- 注意：有 {len(files.bundle.missing)} 个已登记的附件在磁盘上找不到，未能打包，请检查 outputs 目录。")
    if a.late_units:
        lines += ["", f"逾期报送：{_names(a.late_units)}"]
    if a.not_reported_units:
        lines += ["", f"未报送：{_names(a.not_reported_units)}"]
    return "\n".join(lines)
