"""The notice (通知) as a GB/T 9704-2012 official document, and the shared official-document layout
the summary will reuse: structure of the .docx, LibreOffice's rendering, determinism, escaping."""
from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest
from docx import Document

import gbt9704_checks as C
from documents import layout as L
from documents.chinese_text import BodyParagraph, chinese_date, classify, parse_body, title_lines
from documents.notice import render_notice
from documents.officialdoc import Annex, AnnexTable, OfficialDocument, render_official_document
from documents.preview import docx_to_pdf, missing_tools
from documents.template_builder import TEMPLATE_NAME, build_template
from forms.campaign import load_campaign
from models.settings import CAMPAIGNS_DIR, TEMPLATES_DIR

CAMPAIGN_DIR = CAMPAIGNS_DIR / "xinqu-2023-9"
CONTACT_NOTE = "（联系人：税国斌，电话：8259130，邮箱：lzxqwmb@wenmingban.example）"
needs_tools = pytest.mark.skipif(
    bool(missing_tools()), reason=f"rendering needs LibreOffice and poppler; missing: {missing_tools()}")


@pytest.fixture(scope="module")
def campaign():
    return load_campaign(CAMPAIGN_DIR)


@pytest.fixture(scope="module")
def notice_path(campaign, tmp_path_factory) -> Path:
    return render_notice(campaign, tmp_path_factory.mktemp("notice") / "notice.docx")


@pytest.fixture(scope="module")
def notice(notice_path) -> C.Docx:
    return C.Docx.open(notice_path)


@pytest.fixture(scope="module")
def notice_pages(notice_path) -> tuple[Path, list[C.Page]]:
    """One LibreOffice rendering for every rendered check of the notice."""
    pdf = docx_to_pdf(notice_path, work_dir=notice_path.parent)
    return pdf, C.read_pdf_layout(pdf)


def with_notice(campaign, **changes):
    """The campaign definition with some notice fields (or the body) changed."""
    body = changes.pop("notice_body", campaign.notice_body)
    spec = campaign.spec.model_copy(update={"notice": campaign.spec.notice.model_copy(update=changes)})
    return campaign.model_copy(update={"spec": spec, "notice_body": body})


def document_xml(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read("word/document.xml")


# --- The .docx ------------------------------------------------------------------------------------------
def test_notice_passes_every_structural_check(notice):
    assert C.structural_problems(notice) == {}


def test_page_is_a4_with_the_standard_margins(notice_path):
    section = Document(str(notice_path)).sections[0]
    assert (section.page_width, section.page_height) == (11906 * 635, 16838 * 635)
    assert [m // 635 for m in (section.top_margin, section.left_margin, section.right_margin,
                                section.bottom_margin)] == [2098, 1587, 1474, 1984]


def test_head_carries_the_campaigns_mark_number_and_title(notice, campaign):
    spec = campaign.spec
    texts = [notice.text(p) for p in notice.body_paragraphs()]
    assert texts[0] == spec.office.mark
    assert texts[3] == spec.notice.doc_number                    # two blank lines below the mark
    assert texts[1:3] == ["", ""] and texts[4:6] == ["", ""]     # two more above the title
    title = notice.text(notice.paragraphs_with_style("GwTitle")[0])
    assert title.replace("\n", "") == spec.notice.title
    assert title.split("\n") == ["关于组织开展“践行二十大·志愿我先行”", "学雷锋志愿服务主题实践活动的通知"]
    assert texts[texts.index(title) + 1] == ""
    assert texts[texts.index(title) + 2] == spec.notice.addressees + "："


def test_mark_is_condensed_to_fit_the_type_area(notice):
    mark = notice.paragraphs_with_style("GwMark")[0]
    run = notice.text_runs(mark)[0]
    scale = int(run.find("w:rPr/w:w", C.NS).get(C.w("val")))
    size_pt = int(notice.run_props(run, mark)["sz"]["val"]) / 2
    width_twips = len(notice.text(mark)) * size_pt * 20 * scale / 100
    assert width_twips <= C.TYPE_AREA_WIDTH
    assert width_twips > 0.9 * C.TYPE_AREA_WIDTH


def test_body_keeps_every_paragraph_of_the_campaign_text(notice, campaign):
    expected = [p.strip() for p in campaign.notice_body.split("\n\n")]
    body = [notice.text(p) for p in notice.body_paragraphs() if notice.paragraph_style(p) in C.TEXT_STYLES]
    assert body == expected


def test_headings_get_their_faces(notice):
    paragraphs = {notice.text(p): p for p in notice.body_paragraphs()}
    first = paragraphs["一、活动主题"]
    assert {C._east_asian_font(notice.run_props(r, first)) for r in notice.text_runs(first)} == {C.HEITI}
    second = next(p for t, p in paragraphs.items() if t.startswith("（一）开展党的二十大"))
    fonts = [(("".join(t.text for t in r.findall("w:t", C.NS))), C._east_asian_font(notice.run_props(r, second)))
             for r in notice.text_runs(second)]
    assert fonts[0] == ("（一）开展党的二十大精神宣讲志愿服务活动。", C.KAITI)
    assert fonts[1][1] == C.FANGSONG and fonts[1][0].startswith("把学习宣传")


def test_attachment_note_has_no_number_for_a_single_attachment(notice, campaign):
    assert C.check_attachment_note(notice, list(campaign.spec.notice.attachments)) == []


def test_signature_date_and_contact_note(notice, campaign):
    assert C.check_signature(notice) == []
    texts = [notice.text(p) for p in notice.body_paragraphs()]
    i = texts.index(campaign.spec.office.name)
    assert texts[i + 1] == "2023年3月14日"
    assert texts[i + 2] == CONTACT_NOTE
    note = notice.paragraphs_with_style("GwNote")[0]
    assert int(notice.para_props(note)["ind"]["firstLineChars"]) == 200


def test_imprint_without_copy_to(notice, campaign):
    assert C.check_imprint(notice, campaign.spec.office.name) == []
    assert notice.text(notice.body_paragraphs()[-1]).endswith("2023年3月14日印发")


def test_imprint_with_copy_to_has_its_own_line(campaign, tmp_path):
    copy_to = ["新区党工委办公室", "新区管委会办公室"]
    path = render_notice(with_notice(campaign, copy_to=copy_to), tmp_path / "notice.docx")
    assert C.check_imprint(C.Docx.open(path), campaign.spec.office.name, copy_to) == []


def test_core_properties_come_from_the_document_not_the_clock(notice_path, campaign):
    props = Document(str(notice_path)).core_properties
    assert props.title == campaign.spec.notice.title
    assert props.created == props.modified
    assert props.created.replace(tzinfo=None) == dt.datetime(2023, 3, 14)
    assert props.language == "zh-CN"


def test_same_definition_renders_the_same_bytes(campaign, tmp_path):
    first = render_notice(campaign, tmp_path / "a" / "notice.docx")
    second = render_notice(campaign, tmp_path / "b" / "notice.docx")
    assert document_xml(first) == document_xml(second)
    assert first.read_bytes() == second.read_bytes()


def test_user_text_is_escaped_not_interpreted(campaign, tmp_path):
    tricky = "请注意 {{ x }} 与 {% if %} 以及 <b>加粗</b> 和 &amp; 都按原样显示。"
    body = campaign.notice_body + "\n\n" + tricky
    path = render_notice(with_notice(campaign, notice_body=body, title="关于<测试>&“{{ y }}”的通知"),
                         tmp_path / "notice.docx")
    texts = [p.text for p in Document(str(path)).paragraphs]
    assert tricky in texts
    assert any(t.replace("\n", "") == "关于<测试>&“{{ y }}”的通知" for t in texts)


def test_committed_template_is_what_the_builder_makes(tmp_path):
    fresh = build_template(tmp_path / TEMPLATE_NAME)
    assert fresh.read_bytes() == (TEMPLATES_DIR / TEMPLATE_NAME).read_bytes(), \
        "templates/official_document.docx is stale: run python scripts/build_templates.py"


def test_template_has_no_theme_and_readable_tags():
    doc = C.Docx.open(TEMPLATES_DIR / TEMPLATE_NAME)
    assert C.check_no_theme_fonts(doc) == []
    assert not any("theme" in name for name in doc.parts)
    texts = [doc.text(p) for p in doc.body_paragraphs()]
    assert "{{ doc_number }}" in texts and "{%p for para in body %}" in texts


# --- Text rules -----------------------------------------------------------------------------------------
def test_dates_are_unpadded():
    assert chinese_date(dt.date(2023, 3, 4)) == "2023年3月4日"
    assert chinese_date(dt.date(2023, 10, 10)) == "2023年10月10日"


@pytest.mark.parametrize("text, level, lead", [
    ("一、活动主题", 1, "一、活动主题"),
    ("十二、其他。正文", 1, "十二、其他。"),
    ("（三）加强宣传，营造氛围。各园区要……", 2, "（三）加强宣传，营造氛围。"),
    ("(三) 半角括号。后文", 2, "（三） 半角括号。"),
    ("1.活动场次。共120场。", 3, ""),
    ("（1）宣讲类。", 4, ""),
    ("为深入学习……现将有关事项通知如下：", 0, ""),
])
def test_heading_levels_are_recognised(text, level, lead):
    para = classify(text)
    assert (para.level, para.lead) == (level, lead)
    assert para.text.replace("（", "(").replace("）", ")") == text.replace("（", "(").replace("）", ")")


def test_body_splits_on_blank_lines_and_joins_wrapped_lines():
    assert parse_body("第一段\n接续\n\n\u3000\u3000第二段\n  \n第三段") == [
        BodyParagraph(0, "", "第一段接续"), BodyParagraph(0, "", "第二段"), BodyParagraph(0, "", "第三段")]


def test_long_titles_break_after_a_closing_quote_and_within_the_width():
    lines = title_lines("关于“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动开展情况的通报", 20)
    assert lines == ["关于“践行二十大·志愿我先行”", "学雷锋志愿服务主题实践活动开展情况的通报"]
    assert title_lines("关于开展检查的通知", 20) == ["关于开展检查的通知"]
    assert title_lines("第一行\n第二行", 20) == ["第一行", "第二行"]


# --- The shared API with annexes (the summary's needs) --------------------------------------------------
def summary_like(**changes) -> OfficialDocument:
    rows = [[str(i), f"新区第{i}单位", str(3 * i), str(10 * i), f"{2.5 * i:.1f}", "2023年10月9日", ""]
            for i in range(1, 41)]
    values = dict(
        mark="兰州新区精神文明建设指导委员会办公室文件", doc_number="新文明办发〔2023〕15号",
        title="关于“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动开展情况的通报",
        addressees="新区各园区，各部门、各单位", issuer="兰州新区精神文明建设指导委员会办公室",
        body="现将有关情况通报如下：\n\n一、基本情况\n\n（一）按时报送。共30个单位。\n\n特此通报。",
        date=dt.date(2023, 10, 16), printer="兰州新区精神文明建设指导委员会办公室",
        printed_date=dt.date(2023, 10, 16), copy_to=["新区党工委办公室"],
        attachments=[
            Annex("学雷锋志愿服务主题实践活动开展情况统计表", [AnnexTable(
                header=[["序号", "单位", "活动场次", "志愿者人次", "服务时长（小时）", "报送时间", "备注"]],
                rows=rows, widths=[1, 4, 1.5, 2, 2.2, 3, 1.6], font_size=L.TABLE_SIZE_SMALL)],
                landscape=True),
            Annex("未按时报送单位名单", ["以下单位未按时报送：", AnnexTable(
                header=[["序号", "单位"]], rows=[["1", "新区第3单位"], ["2", "新区第6单位"]], widths=[1, 5])]),
        ])
    values.update(changes)
    return OfficialDocument(**values)


@pytest.fixture(scope="module")
def summary_path(tmp_path_factory) -> Path:
    return render_official_document(summary_like(), tmp_path_factory.mktemp("summary") / "summary.docx")


def test_document_with_annexes_passes_the_structural_checks(summary_path):
    doc = C.Docx.open(summary_path)
    assert C.structural_problems(doc) == {}
    assert C.check_attachment_note(doc, ["学雷锋志愿服务主题实践活动开展情况统计表", "未按时报送单位名单"]) == []
    assert C.check_imprint(doc, "兰州新区精神文明建设指导委员会办公室", ["新区党工委办公室"]) == []


def test_annex_tables_fit_the_type_area_and_repeat_their_header(summary_path):
    document = Document(str(summary_path))
    landscape, portrait = document.tables
    for table, width in ((landscape, 12756), (portrait, 8845)):
        grid = [int(c.get(C.w("w"))) for c in table._tbl.tblGrid.findall(C.w("gridCol"))]
        assert sum(grid) == width
        assert table.rows[0]._tr.find("w:trPr/w:tblHeader", C.NS) is not None
        assert table.rows[1]._tr.find("w:trPr/w:tblHeader", C.NS) is None
    assert len(landscape.rows) == 41 and landscape.cell(40, 1).text == "新区第40单位"
    labels = [p.text for p in document.paragraphs if p.style.name == "公文-附件标识"]
    assert labels == ["附件1", "附件2"]


def test_landscape_annex_has_its_own_section_and_the_body_stays_portrait(summary_path):
    sections = Document(str(summary_path)).sections
    assert [s.orientation.name for s in sections] == ["PORTRAIT", "LANDSCAPE", "PORTRAIT"]
    assert sections[1].page_width == 16838 * 635
    # the portrait sections print the ordinary page numbers; the landscape one its turned ones
    refs = [sorted(r.get(C.w("type")) for r in s._sectPr.findall(C.w("footerReference"))) for s in sections]
    assert refs == [["default", "even"]] * 3


def test_bad_doc_number_is_refused():
    with pytest.raises(ValueError, match="发文字号"):
        summary_like(doc_number="新文明办发[2023]015号")


# --- Rendered by LibreOffice ----------------------------------------------------------------------------
@pytest.mark.rendered
@needs_tools
def test_rendered_notice_fills_22_lines_of_28_characters(notice_pages):
    _, pages = notice_pages
    full_pages = pages[1:-2]
    assert full_pages, "the notice should run over several full pages"
    for page in full_pages:
        assert C.check_full_page(page) == []


@pytest.mark.rendered
@needs_tools
def test_rendered_first_page_shows_head_and_body(notice_pages, campaign):
    pdf, pages = notice_pages
    first = pages[0]
    assert C.check_mark_position(first, campaign.spec.office.mark) == []
    assert C.check_red_rule(pdf, first, campaign.spec.notice.doc_number) == []
    assert C.check_text_on_page(first, campaign.notice_body[:40]) == []


@pytest.mark.rendered
@needs_tools
def test_rendered_page_numbers_alternate_sides(notice_pages):
    _, pages = notice_pages
    assert len(pages) >= 4
    assert C.check_page_numbers(pages) == []


@pytest.mark.rendered
@needs_tools
def test_rendered_imprint_sits_on_the_last_pages_bottom_edge(notice_pages, campaign):
    _, pages = notice_pages
    assert C.check_imprint_at_bottom(pages[-1]) == []
    assert C.check_text_on_page(pages[-1], CONTACT_NOTE[:12]) == []


@pytest.mark.rendered
@needs_tools
def test_rendered_landscape_annex_keeps_page_numbers_in_place(summary_path):
    pages = C.read_pdf_layout(docx_to_pdf(summary_path, work_dir=summary_path.parent))
    assert any(p.landscape for p in pages)
    assert C.check_page_numbers(pages) == []
    header_rows = [p for p in pages if p.landscape and any(r.text.startswith("序号单位") for r in p.rows)]
    assert len(header_rows) == len([p for p in pages if p.landscape]) >= 2
    assert C.check_imprint_at_bottom(pages[-1]) == []


def test_consecutive_landscape_annexes_share_one_landscape_section(tmp_path):
    table = AnnexTable(header=[["序号", "单位"]], rows=[["1", "甲"]])
    doc = summary_like(attachments=[Annex("表一", [table], landscape=True),
                                    Annex("表二", [table], landscape=True)])
    sections = Document(str(render_official_document(doc, tmp_path / "two.docx"))).sections
    assert [s.orientation.name for s in sections] == ["PORTRAIT", "LANDSCAPE", "PORTRAIT"]


def test_annex_without_content_is_only_listed(tmp_path):
    doc = summary_like(attachments=["单独报送的统计表", Annex("名单", ["甲单位"])])
    document = Document(str(render_official_document(doc, tmp_path / "listed.docx")))
    assert [p.text for p in document.paragraphs if p.style.name == "公文-附件标识"] == ["附件2"]
    assert len(document.sections) == 1
