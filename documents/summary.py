"""The campaign's 情况通报 as an official document: outputs/<campaign>/summary-<YYYY-MM-DD>.docx.

Everything it says comes from the campaign definition and an `Aggregation` (forms.aggregate) of the
units' latest valid submissions, so the same data gives the same text. Every figure is written by
summary_words.figure(), in the text and in the tables alike, so the two always read the same; the
other words (names, measures, excerpts) are in documents/summary_words.py too. The layout is the
shared one of documents/officialdoc.py.

    一、基本情况          应报、已报、按时、逾期、未报, by kind of unit, and the total of every measure
    二、<grid label>      each activity kind (a row of the form's grid) with its figures
    三、典型做法          excerpts of the units' 典型事例, cut at sentence ends, attributed
    四、存在问题          late and missing units by name, units that reported nothing done
    五、下一步工作要求    the campaign's text
    附件1 统计表 (landscape when too wide), 附件2 未报送单位名单 (when any unit did not report)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from documents import layout as L
from documents.blocks import MERGE_LEFT, MERGE_UP, cell_text
from documents.chinese_text import chinese_date, drawn_width
from documents.summary_words import (chinese_number, deadline_text, excerpt, figure, join_names, measure_phrase,
                                     measure_words, report_time, units_phrase)
from documents.officialdoc import Annex, AnnexTable, OfficialDocument, gc_paused, render_official_document
from forms.aggregate import Aggregation, UnitOutcome
from forms.campaign import CampaignDefinition
from forms.ladder import deadline_of
from forms.schema import Aggregate, FieldSpec, FieldType, FormSchema
from models.settings import get_settings
from models.states import RecipientStatus

SUMMARY_FILE_PREFIX = "summary-"
MAX_EXCERPTS = 5                 # 典型做法: excerpts from this many units at most
TOP_UNITS_PER_ACTIVITY = 3       # units named as doing the most of one activity
UNIT_NAME_COLUMN_CHARS = (6, 12)  # the 单位 column: at least / at most this many characters wide
NOT_REPORTED_ANNEX_TITLE = "未报送单位名单"
CLOSING = "特此通报。"
TOTAL_LABEL = "合计"

EXEMPT = RecipientStatus.exempt.value


def unit_numbers(aggregation: Aggregation) -> dict[str, int]:
    """Unit code → 序号 in the summary's table; the xlsx and the bundle use the same numbers."""
    return {outcome.code: number for number, outcome in enumerate(aggregation.units, start=1)}


def summary_file_name(day: date) -> str:
    return f"{SUMMARY_FILE_PREFIX}{day.isoformat()}.docx"


def summary_output_path(campaign_id: str, day: date) -> Path:
    """Where the summary of `day` lives: <output dir>/<campaign>/summary-<YYYY-MM-DD>.docx."""
    return get_settings().campaign_dir(campaign_id) / summary_file_name(day)


def story_field(schema: FormSchema) -> FieldSpec | None:
    """The field whose texts give the 典型做法: a collected free text, preferably one whose label
    speaks of cases or practice; short fields (a name, a phone) are not it."""
    candidates = [f for f in schema.fields if f.aggregate == Aggregate.collect and f.type == FieldType.text
                  and (f.max_length is None or f.max_length >= 100)]
    for field in candidates:
        if any(word in field.label for word in ("典型", "事例", "做法", "经验", "故事", "亮点")):
            return field
    return candidates[0] if candidates else None


@dataclass(frozen=True)
class Case:
    unit_name: str
    text: str

    @property
    def paragraph(self) -> str:
        return f"{self.text}（{self.unit_name}）"


def typical_cases(definition: CampaignDefinition, aggregation: Aggregation,
                  limit: int = MAX_EXCERPTS) -> list[Case]:
    """Excerpts from up to `limit` units, taken in turn from each kind of unit so that one kind
    does not fill the section; shown in unit order."""
    field = story_field(definition.form)
    if field is None:
        return []
    queues: dict[str, list] = {key: [] for key in aggregation.by_kind}
    for index, item in enumerate(aggregation.collected.get(field.key, [])):
        queues.setdefault(item.kind, []).append((index, item))
    chosen: list[tuple[int, Case]] = []
    while len(chosen) < limit and any(queues.values()):
        for queue in queues.values():
            while queue and len(chosen) < limit:      # this kind's next unit with a text worth quoting
                index, item = queue.pop(0)
                text = excerpt(item.value)
                if text:
                    chosen.append((index, Case(item.unit_name, text)))
                    break
    return [case for _, case in sorted(chosen, key=lambda pair: pair[0])]


# --- Measures of the form -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Measures:
    """What the form adds up. `primary` (the first summed grid column, e.g. 活动场次) is shown per
    activity kind for each unit; the other grid sums as the unit's total; then summed fields."""

    schema: FormSchema
    primary: FieldSpec | None
    grid_sums: list[FieldSpec]
    field_sums: list[FieldSpec]
    counted: list[FieldSpec]

    @classmethod
    def of(cls, schema: FormSchema) -> "Measures":
        grid_sums = [c for c in schema.grid.columns if c.aggregate == Aggregate.sum] if schema.grid else []
        return cls(schema, grid_sums[0] if grid_sums else None, grid_sums,
                   [f for f in schema.fields if f.aggregate == Aggregate.sum],
                   [f for f in schema.fields if f.aggregate == Aggregate.count])

    @property
    def rows(self):
        return self.schema.grid.rows if self.schema.grid and self.primary else []

    def totals(self, aggregation: Aggregation) -> list[tuple[FieldSpec, object]]:
        """Every summed measure with its total over all reporting units."""
        return ([(c, aggregation.column_totals[c.key]) for c in self.grid_sums]
                + [(f, aggregation.totals[f.key]) for f in self.field_sums])

    def unit_figures(self, values: dict) -> list[str]:
        """One unit's cells: the primary measure per activity kind, its other grid measures summed
        over the kinds, its summed and counted fields."""
        cells = [figure(values.get(f"{row.key}.{self.primary.key}"), self.primary.decimals) for row in self.rows]
        for column in self.grid_sums[1:]:
            given = [values.get(f"{row.key}.{column.key}") for row in self.schema.grid.rows]
            given = [Decimal(str(v)) for v in given if v is not None and v != ""]
            cells.append(figure(sum(given, Decimal(0)), column.decimals) if given else "")
        cells += [figure(values.get(f.key), f.decimals) for f in self.field_sums]
        cells += ["" if values.get(f.key) is None else cell_text(values[f.key]).strip() for f in self.counted]
        return cells

    def total_figures(self, aggregation: Aggregation) -> list[str]:
        cells = [figure(aggregation.row_totals[row.key][self.primary.key], self.primary.decimals)
                 for row in self.rows]
        cells += [figure(aggregation.column_totals[c.key], c.decimals) for c in self.grid_sums[1:]]
        cells += [figure(aggregation.totals[f.key], f.decimals) for f in self.field_sums]
        cells += [f"{aggregation.value_counts[f.key]}个" for f in self.counted]
        return cells


# --- Status words ---------------------------------------------------------------------------------------
def _awaiting_correction(outcome: UnitOutcome) -> bool:
    return outcome.values is None and outcome.status in (RecipientStatus.replied.value, RecipientStatus.late.value)


def missing_reason(outcome: UnitOutcome) -> str:
    """Why a unit that owes a report has none (附件2's 情况说明)."""
    if outcome.status == RecipientStatus.bounced.value:
        return "通知邮件被退回"
    if outcome.status == RecipientStatus.needs_review.value:
        return "来信待人工核实"
    if _awaiting_correction(outcome):
        return "回执有误未更正"
    if outcome.status == RecipientStatus.pending.value:
        return "尚未发出通知"
    return "未回复"


def remark(outcome: UnitOutcome, late_codes: set[str]) -> str:
    """备注 of a unit's row in the statistics table (the reasons are in 附件2)."""
    if outcome.status == EXEMPT:
        return "免报"
    if outcome.values is None:
        return "未报送"
    return "逾期" if outcome.code in late_codes else ""


# --- Tables --------------------------------------------------------------------------------------------------
TABLE_FONT = L.TABLE_SIZE_SMALL                 # 小四
# 五号 (10.5 pt): the unit table falls back to it when 小四 does not fit a landscape page.
TABLE_FONT_SMALLER = 21
_CELL_PADDING = 2 * L.TABLE_CELL_MARGIN
# Narrowest columns, in characters: a figure column must show its header wrapped in lines of
# three characters; 报送时间 and 备注 are as wide as what they hold, their headers wrap.
MIN_FIGURE_CHARS = 3
MIN_TEXT_CHARS = 2
# A cell needs some room for the renderer's rounding.
CELL_SLACK_CHARS = 0.5


def _cell_chars(text: str) -> float:
    """Characters a cell needs for the widest line of `text` to fit without wrapping."""
    return max(drawn_width(line) for line in text.split("\n")) + CELL_SLACK_CHARS


def _fit_widths(natural: list[int], stretch: int, wish: int, total: int) -> list[int]:
    """Column widths in twips summing to `total`: each column its natural width, the room left to
    column `stretch` (the unit names) up to `wish`, the rest evenly; all scaled down when the
    natural widths do not fit."""
    if sum(natural) > total:
        widths = [w * total // sum(natural) for w in natural]
    else:
        widths = list(natural)
        widths[stretch] += min(total - sum(widths), max(0, wish - widths[stretch]))
        spare = total - sum(widths)
        widths = [w + spare // len(widths) for w in widths]
    widths[stretch] += total - sum(widths)
    return widths


def reporting_table(aggregation: Aggregation) -> AnnexTable:
    with_exempt = aggregation.counts.exempt > 0
    header = ["单位类别", "应报（个）", "已报（个）", "按时报送（个）", "逾期报送（个）", "未报送（个）"]
    header += ["免报（个）"] if with_exempt else []

    def cells(label, c):
        row = [label, str(c.should_report), str(c.reported), str(c.on_time), str(c.late), str(c.not_reported)]
        return row + ([str(c.exempt)] if with_exempt else [])

    rows = [cells(kind.label, kind.counts) for kind in aggregation.by_kind.values() if kind.counts.units]
    rows.append(cells(TOTAL_LABEL, aggregation.counts))
    return AnnexTable(header=[header], rows=rows, widths=[3] + [1.4] * (len(header) - 1),
                      align=["left"] + ["center"] * (len(header) - 1), font_size=TABLE_FONT)


def activities_table(measures: Measures, aggregation: Aggregation) -> AnnexTable | None:
    if not measures.rows:
        return None
    grid = measures.schema.grid
    header = [grid.row_header] + [c.label for c in measures.grid_sums]
    rows = [[row.label] + [figure(aggregation.row_totals[row.key][c.key], c.decimals) for c in measures.grid_sums]
            for row in grid.rows]
    rows.append([TOTAL_LABEL] + [figure(aggregation.column_totals[c.key], c.decimals) for c in measures.grid_sums])
    return AnnexTable(header=[header], rows=rows, widths=[3] + [1.6] * len(measures.grid_sums),
                      align=["left"] + ["center"] * len(measures.grid_sums), font_size=TABLE_FONT)


def units_table(measures: Measures, aggregation: Aggregation, deadline: datetime) -> tuple[AnnexTable, bool]:
    """序号 | 单位 | the primary measure per activity kind | the other measures | 报送时间 | 备注, one
    row per unit and a 合计 row. Portrait when it fits, else landscape (in 五号 if 小四 does not fit)."""
    late_codes = {o.code for o in aggregation.late_units}
    figure_labels = ([c.label for c in measures.grid_sums[1:]] + [f.label for f in measures.field_sums]
                     + [f.label for f in measures.counted])
    kinds = [row.label for row in measures.rows]
    rows = []
    for index, outcome in enumerate(aggregation.units, start=1):
        figures = measures.unit_figures(outcome.values) if outcome.values is not None else \
            [""] * (len(kinds) + len(figure_labels))
        rows.append([str(index), outcome.name, *figures, report_time(outcome.received_at, deadline),
                     remark(outcome, late_codes)])
    rows.append(["", TOTAL_LABEL, *measures.total_figures(aggregation), "", ""])
    if kinds:
        header = [["序号", "单位", measures.primary.label] + [MERGE_LEFT] * (len(kinds) - 1)
                  + figure_labels + ["报送时间", "备注"],
                  [MERGE_UP, MERGE_UP, *kinds] + [MERGE_UP] * (len(figure_labels) + 2)]
    else:
        header = [["序号", "单位", *figure_labels, "报送时间", "备注"]]

    # Widest content per column in half-width characters (the unit names apart: they wrap).
    count = len(header[0])
    widest = [max((_cell_chars(text) for text in {row[i] for row in rows} if text), default=0.0)
              if i != 1 else 0.0 for i in range(count)]
    longest_name = max((_cell_chars(name) for name in {o.name for o in aggregation.units}), default=0)
    minimum = [2.0, 0.0] + [MIN_FIGURE_CHARS] * (count - 4) + [MIN_TEXT_CHARS] * 2
    chars = [max(w, m) for w, m in zip(widest, minimum)]
    chars[1] = min(longest_name, UNIT_NAME_COLUMN_CHARS[0])

    def natural(size: int) -> list[int]:
        return [round(c * size * 10) + _CELL_PADDING for c in chars]

    for landscape, size in ((False, TABLE_FONT), (True, TABLE_FONT), (True, TABLE_FONT_SMALLER)):
        total = L.LANDSCAPE_TYPE_AREA_WIDTH if landscape else L.TYPE_AREA_WIDTH
        if sum(natural(size)) <= total:
            break
    wish = round(min(longest_name, UNIT_NAME_COLUMN_CHARS[1]) * size * 10) + _CELL_PADDING
    widths = _fit_widths(natural(size), 1, wish, total)
    align = ["center", "left"] + ["center"] * (count - 2)
    return AnnexTable(header=header, rows=rows, widths=widths, align=align, font_size=size), landscape


def not_reported_table(aggregation: Aggregation, kind_labels: dict[str, str]) -> AnnexTable:
    rows = [[str(i), o.name, kind_labels.get(o.kind, o.kind), missing_reason(o)]
            for i, o in enumerate(aggregation.not_reported_units, start=1)]
    return AnnexTable(header=[["序号", "单位名称", "单位类别", "情况说明"]], rows=rows, widths=[1.2, 4.8, 3.2, 3.2],
                      align=["center", "left", "center", "center"])


# --- The text ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SummaryFacts:
    """What the text needs besides the aggregation."""

    definition: CampaignDefinition
    aggregation: Aggregation
    summary_date: date
    deadline: datetime

    @property
    def measures(self) -> Measures:
        return Measures.of(self.definition.form)

    @property
    def as_of(self) -> str:
        return chinese_date(self.summary_date)


def opening(facts: SummaryFacts) -> str:
    spec = facts.definition.spec
    notice = spec.notice
    return (f"{chinese_date(notice.date)}，{spec.office.short_name}印发《{notice.title}》（{notice.doc_number}），"
            f"要求各单位于{deadline_text(facts.deadline)}前报送活动开展情况。现将有关情况通报如下：")


def _reporting_sentence(c, as_of: str) -> str:
    """应报、已报、按时、逾期、未报, phrased for every combination (nobody, everybody, one unit)."""
    should = f"本次活动应报送单位{c.should_report}个"
    if c.should_report == 0:
        return "本次活动没有需要报送的单位。"
    if c.reported == 0:
        return f"{should}，截至{as_of}，尚无单位报送。"
    if c.late == 0:
        timing = "均为按时报送"
    elif c.on_time == 0:
        timing = "均为逾期报送"
    else:
        timing = f"其中按时报送{c.on_time}个、逾期报送{c.late}个"
    if c.not_reported == 0:
        if c.should_report == 1:
            return f"{should}，已{'按时' if c.late == 0 else '逾期'}报送。"
        done = "均已按时报送" if c.late == 0 else f"均已报送，{timing}"
        return f"{should}，截至{as_of}，{done}。"
    if c.late == 0:
        return f"{should}，截至{as_of}，已按时报送{c.reported}个，未报送{c.not_reported}个。"
    return f"{should}，截至{as_of}，已报送{c.reported}个（{timing}），未报送{c.not_reported}个。"


def basic_situation(facts: SummaryFacts) -> list[str]:
    a, c = facts.aggregation, facts.aggregation.counts
    first = _reporting_sentence(c, facts.as_of)
    if c.bounced:
        first += f"未报送的单位中，{c.bounced}个单位的通知邮件被退回。"
    if c.exempt:
        first += f"另有{c.exempt}个单位经同意免于报送。"
    paragraphs = [first]
    kinds = [k for k in a.by_kind.values() if k.counts.should_report]
    if len(kinds) > 1 and c.should_report:
        parts = [f"{k.label}应报{k.counts.should_report}个、已报{k.counts.reported}个" for k in kinds]
        paragraphs.append("从单位类别看，" + "；".join(parts) + "。")
    if c.reported:
        measures = facts.measures
        phrases = [measure_phrase(spec.label, total, spec.decimals) for spec, total in measures.totals(a)]
        counted = [f"填报“{f.label}”的单位{a.value_counts[f.key]}个" for f in measures.counted]
        if phrases:
            sentence = "据统计，已报送单位合计：" + "，".join(phrases) + "。"
            if counted:
                sentence += "；".join(counted) + "。"
            paragraphs.append(sentence)
        elif counted:
            paragraphs.append("；".join(counted) + "。")
    return paragraphs


def activities(facts: SummaryFacts) -> list[str]:
    """One paragraph per activity kind: its figures and the units that did most of it."""
    measures, a = facts.measures, facts.aggregation
    if not measures.rows:
        return []
    if a.counts.reported == 0:
        return ["因尚无单位报送，暂无各项活动的开展数据。"]
    primary = measures.primary
    _, unit = measure_words(primary.label)
    reported = [o for o in a.units if o.values is not None and o.status != EXEMPT]
    paragraphs = []
    for number, row in enumerate(measures.rows, start=1):
        lead = f"（{chinese_number(number)}）{row.label}。"
        totals = a.row_totals[row.key]
        if all(Decimal(str(totals[c.key])) == 0 for c in measures.grid_sums):
            paragraphs.append(lead + "已报送的单位均未开展此类活动。")
            continue
        text = lead + "，".join(measure_phrase(c.label, totals[c.key], c.decimals) for c in measures.grid_sums) + "。"
        if len(reported) == 1:      # who did it goes without saying
            paragraphs.append(text)
            continue
        key = f"{row.key}.{primary.key}"
        doing = [(Decimal(str(o.values[key])), i, o) for i, o in enumerate(reported)
                 if o.values.get(key) not in (None, "") and Decimal(str(o.values[key])) > 0]
        doing.sort(key=lambda item: (-item[0], item[1]))
        named = [f"{o.name}（{figure(value, primary.decimals)}{unit}）" for value, _, o in doing[:TOP_UNITS_PER_ACTIVITY]]
        if len(doing) == 1:
            text += f"此类活动由{named[0]}开展。"
        elif len(doing) <= TOP_UNITS_PER_ACTIVITY:
            text += f"开展此类活动的有{join_names(named)}。"
        elif named:
            text += f"开展较多的有{join_names(named)}。"
        paragraphs.append(text)
    return paragraphs


def practices(facts: SummaryFacts) -> list[str]:
    if facts.aggregation.counts.reported == 0:
        return ["暂无单位报送典型事例。"]
    cases = typical_cases(facts.definition, facts.aggregation)
    if not cases:
        return ["已报送的单位未提供典型事例。"]
    intro = "各单位结合实际，创新活动形式，涌现出一批好做法。现摘录部分单位报送的典型事例如下："
    return [intro] + [case.paragraph for case in cases]


def problems(facts: SummaryFacts) -> list[str]:
    """Late units, units that did not report, units that reported nothing done — by name."""
    a, c = facts.aggregation, facts.aggregation.counts
    items: list[tuple[str, str]] = []
    if a.late_units:
        names = units_phrase([o.name for o in a.late_units])
        items.append(("报送不够及时。", f"{names}未在{deadline_text(facts.deadline)}前报送，属逾期报送。"))
    if a.not_reported_units:
        names = units_phrase([o.name for o in a.not_reported_units])
        if c.should_report and c.not_reported == c.should_report and c.should_report > 1:
            names = f"全部{c.should_report}个应报单位"
        items.append(("仍有单位未报送。", f"截至{facts.as_of}，{names}仍未报送活动开展情况（名单见附件2）。"))
    measures = facts.measures
    if measures.rows:
        primary = measures.primary
        idle = [o.name for o in a.units if o.values is not None and o.status != EXEMPT
                and all(Decimal(str(o.values.get(f"{row.key}.{primary.key}") or 0)) == 0 for row in measures.rows)]
        if idle:
            items.append(("部分单位活动开展不够充分。", f"{units_phrase(idle)}报送的{primary.label}均为0。"))
    if not items:
        return ["本次活动各单位均按时报送了开展情况，未发现迟报、漏报问题。"]
    if len(items) == 1:
        return [items[0][1]]
    return [f"（{chinese_number(i)}）{lead}{text}" for i, (lead, text) in enumerate(items, start=1)]


def next_steps(facts: SummaryFacts) -> list[str]:
    return [step.strip() for step in facts.definition.spec.summary.next_steps if step.strip()]


def summary_body(facts: SummaryFacts) -> list[str]:
    sections = [("基本情况", basic_situation(facts))]
    grid = facts.definition.form.grid
    if facts.measures.rows:
        sections.append((grid.label, activities(facts)))
    sections += [("典型做法", practices(facts)), ("存在问题", problems(facts)),
                 ("下一步工作要求", next_steps(facts))]
    body = [opening(facts)]
    for number, (heading, paragraphs) in enumerate(sections, start=1):
        body.append(f"{chinese_number(number)}、{heading}")
        body += paragraphs
    body.append(CLOSING)
    return body


# --- The document -----------------------------------------------------------------------------------------------
def statistics_annex(facts: SummaryFacts) -> Annex:
    a, measures = facts.aggregation, facts.measures
    units, landscape = units_table(measures, a, facts.deadline)
    content: list = ["（一）报送情况", reporting_table(a), ""]
    activity = activities_table(measures, a)
    if activity is not None:
        content += [f"（二）{facts.definition.form.grid.label}", activity, ""]
    content += [f"（{chinese_number(3 if activity is not None else 2)}）各单位报送情况", units]
    return Annex(facts.definition.form.title, tuple(content), landscape=landscape)


def summary_document(definition: CampaignDefinition, aggregation: Aggregation, summary_date: date) -> OfficialDocument:
    """The 情况通报 of `aggregation` as of `summary_date` (its 成文日期 and 印发日期)."""
    with gc_paused():
        return _summary_document(definition, aggregation, summary_date)


def _summary_document(definition: CampaignDefinition, aggregation: Aggregation, summary_date: date) -> OfficialDocument:
    spec = definition.spec
    facts = SummaryFacts(definition, aggregation, summary_date, deadline_of(spec))
    annexes = [statistics_annex(facts)]
    if aggregation.not_reported_units:
        kind_labels = {k.key: k.label for k in spec.unit_kinds}
        annexes.append(Annex(NOT_REPORTED_ANNEX_TITLE, (not_reported_table(aggregation, kind_labels),)))
    return OfficialDocument(
        mark=spec.office.mark,
        doc_number=spec.summary.doc_number,
        title=spec.summary.title,
        addressees=spec.notice.addressees,
        body=summary_body(facts),
        issuer=spec.office.name,
        date=summary_date,
        printer=spec.office.name,
        printed_date=summary_date,
        attachments=tuple(annexes),
        copy_to=tuple(spec.summary.copy_to),
    )


def render_summary(definition: CampaignDefinition, aggregation: Aggregation, summary_date: date,
                   out_path: Path) -> Path:
    """Render the 情况通报 to `out_path` (.docx); the same data and date give the same bytes."""
    return render_official_document(summary_document(definition, aggregation, summary_date), Path(out_path))
