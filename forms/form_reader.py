"""Reading a returned reply form back, and validating it against the campaign's FormSchema.

The form is found by its structure, never by file name or fixed addresses: the grid by its header
row (row header + measure labels) and its row labels, the single fields, unit name and token by the
label to their left. So a form re-saved by WPS/Excel/LibreOffice, renamed, with rows inserted, or
with its values copied into a fresh workbook still reads. Values are what the cells show (cached
results); an input cell holding a formula without a cached result is computed from the cells it
refers to (SUM and arithmetic only). Every error names the cell and the field and says what to do.
"""
from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, DivisionByZero, InvalidOperation

from openpyxl import load_workbook
from openpyxl.formula.tokenizer import Token, Tokenizer
from openpyxl.utils import get_column_letter
from openpyxl.utils.cell import range_boundaries

from forms.ooxml_guard import FORM_LIMITS, Limits, UnsafeFile, check_ooxml, run_with_limits, unsafe
from forms.reply_form import (HIDDEN_MARKER, HIDDEN_SHEET_TITLE, SCHEMA_PROPERTY, TOKEN_LABEL, TOKEN_PROPERTY,
                              UNIT_NAME_LABEL, rule_text, schema_fingerprint)
from forms.schema import PHONE_PATTERN, FieldSpec, FieldType, FormSchema
from models import tokens as token_codec

SPREADSHEET_KINDS = frozenset({"xlsx", "xltx"})
TOKEN_SOURCES = ("cell", "hidden_sheet", "custom_property")   # where a token was found
MAX_CELLS = 50_000          # non-empty cells in a workbook; a reply form has about a hundred
MAX_GRID_SCAN = 200         # rows below the header searched for row labels (units insert rows)
MIN_STRUCTURE_SHARE = 0.5   # share of the schema's labels a sheet must show to count as the form
MIN_PHONE_DIGITS = 7
_FORMULA_DEPTH = 20
_FORMULA_RANGE_CELLS = 10_000
_EXCEL_ERRORS = {"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA"}
# "12", "12 场", "3.5小时", "1,234": a number, optionally followed by a short unit word.
_NUMBER_TEXT = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z\u4e00-\u9fff]{0,4})$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
_DATE_TEXT = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


class NotAReplyForm(Exception):
    """The file is a workbook but not this campaign's reply form."""

    reason_code = "not_reply_form"

    def __init__(self, message_zh: str, detail: str = ""):
        super().__init__(message_zh, detail)
        self.message_zh = message_zh
        self.detail = detail

    def __str__(self) -> str:
        return self.message_zh


@dataclass
class CellError:
    cell: str       # "C9"; empty when the cell itself is missing (a deleted row or column)
    key: str        # the schema key, "ziran.hours"
    label: str      # "关爱自然·志愿服务时长（小时）"
    message: str    # what is wrong and what to do

    def __str__(self) -> str:
        return f"{self.cell} {self.label}：{self.message}" if self.cell else f"{self.label}：{self.message}"


@dataclass
class FormReading:
    token: str | None            # the token, when every place that holds one agrees; else None
    unit_name: str | None
    values: dict[str, object]    # schema key -> int | Decimal | str | date | None
    errors: list[CellError]
    tokens: list[tuple[str, str]] = field(default_factory=list)   # (source, token) for each place
    sheet: str = ""
    schema_matches: bool | None = None   # made from this schema version? None: cannot tell
    cells: dict[str, str] = field(default_factory=dict)          # schema key -> cell address read

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def token_conflict(self) -> bool:
        """Different tokens in different places: matching must go to staff review."""
        return len({token for _, token in self.tokens}) > 1

    def json_values(self) -> dict[str, object]:
        """The values as JSON (Submission.values): Decimal -> int or float, date -> ISO string.
        Floats carry at most the schema's few decimals, so str(float) gives the typed number back."""
        return {key: _jsonable(value) for key, value in self.values.items()}

    def error_lines(self) -> list[str]:
        return [str(error) for error in self.errors]


def _jsonable(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- Public entry points. ---------------------------------------------------------------------------

def read_reply_form(data: bytes, schema: FormSchema, *, limits: Limits = FORM_LIMITS,
                    isolated: bool = True) -> FormReading:
    """Read and validate a returned form. Raises UnsafeFile (refuse, ask for a plain .xlsx) or
    NotAReplyForm. With `isolated` (the default) the workbook is parsed in a worker process with
    memory, CPU and time limits (ooxml_guard.run_with_limits)."""
    _require_spreadsheet(data, limits)
    if isolated:
        return run_with_limits(parse_reply_form, data, schema, limits=limits)
    return parse_reply_form(data, schema)


def looks_like_reply_form(data: bytes, schema: FormSchema, *, limits: Limits = FORM_LIMITS,
                          isolated: bool = True) -> bool:
    """Whether the file is this schema's reply form, judged by its structure (labels) or by our
    hidden marker. Never raises for bad input: an unsafe or unreadable file is simply not a form
    (use ooxml_guard.check_ooxml() first to answer such files)."""
    try:
        _require_spreadsheet(data, limits)
        if isolated:
            return run_with_limits(_detect, data, schema, limits=limits)
        return _detect(data, schema)
    except (UnsafeFile, NotAReplyForm):
        return False


def _require_spreadsheet(data: bytes, limits: Limits) -> None:
    kind = check_ooxml(data, limits)
    if kind not in SPREADSHEET_KINDS:
        raise NotAReplyForm(f"附件是 {kind} 文件，不是回执表。请使用通知邮件附带的回执表（.xlsx）填写后发送。",
                            f"sniffed kind {kind}")


def _detect(data: bytes, schema: FormSchema) -> bool:
    book = _Book.load(data)
    layout = _best_layout(book, schema)
    return layout is not None and (layout.share >= MIN_STRUCTURE_SHARE or _ours(book, schema))


def _ours(book: "_Book", schema: FormSchema) -> bool:
    """Our hidden marker says the file was made from this very schema (even if a unit mangled it)."""
    return book.marker_fingerprint == schema_fingerprint(schema)


def parse_reply_form(data: bytes, schema: FormSchema) -> FormReading:
    """The reading itself, in this process (call after check_ooxml; read_reply_form does both)."""
    book = _Book.load(data)
    layout = _best_layout(book, schema)
    if layout is None or (layout.share < MIN_STRUCTURE_SHARE and not _ours(book, schema)):
        raise NotAReplyForm(_not_a_form_message(schema), "no sheet with the form's labels")
    tokens = _collect_tokens(book, layout)
    fingerprint = book.marker_fingerprint
    reading = FormReading(
        token=tokens[0][1] if tokens and len({t for _, t in tokens}) == 1 else None,
        unit_name=_text_of(layout.sheet.cells.get(layout.unit_name_at)) if layout.unit_name_at else None,
        values={}, errors=list(layout.structure_errors(schema)), tokens=tokens, sheet=layout.sheet.title,
        schema_matches=None if fingerprint is None else fingerprint == schema_fingerprint(schema))
    formulas = _FormulaCells(data, layout.sheet)
    filled = 0
    for key, spec in schema.iter_cells():
        position = layout.positions.get(key)
        if position is None:
            reading.values[key] = None
            continue
        address = f"{get_column_letter(position[1])}{position[0]}"
        reading.cells[key] = address
        raw = layout.sheet.cells.get(position)
        if raw is None:
            raw = formulas.value_at(position)
        filled += raw is not None
        value, problem = convert_value(raw, spec)
        reading.values[key] = value
        if problem:
            reading.errors.append(CellError(address, key, schema.label_of(key), problem))
    if layout.positions and not filled:
        # A blank form sent back by mistake: one clear sentence instead of a list of every cell.
        reading.errors = [CellError("", "", schema.title, "回执表还没有填写任何内容，请填写后重新发送")]
    return reading


def _not_a_form_message(schema: FormSchema) -> str:
    hint = f"“{schema.grid.row_header}”等表头" if schema.grid else f"“{schema.fields[0].label}”等栏目"
    return (f"附件中找不到回执表（没有{hint}）。请使用通知邮件附带的回执表填写，"
            "不要修改表头和栏目名称，填好后保存为 .xlsx 发送。")


# --- The workbook, as plain cells. -------------------------------------------------------------------

@dataclass
class _Sheet:
    title: str
    cells: dict[tuple[int, int], object]   # (row, column) -> value, non-empty cells only
    state: str = "visible"


@dataclass
class _Book:
    sheets: list[_Sheet]
    hidden: dict[str, str]                 # key -> value from our hidden sheet
    properties: dict[str, str]             # custom document properties
    marker_fingerprint: str | None

    @classmethod
    def load(cls, data: bytes, *, data_only: bool = True) -> "_Book":
        workbook = _open(data, data_only=data_only)
        try:
            sheets, budget = [], MAX_CELLS
            for worksheet in workbook.worksheets:
                if not hasattr(worksheet, "iter_rows"):
                    continue   # a chart sheet
                sheet, budget = _read_sheet(worksheet, budget)
                sheets.append(sheet)
            properties = {}
            for prop in getattr(workbook, "custom_doc_props", []) or []:
                if isinstance(getattr(prop, "value", None), str):
                    properties[prop.name] = prop.value
        finally:
            workbook.close()
        hidden: dict[str, str] = {}
        visible = []
        for sheet in sheets:
            if sheet.cells.get((1, 1)) == HIDDEN_MARKER or (
                    sheet.title == HIDDEN_SHEET_TITLE and sheet.state != "visible"):
                for (row, column), value in sheet.cells.items():
                    if column == 1 and isinstance(value, str):
                        hidden.setdefault(value, _text_of(sheet.cells.get((row, 2))) or "")
            else:
                visible.append(sheet)
        fingerprint = hidden.get("schema") or properties.get(SCHEMA_PROPERTY)
        return cls(visible, hidden, properties, fingerprint or None)


def _open(data: bytes, *, data_only: bool):
    try:
        return load_workbook(io.BytesIO(data), read_only=True, data_only=data_only, keep_links=False)
    except (UnsafeFile, MemoryError):
        raise
    except Exception as exc:  # openpyxl raises many kinds of error for damaged parts
        raise UnsafeFile("unreadable", "文件无法作为 Excel 工作簿读取（可能已损坏）。请在 Excel 或 WPS 中"
                         "重新保存为 .xlsx 后发送。", f"{type(exc).__name__}: {exc}") from None


def _read_sheet(worksheet, budget: int) -> tuple[_Sheet, int]:
    worksheet.reset_dimensions()   # the stored dimension may be wrong, or absurdly large
    cells: dict[tuple[int, int], object] = {}
    for row in worksheet.iter_rows():
        for cell in row:
            value = getattr(cell, "value", None)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            budget -= 1
            if budget < 0:
                raise unsafe("parse_limit", f"more than {MAX_CELLS} non-empty cells")
            cells[(cell.row, cell.column)] = value
    return _Sheet(worksheet.title, cells, getattr(worksheet, "sheet_state", "visible")), budget


# --- Finding the form by its labels. -------------------------------------------------------------------

def normalise_label(value) -> str:
    """Labels compare after NFKC (full-width forms), without spaces and without a required-mark."""
    if not isinstance(value, str):
        return ""
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", value))
    return text.rstrip("*")


@dataclass
class _Layout:
    sheet: _Sheet
    positions: dict[str, tuple[int, int]]      # schema key -> (row, column) of its input cell
    missing_rows: list = field(default_factory=list)
    missing_columns: list = field(default_factory=list)
    missing_fields: list = field(default_factory=list)
    header_missing: bool = False
    unit_name_at: tuple[int, int] | None = None
    token_at: tuple[int, int] | None = None
    found: int = 0          # labels found
    expected: int = 1       # labels the schema has
    filled: int = 0         # input cells with something in them

    @property
    def share(self) -> float:
        return self.found / self.expected

    def structure_errors(self, schema: FormSchema):
        move_on = "请使用通知邮件附带的回执表重新填写，不要修改或删除表中的行列标题。"
        for row in self.missing_rows:
            yield CellError("", row.key, row.label, f"表中找不到“{row.label}”这一行。{move_on}")
        for column in self.missing_columns:
            yield CellError("", column.key, column.label, f"表中找不到“{column.label}”这一列。{move_on}")
        for spec in self.missing_fields:
            yield CellError("", spec.key, spec.label, f"表中找不到“{spec.label}”一栏。{move_on}")
        if self.header_missing:
            yield CellError("", "", schema.grid.label, f"表中找不到“{schema.grid.row_header}”所在的表头行。{move_on}")


def _best_layout(book: _Book, schema: FormSchema) -> _Layout | None:
    """The sheet that shows most of the schema's labels (the caller judges whether enough)."""
    candidates = [_locate(sheet, schema) for sheet in book.sheets]
    if not candidates:
        return None
    # A unit that copied the sheet and filled the copy: prefer the one with values in it.
    return max(candidates, key=lambda layout: (layout.share, layout.filled))


def _label_index(sheet: _Sheet) -> dict[str, list[tuple[int, int]]]:
    index: dict[str, list[tuple[int, int]]] = {}
    for position in sorted(sheet.cells):
        label = normalise_label(sheet.cells[position])
        if label:
            index.setdefault(label, []).append(position)
    return index


def _locate(sheet: _Sheet, schema: FormSchema) -> _Layout:
    index = _label_index(sheet)
    layout = _Layout(sheet, {})
    expected = len(schema.fields)
    used: set[tuple[int, int]] = set()
    if schema.grid:
        expected += len(schema.grid.rows) + len(schema.grid.columns)
        _locate_grid(sheet, schema, index, layout, used)
    for spec in schema.fields:
        spot = next((p for p in index.get(normalise_label(spec.label), []) if p not in used), None)
        if spot is None:
            layout.missing_fields.append(spec)
            continue
        used.add(spot)
        layout.found += 1
        layout.positions[spec.key] = (spot[0], spot[1] + 1)
    for label, attribute in ((UNIT_NAME_LABEL, "unit_name_at"), (TOKEN_LABEL, "token_at")):
        spot = next(iter(index.get(normalise_label(label), [])), None)
        if spot:
            setattr(layout, attribute, (spot[0], spot[1] + 1))
    layout.expected = max(expected, 1)
    layout.filled = sum(1 for p in layout.positions.values() if p in sheet.cells)
    return layout


def _locate_grid(sheet: _Sheet, schema: FormSchema, index, layout: _Layout, used: set) -> None:
    grid = schema.grid
    column_labels = {normalise_label(c.label): c for c in grid.columns}
    best_header, best_columns = None, {}
    for row, column in index.get(normalise_label(grid.row_header), []):
        columns = {}
        for (r, c), value in sheet.cells.items():
            spec = column_labels.get(normalise_label(value)) if r == row and c > column else None
            if spec and spec.key not in columns:
                columns[spec.key] = c
        if best_header is None or len(columns) > len(best_columns):
            best_header, best_columns = (row, column), columns
    if best_header is None:
        layout.header_missing = True
        return
    header_row, label_column = best_header
    used.add(best_header)
    rows: dict[str, int] = {}
    row_labels = {normalise_label(r.label): r for r in grid.rows}
    for r in range(header_row + 1, header_row + 1 + MAX_GRID_SCAN):
        grid_row = row_labels.get(normalise_label(sheet.cells.get((r, label_column))))
        if grid_row and grid_row.key not in rows:
            rows[grid_row.key] = r
            used.add((r, label_column))
    layout.missing_rows.extend(r for r in grid.rows if r.key not in rows)
    layout.missing_columns.extend(c for c in grid.columns if c.key not in best_columns)
    layout.found += len(rows) + len(best_columns)
    for row_key, r in rows.items():
        for column_key, c in best_columns.items():
            layout.positions[f"{row_key}.{column_key}"] = (r, c)
            used.add((header_row, c))


def _collect_tokens(book: _Book, layout: _Layout) -> list[tuple[str, str]]:
    found = []
    texts = (("cell", _text_of(layout.sheet.cells.get(layout.token_at)) if layout.token_at else None),
             ("hidden_sheet", book.hidden.get("token")), ("custom_property", book.properties.get(TOKEN_PROPERTY)))
    for source, text in texts:
        token = token_codec.parse(text) if text else None
        if token is not None:
            found.append((source, str(token)))
    return found


def _text_of(value) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


# --- Formulas without cached results. -----------------------------------------------------------------

class _FormulaCells:
    """Computes an input cell that holds a formula but no cached result (a file written by a
    program that does not calculate). Loaded lazily: most forms never need it."""

    def __init__(self, data: bytes, sheet: _Sheet):
        self._data, self._sheet, self._formulas = data, sheet, None

    def _formula_cells(self) -> dict[tuple[int, int], object]:
        if self._formulas is None:
            book = _Book.load(self._data, data_only=False)
            match = next((s for s in book.sheets if s.title == self._sheet.title), None)
            self._formulas = match.cells if match else {}
        return self._formulas

    def value_at(self, position: tuple[int, int]):
        formula = self._formula_cells().get(position)
        if not (isinstance(formula, str) and formula.startswith("=")):
            return None
        try:
            return _Evaluator(self._sheet.cells, self._formula_cells()).cell(position, depth=0)
        except _Unsupported:
            return _FormulaNotComputed(formula)


@dataclass(frozen=True)
class _FormulaNotComputed:
    formula: str


class _Unsupported(Exception):
    pass


class _Evaluator:
    """SUM, + - * / %, parentheses, numbers and references on the same sheet; nothing else."""

    def __init__(self, values, formulas):
        self.values, self.formulas = values, formulas
        self.active: set[tuple[int, int]] = set()

    def cell(self, position, depth: int):
        value = self.values.get(position)
        formula = self.formulas.get(position)
        if value is None and isinstance(formula, str) and formula.startswith("="):
            if depth > _FORMULA_DEPTH or position in self.active:
                raise _Unsupported("circular or too deep")
            self.active.add(position)
            try:
                value = _FormulaParser(formula, self, depth + 1).result()
            finally:
                self.active.discard(position)
        return value

    def number(self, position, depth: int) -> Decimal:
        value = self.cell(position, depth)
        if value is None:
            return Decimal(0)
        number = _plain_number(value)
        if number is None:
            raise _Unsupported("not a number")
        return number


def _plain_number(value) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


class _FormulaParser:
    def __init__(self, formula: str, evaluator: _Evaluator, depth: int):
        try:
            items = Tokenizer(formula).items
        except Exception:
            raise _Unsupported("does not tokenize") from None
        self.items = [t for t in items if t.type != Token.WSPACE]
        self.at, self.evaluator, self.depth = 0, evaluator, depth

    def result(self) -> Decimal:
        value = self._sum()
        if self.at != len(self.items):
            raise _Unsupported("trailing tokens")
        return value

    def _peek(self):
        return self.items[self.at] if self.at < len(self.items) else None

    def _take(self):
        token = self._peek()
        if token is None:
            raise _Unsupported("unexpected end")
        self.at += 1
        return token

    def _sum(self) -> Decimal:
        value = self._product()
        while (token := self._peek()) is not None and token.type == Token.OP_IN and token.value in "+-":
            self.at += 1
            right = self._product()
            value = value + right if token.value == "+" else value - right
        return value

    def _product(self) -> Decimal:
        value = self._unary()
        while (token := self._peek()) is not None and token.type == Token.OP_IN and token.value in "*/":
            self.at += 1
            right = self._unary()
            try:
                value = value * right if token.value == "*" else value / right
            except (DivisionByZero, InvalidOperation):
                raise _Unsupported("division by zero") from None
        return value

    def _unary(self) -> Decimal:
        token = self._peek()
        if token is not None and token.type == Token.OP_PRE:
            self.at += 1
            value = self._unary()
            return -value if token.value == "-" else value
        value = self._primary()
        while (token := self._peek()) is not None and token.type == Token.OP_POST and token.value == "%":
            self.at += 1
            value = value / 100
        return value

    def _primary(self) -> Decimal:
        token = self._take()
        if token.type == Token.OPERAND and token.subtype == Token.NUMBER:
            return Decimal(token.value)
        if token.type == Token.OPERAND and token.subtype == Token.RANGE:
            cells = _cells_of(token.value)
            if len(cells) != 1:
                raise _Unsupported("a range outside SUM")
            return self.evaluator.number(cells[0], self.depth)
        if token.type == Token.PAREN and token.subtype == Token.OPEN:
            value = self._sum()
            closing = self._take()
            if not (closing.type == Token.PAREN and closing.subtype == Token.CLOSE):
                raise _Unsupported("unbalanced parentheses")
            return value
        if token.type == Token.FUNC and token.subtype == Token.OPEN and token.value.upper() == "SUM(":
            return self._sum_function()
        raise _Unsupported(f"token {token.value!r}")

    def _sum_function(self) -> Decimal:
        total = Decimal(0)
        while True:
            token = self._peek()
            if token is not None and token.type == Token.OPERAND and token.subtype == Token.RANGE:
                self.at += 1
                for position in _cells_of(token.value):
                    # Like Excel: SUM over a range skips text and empty cells.
                    value = self.evaluator.cell(position, self.depth)
                    if value is not None and not isinstance(value, (str, bool)):
                        total += _plain_number(value) or 0
            else:
                total += self._sum()
            token = self._take()
            if token.type == Token.FUNC and token.subtype == Token.CLOSE:
                return total
            if not (token.type == Token.SEP and token.subtype == Token.ARG):
                raise _Unsupported("bad SUM arguments")


def _cells_of(reference: str) -> list[tuple[int, int]]:
    if "!" in reference:
        raise _Unsupported("a reference to another sheet")
    try:
        min_col, min_row, max_col, max_row = range_boundaries(reference.replace("$", ""))
    except (ValueError, TypeError):
        raise _Unsupported(f"reference {reference!r}") from None
    if None in (min_col, min_row, max_col, max_row):
        raise _Unsupported("a whole row or column")
    if (max_col - min_col + 1) * (max_row - min_row + 1) > _FORMULA_RANGE_CELLS:
        raise _Unsupported("range too large")
    return [(r, c) for r in range(min_row, max_row + 1) for c in range(min_col, max_col + 1)]


# --- One value: conversion and validation. --------------------------------------------------------------

_FIX = "请改正后重新发送"


def convert_value(raw, spec: FieldSpec) -> tuple[object, str | None]:
    """The typed value of one cell and, if it is not acceptable, what to tell the unit."""
    if isinstance(raw, _FormulaNotComputed):
        return None, f"是公式（{raw.formula[:40]}），无法读取计算结果。请直接填写{rule_text(spec)}，{_FIX}"
    if isinstance(raw, str) and raw.strip() in _EXCEL_ERRORS:
        return None, f"显示错误值 {raw.strip()}，请直接填写{rule_text(spec)}，{_FIX}"
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if not spec.required:
            return None, None
        if spec.numeric:
            return None, "未填写。没有的请填 0，不要留空，请补填后重新发送"
        return None, "未填写，此项必须填写，请补填后重新发送"
    if spec.numeric:
        return _convert_number(raw, spec)
    if spec.type == FieldType.phone:
        return _convert_phone(raw)
    if spec.type == FieldType.date:
        return _convert_date(raw, spec)
    return _convert_text(raw, spec)


def _shown(raw) -> str:
    text = raw.isoformat() if isinstance(raw, (date, datetime)) else str(raw)
    text = text.strip().replace("\n", " ")
    return text if len(text) <= 20 else text[:20] + "…"


def _number_from(raw) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, Decimal)):
        return Decimal(raw)
    if isinstance(raw, float):
        return Decimal(repr(raw))
    if not isinstance(raw, str):
        return None
    text = unicodedata.normalize("NFKC", raw).strip().replace("\u2212", "-")
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    match = _NUMBER_TEXT.match(text)
    if not match:
        return None
    sign, digits, _unit_word = match.groups()
    return Decimal(sign + (digits.rstrip(".") or "0"))


def _convert_number(raw, spec: FieldSpec) -> tuple[object, str | None]:
    wrong = f"应为{rule_text(spec)}（现为“{_shown(raw)}”），{_FIX}"
    if isinstance(raw, (datetime, date)):
        return None, (f"被表格识别成了日期“{_shown(raw)}”。请把单元格格式改为“数值”，"
                      f"重新填写{rule_text(spec)}，{_FIX}")
    number = _number_from(raw)
    if number is None or not number.is_finite():
        return None, wrong
    if isinstance(raw, float):
        # A float from a calculation may carry noise (0.30000000000000004); keep the schema's places.
        places = 0 if spec.type == FieldType.integer else spec.decimals
        rounded = round(number, places)
        if abs(number - rounded) < Decimal("1e-9"):
            number = rounded
    if spec.type == FieldType.integer or spec.decimals == 0:
        if number != number.to_integral_value():
            return None, f"应为整数，不能有小数（现为“{_shown(raw)}”），{_FIX}"
        number = Decimal(int(number))
    elif -number.normalize().as_tuple().exponent > spec.decimals:
        return None, f"最多保留 {spec.decimals} 位小数（现为“{_shown(raw)}”），{_FIX}"
    if (spec.min is not None and number < Decimal(repr(spec.min))) or (
            spec.max is not None and number > Decimal(repr(spec.max))):
        return None, wrong
    if spec.type == FieldType.integer:
        return int(number), None
    # 12.50 -> 12.5 and 12.0 -> 12, never 1.2E+1.
    return (number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()), None


def _convert_phone(raw) -> tuple[object, str | None]:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    digits = sum(ch.isdigit() for ch in text)
    if not PHONE_PATTERN.match(text) or digits < MIN_PHONE_DIGITS:
        return None, (f"“{_shown(raw)}”不是有效的电话号码，请填写如 0931-8259130 或 13800000000 的号码，"
                      f"{_FIX}")
    return text, None


def _convert_date(raw, spec: FieldSpec) -> tuple[object, str | None]:
    if isinstance(raw, datetime):
        return raw.date(), None
    if isinstance(raw, date):
        return raw, None
    match = _DATE_TEXT.match(unicodedata.normalize("NFKC", str(raw)).strip())
    if match:
        try:
            return date(*map(int, match.groups())), None
        except ValueError:
            pass
    return None, f"应为{rule_text(spec)}（现为“{_shown(raw)}”），{_FIX}"


def _convert_text(raw, spec: FieldSpec) -> tuple[object, str | None]:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, (datetime, date)):
        raw = raw.isoformat()
    # Keep the unit's line breaks and every character (GB18030 and beyond); only unify newlines.
    text = str(raw).replace("\r\n", "\n").replace("\r", "\n").replace("_x000D_", "").strip()
    if spec.max_length and len(text) > spec.max_length:
        return None, (f"共 {len(text)} 字，超过了 {spec.max_length} 字的上限，请精简后重新发送")
    if spec.required and not text:
        return None, "未填写，此项必须填写，请补填后重新发送"
    return text, None
