"""The data export 汇总表.xlsx: one row per unit with its status, its times (Beijing time) and every
value of the form schema from its latest valid submission, plus a sheet of the summary's figures.

What the units wrote is hostile input for a spreadsheet: a text starting with = + - @ (or a tab or
carriage return) would run as a formula when a person opens or re-saves the file, so it gets a
leading apostrophe (OWASP's "CSV injection" advice) and is stored as text. Characters that a
worksheet cannot hold are dropped.

Written in openpyxl's write-only mode (rows streamed, 10,000 units in a few seconds and little
memory) and reproducibly: the same data and date give the same bytes.
"""
from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter

from documents.outcomes import UnitRecord
from documents.package import normalise_zip, write_atomically
from forms.aggregate import Aggregation
from forms.campaign import CampaignDefinition
from forms.schema import FieldSpec, FieldType
from models.clock import CHINA_TZ

EXPORT_FILE_NAME = "汇总表.xlsx"
UNITS_SHEET = "各单位报送情况"
FIGURES_SHEET = "汇总"
TIME_FORMAT = "yyyy-mm-dd hh:mm"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_HEADER_ALIGNMENT = Alignment(wrap_text=True, vertical="center", horizontal="center")
MAX_COLUMN_WIDTH = 60


def safe_text(value) -> str:
    """Text a spreadsheet shows as it is and never evaluates."""
    text = ILLEGAL_CHARACTERS_RE.sub("", str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def beijing(value: datetime | None) -> datetime | None:
    """Excel has no time zones: the wall-clock time in Beijing, without an offset."""
    return value.astimezone(CHINA_TZ).replace(tzinfo=None) if value is not None else None


def report_state(record: UnitRecord) -> str:
    """报送情况 in one word: 按时报送, 逾期报送, 未报送, 免报."""
    if record.status == "exempt":
        return "免报"
    if not record.reported:
        return "未报送"
    return "逾期报送" if record.late else "按时报送"


def _value(value, spec: FieldSpec):
    """A form value as the cell should hold it: numbers as numbers, everything else as safe text."""
    if value is None or value == "":
        return None
    if spec.numeric and not isinstance(value, bool):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return safe_text(value)
        return int(number) if spec.type == FieldType.integer and number == number.to_integral_value() else number
    return safe_text(value)


# (header, width, how to get the value from a record); the schema's fields follow.
_UNIT_COLUMNS = (
    ("序号", 6, None),
    ("单位代码", 10, lambda r: safe_text(r.code)),
    ("单位名称", 30, lambda r: safe_text(r.name)),
    ("单位类别", 16, None),
    ("单位邮箱", 28, lambda r: safe_text(r.email)),
    ("状态", 14, lambda r: r.status_label),
    ("报送情况", 10, report_state),
    ("报送时间（北京时间）", 18, lambda r: beijing(r.first_valid_at)),
    ("采用的回执版本", 10, lambda r: r.counted_version),
    ("该版本收到时间（北京时间）", 18, lambda r: beijing(r.counted_at)),
    ("收到回执份数", 10, lambda r: r.submissions),
    ("最后来信时间（北京时间）", 18, lambda r: beijing(r.last_reply_at)),
    ("通知送达时间（北京时间）", 18, lambda r: beijing(r.notified_at)),
    ("状态说明", 30, lambda r: safe_text(r.status_reason) if r.status_reason else None),
)


def _header_cell(sheet, text: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=safe_text(text))
    cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGNMENT
    return cell


def _field_width(spec: FieldSpec, label: str) -> float:
    if spec.type == FieldType.text and (spec.max_length or 0) > 50:
        return 50
    return min(MAX_COLUMN_WIDTH, max(10, len(label) * 1.6))


def _units_sheet(workbook: Workbook, definition: CampaignDefinition, records: list[UnitRecord]) -> None:
    sheet = workbook.create_sheet(UNITS_SHEET)
    cells = list(definition.form.iter_cells())
    labels = [definition.form.label_of(key) for key, _ in cells]
    widths = [width for _, width, _ in _UNIT_COLUMNS] + [_field_width(spec, label) for (_, spec), label in zip(cells, labels)]
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "D2"          # the header and the unit's number, code and name stay in view
    last = get_column_letter(len(widths))
    sheet.auto_filter.ref = f"A1:{last}{len(records) + 1}"
    sheet.append([_header_cell(sheet, name) for name, _, _ in _UNIT_COLUMNS] + [_header_cell(sheet, t) for t in labels])

    kind_labels = {k.key: k.label for k in definition.spec.unit_kinds}
    time_columns = {i for i, (name, _, _) in enumerate(_UNIT_COLUMNS) if "时间" in name}
    decimals = {i + len(_UNIT_COLUMNS): spec.decimals for i, (_, spec) in enumerate(cells)
                if spec.type == FieldType.number}
    for number, record in enumerate(records, start=1):
        row: list = []
        for i, (name, _, get) in enumerate(_UNIT_COLUMNS):
            if name == "序号":
                value = number
            elif name == "单位类别":
                value = safe_text(kind_labels.get(record.kind, record.kind))
            else:
                value = get(record)
            row.append(value)
        values = record.values or {}
        row += [_value(values.get(key), spec) for key, spec in cells]
        out = []
        for i, value in enumerate(row):
            if value is not None and (i in time_columns or i in decimals):
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = TIME_FORMAT if i in time_columns else ("0." + "0" * decimals[i] if decimals[i] else "0")
                out.append(cell)
            else:
                out.append(value)
        sheet.append(out)


def _figures_sheet(workbook: Workbook, definition: CampaignDefinition, aggregation: Aggregation,
                   as_of: date) -> None:
    sheet = workbook.create_sheet(FIGURES_SHEET)
    sheet.column_dimensions["A"].width = 28
    for letter in "BCDEFGH":
        sheet.column_dimensions[letter].width = 14
    c = aggregation.counts
    sheet.append([_header_cell(sheet, "报送情况"), _header_cell(sheet, f"截至{as_of.year}年{as_of.month}月{as_of.day}日")])
    for label, value in (("单位总数", c.units), ("应报", c.should_report), ("已报", c.reported),
                         ("按时报送", c.on_time), ("逾期报送", c.late), ("未报送", c.not_reported),
                         ("其中：退信", c.bounced), ("其中：回执有误待更正", c.awaiting_correction),
                         ("其中：待人工核实", c.needs_review), ("免报", c.exempt)):
        sheet.append([label, value])
    sheet.append([])
    sheet.append([_header_cell(sheet, t) for t in ("单位类别", "应报", "已报", "按时报送", "逾期报送", "未报送", "免报")])
    for kind in aggregation.by_kind.values():
        k = kind.counts
        sheet.append([safe_text(kind.label), k.should_report, k.reported, k.on_time, k.late, k.not_reported, k.exempt])
    grid = definition.form.grid
    if grid is not None and aggregation.column_totals:
        sums = [column for column in grid.columns if column.key in aggregation.column_totals]
        sheet.append([])
        sheet.append([_header_cell(sheet, t) for t in [grid.row_header, *(col.label for col in sums)]])
        for row in grid.rows:
            sheet.append([safe_text(row.label), *(aggregation.row_totals[row.key][col.key] for col in sums)])
        sheet.append(["合计", *(aggregation.column_totals[col.key] for col in sums)])
    fields = [spec for spec in definition.form.fields if spec.key in aggregation.totals]
    if fields:
        sheet.append([])
        sheet.append([_header_cell(sheet, "其他指标"), _header_cell(sheet, "合计")])
        for spec in fields:
            sheet.append([safe_text(spec.label), aggregation.totals[spec.key]])


def in_summary_order(aggregation: Aggregation, records: list[UnitRecord]) -> list[UnitRecord]:
    """One record per unit of the aggregation, in its order (so 序号 is the summary's); a unit of
    units.csv that was never loaded into the database gets a record of its own."""
    by_code = {record.code: record for record in records}
    return [by_code.get(o.code) or UnitRecord(code=o.code, name=o.name, kind=o.kind, email="", recipient_id=0,
                                              status=o.status)
            for o in aggregation.units]


def write_export(definition: CampaignDefinition, aggregation: Aggregation, records: list[UnitRecord],
                 as_of: date, out_path: Path) -> Path:
    """Write 汇总表.xlsx to `out_path` (atomically) and return it: a row for every unit of
    `aggregation`, in its order, with the details of `records` (documents.outcomes)."""
    records = in_summary_order(aggregation, records)
    workbook = Workbook(write_only=True)
    stamp = datetime.combine(as_of, time())
    workbook.properties.creator = definition.spec.office.short_name
    workbook.properties.lastModifiedBy = definition.spec.office.short_name
    workbook.properties.title = f"{definition.spec.summary.title}（汇总表）"
    workbook.properties.created = workbook.properties.modified = stamp
    _units_sheet(workbook, definition, records)
    _figures_sheet(workbook, definition, aggregation, as_of)
    buffer = io.BytesIO()
    # ExcelWriter rather than Workbook.save(), which stamps the file with the current time.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        ExcelWriter(workbook, archive).save()
    return write_atomically(normalise_zip(buffer.getvalue()), Path(out_path))

