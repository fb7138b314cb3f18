"""The per-unit reply form (回执表), made from the campaign's FormSchema.

The workbook is laid out once per campaign with placeholders for the unit's name and token; each
unit's copy is that template with the placeholders replaced at the zip level. Everything around the
placeholders is deflated once per template and a unit's copy deflates only its name and token, so
thousands of forms cost a fraction of a millisecond each. The token is written three times, so a
reply can be matched even when a unit copied the visible sheet into a fresh workbook (only the
visible cell survives that) or overwrote the visible cell (the hidden sheet and the document
property survive that).

Layout, top to bottom: title; unit name and token (locked); the grid (row header × measures, a
合计 row of formulas); the single fields (long texts as tall merged cells); the instructions.
`forms.form_reader` finds everything again by these labels, not by cell addresses.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import re
import struct
import tempfile
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from openpyxl import Workbook
from openpyxl.packaging.custom import StringProperty
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.protection import SheetProtection
from openpyxl.worksheet.worksheet import Worksheet

from forms.schema import Aggregate, FieldSpec, FieldType, FormSchema

# --- Labels and names the reader looks for: one place for each. -------------------------------
FORM_SHEET_TITLE = "回执表"
UNIT_NAME_LABEL = "单位名称"
TOKEN_LABEL = "识别码"
TOKEN_NOTE = "系统识别用，请勿修改"
TOTAL_LABEL = "合计"
REQUIRED_MARK = " *"
INSTRUCTIONS_HEADING = "填报说明"
GRID_SECTION = "一、{label}"
FIELDS_SECTION_AFTER_GRID = "二、其他情况"
FIELDS_SECTION_ALONE = "一、填报内容"

HIDDEN_SHEET_TITLE = "noticeflow"
HIDDEN_MARKER = "noticeflow reply form"
HIDDEN_KEYS = ("token", "campaign", "schema")   # column A of the hidden sheet, values in column B
TOKEN_PROPERTY = "noticeflow_token"
CAMPAIGN_PROPERTY = "noticeflow_campaign"
SCHEMA_PROPERTY = "noticeflow_schema"

# Placeholders replaced per unit in the saved template (ASCII, so XML escaping cannot touch them).
_NAME_PLACEHOLDER = "NFPLACEHOLDER0UNIT0NAME0"
_TOKEN_PLACEHOLDER = "NFPLACEHOLDER0TOKEN0"

# Excel refuses (asks to "repair") data-validation texts longer than these.
_PROMPT_TITLE_MAX = 32
_PROMPT_MAX = 255
_ERROR_MAX = 225

# --- Look. -------------------------------------------------------------------------------------
_FONT_NAME = "宋体"
_THIN = Side(style="thin", color="808080")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_LOCKED_FILL = PatternFill("solid", fgColor="EDEDED")
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_INPUT_FILL = PatternFill("solid", fgColor="FFFFFF")
_TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
_UNLOCKED = Protection(locked=False)
_WRAP_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_WRAP_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True, indent=1)
_WRAP_TOP_LEFT = Alignment(horizontal="left", vertical="top", wrap_text=True)
_MIN_COLUMNS = 4            # the single fields and the instructions need some width to merge over
_LABEL_WIDTH = (14, 34)     # bounds of column A, in Excel character units
_MEASURE_WIDTH = (16, 24)
_LONG_TEXT_HEIGHT = 96      # points; a text field allowing more than _SHORT_TEXT characters
_SHORT_TEXT = 100
_ROW_HEIGHT = 22
_LINE_HEIGHT = 16
# Print: A4 landscape (297 × 210 mm), margins in inches as openpyxl takes them.
_SIDE_MARGIN, _TOP_MARGIN = 0.5, 0.6
_PRINTABLE_WIDTH_PT = (297 / 25.4 - 2 * _SIDE_MARGIN) * 72
_PRINTABLE_HEIGHT_PT = (210 / 25.4 - 2 * _TOP_MARGIN) * 72
_POINTS_PER_WIDTH_UNIT = 5.25    # one Excel column-width unit is about 7 pixels
_DEFAULT_ROW_HEIGHT = 15


def schema_fingerprint(schema: FormSchema) -> str:
    """Names the schema a form was made from (stored in the form; the reader reports a mismatch)."""
    return hashlib.sha256(schema.model_dump_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Member:
    """One zip member of the template: the text around its placeholders, each piece with its
    deflated form, and the placeholders between them. A member without any is `whole` already."""
    info: zipfile.ZipInfo
    pieces: tuple[str | tuple[bytes, bytes], ...]    # a placeholder, or (text, deflated text)
    whole: tuple[bytes, int, int] | None             # (deflated stream, CRC-32, size)


@dataclass(frozen=True)
class _Template:
    members: tuple[_Member, ...]


_XML_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_templates: dict[str, _Template] = {}
_templates_lock = threading.Lock()
_TEMPLATE_CACHE_SIZE = 16


def build_reply_form(definition, unit, token: str, out_path: Path) -> Path:
    """Write the reply form of one unit to `out_path` (atomically) and return the path.

    `definition` is a forms.campaign.CampaignDefinition, `unit` a forms.campaign.UnitRow."""
    template = _template_for(definition)
    data = _personalise(template, unit_name=unit.name, token=str(token))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=".", suffix=".xlsx.part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp's 0600 would hide the form from other local readers
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out_path


def reply_form_bytes(definition, unit_name: str, token: str) -> bytes:
    """The same form as bytes (for attaching without a file, or for tests)."""
    return _personalise(_template_for(definition), unit_name=unit_name, token=str(token))


def _template_key(definition) -> str:
    spec = definition.spec
    parts = [definition.id, definition.form.model_dump_json(), spec.deadline.isoformat(),
             spec.contact.model_dump_json(), spec.office.email]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _template_for(definition) -> _Template:
    key = _template_key(definition)
    with _templates_lock:
        cached = _templates.get(key)
    if cached is not None:
        return cached
    template = _make_template(definition)
    with _templates_lock:
        if len(_templates) >= _TEMPLATE_CACHE_SIZE:
            _templates.pop(next(iter(_templates)))
        _templates[key] = template
    return template


def _make_template(definition) -> _Template:
    workbook = _layout_workbook(definition, _NAME_PLACEHOLDER, _TOKEN_PLACEHOLDER)
    buffer = io.BytesIO()
    workbook.save(buffer)
    members = []
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        for info in archive.infolist():
            content = archive.read(info)
            pieces = tuple(piece.decode() if index % 2 else (piece, _deflate_piece(piece))
                           for index, piece in enumerate(_PLACEHOLDERS.split(content)))
            whole = (pieces[0][1] + _FINAL_BLOCK, zlib.crc32(content), len(content)) if len(pieces) == 1 else None
            members.append(_Member(info, pieces, whole))
    placeholders = [p for m in members for p in m.pieces if isinstance(p, str)]
    # The name in the visible sheet; the token there, in the hidden sheet and in the custom property.
    if placeholders.count(_NAME_PLACEHOLDER) < 1 or placeholders.count(_TOKEN_PLACEHOLDER) < 3:
        raise RuntimeError("reply form template lost a placeholder; check the layout code")
    return _Template(tuple(members))


def _xml_text(text: str) -> bytes:
    # Control characters (other than tab and newlines) are not allowed in XML at all.
    return escape(_XML_FORBIDDEN.sub("", text)).encode()


def _personalise(template: _Template, *, unit_name: str, token: str) -> bytes:
    values = {_NAME_PLACEHOLDER: _xml_text(unit_name), _TOKEN_PLACEHOLDER: _xml_text(token)}
    filled = {text: _deflate_piece(text) for text in values.values()}
    writer = _ZipWriter()
    for member in template.members:
        if member.whole:
            writer.add(member.info, *member.whole)
            continue
        crc, size, deflated = 0, 0, []
        for piece in member.pieces:
            text, packed = (values[piece], filled[values[piece]]) if isinstance(piece, str) else piece
            crc, size = zlib.crc32(text, crc), size + len(text)
            deflated.append(packed)
        deflated.append(_FINAL_BLOCK)
        writer.add(member.info, b"".join(deflated), crc, size)
    return writer.finish()


# --- A minimal zip writer for members deflated ahead. ---------------------------------------------
# zipfile can only write members it compresses itself. A member's deflate stream here is a run of
# pieces, each deflated on its own and ended with a sync flush (so each starts on a byte boundary
# and refers to nothing before it), closed by an empty final block: a valid stream that lets the
# unchanging pieces be deflated once per template.

_PLACEHOLDERS = re.compile(b"(" + _NAME_PLACEHOLDER.encode() + b"|" + _TOKEN_PLACEHOLDER.encode() + b")")
_FINAL_BLOCK = zlib.compressobj(wbits=-zlib.MAX_WBITS).flush()
_COMPRESS_LEVEL = 6
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")      # APPNOTE 4.3.7
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")   # APPNOTE 4.3.12
_END_RECORD = struct.Struct("<IHHHHIIH")          # APPNOTE 4.3.16
_VERSION = 20                                      # 2.0: deflate
_UTF8_NAME = 0x800


def _deflate_piece(data: bytes) -> bytes:
    compressor = zlib.compressobj(_COMPRESS_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


class _ZipWriter:
    """Deflated members (with their CRC-32 and size) in, zip bytes out. No Zip64: a form is small."""

    def __init__(self):
        self._out = io.BytesIO()
        self._directory = []

    def add(self, info: zipfile.ZipInfo, deflated: bytes, crc: int, size: int) -> None:
        name = info.filename.encode()
        flags = 0 if name.isascii() else _UTF8_NAME
        year, month, day, hour, minute, second = info.date_time
        dos_time = hour << 11 | minute << 5 | second // 2
        dos_date = (year - 1980) << 9 | month << 5 | day
        fields = (flags, zipfile.ZIP_DEFLATED, dos_time, dos_date, crc, len(deflated), size, len(name))
        offset = self._out.tell()
        self._out.write(_LOCAL_HEADER.pack(0x04034B50, _VERSION, *fields, 0) + name + deflated)
        self._directory.append(_CENTRAL_HEADER.pack(
            0x02014B50, info.create_system << 8 | _VERSION, _VERSION, *fields, 0, 0, 0, 0,
            info.external_attr, offset) + name)

    def finish(self) -> bytes:
        start = self._out.tell()
        directory = b"".join(self._directory)
        count = len(self._directory)
        self._out.write(directory + _END_RECORD.pack(0x06054B50, 0, 0, count, count, len(directory), start, 0))
        return self._out.getvalue()


# --- Layout. ------------------------------------------------------------------------------------

def _layout_workbook(definition, unit_name: str, token: str) -> Workbook:
    schema: FormSchema = definition.form
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = FORM_SHEET_TITLE
    width = _column_count(schema)
    _set_column_widths(sheet, schema, width)
    fingerprint = schema_fingerprint(schema)

    row = _write_title(sheet, schema.title, width)
    row = _write_identity(sheet, row, width, unit_name, token)
    first_input = None
    if schema.grid:
        row, first_input = _write_grid(sheet, schema, row + 1, width)
    grid_end = row
    row, first_field = _write_fields(sheet, schema, row + 1, width)
    first_input = first_input or first_field
    _write_instructions(sheet, definition, row + 1, width)
    if schema.grid and schema.fields:
        _keep_fields_on_one_page(sheet, width, grid_end, row)

    _protect(sheet)
    _page_setup(sheet)
    if first_input:
        sheet.sheet_view.selection[0].activeCell = first_input
        sheet.sheet_view.selection[0].sqref = first_input

    _write_hidden_sheet(workbook, token, definition.id, fingerprint)
    for name, value in ((TOKEN_PROPERTY, token), (CAMPAIGN_PROPERTY, definition.id),
                        (SCHEMA_PROPERTY, fingerprint)):
        workbook.custom_doc_props.append(StringProperty(name=name, value=value))
    workbook.properties.title = schema.title
    workbook.properties.creator = definition.spec.office.short_name
    workbook.calculation.fullCalcOnLoad = True
    return workbook


def _column_count(schema: FormSchema) -> int:
    return max(1 + (len(schema.grid.columns) if schema.grid else 0), _MIN_COLUMNS)


def _display_width(text: str) -> float:
    """Excel column-width units: a CJK character takes about two."""
    return sum(2.0 if ord(ch) > 0x2E7F else 1.1 for ch in text)


def _clamp(value: float, bounds: tuple[int, int]) -> float:
    return max(bounds[0], min(bounds[1], value))


def _set_column_widths(sheet: Worksheet, schema: FormSchema, width: int) -> None:
    labels = [f.label + REQUIRED_MARK for f in schema.fields]
    if schema.grid:
        labels += [r.label for r in schema.grid.rows] + [schema.grid.row_header]
    sheet.column_dimensions["A"].width = _clamp(max(map(_display_width, labels)) + 2, _LABEL_WIDTH)
    columns = schema.grid.columns if schema.grid else []
    for index in range(2, width + 1):
        # Up to ten characters stay on one line; longer headers wrap (the header row has two lines).
        label = columns[index - 2].label if index - 2 < len(columns) else ""
        sheet.column_dimensions[get_column_letter(index)].width = _clamp(
            _display_width(label) + 3, _MEASURE_WIDTH)


def _total_width(sheet: Worksheet, width: int) -> float:
    return sum(sheet.column_dimensions[get_column_letter(i)].width for i in range(1, width + 1))


def _merge(sheet: Worksheet, row: int, first_col: int, last_col: int) -> None:
    if last_col > first_col:
        sheet.merge_cells(start_row=row, start_column=first_col, end_row=row, end_column=last_col)


def _write_title(sheet: Worksheet, title: str, width: int) -> int:
    cell = sheet.cell(row=1, column=1, value=title)
    cell.font = Font(name=_FONT_NAME, size=16, bold=True)
    cell.alignment = _WRAP_CENTER
    _merge(sheet, 1, 1, width)
    lines = math.ceil(_display_width(title) / (_total_width(sheet, width) * 0.8))
    sheet.row_dimensions[1].height = max(36, 24 * lines + 12)
    return 1


def _label_cell(sheet: Worksheet, row: int, column: int, text: str, *, fill=None, bold=True):
    cell = sheet.cell(row=row, column=column, value=text)
    cell.font = Font(name=_FONT_NAME, size=11, bold=bold)
    cell.alignment = _WRAP_LEFT if column == 1 else _WRAP_CENTER
    cell.border = _BORDER
    if fill:
        cell.fill = fill
    return cell


def _write_identity(sheet: Worksheet, row: int, width: int, unit_name: str, token: str) -> int:
    row += 1
    _label_cell(sheet, row, 1, UNIT_NAME_LABEL, fill=_LOCKED_FILL)
    value = sheet.cell(row=row, column=2, value=unit_name)
    value.font = Font(name=_FONT_NAME, size=12, bold=True)
    value.fill, value.alignment = _LOCKED_FILL, _WRAP_LEFT
    for column in range(2, width + 1):
        sheet.cell(row=row, column=column).border = _BORDER
    _merge(sheet, row, 2, width)
    sheet.row_dimensions[row].height = _ROW_HEIGHT + 4

    row += 1
    _label_cell(sheet, row, 1, TOKEN_LABEL, fill=_LOCKED_FILL)
    value = sheet.cell(row=row, column=2, value=token)
    value.font = Font(name="Consolas", size=12, bold=True)
    value.fill, value.number_format = _LOCKED_FILL, "@"
    value.alignment = Alignment(horizontal="left", vertical="center", indent=1)
    # The token spans two columns so it never wraps; the note fills the rest of the row.
    note = sheet.cell(row=row, column=4, value=TOKEN_NOTE)
    note.font = Font(name=_FONT_NAME, size=9, color="808080")
    note.alignment, note.fill = _WRAP_LEFT, _LOCKED_FILL
    for column in range(2, width + 1):
        sheet.cell(row=row, column=column).border = _BORDER
    _merge(sheet, row, 2, 3)
    _merge(sheet, row, 4, width)
    sheet.row_dimensions[row].height = _ROW_HEIGHT
    return row


def _section(sheet: Worksheet, row: int, width: int, text: str) -> None:
    cell = sheet.cell(row=row, column=1, value=text)
    cell.font = Font(name=_FONT_NAME, size=12, bold=True)
    cell.alignment = Alignment(vertical="center")
    _merge(sheet, row, 1, width)
    sheet.row_dimensions[row].height = _ROW_HEIGHT + 2


def _write_grid(sheet: Worksheet, schema: FormSchema, row: int, width: int) -> tuple[int, str]:
    grid = schema.grid
    _section(sheet, row, width, GRID_SECTION.format(label=grid.label))
    header = row + 1
    _label_cell(sheet, header, 1, grid.row_header, fill=_HEADER_FILL)
    sheet.cell(row=header, column=1).alignment = _WRAP_CENTER
    for offset, column in enumerate(grid.columns):
        _label_cell(sheet, header, 2 + offset, column.label, fill=_HEADER_FILL)
    sheet.row_dimensions[header].height = 36

    first_row, last_row = header + 1, header + len(grid.rows)
    for index, grid_row in enumerate(grid.rows):
        current = first_row + index
        _label_cell(sheet, current, 1, grid_row.label, bold=False)
        sheet.row_dimensions[current].height = _ROW_HEIGHT
        for offset, column in enumerate(grid.columns):
            _input_cell(sheet, current, 2 + offset, column)

    for offset, column in enumerate(grid.columns):
        letter = get_column_letter(2 + offset)
        _validate(sheet, column, f"{letter}{first_row}:{letter}{last_row}")

    total = last_row + 1
    _label_cell(sheet, total, 1, TOTAL_LABEL, fill=_TOTAL_FILL)
    sheet.cell(row=total, column=1).alignment = _WRAP_CENTER
    for offset, column in enumerate(grid.columns):
        letter = get_column_letter(2 + offset)
        value = (f"=SUM({letter}{first_row}:{letter}{last_row})"
                 if column.numeric and column.aggregate == Aggregate.sum else None)
        cell = sheet.cell(row=total, column=2 + offset, value=value)
        cell.fill, cell.border, cell.alignment = _TOTAL_FILL, _BORDER, _WRAP_CENTER
        cell.font = Font(name=_FONT_NAME, size=11, bold=True)
        cell.number_format = _number_format(column)
    sheet.row_dimensions[total].height = _ROW_HEIGHT
    return total, f"B{first_row}"


def _write_fields(sheet: Worksheet, schema: FormSchema, row: int, width: int) -> tuple[int, str | None]:
    if not schema.fields:
        return row - 1, None
    _section(sheet, row, width, FIELDS_SECTION_AFTER_GRID if schema.grid else FIELDS_SECTION_ALONE)
    first = None
    for spec in schema.fields:
        row += 1
        label = spec.label + (REQUIRED_MARK if spec.required else "")
        _label_cell(sheet, row, 1, label, fill=_HEADER_FILL)
        cell = _input_cell(sheet, row, 2, spec)
        long_text = spec.type == FieldType.text and (spec.max_length or _SHORT_TEXT + 1) > _SHORT_TEXT
        cell.alignment = _WRAP_TOP_LEFT if long_text else _WRAP_LEFT
        for column in range(3, width + 1):
            sheet.cell(row=row, column=column).border = _BORDER
        _merge(sheet, row, 2, width)
        sheet.row_dimensions[row].height = _LONG_TEXT_HEIGHT if long_text else _ROW_HEIGHT + 2
        _validate(sheet, spec, f"B{row}")
        first = first or f"B{row}"
    return row, first


def _write_instructions(sheet: Worksheet, definition, row: int, width: int) -> None:
    spec = definition.spec
    lines = list(definition.form.instructions)
    if any(f.required for f in definition.form.fields):
        lines.append(f"标“{REQUIRED_MARK.strip()}”的项目必须填写。")
    deadline = spec.deadline
    lines.append(f"请于{deadline.year}年{deadline.month}月{deadline.day}日{deadline:%H:%M}前发送至"
                 f"{spec.office.email}。联系人：{spec.contact.name}，电话：{spec.contact.phone}。")
    heading = sheet.cell(row=row + 1, column=1, value=INSTRUCTIONS_HEADING)
    heading.font = Font(name=_FONT_NAME, size=12, bold=True)
    _merge(sheet, row + 1, 1, width)
    chars_per_line = _total_width(sheet, width) * 1.1   # the instructions are set a size smaller
    for index, text in enumerate(lines, start=1):
        current = row + 1 + index
        cell = sheet.cell(row=current, column=1, value=f"{index}. {text}")
        cell.font = Font(name=_FONT_NAME, size=10)
        cell.alignment = _WRAP_TOP_LEFT
        _merge(sheet, current, 1, width)
        sheet.row_dimensions[current].height = _LINE_HEIGHT * math.ceil(
            _display_width(cell.value) / chars_per_line) + 4


def _keep_fields_on_one_page(sheet: Worksheet, width: int, grid_end: int, fields_end: int) -> None:
    """Start the single fields on a new page when they would otherwise be split by the page end."""
    scale = min(1.0, _PRINTABLE_WIDTH_PT / (_total_width(sheet, width) * _POINTS_PER_WIDTH_UNIT))
    page = _PRINTABLE_HEIGHT_PT / scale

    def height(last: int) -> float:
        return sum(sheet.row_dimensions[r].height or _DEFAULT_ROW_HEIGHT for r in range(1, last + 1))
    if height(grid_end) <= page < height(fields_end):
        sheet.row_breaks.append(Break(id=grid_end))


def _number_format(spec: FieldSpec) -> str:
    if spec.type == FieldType.integer:
        return "0"
    if spec.type == FieldType.number:
        return "0." + "0" * spec.decimals if spec.decimals else "0"
    if spec.type == FieldType.date:
        return "yyyy-mm-dd"
    return "@"  # text and phone: keep what is typed (a phone's leading 0)


def _input_cell(sheet: Worksheet, row: int, column: int, spec: FieldSpec):
    cell = sheet.cell(row=row, column=column)
    cell.protection = _UNLOCKED
    cell.fill, cell.border = _INPUT_FILL, _BORDER
    cell.font = Font(name=_FONT_NAME, size=11)
    cell.alignment = _WRAP_CENTER
    cell.number_format = _number_format(spec)
    return cell


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def rule_text(spec: FieldSpec) -> str:
    """What a valid value of this field looks like, in words, to follow 应为/请填写 (prompts and error
    messages). A rule that begins with a number begins with a space, as Chinese text sets numbers."""
    if spec.numeric:
        kind = "整数" if spec.type == FieldType.integer else "数字"
        if spec.type == FieldType.number and spec.decimals:
            kind += f"（最多{spec.decimals}位小数）"
        if spec.min is not None and spec.max is not None:
            return f" {_bound(spec.min)} 到 {_bound(spec.max)} 之间的{kind}"
        if spec.min is not None:
            return f"不小于 {_bound(spec.min)} 的{kind}"
        if spec.max is not None:
            return f"不大于 {_bound(spec.max)} 的{kind}"
        return kind
    if spec.type == FieldType.phone:
        return "电话号码（如 0931-8259130 或 13800000000）"
    if spec.type == FieldType.date:
        return "日期（如 2023-10-08）"
    return f"不超过{spec.max_length}字的文字" if spec.max_length else "文字"


def _validate(sheet: Worksheet, spec: FieldSpec, sqref: str) -> None:
    parts = [spec.help.rstrip("。") + "。"] if spec.help else []
    parts.append(f"请填写{rule_text(spec)}。")
    if spec.numeric and spec.required:
        parts.append("没有的请填 0，不要留空。")
    elif spec.required:
        parts.append("此项必须填写。")
    prompt = "".join(parts)
    options = dict(showInputMessage=True, showErrorMessage=True, allow_blank=True, errorStyle="stop",
                   promptTitle=spec.label[:_PROMPT_TITLE_MAX], prompt=prompt[:_PROMPT_MAX],
                   errorTitle="填写内容不符合要求"[:_PROMPT_TITLE_MAX],
                   error=f"{spec.label}应为{rule_text(spec)}，请重新输入。"[:_ERROR_MAX])
    if spec.numeric:
        low = _bound(spec.min) if spec.min is not None else "-1E+15"
        high = _bound(spec.max) if spec.max is not None else "1E+15"
        validation = DataValidation(type="whole" if spec.type == FieldType.integer else "decimal",
                                    operator="between", formula1=low, formula2=high, **options)
    elif spec.type == FieldType.date:
        validation = DataValidation(type="date", operator="greaterThan", formula1="1", **options)
    elif spec.type == FieldType.phone:
        validation = DataValidation(type="textLength", operator="between", formula1="5", formula2="20",
                                    **options)
    elif spec.max_length:
        validation = DataValidation(type="textLength", operator="lessThanOrEqual",
                                    formula1=str(spec.max_length), **options)
    else:
        options["showErrorMessage"] = False
        validation = DataValidation(**options)
    validation.add(sqref)
    sheet.add_data_validation(validation)


def _protect(sheet: Worksheet) -> None:
    # A guard against accidental edits of labels and the token, not security: no password.
    sheet.protection = SheetProtection(sheet=True, formatRows=False, formatColumns=False,
                                       selectLockedCells=False, selectUnlockedCells=False)


def _page_setup(sheet: Worksheet) -> None:
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = _SIDE_MARGIN
    sheet.page_margins.top = sheet.page_margins.bottom = _TOP_MARGIN
    sheet.sheet_view.showGridLines = False


def _write_hidden_sheet(workbook: Workbook, token: str, campaign_id: str, fingerprint: str) -> None:
    hidden = workbook.create_sheet(HIDDEN_SHEET_TITLE)
    hidden.sheet_state = "veryHidden"
    hidden["A1"] = HIDDEN_MARKER
    for row, (key, value) in enumerate(zip(HIDDEN_KEYS, (token, campaign_id, fingerprint)), start=2):
        hidden.cell(row=row, column=1, value=key)
        hidden.cell(row=row, column=2, value=value)
    hidden.protection = SheetProtection(sheet=True)
