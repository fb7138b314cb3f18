"""Filling a reply form as a unit's staff member would: find each input cell by its printed label.

Used by the demo's simulated units and by tests. Deliberately independent of forms.form_reader's
own locator, so a test that fills with this and reads with that checks the two against each other."""
from __future__ import annotations

import io

import openpyxl

from forms.reply_form import FORM_SHEET_TITLE
from forms.schema import FormSchema


def input_cells(sheet, schema: FormSchema) -> dict[str, str]:
    """Schema key → cell coordinate, by the labels printed on the sheet. A grid row whose label is
    missing (a unit deleted it) is left out."""
    texts = [cell for row in sheet.iter_rows() for cell in row if isinstance(cell.value, str)]
    cells: dict[str, str] = {}
    if schema.grid:
        header = next(c for c in texts if c.value == schema.grid.row_header)
        columns = {c.value: c.column for c in texts if c.row == header.row}
        for row in schema.grid.rows:
            label = next((c for c in texts if c.value == row.label and c.column == header.column), None)
            if label is None:
                continue
            for column in schema.grid.columns:
                cells[f"{row.key}.{column.key}"] = sheet.cell(row=label.row, column=columns[column.label]).coordinate
    for spec in schema.fields:
        label = next(c for c in texts if c.value.rstrip(" *") == spec.label)
        cells[spec.key] = sheet.cell(row=label.row, column=label.column + 1).coordinate
    return cells


def fill_reply_form(form: bytes, schema: FormSchema, values: dict[str, object], *, edit=None) -> bytes:
    """The form with `values` typed in (keys from schema.iter_cells()); `edit(workbook, sheet)` may
    change the sheet first, as a unit sometimes does (insert a row, rename the sheet)."""
    workbook = openpyxl.load_workbook(io.BytesIO(form))
    sheet = workbook[FORM_SHEET_TITLE] if FORM_SHEET_TITLE in workbook.sheetnames else workbook.worksheets[0]
    if edit:
        edit(workbook, sheet)
    cells = input_cells(sheet, schema)
    for key, value in values.items():
        sheet[cells[key]] = value
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
