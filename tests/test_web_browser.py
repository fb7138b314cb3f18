"""The staff page in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
log in, read the board, open a unit, download the summary, exempt a unit and see its status change;
and the same page used with JavaScript switched off. Screenshots go to the test's directory and are
copied to outputs/screenshots/ for people to look at."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import docx
import pytest
import uvicorn
from sqlmodel import select

from models.db import session_scope
from models.settings import PROJECT_ROOT
from models.tables import Event
from web.app import create_app
from web_world import CID, STAFF_NAME, STAFF_PASSWORD, build_scene, copy_scene

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "outputs" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium package at /usr/bin/chromium"),
]


class LiveServer:
    """The app under uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the staff page did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return build_scene(tmp_path_factory.mktemp("browser-scene"))


@pytest.fixture
def site(scene, tmp_path, monkeypatch):
    copy_scene(scene, tmp_path, monkeypatch)
    with LiveServer(create_app()) as base_url:
        yield base_url


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


def keep(shot: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOTS / shot.name)


def log_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/")
    assert page.url.startswith(f"{base_url}/login")
    page.fill("#name", STAFF_NAME)
    page.fill("#password", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_staff_log_in_read_the_board_open_a_unit_download_the_summary_and_exempt_a_unit(site, browser, tmp_path):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    log_in(page, site)
    page.click("text=关于组织开展")
    page.wait_for_url(f"{site}/campaigns/{CID}")
    assert page.locator("h1").inner_text().startswith("关于组织开展")
    tiles = {page.locator(".tile .what").nth(i).inner_text(): int(page.locator(".tile .number").nth(i).inner_text())
             for i in range(page.locator(".tile").count())}
    assert tiles["已报"] == 6 and tiles["逾期"] == 1 and tiles["免报"] == 1 and tiles["退信"] == 1
    assert page.locator("#units tbody tr").count() == 44
    yq04 = page.locator("#units tbody tr", has_text="YQ04")
    # Its form was rejected: not a report, still chased, and marked for correction.
    assert yq04.locator(".status").inner_text() == "逾期未报" and "待更正" in yq04.inner_text()
    # Colour and words: the badge of an overdue unit is red-ish and says 逾期未报.
    overdue = page.locator("#units .status[data-status=overdue]").first
    assert overdue.inner_text() == "逾期未报"
    red, green, blue = [int(v) for v in overdue.evaluate("e => getComputedStyle(e).color").strip("rgb()").split(",")]
    assert red > 150 and green < 80 and blue < 80
    board_shot = tmp_path / "board.png"
    page.screenshot(path=str(board_shot), full_page=True)
    keep(board_shot)

    page.click("#units >> text=石化产业园区管委会")
    page.wait_for_url(f"{site}/campaigns/{CID}/units/YQ04")
    assert page.locator("#unit-status").inner_text() == "逾期未报"
    assert "十几场" in page.locator("article.submission").inner_text()
    assert page.locator("table.history tbody tr").count() >= 2
    unit_shot = tmp_path / "unit.png"
    page.screenshot(path=str(unit_shot), full_page=True)
    keep(unit_shot)

    page.goto(f"{site}/campaigns/{CID}")
    with page.expect_download() as download_info:
        page.click("text=情况通报（Word）")
    download = download_info.value
    assert download.suggested_filename.endswith(".docx") and "情况通报" in download.suggested_filename
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert any("通报" in paragraph.text for paragraph in docx.Document(str(saved)).paragraphs)

    page.goto(f"{site}/campaigns/{CID}/units/YQ10")
    assert page.locator("#unit-status").inner_text() == "逾期未报"
    page.fill("#reason", "该单位本月整体搬迁，经领导同意免报")
    page.click("text=标记为免报")
    page.wait_for_load_state()
    assert page.locator("#unit-status").inner_text() == "免报"
    assert "已将单位 YQ10 标记为免报" in page.locator(".flash").inner_text()
    assert "该单位本月整体搬迁" in page.locator("table.history").inner_text()
    exempt_shot = tmp_path / "unit-exempt.png"
    page.screenshot(path=str(exempt_shot), full_page=True)
    keep(exempt_shot)
    page.goto(f"{site}/campaigns/{CID}?status=exempt")
    assert sorted(page.locator("#units tbody tr td:first-child").all_inner_texts()) == ["YQ09", "YQ10"]
    with session_scope() as session:
        (event,) = session.exec(select(Event).where(Event.kind == "staff.exempt", Event.actor == STAFF_NAME)).all()
    assert event.detail["reason"] == "该单位本月整体搬迁，经领导同意免报"
    context.close()


def test_filtering_and_sorting_work_without_javascript(site, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    log_in(page, site)
    page.goto(f"{site}/campaigns/{CID}")
    page.select_option("select[name=status]", "overdue")
    page.click("text=筛选")
    page.wait_for_load_state()
    statuses = set(page.locator("#units .status").all_inner_texts())
    assert statuses == {"逾期未报"}
    page.click("#units thead >> text=单位名称")
    page.wait_for_load_state()
    names = page.locator("#units tbody tr td:nth-child(2)").all_inner_texts()
    assert names == sorted(names) and len(names) > 5
    page.click("#units thead >> text=单位名称")   # again: descending
    page.wait_for_load_state()
    assert page.locator("#units tbody tr td:nth-child(2)").all_inner_texts() == sorted(names, reverse=True)
    assert set(page.locator("#units .status").all_inner_texts()) == {"逾期未报"}
    context.close()
