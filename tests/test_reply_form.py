"""The per-unit reply form: what a unit receives, opened back with openpyxl and with LibreOffice."""
from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from openpyxl import load_workbook

import forms.reply_form as reply_form
from other_schemas import safety_definition
from forms.campaign import CampaignDefinition, load_campaign
from forms.reply_form import (CAMPAIGN_PROPERTY, FORM_SHEET_TITLE, HIDDEN_SHEET_TITLE, TOKEN_LABEL, TOKEN_PROPERTY,
                              UNIT_NAME_LABEL, build_reply_form, schema_fingerprint)
from forms.ooxml_guard import FORM_LIMITS, check_ooxml
from forms.schema import FieldSpec, FieldType, FormSchema
from models.settings import get_settings, reload_settings
from models.tokens import sign

CAMPAIGN_DIR = Path(__file__).resolve().parents[1] / "campaigns" / "xinqu-2023-9"


@pytest.fixture
def example(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("NOTICEFLOW_SECRET", "reply-form-tests")
    reload_settings()
    yield load_campaign(CAMPAIGN_DIR)
    get_settings.cache_clear()




def fields_only_definition(base: CampaignDefinition) -> CampaignDefinition:
    form = FormSchema(title="联络员信息表",
                      fields=[FieldSpec(key="person", label="联络员", type="text", required=True, max_length=20),
                              FieldSpec(key="mobile", label="手机", type="phone", required=True)])
    return base.model_copy(update={"form": form, "spec": base.spec.model_copy(update={"id": "liaison-2024"})})


def token_for(definition, unit) -> str:
    return str(sign(definition.spec.token_prefix, unit.code))


def find_label(sheet, text: str):
    return next(cell for row in sheet.iter_rows() for cell in row if cell.value == text)


def validation_of(sheet, coordinate: str):
    return next(dv for dv in sheet.data_validations.dataValidation if coordinate in dv.sqref)


def input_cells(sheet, schema: FormSchema) -> dict[str, str]:
    """Schema key -> coordinate, found here by the labels (independently of the reader)."""
    cells = {}
    if schema.grid:
        header = find_label(sheet, schema.grid.row_header)
        columns = {cell.value: cell.column_letter for cell in sheet[header.row]}
        for row in schema.grid.rows:
            label = next(c for c in sheet["A"] if c.value == row.label)
            for column in schema.grid.columns:
                cells[f"{row.key}.{column.key}"] = f"{columns[column.label]}{label.row}"
    for spec in schema.fields:
        label = next(c for c in sheet["A"] if isinstance(c.value, str) and c.value.startswith(spec.label))
        cells[spec.key] = f"B{label.row}"
    return cells


def test_form_carries_unit_name_and_token_in_three_places(example, tmp_path):
    unit = example.units[4]
    token = token_for(example, unit)
    path = build_reply_form(example, unit, token, tmp_path / "forms" / "unit.xlsx")
    workbook = load_workbook(path)
    sheet = workbook[FORM_SHEET_TITLE]
    assert sheet["A1"].value == example.form.title

    name_cell = sheet.cell(row=find_label(sheet, UNIT_NAME_LABEL).row, column=2)
    token_cell = sheet.cell(row=find_label(sheet, TOKEN_LABEL).row, column=2)
    assert name_cell.value == unit.name and token_cell.value == token
    assert name_cell.protection.locked and token_cell.protection.locked
    assert sheet.protection.sheet

    hidden = workbook[HIDDEN_SHEET_TITLE]
    assert hidden.sheet_state == "veryHidden"
    assert token in [cell.value for row in hidden.iter_rows() for cell in row]
    properties = {prop.name: prop.value for prop in workbook.custom_doc_props}
    assert properties[TOKEN_PROPERTY] == token
    assert properties[CAMPAIGN_PROPERTY] == example.id


def test_input_cells_are_unlocked_and_validated_in_chinese(example, tmp_path):
    path = build_reply_form(example, example.units[0], token_for(example, example.units[0]), tmp_path / "f.xlsx")
    sheet = load_workbook(path)[FORM_SHEET_TITLE]
    specs = dict(example.form.iter_cells())
    for key, coordinate in input_cells(sheet, example.form).items():
        spec = specs[key]
        assert not sheet[coordinate].protection.locked, key
        validation = validation_of(sheet, coordinate)
        assert validation.showInputMessage and validation.showErrorMessage is not None
        assert validation.promptTitle == spec.label[:32]
        assert "请填写" in validation.prompt
        if spec.type == FieldType.integer:
            assert (validation.type, validation.formula1, validation.formula2) == (
                "whole", str(int(spec.min)), str(int(spec.max)))
            assert "整数" in validation.error
        elif spec.type == FieldType.number:
            assert validation.type == "decimal" and validation.formula1 == "0"
        elif spec.type == FieldType.text:
            assert (validation.type, validation.formula1) == ("textLength", str(spec.max_length))
        elif spec.type == FieldType.phone:
            assert validation.type == "textLength"
            assert sheet[coordinate].number_format == "@"   # keeps the leading 0 of 0931-…


def test_long_texts_are_tall_wrapped_merged_cells(example, tmp_path):
    path = build_reply_form(example, example.units[0], token_for(example, example.units[0]), tmp_path / "f.xlsx")
    sheet = load_workbook(path)[FORM_SHEET_TITLE]
    cells = input_cells(sheet, example.form)
    stories = sheet[cells["stories"]]
    merged = next(r for r in sheet.merged_cells.ranges if stories.coordinate in r)
    assert (merged.min_col, merged.max_col) == (2, sheet.max_column)
    assert stories.alignment.wrap_text
    assert sheet.row_dimensions[stories.row].height >= 60
    assert sheet.row_dimensions[sheet[cells["filler"]].row].height < 40


def test_print_setup_and_readable_columns(example, tmp_path):
    path = build_reply_form(example, example.units[0], token_for(example, example.units[0]), tmp_path / "f.xlsx")
    sheet = load_workbook(path)[FORM_SHEET_TITLE]
    assert sheet.page_setup.orientation == "landscape"
    assert int(sheet.page_setup.paperSize) == int(sheet.PAPERSIZE_A4)
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert (int(sheet.page_setup.fitToWidth), int(sheet.page_setup.fitToHeight)) == (1, 0)
    longest_row_label = max(len(r.label) for r in example.form.grid.rows)
    assert sheet.column_dimensions["A"].width >= 2 * longest_row_label
    for letter in "BCDE":
        assert sheet.column_dimensions[letter].width >= 12


def test_names_with_markup_and_rare_characters_survive(example, tmp_path):
    unit = example.units[0].model_copy(update={"name": "A&B<研究>院“𠀀堃”分部"})
    path = build_reply_form(example, unit, token_for(example, unit), tmp_path / "f.xlsx")
    sheet = load_workbook(path)[FORM_SHEET_TITLE]
    assert sheet.cell(row=find_label(sheet, UNIT_NAME_LABEL).row, column=2).value == unit.name


def test_control_characters_in_a_name_do_not_break_the_file(example, tmp_path):
    unit = example.units[0].model_copy(update={"name": "新区\x07档案馆\x0b"})
    path = build_reply_form(example, unit, token_for(example, unit), tmp_path / "f.xlsx")
    sheet = load_workbook(path)[FORM_SHEET_TITLE]
    assert sheet.cell(row=find_label(sheet, UNIT_NAME_LABEL).row, column=2).value == "新区档案馆"


def test_template_is_built_once_per_campaign(example, tmp_path, monkeypatch):
    reply_form._templates.clear()
    calls = []
    original = reply_form._make_template
    monkeypatch.setattr(reply_form, "_make_template", lambda d: calls.append(d.id) or original(d))
    paths = [build_reply_form(example, unit, token_for(example, unit), tmp_path / f"{unit.code}.xlsx")
             for unit in example.units[:12]]
    assert calls == [example.id]
    tokens = set()
    for unit, path in zip(example.units[:12], paths):
        sheet = load_workbook(path)[FORM_SHEET_TITLE]
        assert sheet.cell(row=find_label(sheet, UNIT_NAME_LABEL).row, column=2).value == unit.name
        tokens.add(sheet.cell(row=find_label(sheet, TOKEN_LABEL).row, column=2).value)
    assert len(tokens) == 12
    other = safety_definition(example)
    build_reply_form(other, other.units[0], token_for(other, other.units[0]), tmp_path / "other.xlsx")
    assert calls == [example.id, other.id]


def test_rebuilding_a_form_gives_the_same_bytes(example, tmp_path):
    unit = example.units[3]
    first = build_reply_form(example, unit, token_for(example, unit), tmp_path / "a.xlsx").read_bytes()
    second = build_reply_form(example, unit, token_for(example, unit), tmp_path / "b.xlsx").read_bytes()
    assert first == second


def members(data: bytes) -> dict[str, bytes]:
    """Every member, inflated; zipfile checks each one's CRC-32 and size on the way."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()}


def test_each_member_is_what_openpyxl_wrote_with_the_unit_filled_in(example):
    """The forms are joined from pieces deflated ahead: inflated, they must be exactly the workbook
    openpyxl saved with placeholders, the unit's name and token put in their place."""
    saved = io.BytesIO()
    reply_form._layout_workbook(example, "NAMEHERE", "TOKENHERE").save(saved)
    expected_members = members(saved.getvalue())
    for unit in (example.units[0], example.units[0].model_copy(update={"name": "A&B<研究>院“𠀀堃”"})):
        token = token_for(example, unit)
        form = reply_form.reply_form_bytes(example, unit.name, token)
        got = members(form)
        assert list(got) == list(expected_members)
        for name, content in expected_members.items():
            if name == "docProps/core.xml":   # carries the time openpyxl saved it
                continue
            expected = content.replace(b"NAMEHERE", escape(unit.name).encode()).replace(b"TOKENHERE", token.encode())
            assert got[name] == expected, name
        assert check_ooxml(form, FORM_LIMITS) == "xlsx"


def test_forms_of_different_units_differ_only_where_the_unit_is(example):
    first, second = example.units[0], example.units[1]
    one = members(reply_form.reply_form_bytes(example, first.name, token_for(example, first)))
    other = members(reply_form.reply_form_bytes(example, second.name, token_for(example, second)))
    differing = {name for name in one if one[name] != other[name]}
    assert differing == {"xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml", "docProps/custom.xml"}


def test_another_schema_needs_no_code_change(example, tmp_path):
    definition = safety_definition(example)
    unit = definition.units[0]
    path = build_reply_form(definition, unit, token_for(definition, unit), tmp_path / "safety.xlsx")
    workbook = load_workbook(path)
    sheet = workbook[FORM_SHEET_TITLE]
    cells = input_cells(sheet, definition.form)
    assert len(cells) == 2 * 3 + 3
    assert validation_of(sheet, cells["venue.fines"]).type == "decimal"
    assert sheet[cells["venue.fines"]].number_format == "0.00"
    assert validation_of(sheet, cells["checked_on"]).type == "date"
    assert validation_of(sheet, cells["lead"]).formula1 == "10"
    properties = {prop.name: prop.value for prop in workbook.custom_doc_props}
    assert properties["noticeflow_schema"] == schema_fingerprint(definition.form)
    assert properties["noticeflow_schema"] != schema_fingerprint(example.form)


def test_form_without_grid(example, tmp_path):
    definition = fields_only_definition(example)
    unit = definition.units[0]
    sheet = load_workbook(build_reply_form(definition, unit, token_for(definition, unit), tmp_path / "x.xlsx"))[
        FORM_SHEET_TITLE]
    cells = input_cells(sheet, definition.form)
    assert set(cells) == {"person", "mobile"}
    assert not sheet[cells["mobile"]].protection.locked


def test_validation_texts_fit_excel_limits(example, tmp_path):
    for definition in (example, safety_definition(example), fields_only_definition(example)):
        unit = definition.units[0]
        sheet = load_workbook(build_reply_form(definition, unit, "XQ9-A-AAAAAA", tmp_path / "v.xlsx"))[
            FORM_SHEET_TITLE]
        for validation in sheet.data_validations.dataValidation:
            assert len(validation.promptTitle or "") <= 32 and len(validation.errorTitle or "") <= 32
            assert len(validation.prompt or "") <= 255 and len(validation.error or "") <= 225


@pytest.mark.rendered
def test_libreoffice_opens_the_form_without_error(example, tmp_path):
    if not (shutil.which("soffice") and shutil.which("pdftotext")):
        pytest.skip("LibreOffice or poppler is not installed")
    unit = example.units[0]
    token = token_for(example, unit)
    form = build_reply_form(example, unit, token, tmp_path / "回执表.xlsx")
    result = subprocess.run(["soffice", f"-env:UserInstallation=file://{tmp_path}/profile", "--headless",
                             "--convert-to", "pdf", "--outdir", str(tmp_path / "pdf"), str(form)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr
    pdf = tmp_path / "pdf" / "回执表.pdf"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = "".join(text.split())
    for expected in [unit.name, token, example.form.grid.row_header, TOKEN_LABEL, "填报说明",
                     *(r.label for r in example.form.grid.rows), *(f.label for f in example.form.fields)]:
        assert "".join(expected.split()) in flat, expected
    assert "0.0" in flat   # LibreOffice computed the 合计 formulas
