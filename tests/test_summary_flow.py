"""`publish_summary`: on demand and on its schedule, the files it writes, the audit event, the
artifact. The flow's body runs directly (run_flow with no PREFECT_API_URL); one test runs it as a
real Prefect flow run to read the artifact back."""
from __future__ import annotations

import json
import zipfile
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from docx import Document
from sqlmodel import select

from documents.bundle import BUNDLE_FILE_NAME, BundleReport
from documents.export import EXPORT_FILE_NAME, UNITS_SHEET
from flows.runner import run_flow
from flows.summarize import (EVENT_PUBLISHED, SummaryError, SummaryFiles, file_links, gather_summary_data,
                             publish_summary, summary_markdown)
from models.db import session_scope
from models.settings import get_settings, reload_settings
from models.states import RecipientStatus as S
from models.status import UnknownCampaign
from models.tables import Campaign, Event, Unit
from summary_world import CID, LATE, SummaryWorld, figures, synthetic_units

BEFORE_DEADLINE = "2023-10-10T17:59:00"
AFTER_DEADLINE = "2023-10-10T18:30:00"


@pytest.fixture
def world(nf_env, tmp_path, monkeypatch) -> SummaryWorld:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-16T09:00:00")
    world = SummaryWorld(tmp_path, synthetic_units(6, name=lambda n: f"测试单位{n}"))
    world.notify()
    d = world.definition
    world.reply("T001", figures(d, 1, stories="组织志愿者清理河道垃圾，群众纷纷点赞。"))
    world.reply("T002", figures(d, 2), at=LATE)
    world.status("T003", S.bounced, reason="邮箱不存在")
    world.status("T004", S.exempt, reason="已撤并")
    world.attach("T001", [("活动照片.jpg", b"\xff\xd8\xff\xe0" + b"1" * 200)])
    return world


def campaign_dir() -> Path:
    return get_settings().campaign_dir(CID)


def test_on_demand_writes_the_summary_the_export_and_the_bundle(world):
    path = run_flow(publish_summary, CID, summary_date="2023-10-16")
    assert path == str(campaign_dir() / "summary-2023-10-16.docx")
    texts = [p.text for p in Document(path).paragraphs]
    assert "一、基本情况" in texts and "2023年10月16日" in texts
    sheet = openpyxl.load_workbook(campaign_dir() / EXPORT_FILE_NAME)[UNITS_SHEET]
    assert [row[2] for row in sheet.iter_rows(min_row=2, values_only=True)] == [f"测试单位{n}" for n in range(1, 7)]
    assert zipfile.ZipFile(campaign_dir() / BUNDLE_FILE_NAME).namelist() == ["001_测试单位1/活动照片.jpg"]
    with session_scope() as session:
        (event,) = session.exec(select(Event).where(Event.kind == EVENT_PUBLISHED)).all()
    assert event.detail["summary"] == "summary-2023-10-16.docx" and event.detail["attachments"] == 1
    assert (event.detail["reported"], event.detail["late"], event.detail["not_reported"]) == (2, 1, 3)


def test_the_date_defaults_to_the_clocks_today(world, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-20T08:00:00")
    path = run_flow(publish_summary, CID)
    assert Path(path).name == "summary-2023-10-20.docx"
    texts = [p.text for p in Document(path).paragraphs]
    assert "2023年10月20日" in texts and any(t.startswith("本次活动应报送单位5个，截至2023年10月20日") for t in texts)


def test_on_schedule_only_campaigns_past_their_deadline(world, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    assert run_flow(publish_summary) == ""
    assert not list(campaign_dir().glob("summary-*.docx"))
    monkeypatch.setenv("NOTICEFLOW_NOW", AFTER_DEADLINE)
    assert run_flow(publish_summary) == str(campaign_dir() / "summary-2023-10-10.docx")
    with session_scope() as session:
        session.get(Campaign, CID).active = False
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-11T18:30:00")
    assert run_flow(publish_summary) == ""


def test_on_demand_before_the_deadline_and_for_an_ended_campaign(world, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_NOW", BEFORE_DEADLINE)
    assert Path(run_flow(publish_summary, CID)).name == "summary-2023-10-10.docx"
    with session_scope() as session:
        session.get(Campaign, CID).active = False
    assert Path(run_flow(publish_summary, CID, summary_date="2023-11-01")).name == "summary-2023-11-01.docx"


def test_wrong_input_is_refused_in_chinese(world):
    with pytest.raises(UnknownCampaign, match="找不到活动 xinqu-2099-1"):
        run_flow(publish_summary, "xinqu-2099-1")
    with pytest.raises(SummaryError, match="请写成 2023-10-16 的形式"):
        run_flow(publish_summary, CID, summary_date="2023年10月16日")
    assert not campaign_dir().joinpath(EXPORT_FILE_NAME).exists()


def test_a_run_again_writes_the_same_files(world):
    run_flow(publish_summary, CID, summary_date="2023-10-16")
    names = ("summary-2023-10-16.docx", EXPORT_FILE_NAME, BUNDLE_FILE_NAME)
    first = {name: (campaign_dir() / name).read_bytes() for name in names}
    run_flow(publish_summary, CID, summary_date="2023-10-16")
    assert {name: (campaign_dir() / name).read_bytes() for name in names} == first


def test_a_run_that_dies_half_way_leaves_whole_files_and_the_next_run_finishes(world, monkeypatch):
    import flows.summarize as flow_module

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(flow_module, "build_bundle", broken)
    with pytest.raises(OSError):
        run_flow(publish_summary, CID, summary_date="2023-10-16")
    assert (campaign_dir() / "summary-2023-10-16.docx").exists()
    assert not (campaign_dir() / BUNDLE_FILE_NAME).exists()
    assert not [p.name for p in campaign_dir().iterdir() if p.name.startswith(".")]   # no half-written file
    monkeypatch.undo()
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-16T09:00:00")
    run_flow(publish_summary, CID, summary_date="2023-10-16")
    assert zipfile.ZipFile(campaign_dir() / BUNDLE_FILE_NAME).testzip() is None


def test_the_artifact_gives_the_headline_figures_and_links(world, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_WEB_BASE_URL", "https://staff.wenmingban.example/")
    reload_settings()
    with session_scope() as session:   # a unit whose name means something in markdown
        session.exec(select(Unit).where(Unit.code == "T002")).one().name = "测试|单位*2"
    data = gather_summary_data.fn(CID, date(2023, 10, 16))
    files = SummaryFiles(campaign_dir() / "summary-2023-10-16.docx", campaign_dir() / EXPORT_FILE_NAME,
                         BundleReport(campaign_dir() / BUNDLE_FILE_NAME, files=1, units=1))
    markdown = summary_markdown(data, files)
    assert "| 应报单位 | 5 |" in markdown and "| 已报送 | 2 |" in markdown and "| 其中逾期报送 | 1 |" in markdown
    assert "| 未报送 | 3 |" in markdown and "| 其中退信 | 1 |" in markdown and "| 免报 | 1 |" in markdown
    assert "| 活动场次 | 18场 |" in markdown and "| 志愿服务时长（小时） | 27小时 |" in markdown
    links = file_links(CID)
    assert links["summary"] == f"https://staff.wenmingban.example/campaigns/{CID}/files/summary"
    assert all(f"]({url})" in markdown for url in links.values())
    assert r"逾期报送：测试\|单位\*2" in markdown


@pytest.mark.prefect
@pytest.mark.filterwarnings("ignore")
def test_the_prefect_flow_publishes_its_artifact(world):
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        path = publish_summary(CID, summary_date="2023-10-16")    # a real flow run
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts()}
    assert Path(path).exists()
    report = artifacts[f"summary-{CID}"].data
    report = json.loads(report) if report.startswith('"') else report
    assert "| 应报单位 | 5 |" in report and file_links(CID)["summary"] in report
