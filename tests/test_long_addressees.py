"""A 主送 too long for page 1 (GB/T 9704-2012 7.3.2): the decision, made from the layout's numbers
without a renderer, and what it gives — page 1 shows the title and then the body, the 主送 is
printed in the 版记 as “主送：…。” above 抄送 — for the notice and the 情况通报 alike, checked in
the .docx and in LibreOffice's rendering."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import gbt9704_checks as C
from documents.addressees import (addressee_lines, addressee_text, addressees_fit_first_page,
                                  imprint_addressee_lines, title_line_count)
from documents.notice import notice_document, render_notice
from documents.preview import docx_to_pdf, missing_tools
from documents.summary import render_summary, summary_document
from forms.aggregate import UnitOutcome, aggregate
from forms.campaign import load_campaign
from models.clock import parse_instant
from models.settings import CAMPAIGNS_DIR
from models.states import RecipientStatus
from summary_world import ON_TIME, SUMMARY_DAY, figures

CAMPAIGN_DIR = CAMPAIGNS_DIR / "xinqu-2023-9"
COPY_TO = ["新区党工委办公室", "新区管委会办公室"]
needs_tools = pytest.mark.skipif(
    bool(missing_tools()), reason=f"rendering needs LibreOffice and poppler; missing: {missing_tools()}")

# Page 1 by hand, in lines of 28.95 pt (22 fill the type area), from shared/notes/gbt9704.md: the
# mark's top edge 35 mm below the type area's top, so the mark's two lines end 84.6 + 57.9 pt down
# (4.9 lines); two blank lines and the 文号 (3); the red rule below it, 7 pt + 1.5 pt (0.3); two
# blank lines (2); the title (2 lines for the example's); one blank line (1). That is 13.2 lines,
# leaving 8 whole lines for the 主送 and the body: one is the body's first line, one the safety
# margin, so a 主送 of 6 lines stays and one of 7 moves. A one-line title gives one line more.
MAX_LINES_TWO_LINE_TITLE = 6
MAX_LINES_ONE_LINE_TITLE = 7
SHORT_TITLE = "关于开展志愿服务活动的通知"

# Six-character names and a comma: four fill a line of 28 characters exactly, so a list of 4n
# names (with the final colon) takes exactly n lines.
_STEMS = "甲乙丙丁戊己庚辛壬癸"
NAMES_PER_LINE = 4


NAME_ROW = re.compile(rf"^(新区[{_STEMS}]{{2}}单位[，：])+$")


def names(count: int) -> str:
    return "，".join(f"新区{_STEMS[i // 10 % 10]}{_STEMS[i % 10]}单位" for i in range(count))


def lines_of_names(lines: int) -> str:
    return names(lines * NAMES_PER_LINE)


@pytest.fixture(scope="module")
def campaign():
    return load_campaign(CAMPAIGN_DIR)


@pytest.fixture(scope="module")
def every_unit(campaign) -> str:
    """Every unit of the example campaign named: 44 names, 16 lines under a title."""
    return "，".join(unit.name for unit in campaign.units)


def with_notice(campaign, **changes):
    """The campaign definition with some notice fields (or the body) changed."""
    body = changes.pop("notice_body", campaign.notice_body)
    spec = campaign.spec.model_copy(update={"notice": campaign.spec.notice.model_copy(update=changes)})
    return campaign.model_copy(update={"spec": spec, "notice_body": body})


def first_body_line(text: str) -> str:
    """The start of the body's first line (its first 20 characters, within the indented line)."""
    return text.strip().split("\n")[0][:20]


# --- The decision ----------------------------------------------------------------------------------------
def test_the_line_estimate_counts_full_lines_exactly():
    for lines in (1, 2, 6, 7, 16):
        assert addressee_lines(lines_of_names(lines)) == lines
    assert addressee_lines(lines_of_names(6) + "，新区单位") == 7     # one name more: a seventh line


def test_the_examples_short_addressees_stay_on_the_first_page(campaign):
    notice = campaign.spec.notice
    assert addressee_lines(notice.addressees) == 2
    assert addressees_fit_first_page(notice.title, notice.addressees, campaign.notice_body)
    assert notice_document(campaign).addressees_on_first_page


@pytest.mark.parametrize("title, max_lines", [
    ("关于组织开展“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动的通知", MAX_LINES_TWO_LINE_TITLE),
    (SHORT_TITLE, MAX_LINES_ONE_LINE_TITLE),
], ids=["two-line-title", "one-line-title"])
def test_the_borderline_list_stays_and_one_line_more_moves(title, max_lines):
    assert title_line_count(title) == (2 if max_lines == MAX_LINES_TWO_LINE_TITLE else 1)
    assert addressees_fit_first_page(title, lines_of_names(max_lines), "正文第一段。")
    assert not addressees_fit_first_page(title, lines_of_names(max_lines + 1), "正文第一段。")


def test_long_lists_move(campaign, every_unit):
    title = campaign.spec.notice.title
    assert addressee_lines(every_unit) >= 15
    assert not addressees_fit_first_page(title, every_unit, campaign.notice_body)
    assert not addressees_fit_first_page(title, names(300), campaign.notice_body)


def test_a_body_opening_with_a_kept_heading_needs_its_next_line_too():
    # 一、 headings are kept with the next paragraph: a heading alone would move to page 2 with it.
    title, borderline = SHORT_TITLE, lines_of_names(MAX_LINES_ONE_LINE_TITLE)
    assert addressees_fit_first_page(title, borderline, "现将有关事项通知如下：\n\n一、活动主题")
    assert not addressees_fit_first_page(title, borderline, "一、活动主题\n\n践行二十大。")
    assert addressees_fit_first_page(title, lines_of_names(MAX_LINES_ONE_LINE_TITLE - 1), "一、活动主题\n\n践行。")


def test_names_on_separate_lines_are_joined_with_commas():
    assert addressee_text("新区各园区\n各部门、各单位\r\n\n省驻区各单位：") == "新区各园区，各部门、各单位，省驻区各单位"
    assert addressee_text("新区各园区，各部门、各单位。") == "新区各园区，各部门、各单位"


def test_a_list_too_long_for_the_imprint_page_is_refused_with_advice(campaign):
    # 300 names: page 1 cannot hold them, and in the 版记 (a single block at the foot of the last
    # page) they would take about 100 lines.
    assert imprint_addressee_lines(names(300)) > 22
    with pytest.raises(ValueError, match="主送机关名称过多.*统称"):
        notice_document(with_notice(campaign, addressees=names(300)))


# --- The notice with every unit named ------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_notice_path(campaign, every_unit, tmp_path_factory) -> Path:
    definition = with_notice(campaign, addressees=every_unit, copy_to=COPY_TO)
    return render_notice(definition, tmp_path_factory.mktemp("long_notice") / "notice.docx")


def test_long_notice_moves_the_addressees_into_the_imprint_above_copy_to(long_notice_path, campaign, every_unit):
    doc = C.Docx.open(long_notice_path)
    assert C.structural_problems(doc) == {}
    assert C.check_addressees_in_imprint(doc, every_unit) == []
    assert C.check_imprint(doc, campaign.spec.office.name, COPY_TO) == []
    assert [doc.text(p)[:3] for p in C.imprint_paragraphs(doc)] == ["主送：", "抄送：", campaign.spec.office.name[:3]]


def test_long_notice_puts_the_body_one_blank_line_below_the_title(long_notice_path, campaign):
    doc = C.Docx.open(long_notice_path)
    texts = [doc.text(p) for p in doc.body_paragraphs()]
    title = doc.text(doc.paragraphs_with_style("GwTitle")[0])
    after = texts[texts.index(title) + 1:texts.index(title) + 3]
    assert after == ["", campaign.notice_body.split("\n\n")[0].strip()]


def test_short_notice_keeps_its_addressees_under_the_title(campaign, tmp_path):
    doc = C.Docx.open(render_notice(with_notice(campaign, copy_to=COPY_TO), tmp_path / "notice.docx"))
    assert [doc.text(p) for p in doc.paragraphs_with_style("GwAddressees")] == [campaign.spec.notice.addressees + "："]
    assert [doc.text(p)[:3] for p in C.imprint_paragraphs(doc)] == ["抄送：", campaign.spec.office.name[:3]]
    assert C.check_addressees_in_imprint(doc, campaign.spec.notice.addressees) != []


def rendered_with_addressees_in_imprint(path: Path, body: str, names: str) -> list:
    """Renders `path`: page 1 shows the body's first line and none of the names; the last page has
    them in the 版记, which sits on the bottom of the type area with its outer rules drawn."""
    pdf = docx_to_pdf(path, work_dir=path.parent)
    pages = C.read_pdf_layout(pdf)
    first, last = pages[0], pages[-1]
    assert C.check_text_on_page(first, first_body_line(body)) == []
    assert C.check_text_not_on_page(first, names[:12]) == []
    assert C.check_addressees_rendered_in_imprint(last, names) == []
    assert C.check_imprint_at_bottom(last) == []
    assert C.check_imprint_outer_rules_rendered(pdf, last) == []
    return pages


@pytest.mark.rendered
@needs_tools
def test_rendered_long_notice_shows_body_on_page_one_and_addressees_in_the_imprint(
        long_notice_path, campaign, every_unit):
    pages = rendered_with_addressees_in_imprint(long_notice_path, campaign.notice_body, every_unit)
    assert C.check_text_not_on_page(pages[0], "主送") == []
    assert C.check_mark_position(pages[0], campaign.spec.office.mark) == []
    assert C.check_page_numbers(pages) == []
    for page in pages[:-1]:
        assert C.check_text_not_on_page(page, "主送：") == []


@pytest.mark.rendered
@needs_tools
@pytest.mark.parametrize("lines, stays", [(MAX_LINES_TWO_LINE_TITLE, True), (MAX_LINES_TWO_LINE_TITLE + 1, False)])
def test_rendered_borderline(campaign, tmp_path, lines, stays):
    """The longest list that stays fills its lines and leaves the body on page 1; one line more
    would leave one body line there (no margin), so it moves."""
    addressees = lines_of_names(lines)
    path = render_notice(with_notice(campaign, addressees=addressees), tmp_path / "notice.docx")
    pages = C.read_pdf_layout(docx_to_pdf(path, work_dir=tmp_path))
    first = pages[0]
    assert C.check_text_on_page(first, first_body_line(campaign.notice_body)) == []
    addressee_rows = [r for r in first.text_rows() if NAME_ROW.match(r.text.replace(" ", ""))]
    if stays:
        assert len(addressee_rows) == lines and addressee_rows[-1].text.endswith("单位：")
        assert [r for r in pages[-1].rows if r.text.startswith("主送：")] == []
    else:
        assert addressee_rows == []
        assert C.check_addressees_rendered_in_imprint(pages[-1], addressees) == []
        assert C.check_imprint_at_bottom(pages[-1]) == []


# --- The 情况通报, through the same layout -----------------------------------------------------------------
def summary_aggregation(definition):
    """Ten units reported on time, the others not (no database: the aggregation from outcomes)."""
    outcomes = [UnitOutcome(unit.code, unit.name, unit.kind, RecipientStatus.replied.value,
                            values=figures(definition, n + 2), received_at=parse_instant(ON_TIME))
                for n, unit in enumerate(definition.units[:10])]
    return aggregate(definition, outcomes)


@pytest.fixture(scope="module")
def long_summary_path(campaign, every_unit, tmp_path_factory) -> Path:
    definition = with_notice(campaign, addressees=every_unit)
    return render_summary(definition, summary_aggregation(definition), SUMMARY_DAY,
                          tmp_path_factory.mktemp("long_summary") / "summary.docx")


def test_long_summary_moves_the_addressees_into_the_imprint(long_summary_path, campaign, every_unit):
    definition = with_notice(campaign, addressees=every_unit)
    assert not summary_document(definition, summary_aggregation(definition), SUMMARY_DAY).addressees_on_first_page
    doc = C.Docx.open(long_summary_path)
    assert C.structural_problems(doc) == {}
    assert C.check_addressees_in_imprint(doc, every_unit) == []
    assert C.check_imprint(doc, campaign.spec.office.name, list(campaign.spec.summary.copy_to)) == []


@pytest.mark.rendered
@needs_tools
def test_rendered_long_summary_shows_body_on_page_one_and_addressees_in_the_imprint(
        long_summary_path, campaign, every_unit):
    opening = C.Docx.open(long_summary_path)
    body = [opening.text(p) for p in opening.body_paragraphs() if opening.paragraph_style(p) == "GwBody"]
    rendered_with_addressees_in_imprint(long_summary_path, body[0], every_unit)
