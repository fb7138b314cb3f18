"""The 情况通报 (summary) as a GB/T 9704-2012 official document: its structure (the notice's checks),
what its text says in every case, that every figure of the text is the figure of its tables (read
from the rendered .docx itself), escaping, determinism, and LibreOffice's rendering of it."""
from __future__ import annotations

import re
import subprocess
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from docx import Document
from lxml import etree

import gbt9704_checks as C
from documents.preview import docx_to_pdf, missing_tools
from documents.summary import render_summary
from documents.summary_words import EXCERPT_MAX_CHARS, excerpt, figure, join_names, units_phrase
from models import db
from models.settings import reload_settings
from models.states import RecipientStatus as S
from summary_world import LATE, SUMMARY_DAY, SummaryWorld, figures, synthetic_units

needs_tools = pytest.mark.skipif(
    bool(missing_tools()), reason=f"rendering needs LibreOffice and poppler; missing: {missing_tools()}")
ISSUER = "兰州新区精神文明建设指导委员会办公室"
SECTIONS = ["一、基本情况", "二、各类活动开展情况", "三、典型做法", "四、存在问题", "五、下一步工作要求"]
ACTIVITIES = ["党的二十大精神宣讲", "“学雷锋月”志愿服务", "文明风尚传播", "关爱弱势群体", "关爱自然", "惠民志愿服务"]
STORY = ("组织党员志愿者深入社区开展党的二十大精神宣讲，采取“宣讲+服务”模式。"
         "累计服务群众200余人次！活动受到群众欢迎。")


@pytest.fixture
def env(tmp_path):
    """Output directory and database under tmp_path (the shared nf_env, reachable from module scope)."""
    with pytest.MonkeyPatch.context() as patch:
        yield _environment(patch, tmp_path)
    db.reset_engines()
    reload_settings()


def _environment(patch, root: Path) -> Path:
    patch.setenv("NOTICEFLOW_OUTPUT_DIR", str(root / "outputs"))
    patch.setenv("NOTICEFLOW_DATABASE_URL", f"sqlite:///{root / 'noticeflow.db'}")
    patch.setenv("NOTICEFLOW_SECRET", "test-secret-not-for-production")
    db.reset_engines()
    reload_settings()
    return root


def mixed_world(root: Path) -> SummaryWorld:
    """The example campaign's 44 units: on time, late, a correction, a rejected form, a bounce, an
    exemption, a unit that did nothing, silence."""
    world = SummaryWorld(root)
    world.notify()
    c = world.codes
    world.reply(c[0], figures(world.definition, 7, stories=STORY))
    world.reply(c[1], figures(world.definition, 3), at=LATE)
    world.reply(c[2], figures(world.definition, 0))                      # nothing done
    world.reply(c[3], {"xuanjiang.sessions": "abc"}, valid=False)       # never corrected
    world.status(c[4], S.bounced)
    world.status(c[5], S.exempt, reason="单位已撤并")
    world.reply(c[6], figures(world.definition, 1))
    world.reply(c[6], figures(world.definition, 9), at=LATE)            # a correction: its figures count
    for n, code in enumerate(c[7:38], start=10):
        world.reply(code, figures(world.definition, n % 17 + 1, stories=f"第{n}个单位：开展志愿服务{n}次。\n另有一段。"))
    world.reply(c[38], figures(world.definition, 5), at="2023-10-11T08:00:00")
    return world


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """One rendering of the mixed world for the checks that only read it."""
    root = tmp_path_factory.mktemp("summary")
    with pytest.MonkeyPatch.context() as patch:
        _environment(patch, root)
        world = mixed_world(root)
        aggregation = world.aggregation()
        path = render_summary(world.definition, aggregation, SUMMARY_DAY, root / "summary.docx")
    db.reset_engines()
    reload_settings()
    return world, aggregation, path


@pytest.fixture(scope="module")
def mixed_pages(mixed):
    _, _, path = mixed
    pdf = docx_to_pdf(path, work_dir=path.parent)
    return pdf, pages_of(pdf)


# --- Reading the document back ------------------------------------------------------------------------
class Read:
    """The rendered .docx as a reader sees it: the body's paragraphs and its tables as text."""

    def __init__(self, path: Path):
        self.document = Document(str(path))
        self.docx = C.Docx.open(path)
        self.paragraphs = [p.text for p in self.document.paragraphs]
        self.tables = [[[cell.text for cell in _unique_cells(row)] for row in table.rows]
                       for table in self.document.tables]

    def section(self, heading: str) -> list[str]:
        """The paragraphs under one 一、 heading, up to the next one (or 特此通报。)."""
        start = self.paragraphs.index(heading) + 1
        end = next(i for i in range(start, len(self.paragraphs))
                   if re.match(r"^[一二三四五六七八九十]+、", self.paragraphs[i]) or self.paragraphs[i] == "特此通报。")
        return [p for p in self.paragraphs[start:end] if p]

    @property
    def text(self) -> str:
        return "\n".join(self.paragraphs)

    def table_after(self, caption: str) -> list[list[str]]:
        captions = [p for p in self.paragraphs if p in (
            "（一）报送情况", "（二）各类活动开展情况", "（三）各单位报送情况", "（二）各单位报送情况")]
        return self.tables[captions.index(caption)]


def _unique_cells(row):
    """A row's cells once each (python-docx repeats a merged cell for every grid column)."""
    seen, cells = set(), []
    for cell in row.cells:
        if id(cell._tc) not in seen:
            seen.add(id(cell._tc))
            cells.append(cell)
    return cells


def read(world: SummaryWorld, tmp_path: Path, day: date = SUMMARY_DAY) -> Read:
    path = render_summary(world.definition, world.aggregation(), day, tmp_path / "summary.docx")
    return Read(path)


def number(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"«{pattern}» not in «{text}»"
    return match.group(1)


def unit_rows(doc: Read) -> list[list[str]]:
    """The statistics table's unit rows (without its two header rows and its 合计 row)."""
    table = doc.table_after("（三）各单位报送情况")
    return [row for row in table[2:] if row[1] != "合计"]


# --- Structure (the notice's checks) ------------------------------------------------------------------
def test_summary_passes_the_official_document_checks(mixed):
    _, _, path = mixed
    doc = C.Docx.open(path)
    assert C.structural_problems(doc) == {}
    assert C.check_attachment_note(doc, ["“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动开展情况统计表",
                                         "未报送单位名单"]) == []
    assert C.check_imprint(doc, ISSUER) == []


def test_head_title_and_number_come_from_the_campaign(env, tmp_path):
    world = SummaryWorld(tmp_path, synthetic_units(3), summary_doc_number="新区办发〔2024〕3号",
                         summary_title="关于测试活动开展情况的通报", summary_copy_to=["市文明办", "新区党工委办公室"])
    world.notify()
    doc = read(world, tmp_path)
    assert doc.paragraphs[3] == "新区办发〔2024〕3号"
    assert doc.docx.text(doc.docx.paragraphs_with_style("GwTitle")[0]) == "关于测试活动开展情况的通报"
    assert C.check_imprint(doc.docx, ISSUER, ["市文明办", "新区党工委办公室"]) == []
    assert C.structural_problems(doc.docx) == {}


def test_addressees_opening_sections_and_closing(mixed):
    world, _, path = mixed
    doc = Read(path)
    notice = world.definition.spec.notice
    title_index = doc.paragraphs.index("关于“践行二十大·志愿我先行”\n学雷锋志愿服务主题实践活动开展情况的通报")
    assert doc.paragraphs[title_index + 2] == notice.addressees + "："
    opening = doc.paragraphs[title_index + 3]
    assert f"《{notice.title}》（{notice.doc_number}）" in opening
    assert opening.startswith("2023年3月14日，新区文明办印发") and opening.endswith("现将有关情况通报如下：")
    positions = [doc.paragraphs.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert doc.section("五、下一步工作要求") == list(world.definition.spec.summary.next_steps)
    assert doc.paragraphs[doc.paragraphs.index("特此通报。") + 2].startswith("附件：1.")
    signature = doc.paragraphs.index(ISSUER)
    assert doc.paragraphs[signature + 1] == "2023年10月16日"
    assert C.check_signature(doc.docx) == []
    assert not doc.docx.paragraphs_with_style("GwNote")   # a 通报 going down has no 附注 here


# --- Text against tables, read from the document -------------------------------------------------------
def test_every_count_in_the_text_is_the_count_of_the_tables(mixed):
    _, aggregation, path = mixed
    doc = Read(path)
    basic = "".join(doc.section("一、基本情况"))
    reporting = doc.table_after("（一）报送情况")
    header, total = reporting[0], reporting[-1]
    column = {name.split("（")[0]: i for i, name in enumerate(header)}
    assert total[0] == "合计"
    assert number(r"应报送单位(\d+)个", basic) == total[column["应报"]]
    assert number(r"已报送(\d+)个", basic) == total[column["已报"]]
    assert number(r"按时报送(\d+)个", basic) == total[column["按时报送"]]
    assert number(r"逾期报送(\d+)个", basic) == total[column["逾期报送"]]
    assert number(r"未报送(\d+)个", basic) == total[column["未报送"]]
    assert number(r"另有(\d+)个单位经同意免于报送", basic) == total[column["免报"]]
    for row in reporting[1:-1]:
        assert f"{row[0]}应报{row[column['应报']]}个、已报{row[column['已报']]}个" in basic
    # …and the unit rows say the same, one by one.
    remarks = Counter(row[-1] for row in unit_rows(doc))
    assert remarks["未报送"] == int(total[column["未报送"]])
    assert remarks["逾期"] == int(total[column["逾期报送"]])
    assert remarks["免报"] == int(total[column["免报"]])
    assert len(unit_rows(doc)) == aggregation.counts.units
    missing = doc.tables[-1]
    assert len(missing) - 1 == int(total[column["未报送"]])


def test_every_measure_in_the_text_is_the_figure_of_the_tables(mixed):
    _, _, path = mixed
    doc = Read(path)
    basic = "".join(doc.section("一、基本情况"))
    activities = doc.table_after("（二）各类活动开展情况")
    units = doc.table_after("（三）各单位报送情况")
    total = activities[-1]
    assert total[0] == "合计"
    match = re.search(r"合计：活动(\d+)场，参与志愿者(\d+)人次，服务群众(\d+)人次，志愿服务时长([\d.]+)小时，投稿宣传(\d+)篇", basic)
    assert match, basic
    assert list(match.groups()[:4]) == total[1:5]
    unit_total = units[-1]
    assert unit_total[1] == "合计"
    header = units[0]
    assert match.group(2) == unit_total[header.index("参与志愿者人次") + 5]   # 5: the merged 活动场次 header
    assert match.group(5) == unit_total[header.index("投稿宣传篇数") + 5]
    assert sum(int(x) for x in unit_total[2:8]) == int(match.group(1))

    paragraphs = doc.section("二、各类活动开展情况")
    assert len(paragraphs) == len(ACTIVITIES)
    by_name = {row[1]: row for row in unit_rows(doc)}
    for index, (paragraph, row) in enumerate(zip(paragraphs, activities[1:-1])):
        assert paragraph.startswith(f"（{'一二三四五六'[index]}）{row[0]}。")
        figures_in_text = re.search(r"。活动(\d+)场，参与志愿者(\d+)人次，服务群众(\d+)人次，志愿服务时长([\d.]+)小时", paragraph)
        assert list(figures_in_text.groups()) == row[1:5]
        assert row[1] == unit_total[2 + index]
        named = [row[2 + index] for name, row in by_name.items() if f"{name}（{row[2 + index]}场）" in paragraph]
        column = sorted((int(r[2 + index]) for r in by_name.values() if r[2 + index]), reverse=True)
        assert sorted(map(int, named), reverse=True) == column[:3]
    # The table adds up.
    for column in range(2, 12):
        cells = [row[column] for row in unit_rows(doc) if row[column]]
        assert sum(float(c) for c in cells) == pytest.approx(float(unit_total[column]))


def test_units_named_in_the_problems_are_those_of_the_tables(mixed):
    world, aggregation, path = mixed
    doc = Read(path)
    problems = doc.section("四、存在问题")
    late = [row[1] for row in unit_rows(doc) if row[-1] == "逾期"]
    missing = [row[1] for row in doc.tables[-1][1:]]
    assert late and missing
    assert problems[0].startswith("（一）报送不够及时。") and join_names(late) in problems[0]
    assert f"共{len(late)}个单位" in problems[0]
    assert problems[1].startswith("（二）仍有单位未报送。") and join_names(missing) in problems[1]
    assert "名单见附件2" in problems[1]
    idle = world.definition.units[2].name
    assert problems[2] == f"（三）部分单位活动开展不够充分。{idle}报送的活动场次均为0。"
    # the exempt unit is listed as such, never as missing
    exempt = world.definition.units[5].name
    assert exempt not in "".join(problems) and exempt not in missing
    assert [row[-1] for row in unit_rows(doc) if row[1] == exempt] == ["免报"]


def test_only_the_latest_valid_submission_counts(mixed):
    world, _, path = mixed
    doc = Read(path)
    corrected = next(row for row in unit_rows(doc) if row[1] == world.definition.units[6].name)
    assert corrected[2] == "9"                       # version 2's figures
    assert corrected[-2] == "10月9日\n15:30"          # reported on time with version 1
    assert corrected[-1] == ""
    rejected = next(row for row in unit_rows(doc) if row[1] == world.definition.units[3].name)
    assert rejected[-1] == "未报送" and rejected[2] == ""
    reasons = {row[1]: row[3] for row in doc.tables[-1][1:]}
    assert reasons[world.definition.units[3].name] == "回执有误未更正"
    assert reasons[world.definition.units[4].name] == "通知邮件被退回"


def test_typical_cases_are_attributed_excerpts(mixed):
    world, _, path = mixed
    doc = Read(path)
    cases = doc.section("三、典型做法")[1:]
    assert 1 <= len(cases) <= 5
    assert cases[0] == STORY + f"（{world.definition.units[0].name}）"
    for case in cases[1:]:
        body, unit = re.match(r"^(.*)（([^（）]+)）$", case).groups()
        assert unit in {u.name for u in world.definition.units}
        assert re.search(r"[。！？]$", body) and "另有一段" not in body


# --- Edge cases -------------------------------------------------------------------------------------------
def test_nobody_late_and_nobody_missing(env, tmp_path):
    world = SummaryWorld(tmp_path, synthetic_units(6))
    world.notify()
    for seed, code in enumerate(world.codes, start=1):
        world.reply(code, figures(world.definition, seed))
    doc = read(world, tmp_path)
    assert doc.section("一、基本情况")[0] == "本次活动应报送单位6个，截至2023年10月16日，均已按时报送。"
    assert doc.section("四、存在问题") == ["本次活动各单位均按时报送了开展情况，未发现迟报、漏报问题。"]
    assert "逾期" not in doc.text and "未报送单位名单" not in doc.text
    assert C.check_attachment_note(doc.docx, ["“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动开展情况统计表"]) == []
    assert len(doc.tables) == 3
    assert C.structural_problems(doc.docx) == {}


def test_exactly_one_unit(env, tmp_path):
    world = SummaryWorld(tmp_path, [("T001", "新区唯一单位", "park")])
    world.notify()
    world.reply("T001", figures(world.definition, 4, stories="在社区开展义诊，服务群众50人次。"))
    doc = read(world, tmp_path)
    basic = doc.section("一、基本情况")
    assert basic[0] == "本次活动应报送单位1个，已按时报送。"
    assert not any(p.startswith("从单位类别看") for p in basic)
    assert doc.section("二、各类活动开展情况")[0] == (
        "（一）党的二十大精神宣讲。活动4场，参与志愿者40人次，服务群众40人次，志愿服务时长6小时。")
    assert doc.section("三、典型做法")[1] == "在社区开展义诊，服务群众50人次。（新区唯一单位）"
    assert unit_rows(doc)[0][:3] == ["1", "新区唯一单位", "4"]
    assert C.structural_problems(doc.docx) == {}


def test_one_unit_late_is_named_without_a_count(env, tmp_path):
    world = SummaryWorld(tmp_path, synthetic_units(3))
    world.notify()
    world.reply("T001", figures(world.definition, 1))
    world.reply("T002", figures(world.definition, 2), at=LATE)
    world.reply("T003", figures(world.definition, 3))
    doc = read(world, tmp_path)
    assert doc.section("一、基本情况")[0] == (
        "本次活动应报送单位3个，截至2023年10月16日，均已报送，其中按时报送2个、逾期报送1个。")
    assert doc.section("四、存在问题") == ["测试单位002未在2023年10月10日前报送，属逾期报送。"]


def test_nobody_replied(env, tmp_path):
    world = SummaryWorld(tmp_path, synthetic_units(5))
    world.notify()
    doc = read(world, tmp_path)
    assert doc.section("一、基本情况") == ["本次活动应报送单位5个，截至2023年10月16日，尚无单位报送。",
                                        "从单位类别看，新区各园区应报1个、已报0个；各部门、各单位应报2个、已报0个；"
                                        "新区各国有集团公司应报1个、已报0个；省驻区各单位应报1个、已报0个。"]
    assert doc.section("二、各类活动开展情况") == ["因尚无单位报送，暂无各项活动的开展数据。"]
    assert doc.section("三、典型做法") == ["暂无单位报送典型事例。"]
    assert doc.section("四、存在问题") == ["截至2023年10月16日，全部5个应报单位仍未报送活动开展情况（名单见附件2）。"]
    assert [row[1] for row in doc.tables[-1][1:]] == [f"测试单位{n:03d}" for n in range(1, 6)]
    assert all(row[2:-2] == [""] * 10 and row[-1] == "未报送" for row in unit_rows(doc))
    assert doc.table_after("（三）各单位报送情况")[-1][2:12] == ["0"] * 9 + ["0"]
    assert C.structural_problems(doc.docx) == {}


def test_a_unit_with_zero_activities_and_an_activity_nobody_did(env, tmp_path):
    world = SummaryWorld(tmp_path, synthetic_units(2))
    world.notify()
    world.reply("T001", figures(world.definition, 0))
    world.reply("T002", figures(world.definition, 2, **{f"ziran.{m}": 0 for m in
                                                          ("sessions", "volunteers", "served", "hours")}))
    doc = read(world, tmp_path)
    activities = doc.section("二、各类活动开展情况")
    assert activities[4] == "（五）关爱自然。已报送的单位均未开展此类活动。"
    assert activities[0].endswith("此类活动由测试单位002（2场）开展。")
    assert doc.section("四、存在问题") == ["测试单位001报送的活动场次均为0。"]
    assert unit_rows(doc)[0][2:8] == ["0"] * 6


FORM_WITHOUT_GRID = """
title: 安全生产检查情况统计表
fields:
  - {key: checks, label: 检查次数, type: integer, required: true, min: 0, aggregate: sum}
  - {key: hazards, label: 整改隐患（处）, type: integer, required: true, min: 0, aggregate: sum}
  - {key: drill, label: 应急演练, type: text, aggregate: count}
  - {key: practice, label: 经验做法, type: text, max_length: 2000, aggregate: collect}
"""


def test_another_form_drives_the_summary(env, tmp_path):
    """No grid, a counted field: the sections and tables follow the schema, not the example."""
    world = SummaryWorld(tmp_path, synthetic_units(3), form=FORM_WITHOUT_GRID)
    world.notify()
    world.reply("T001", {"checks": 4, "hazards": 2, "drill": "已开展", "practice": "建立隐患台账，逐项销号。"})
    world.reply("T002", {"checks": 1, "hazards": 0, "drill": "", "practice": "无"}, at=LATE)
    doc = read(world, tmp_path)
    assert "二、各类活动开展情况" not in doc.paragraphs
    headings = [p for p in doc.paragraphs if re.match(r"^[一二三四五]、", p)]
    assert headings == ["一、基本情况", "二、典型做法", "三、存在问题", "四、下一步工作要求"]
    basic = doc.section("一、基本情况")
    assert basic[-1] == "据统计，已报送单位合计：检查5次，整改隐患2处。填报“应急演练”的单位1个。"
    assert doc.section("二、典型做法")[1] == "建立隐患台账，逐项销号。（测试单位001）"
    units = doc.table_after("（二）各单位报送情况")
    assert units[0] == ["序号", "单位", "检查次数", "整改隐患（处）", "应急演练", "报送时间", "备注"]
    assert units[1][2:5] == ["4", "2", "已开展"] and units[-1][1:5] == ["合计", "5", "2", "1个"]
    assert C.structural_problems(doc.docx) == {}


def test_many_late_units_are_named_up_to_ten(env, tmp_path):
    world = SummaryWorld(tmp_path, synthetic_units(14))
    world.notify()
    for code in world.codes:
        world.reply(code, figures(world.definition, 1), at=LATE)
    problems = read(world, tmp_path).section("四、存在问题")
    names = "、".join(f"测试单位{n:03d}" for n in range(1, 11))
    assert problems == [f"{names}等14个单位未在2023年10月10日前报送，属逾期报送。"]


def test_line_breaks_and_characters_outside_gb2312(env, tmp_path):
    name = "𠮷镕堃社区服务中心"
    world = SummaryWorld(tmp_path, [("T001", name, "park"), ("T002", "喆䶮志愿服务队", "soe")])
    world.notify()
    story = ("一、宣讲进社区\r\n\r\n组织志愿者在𠮷祥社区开展宣讲，\u2028堃阿姨说：“好！”😀活动持续3小时。\x0b"
             "\f第二段不该出现。")
    world.reply("T001", figures(world.definition, 1, stories=story))
    world.reply("T002", figures(world.definition, 2, stories="无"))
    doc = read(world, tmp_path)
    assert doc.section("三、典型做法")[1:] == [f"组织志愿者在𠮷祥社区开展宣讲，堃阿姨说：“好！”活动持续3小时。（{name}）"]
    assert unit_rows(doc)[0][1] == name
    assert name in doc.section("二、各类活动开展情况")[0]
    assert all("\f" not in p and "\x0b" not in p for p in doc.paragraphs)
    assert C.structural_problems(doc.docx) == {}


def test_excerpts_end_at_sentence_boundaries():
    assert excerpt("第一句话写得很长。第二句！第三句？") == "第一句话写得很长。第二句！第三句？"
    long_text = "组织开展志愿服务活动，" * 30 + "取得良好效果。"
    cut = excerpt(long_text)
    assert cut.endswith("……") and len(cut) <= EXCERPT_MAX_CHARS + 2 and cut[-3] != "，"
    sentences = "这是一个完整的句子，长度适中。" * 20
    kept = excerpt(sentences)
    assert kept.endswith("。") and len(kept) <= EXCERPT_MAX_CHARS and sentences.startswith(kept)
    assert excerpt("没有标点的一段话但是很长") == "没有标点的一段话但是很长。"
    assert excerpt("（一）“他说：好。”后来呢") == "“他说：好。”后来呢。"
    assert excerpt("无") is None and excerpt("详见附件材料") is None and excerpt("  \n ") is None


def test_figures_and_lists_are_written_one_way():
    assert [figure(v, d) for v, d in ((1234, 0), (12.0, 1), ("12.50", 1), (0.1 + 0.2, 1), (10_000_000, 0))] == [
        "1234", "12", "12.5", "0.3", "10000000"]
    assert join_names(["甲"]) == "甲" and join_names(["甲", "乙"]) == "甲和乙"
    assert join_names(["甲", "乙", "丙"]) == "甲、乙和丙"
    assert units_phrase(["甲"]) == "甲" and units_phrase(["甲", "乙"]) == "甲和乙共2个单位"


def test_unit_text_is_shown_literally_never_as_markup(env, tmp_path):
    tricky_name = "测试<单位>&{{ unit }}"
    tricky = "我们{{ context }}与{% if x %}和<w:p><w:r><w:t>注入</w:t></w:r></w:p>以及&amp;、]]>都照原样显示。"
    world = SummaryWorld(tmp_path, [("T001", tricky_name, "park"), ("T002", "普通单位", "park")])
    world.notify()
    world.reply("T001", figures(world.definition, 3, stories=tricky), at=LATE)
    doc = read(world, tmp_path)
    assert doc.section("三、典型做法")[1] == f"{tricky}（{tricky_name}）"
    assert doc.section("四、存在问题")[0].startswith(f"（一）报送不够及时。{tricky_name}未在")
    assert unit_rows(doc)[0][1] == tricky_name
    assert doc.tables[-1][1][1] == "普通单位"
    assert sum("注入" in p for p in doc.paragraphs) == 1
    assert C.structural_problems(doc.docx) == {}


def test_same_data_gives_the_same_document(mixed, tmp_path):
    world, aggregation, path = mixed
    again = render_summary(world.definition, aggregation, SUMMARY_DAY, tmp_path / "again.docx")
    assert again.read_bytes() == path.read_bytes()
    later = Read(render_summary(world.definition, aggregation, date(2023, 10, 20), tmp_path / "later.docx"))
    earlier = Read(path)
    changed = [(a, b) for a, b in zip(earlier.paragraphs, later.paragraphs) if a != b]
    assert changed and all(a.replace("2023年10月16日", "2023年10月20日") == b for a, b in changed)
    assert earlier.tables == later.tables


# --- Rendered by LibreOffice --------------------------------------------------------------------------------
def pages_of(pdf: Path) -> list[C.Page]:
    """gbt9704_checks.read_pdf_layout, except that a page number stays a row of its own: on a
    landscape page it is printed turned, as a vertical line whose bottom may share a table line's."""
    xhtml = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], check=True, capture_output=True).stdout
    root = etree.fromstring(xhtml, etree.XMLParser(recover=True))
    ns = {"x": "http://www.w3.org/1999/xhtml"}
    pages = []
    for page_number, page in enumerate(root.iterfind(".//x:page", ns), start=1):
        rows: dict[object, list] = {}
        for line in page.iterfind(".//x:line", ns):
            text = "".join(word.text or "" for word in line.findall("x:word", ns))
            box = [float(line.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")]
            key = ("number", box[1]) if C.PAGE_NUMBER_TEXT.match(text) else round(box[3])
            rows.setdefault(key, []).append((box, text))
        merged = []
        for key in sorted(rows, key=lambda k: (k[1] if isinstance(k, tuple) else k)):
            parts = sorted(rows[key], key=lambda item: item[0][0])
            merged.append(C.Row("".join(t for _, t in parts), min(b[0] for b, _ in parts),
                                max(b[2] for b, _ in parts), min(b[1] for b, _ in parts), max(b[3] for b, _ in parts)))
        pages.append(C.Page(page_number, float(page.get("width")), float(page.get("height")), merged))
    return pages


def outside_type_area(page: C.Page, tolerance: float = 1.5) -> list[str]:
    left, top, right, bottom = page.type_area()
    return [f"page {page.number}: «{row.text[:20]}» at x {row.x_min:.1f}–{row.x_max:.1f}, type area {left:.1f}–{right:.1f}"
            for row in page.text_rows() if row.x_min < left - tolerance or row.x_max > right + tolerance]


def full_body_page_problems(page: C.Page) -> list[str]:
    """5.2.3 for a page of running text: 22 lines inside the type area; a line of Chinese alone holds
    28 characters (lines with figures hold more: Arabic digits are half as wide)."""
    rows = page.text_rows()
    left, _, right, _ = page.type_area()
    problems = [] if len(rows) == 22 else [f"page {page.number}: {len(rows)} lines, expected 22"]
    chinese = [r for r in rows if all(ord(ch) > 0x2000 for ch in r.text)]
    full_width = Counter(len(r.text) for r in chinese if abs(r.x_min - left) < 2 and abs(r.x_max - right) < 3)
    if any(len(r.text) > 28 for r in chinese) or (full_width and full_width.most_common(1)[0][0] != 28):
        problems.append(f"page {page.number}: Chinese lines of {sorted({len(r.text) for r in chinese})} characters")
    return problems + outside_type_area(page)


@pytest.mark.rendered
@needs_tools
def test_rendered_body_pages_have_22_lines_of_28_characters(mixed_pages):
    _, pages = mixed_pages
    annex = next(p.number for p in pages if p.text_rows() and p.text_rows()[0].text == "附件1")
    full = pages[1:annex - 2]          # the last body page holds the signature, not 22 lines
    assert full
    for page in full:
        assert full_body_page_problems(page) == []


@pytest.mark.rendered
@needs_tools
def test_rendered_first_page_head_and_body(mixed_pages, mixed):
    world, _, _ = mixed
    pdf, pages = mixed_pages
    assert C.check_mark_position(pages[0], world.definition.spec.office.mark) == []
    assert C.check_red_rule(pdf, pages[0], world.definition.spec.summary.doc_number) == []
    assert C.check_text_on_page(pages[0], "2023年3月14日，新区文明办印发") == []


@pytest.mark.rendered
@needs_tools
def test_rendered_annexes_start_new_pages_and_are_numbered_like_the_others(mixed_pages):
    _, pages = mixed_pages
    assert C.check_page_numbers(pages) == []
    first_rows = [p.text_rows()[0].text if p.text_rows() else "" for p in pages]
    annex1, annex2 = first_rows.index("附件1") + 1, first_rows.index("附件2") + 1
    assert annex1 < annex2
    assert all(p.landscape for p in pages[annex1 - 1:annex2 - 1])       # the wide table turned
    assert not any(p.landscape for p in pages[:annex1 - 1] + pages[annex2 - 1:])
    assert sum(1 for p in pages if p.landscape) >= 2
    # the statistics table repeats its header on each of its pages
    table_pages = [p for p in pages if any("报送时间" in r.text for r in p.rows)]
    assert len(table_pages) >= 2
    assert C.check_imprint_at_bottom(pages[-1]) == []


@pytest.mark.rendered
@needs_tools
def test_rendered_tables_stay_inside_the_type_area(mixed_pages):
    _, pages = mixed_pages
    assert [problem for page in pages for problem in outside_type_area(page)] == []


@pytest.mark.rendered
@needs_tools
def test_rendered_very_long_unit_names_stay_inside_the_type_area(env, tmp_path):
    long_name = "兰州新区" + "某某街道办事处社区志愿服务中心" * 13     # the 200-character limit of units.csv
    assert len(long_name) <= 200
    world = SummaryWorld(tmp_path, [("T001", long_name, "park"), ("T002", "短名单位", "soe")])
    world.notify()
    world.reply("T001", figures(world.definition, 2), at=LATE)
    path = render_summary(world.definition, world.aggregation(), SUMMARY_DAY, tmp_path / "long.docx")
    assert C.structural_problems(C.Docx.open(path)) == {}
    pages = pages_of(docx_to_pdf(path, work_dir=tmp_path))
    assert [problem for page in pages for problem in outside_type_area(page)] == []
    assert C.check_page_numbers(pages) == []
    body = "".join(r.text for p in pages if not p.landscape for r in p.text_rows())
    assert body.count(long_name) >= 2        # whole, in 二 and 四


@pytest.mark.rendered
@needs_tools
def test_rendered_short_landscape_annex_at_the_end_keeps_its_page_numbers(env, tmp_path):
    """Everybody reported: the landscape statistics table is the last annex, two or three pages
    that start on an odd page, followed by a portrait page for the 版记."""
    world = SummaryWorld(tmp_path, synthetic_units(3))
    world.notify()
    for seed, code in enumerate(world.codes, start=1):
        world.reply(code, figures(world.definition, seed))
    path = render_summary(world.definition, world.aggregation(), SUMMARY_DAY, tmp_path / "short.docx")
    pages = pages_of(docx_to_pdf(path, work_dir=tmp_path))
    landscape = [p.number for p in pages if p.landscape]
    assert landscape and landscape[0] % 2 == 1 and len(landscape) in (2, 3)
    assert C.check_page_numbers(pages) == []
    assert not pages[-1].landscape and C.check_imprint_at_bottom(pages[-1]) == []
