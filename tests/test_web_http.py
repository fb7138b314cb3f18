"""The staff page over HTTP (FastAPI's TestClient): login and throttling, CSRF on every action, each
action's effect in the database, download headers and bytes, and path tricks refused.

The scene (tests/web_world.py: the seed campaign in every state, replies collected by the real
pipeline) is built once per module and copied for each test, database and files, so every test
starts from the same state and may change it."""
from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import docx
import openpyxl
import pytest
from fastapi.testclient import TestClient
from lxml import html as lxml_html
from sqlmodel import select

from documents.outcomes import campaign_figures
from forms.campaign import load_campaign
from forms.reply_form import reply_form_bytes
from models import db
from models.db import session_scope
from models.staff import BASE_DELAY, FREE_ATTEMPTS
from models.status import campaign_status
from models.tables import Attachment, Campaign, Event, InboundMessage, OutboundMessage, Recipient, Submission, Unit
from web.app import create_app
from web.downloads import content_disposition
from forms.form_filling import fill_reply_form
from web_world import CID, STAFF_NAME, STAFF_PASSWORD, STRANGER, Scene, build_scene, copy_scene, figures

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Scene:
    return build_scene(tmp_path_factory.mktemp("scene"))


class Site:
    """A TestClient on a fresh copy of the scene, with helpers to log in and to act."""

    def __init__(self, scene: Scene, root: Path):
        self.scene = scene
        self.root = root
        self.output_dir = root / "outputs"
        self.client = TestClient(create_app(), follow_redirects=False)

    def csrf(self, path: str = "/login") -> str:
        page = self.client.get(path, follow_redirects=True)
        return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    def login(self, name: str = STAFF_NAME, password: str = STAFF_PASSWORD):
        return self.client.post("/login", data={"name": name, "password": password, "csrf_token": self.csrf(),
                                                "next": "/"})

    def act(self, path: str, data: dict | None = None, files=None, token: str | None = None):
        """POST an action the way the page's form does (with the session's CSRF token)."""
        token = self.csrf(f"/campaigns/{CID}") if token is None else token
        return self.client.post(path, data={**(data or {}), "csrf_token": token}, files=files)

    def page(self, path: str):
        response = self.client.get(path, follow_redirects=True)
        assert response.status_code == 200, (path, response.status_code)
        return lxml_html.fromstring(response.text)


@pytest.fixture
def site(scene, tmp_path, monkeypatch) -> Site:
    copy_scene(scene, tmp_path, monkeypatch)
    yield Site(scene, tmp_path)
    db.reset_engines()


@pytest.fixture
def staff(site) -> Site:
    assert site.login().status_code == 303
    return site


def unit_row(session, code: str) -> tuple[Recipient, Unit]:
    return session.exec(select(Recipient, Unit).join(Unit, Unit.id == Recipient.unit_id)
                        .where(Recipient.campaign_id == CID, Unit.code == code)).one()


def definition():
    with session_scope() as session:
        return load_campaign(session.get(Campaign, CID).source_dir)


def status_of(code: str) -> str:
    with session_scope() as session:
        return unit_row(session, code)[0].status.value


def flashes(tree) -> list[str]:
    return [" ".join(node.text_content().split()) for node in tree.xpath("//*[contains(@class,'flash')]")]


def board_codes(tree) -> list[str]:
    return [a.text for a in tree.xpath("//table[@id='units']/tbody/tr/td[1]/a")]


# -- login ---------------------------------------------------------------------------------------------

PAGES = ["/", f"/campaigns/{CID}", f"/campaigns/{CID}/units/YQ04", f"/campaigns/{CID}/review",
         f"/campaigns/{CID}/files/summary", f"/campaigns/{CID}/files/export", f"/campaigns/{CID}/files/attachments",
         f"/campaigns/{CID}/files/notice", "/files/attachments/1",
         "/files/messages/1", f"/campaigns/{CID}/units/YQ04/form"]
ACTIONS = [f"/campaigns/{CID}/summary", f"/campaigns/{CID}/units/YQ10/exempt", f"/campaigns/{CID}/messages/1/assign",
           f"/campaigns/{CID}/units/YQ10/offline-reply", f"/campaigns/{CID}/units/YQ08/email", "/logout"]


def test_every_page_and_download_needs_a_login(site):
    for path in PAGES:
        response = site.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path
        assert unquote(response.headers["location"].split("next=", 1)[1]) == path
    for path in ACTIONS:
        response = site.client.post(path, data={"csrf_token": site.csrf(), "reason": "x", "unit_code": "YQ10"})
        assert response.status_code == 401, path
    # A cookie not signed with our key is no session.
    site.client.cookies.set("noticeflow_staff", "eyJzdGFmZiI6ICJcdTVmMjBcdTY1NGYifQ==.forged.signature")
    assert site.client.get("/").status_code == 303
    assert status_of("YQ10") == "overdue"


def test_login_leads_back_to_the_page_asked_for_and_logout_ends_the_session(site):
    first = site.client.get(f"/campaigns/{CID}/units/YQ04")
    login_page = site.client.get(first.headers["location"])
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page.text).group(1)
    nxt = re.search(r'name="next" value="([^"]+)"', login_page.text).group(1)
    response = site.client.post("/login", data={"name": STAFF_NAME, "password": STAFF_PASSWORD,
                                                "csrf_token": token, "next": nxt})
    assert response.status_code == 303 and response.headers["location"] == f"/campaigns/{CID}/units/YQ04"
    assert "石化产业园区管委会" in site.client.get(response.headers["location"]).text
    # `next` never leads to another site.
    site.client.post("/logout", data={"csrf_token": site.csrf("/")})
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = site.client.post("/login", data={"name": STAFF_NAME, "password": STAFF_PASSWORD,
                                                    "csrf_token": site.csrf(), "next": evil})
        assert response.status_code == 303 and response.headers["location"] == "/", evil
        site.client.post("/logout", data={"csrf_token": site.csrf("/")})
    assert site.client.get("/").status_code == 303


def test_login_form_itself_needs_the_csrf_token(site):
    response = site.client.post("/login", data={"name": STAFF_NAME, "password": STAFF_PASSWORD})
    assert response.status_code == 403
    assert site.client.get("/").status_code == 303


def test_wrong_passwords_in_a_row_slow_down_further_attempts(site, monkeypatch):
    def attempt(password: str, name: str = STAFF_NAME):
        return site.client.post("/login", data={"name": name, "password": password, "csrf_token": site.csrf()})

    for _ in range(FREE_ATTEMPTS - 1):
        refused = attempt("wrong-password")
        assert refused.status_code == 401 and "用户名或密码不正确" in refused.text
    locked = attempt("wrong-password")   # the last free attempt locks the name
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) == BASE_DELAY.total_seconds()
    assert "连续登录失败次数过多" in locked.text
    # While locked even the right password is not looked at.
    assert attempt(STAFF_PASSWORD).status_code == 429
    assert site.client.get("/").status_code == 303
    # Each further failure doubles the wait.
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-12T10:00:31")
    longer = attempt("still-wrong")
    assert longer.status_code == 429 and int(longer.headers["Retry-After"]) == 2 * BASE_DELAY.total_seconds()
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-12T10:01:32")
    assert attempt(STAFF_PASSWORD).status_code == 303
    assert site.client.get("/").status_code == 200
    # A name with no account gets the same answers, so they tell nothing about which names exist.
    answers = [attempt("whatever", name="nobody-here").status_code for _ in range(FREE_ATTEMPTS + 1)]
    assert answers == [401] * (FREE_ATTEMPTS - 1) + [429, 429]


# -- CSRF ------------------------------------------------------------------------------------------------

def test_every_action_needs_the_sessions_csrf_token(staff):
    for path in ACTIONS:
        data = {"reason": "测试", "unit_code": "YQ10", "email": "new@units.xinqu.example"}
        assert staff.client.post(path, data=data).status_code == 403, path
        assert staff.client.post(path, data={**data, "csrf_token": "not-the-token"}).status_code == 403, path
    # A token from another session does not count either.
    other = Site(staff.scene, staff.root)
    other.login()
    foreign = other.csrf("/")
    assert staff.client.post(ACTIONS[1], data={"reason": "测试", "csrf_token": foreign}).status_code == 403
    assert status_of("YQ10") == "overdue"
    assert staff.client.get("/").status_code == 200   # still logged in


# -- the board -------------------------------------------------------------------------------------------

def test_the_board_counts_like_the_summary_and_filters_and_sorts(staff):
    with session_scope() as session:
        report = campaign_status(session, CID)
        records, aggregation = campaign_figures(session, definition())
    expected = aggregation.counts   # what the 情况通报 says
    valid = {record.code: record.late for record in records if record.reported}
    tree = staff.page(f"/campaigns/{CID}")
    tiles = {node.xpath("string(.//span[@class='what'])"): int(node.xpath("string(.//span[@class='number'])"))
             for node in tree.xpath("//a[contains(@class,'tile ')]")}
    assert tiles == {"应报": expected.should_report, "已报": expected.reported, "按时": expected.on_time,
                     "逾期": expected.late, "未报": expected.not_reported, "退信": expected.bounced,
                     "待核": expected.needs_review, "免报": expected.exempt}
    assert expected.reported and expected.late and expected.bounced and expected.exempt
    assert len(board_codes(tree)) == len(report["units"])
    # Colour and words: every status cell says its status in Chinese.
    words = {cell.get("data-status"): cell.text for cell in tree.xpath("//span[contains(@class,'status ')]")}
    assert words["overdue"] == "逾期未报" and words["exempt"] == "免报" and words["bounced"] == "退信"
    assert "已过截止时间 2 个工作日" in tree.text_content()
    assert "待归属" in tree.text_content()

    overdue = staff.page(f"/campaigns/{CID}?status=overdue")
    assert set(overdue.xpath("//table[@id='units']//span/@data-status")) == {"overdue"}
    departments = board_codes(staff.page(f"/campaigns/{CID}?kind=department"))
    assert departments and all(code.startswith("BM") for code in departments)
    list_order = [unit.code for unit in definition().units]   # units.csv: the board's default order
    assert board_codes(tree) == list_order and list_order != sorted(list_order)
    late = board_codes(staff.page(f"/campaigns/{CID}?group=late"))
    assert late == [code for code in list_order if valid.get(code)]
    assert board_codes(staff.page(f"/campaigns/{CID}?sort=code")) == sorted(list_order)
    by_reminders = staff.page(f"/campaigns/{CID}?sort=reminders&order=desc")
    counts = [int(cell.text) for cell in by_reminders.xpath("//table[@id='units']/tbody/tr/td[7]")]
    assert counts == sorted(counts, reverse=True) and counts[0] >= 2
    names = [a.text for a in staff.page(f"/campaigns/{CID}?sort=name").xpath("//table[@id='units']/tbody/tr/td[2]/a")]
    assert names == sorted(names)
    assert board_codes(staff.page(f"/campaigns/{CID}?q=财政")) == ["BM03"]
    # Unknown values fall back to the defaults instead of failing.
    assert len(board_codes(staff.page(f"/campaigns/{CID}?sort=evil&order=sideways&status=nope"))) == len(report["units"])


def test_the_board_shows_fresh_data_on_reload(staff):
    before = staff.page(f"/campaigns/{CID}?status=exempt")
    assert board_codes(before) == ["YQ09"]
    with session_scope() as session:   # a flow changes the database meanwhile
        from models.actions import exempt_unit
        exempt_unit(session, CID, "BM03", "合并办公", actor="cli")
    assert board_codes(staff.page(f"/campaigns/{CID}?status=exempt")) == ["YQ09", "BM03"]   # units.csv order


def test_a_units_page_shows_versions_figures_errors_files_and_history(staff):
    tree = staff.page(f"/campaigns/{CID}/units/YQ04")
    text = " ".join(tree.text_content().split())
    assert "第 1 版" in text and "有错误，未计入汇总" in text
    assert "B6" in text and "十几场" in text and "联系电话" in text
    assert "党的二十大精神宣讲" in text and "参与志愿者人次" in text
    with session_scope() as session:
        recipient, _ = unit_row(session, "YQ04")
        attachment = session.exec(select(Attachment).where(Attachment.recipient_id == recipient.id)).one()
        message = session.exec(select(InboundMessage).where(InboundMessage.recipient_id == recipient.id)).one()
    links = tree.xpath("//a/@href")
    assert f"/files/attachments/{attachment.id}" in links and f"/files/messages/{message.id}" in links
    history = [" ".join(row.text_content().split()) for row in tree.xpath("//table[contains(@class,'history')]/tbody/tr")]
    # A rejected form is recorded but is not a report: the unit's status does not change.
    assert any("收到报送（有错误，已请更正）" in row and "→" not in row and "系统" in row for row in history)
    assert any("通知已发送" in row for row in history)
    exempt = " ".join(staff.page(f"/campaigns/{CID}/units/YQ09").text_content().split())
    assert "标记免报" in exempt and "李主任" in exempt and "该单位已撤并" in exempt
    assert staff.client.get(f"/campaigns/{CID}/units/NOPE").status_code == 404
    assert staff.client.get("/campaigns/no-such-campaign").status_code == 404


# -- downloads -------------------------------------------------------------------------------------------

def saved_name(response) -> str:
    return filename_star(response.headers["content-disposition"])


def filename_star(disposition: str) -> str:
    """The name an RFC 6266 client saves under: `filename*` (RFC 8187: charset'language'percent-encoded);
    the header must also carry a plain ASCII `filename` for older clients."""
    assert re.search(r'(^|;)\s*filename="[\x20-\x7e]*"', disposition), disposition
    charset, _language, encoded = re.search(r"filename\*=([^';]+)'([^']*)'([^;\s]+)", disposition).groups()
    return unquote(encoded, encoding=charset, errors="strict")


def test_downloads_carry_type_chinese_name_and_the_exact_bytes(staff):
    summary = staff.client.get(f"/campaigns/{CID}/files/summary")
    assert summary.status_code == 200 and summary.headers["content-type"] == DOCX
    disposition = summary.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="summary.docx"; filename*=UTF-8\'\'')
    assert saved_name(summary) == f"新文明办发〔2023〕15号情况通报（{staff.scene.summary_name[8:18]}）.docx"
    assert summary.content == (staff.output_dir / CID / staff.scene.summary_name).read_bytes()
    document = docx.Document(io.BytesIO(summary.content))
    assert any("通报" in p.text for p in document.paragraphs)
    assert summary.headers["x-content-type-options"] == "nosniff"

    notice = staff.client.get(f"/campaigns/{CID}/files/notice")
    assert notice.headers["content-type"] == DOCX and saved_name(notice).startswith("新文明办发〔2023〕9号 关于组织开展")
    assert notice.content == (staff.output_dir / CID / "notice.docx").read_bytes()

    export = staff.client.get(f"/campaigns/{CID}/files/export")
    assert export.headers["content-type"] == XLSX and saved_name(export) == "新文明办发〔2023〕9号汇总表.xlsx"
    assert export.content == (staff.output_dir / CID / "汇总表.xlsx").read_bytes()
    assert openpyxl.load_workbook(io.BytesIO(export.content)).worksheets
    bundle = staff.client.get(f"/campaigns/{CID}/files/attachments")
    assert bundle.headers["content-type"] == "application/zip" and saved_name(bundle).endswith("附件材料.zip")
    assert zipfile.ZipFile(io.BytesIO(bundle.content)).testzip() is None

    with session_scope() as session:
        attachment = session.exec(select(Attachment).where(Attachment.stored_path != "")).first()
        message = session.get(InboundMessage, attachment.inbound_id)
    got = staff.client.get(f"/files/attachments/{attachment.id}")
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == attachment.sha256
    assert saved_name(got) == attachment.original_name == "回执表（已填写）.xlsx"
    assert got.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    raw = staff.client.get(f"/files/messages/{message.id}")
    assert raw.headers["content-type"] == "message/rfc822"
    assert raw.content == (staff.output_dir / message.raw_path).read_bytes()
    assert saved_name(raw).endswith(".eml") and 'filename="message-' in raw.headers["content-disposition"]

    form = staff.client.get(f"/campaigns/{CID}/units/YQ10/form")
    book = openpyxl.load_workbook(io.BytesIO(form.content))
    cells = [str(c.value) for row in book.worksheets[0].iter_rows() for c in row if c.value]
    with session_scope() as session:
        token = unit_row(session, "YQ10")[0].token
    assert token in cells and saved_name(form) == "回执表-国际物流园区管委会.xlsx"


def test_the_links_in_the_summary_artifact_lead_to_the_files(staff):
    from flows.summarize import file_links

    links = file_links(CID)
    assert set(links) == {"summary", "export", "attachments"}
    for url in links.values():
        response = staff.client.get(urlsplit(url).path)
        assert response.status_code == 200 and response.headers["content-disposition"].startswith("attachment;")


def test_content_disposition_round_trips_through_a_real_parser():
    for name in ("情况通报（2023-10-12）.docx", 'a "quoted"; name.xlsx', "plain.docx", "回执表\r\n注入.xlsx", "%41.txt"):
        header = content_disposition(name, "fallback.bin")
        assert filename_star(header) == " ".join(name.split())
        assert header.isascii() and "\r" not in header and "\n" not in header
        ascii_name = re.search(r'filename="([^"]*)"', header).group(1)
        assert ascii_name == ("fallback.bin" if not name.isascii() else ascii_name) and '"' not in ascii_name


def test_path_tricks_are_refused(staff):
    outside = staff.root / "secret.txt"
    outside.write_text("not for download")
    for path in (f"/campaigns/{CID}/files/..%2F..%2Fsecret.txt", f"/campaigns/{CID}/files/../../secret.txt",
                 f"/campaigns/{CID}/files/%2e%2e", "/campaigns/..%2F..%2F/files/summary", "/files/attachments/-1",
                 "/files/attachments/1%2F..%2F..%2Fsecret.txt", "/files/messages/0", "/static/../secret.txt",
                 "/static/..%2F..%2Fsecret.txt", f"/campaigns/{CID}/files/secret.txt"):
        response = staff.client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert b"not for download" not in response.content
    # Rows that point outside the output directory (a tampered database) or through a symlink.
    link = staff.output_dir / CID / "attachments" / "YQ01" / "link.xlsx"
    os.symlink(outside, link)
    with session_scope() as session:
        rows = [Attachment(stored_path="../secret.txt", sha256="0", original_name="a.xlsx"),
                Attachment(stored_path=str(outside), sha256="0", original_name="b.xlsx"),
                Attachment(stored_path=str(link.relative_to(staff.output_dir)), sha256="0", original_name="c.xlsx"),
                Attachment(stored_path=f"{CID}/attachments", sha256="0", original_name="d")]
        session.add_all(rows)
        session.flush()
        ids = [row.id for row in rows]
    for attachment_id in ids:
        response = staff.client.get(f"/files/attachments/{attachment_id}")
        assert response.status_code == 404 and b"not for download" not in response.content


# -- actions ----------------------------------------------------------------------------------------------

def test_marking_a_unit_exempt_needs_a_reason_and_records_who(staff):
    refused = staff.act(f"/campaigns/{CID}/units/YQ10/exempt", {"reason": "  "})
    assert refused.status_code == 303
    assert "请写明豁免原因" in " ".join(flashes(staff.page(refused.headers["location"])))
    assert status_of("YQ10") == "overdue"

    done = staff.act(f"/campaigns/{CID}/units/YQ10/exempt", {"reason": "单位负责人外出学习，经批准免报"})
    assert done.status_code == 303 and done.headers["location"] == f"/campaigns/{CID}/units/YQ10"
    assert status_of("YQ10") == "exempt"
    with session_scope() as session:
        event = session.exec(select(Event).where(Event.kind == "staff.exempt").order_by(Event.id.desc())).first()
    assert (event.actor, event.detail["reason"], event.to_status) == (STAFF_NAME, "单位负责人外出学习，经批准免报", "exempt")
    page = staff.page(done.headers["location"])
    assert page.xpath("string(//span[@id='unit-status'])") == "免报"
    assert "YQ10" in board_codes(staff.page(f"/campaigns/{CID}?status=exempt"))


def test_assigning_a_message_reads_its_form_and_answers_the_sender(staff, devmail):
    review = staff.page(f"/campaigns/{CID}/review")
    assert f"/campaigns/{CID}/messages/{staff.scene.stranger_id}/assign" in review.xpath("//form/@action")
    response = staff.act(f"/campaigns/{CID}/messages/{staff.scene.stranger_id}/assign", {"unit_code": "yq10 国际物流"})
    assert response.status_code == 303 and response.headers["location"] == f"/campaigns/{CID}/units/YQ10"
    assert status_of("YQ10") == "late"   # the mail came after the deadline
    with session_scope() as session:
        recipient, unit = unit_row(session, "YQ10")
        (submission,) = session.exec(select(Submission).where(Submission.recipient_id == recipient.id)).all()
        inbound = session.get(InboundMessage, staff.scene.stranger_id)
        attachments = session.exec(select(Attachment).where(Attachment.inbound_id == inbound.id)).all()
        event = session.exec(select(Event).where(Event.kind == "staff.assign_message")).one()
        answer = session.exec(select(OutboundMessage).where(OutboundMessage.recipient_id == recipient.id,
                                                            OutboundMessage.kind == "ack")).one()
    assert submission.valid and submission.late and submission.inbound_id == inbound.id
    assert submission.values["articles"] == figures(definition().form, 10)["articles"]
    assert inbound.recipient_id == recipient.id and not inbound.detail["needs_review"] and inbound.state == "processed"
    assert [a.recipient_id for a in attachments] == [recipient.id]
    assert attachments[0].stored_path.startswith(f"{CID}/attachments/YQ10/")
    assert (event.actor, event.recipient_id, event.detail["inbound_id"]) == (STAFF_NAME, recipient.id, inbound.id)
    # The 回执 goes to the mailbox the form came from, the unit's own mailbox copied, and is sent now.
    assert answer.to_addrs == [STRANGER] and answer.cc_addrs == [unit.email] and answer.state.value == "sent"
    assert len(devmail.mailbox_messages(STRANGER)) == 1 and len(devmail.mailbox_messages(unit.email)) == 1
    assert staff.page(f"/campaigns/{CID}/review").xpath("//article") == []
    again = staff.act(f"/campaigns/{CID}/messages/{staff.scene.stranger_id}/assign", {"unit_code": "YQ10"})
    assert "不在待归属列表中" in " ".join(flashes(staff.page(again.headers["location"])))


def test_a_paper_reply_is_recorded_from_the_uploaded_form(staff):
    form_definition = definition()
    with session_scope() as session:
        token = unit_row(session, "YQ10")[0].token
        other_token = unit_row(session, "BM03")[0].token
    values = figures(form_definition.form, 77)
    form = fill_reply_form(reply_form_bytes(form_definition, "国际物流园区管委会", token), form_definition.form, values)
    path = f"/campaigns/{CID}/units/YQ10/offline-reply"

    # Refused, nothing stored: not a form, an executable, a macro workbook, another unit's form.
    macro = io.BytesIO()
    with zipfile.ZipFile(macro, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/vbaProject.bin", b"\x00" * 64)
    foreign = fill_reply_form(reply_form_bytes(form_definition, "财政局", other_token), form_definition.form, values)
    for name, data, words in (("说明.txt", "只是文字".encode(), "xlsx"), ("回执表.xlsx", b"MZ" + b"\x00" * 200, "xlsx"),
                              ("回执表.xlsx", macro.getvalue(), "宏"), ("回执表.xlsx", foreign, "财政局")):
        response = staff.act(path, {"channel": "paper"}, files={"form_file": (name, data, "application/octet-stream")})
        assert response.status_code == 303
        message = " ".join(flashes(staff.page(response.headers["location"])))
        assert words in message and "未完成" in message, (name, message)
    with session_scope() as session:
        recipient_id = unit_row(session, "YQ10")[0].id
        assert session.exec(select(Submission).where(Submission.recipient_id == recipient_id)).all() == []
    assert not (staff.output_dir / CID / "attachments" / "YQ10").exists()

    response = staff.act(path, {"channel": "phone"}, files={"form_file": ("电话记录.xlsx", form, "application/octet-stream")})
    assert "已登记单位 YQ10 的电话报送（第 1 版，校验通过）" in " ".join(flashes(staff.page(response.headers["location"])))
    with session_scope() as session:
        (submission,) = session.exec(select(Submission).where(Submission.recipient_id == recipient_id)).all()
        attachment = session.get(Attachment, submission.attachment_id)
        event = session.exec(select(Event).where(Event.kind == "staff.offline_reply")).one()
    assert submission.source == "phone" and submission.valid and submission.values["articles"] == values["articles"]
    assert attachment.inbound_id is None and (staff.output_dir / attachment.stored_path).read_bytes() == form
    assert (event.actor, event.detail["channel"], event.detail["version"]) == (STAFF_NAME, "phone", 1)
    assert status_of("YQ10") == "late"
    page = " ".join(staff.page(f"/campaigns/{CID}/units/YQ10").text_content().split())
    assert "第 1 版" in page and "电话" in page


def test_an_upload_larger_than_an_email_attachment_is_refused(staff):
    from mail.attachments import DEFAULT_LIMITS

    big = b"PK\x03\x04" + b"\x00" * (DEFAULT_LIMITS.max_attachment_bytes + 2 * 1024 * 1024)
    response = staff.act(f"/campaigns/{CID}/units/YQ10/offline-reply", {"channel": "paper"},
                         files={"form_file": ("big.xlsx", big, "application/octet-stream")})
    assert response.status_code == 413 and "过大" in response.text
    assert status_of("YQ10") == "overdue"


def test_resending_the_notice_to_a_corrected_address(staff, devmail):
    with session_scope() as session:
        notice = session.exec(select(OutboundMessage).where(OutboundMessage.dedupe_key == f"{CID}:YQ08:notice:issue")).one()
    assert status_of("YQ08") == "bounced" and notice.state.value == "failed"
    bad = staff.act(f"/campaigns/{CID}/units/YQ08/email", {"email": "not an address"})
    assert "邮箱地址" in " ".join(flashes(staff.page(bad.headers["location"])))

    new_address = "office.yq08@units.xinqu.example"
    response = staff.act(f"/campaigns/{CID}/units/YQ08/email", {"email": new_address.upper()})
    assert "正在重新发送通知" in " ".join(flashes(staff.page(response.headers["location"])))
    with session_scope() as session:
        recipient, unit = unit_row(session, "YQ08")
        row = session.get(OutboundMessage, notice.id)
        kinds = [(e.kind, e.actor) for e in session.exec(select(Event).where(Event.recipient_id == recipient.id)
                                                       .order_by(Event.id))]
    assert unit.email == new_address and recipient.status.value == "notified"
    assert row.state.value == "sent" and row.to_addrs == [new_address] and row.message_id == notice.message_id
    assert ("staff.email_corrected", STAFF_NAME) in kinds and ("staff.resend_notice", STAFF_NAME) in kinds
    (received,) = devmail.mailbox_messages(new_address)
    assert notice.message_id.encode() in received
    # A unit whose notice went through only gets its address corrected: the notice is not sent twice.
    again = staff.act(f"/campaigns/{CID}/units/YQ01/email", {"email": "new.yq01@units.xinqu.example"})
    assert "不会重复发送" in " ".join(flashes(staff.page(again.headers["location"])))
    assert devmail.mailbox_messages("new.yq01@units.xinqu.example") == []


def test_regenerating_the_summary(staff, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_NOW", "2023-10-13T09:00:00")
    assert not (staff.output_dir / CID / "summary-2023-10-13.docx").exists()
    response = staff.act(f"/campaigns/{CID}/summary")
    assert response.status_code == 303 and response.headers["location"] == f"/campaigns/{CID}"
    assert "已开始重新生成" in " ".join(flashes(staff.page(response.headers["location"])))
    with session_scope() as session:
        requested = session.exec(select(Event).where(Event.kind == "staff.summary_requested")).all()
        failed = session.exec(select(Event).where(Event.kind == "staff.summary_failed")).all()
    assert [e.actor for e in requested] == [STAFF_NAME] and failed == []
    latest = staff.client.get(f"/campaigns/{CID}/files/summary")
    assert saved_name(latest) == "新文明办发〔2023〕15号情况通报（2023-10-13）.docx"
    assert latest.content == (staff.output_dir / CID / "summary-2023-10-13.docx").read_bytes()
    board = " ".join(staff.page(f"/campaigns/{CID}").text_content().split())
    assert f"{STAFF_NAME} · 重新生成汇总" in board


def test_time_left_counts_chinese_working_days():
    from models.clock import parse_instant
    from web.campaigns import time_left_text

    deadline = parse_instant("2023-10-10T18:00:00")
    # 9月29日 to 10月6日 are the National Day holidays; 10月7日 and 8日 (a weekend) are make-up working
    # days: after 9月28日 come 10月7日, 8日, 9日 and the deadline day.
    assert time_left_text(deadline, parse_instant("2023-09-28T09:00:00")) == "还剩 4 个工作日"
    assert time_left_text(deadline, parse_instant("2023-10-10T09:00:00")) == "今天截止"
    assert time_left_text(deadline, parse_instant("2023-10-10T19:00:00")) == "已过截止时间（今天）"
    assert time_left_text(deadline, parse_instant("2023-10-16T09:00:00")) == "已过截止时间 4 个工作日"
