"""Reading returned reply forms: as sent, re-saved by LibreOffice, rows inserted, copied into a fresh
workbook, typed sloppily; and the validation messages a unit gets back."""
from __future__ import annotations

import io
import os
import random
import re
import shutil
import subprocess
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import docx
import pytest
from openpyxl import Workbook, load_workbook

from other_schemas import safety_definition
from forms.form_filling import fill_reply_form, input_cells
from forms.campaign import load_campaign
from forms.form_reader import (CellError, NotAReplyForm, looks_like_reply_form, parse_reply_form,
                               read_reply_form)
from forms.ooxml_guard import UnsafeFile, run_with_limits
from forms.reply_form import FORM_SHEET_TITLE, TOKEN_LABEL, reply_form_bytes
from forms.schema import FieldSpec, FormSchema
from models.settings import get_settings, reload_settings
from models.tokens import sign

CAMPAIGN_DIR = Path(__file__).resolve().parents[1] / "campaigns" / "xinqu-2023-9"
RARE_TEXT = "第一个事例：志愿者王堃在社区服务𠀀。\n第二个事例：\r\n  清理河道，“关爱自然”。"


@pytest.fixture
def example(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTICEFLOW_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("NOTICEFLOW_SECRET", "form-reader-tests")
    reload_settings()
    yield load_campaign(CAMPAIGN_DIR)
    get_settings.cache_clear()




def token_for(definition, unit) -> str:
    return str(sign(definition.spec.token_prefix, unit.code))




def good_values(schema: FormSchema) -> dict[str, object]:
    values = {}
    for index, (key, spec) in enumerate(schema.iter_cells()):
        if spec.type.value == "integer":
            values[key] = index + 1
        elif spec.type.value == "number":
            values[key] = index + 0.5
        elif spec.type.value == "phone":
            values[key] = "0931-8259130"
        elif spec.type.value == "date":
            values[key] = datetime(2024, 3, 5)
        else:
            values[key] = RARE_TEXT if (spec.max_length or 0) > 100 else "张三"
    return values




def address_of(form: bytes, schema: FormSchema, key: str) -> str:
    return input_cells(load_workbook(io.BytesIO(form))[FORM_SHEET_TITLE], schema)[key]


@pytest.fixture
def form(example):
    unit = example.units[2]
    return reply_form_bytes(example, unit.name, token_for(example, unit))


def soffice_resave(data: bytes, tmp_path: Path, name: str = "回执表（已填）.xlsx") -> bytes:
    """What a WPS/Excel re-save does to the file, approximated by LibreOffice."""
    if not shutil.which("soffice"):
        pytest.skip("LibreOffice is not installed")
    source = tmp_path / "in" / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    result = subprocess.run(["soffice", f"-env:UserInstallation=file://{tmp_path}/profile", "--headless",
                             "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(tmp_path / "out"),
                             str(source)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return (tmp_path / "out" / name).read_bytes()


def test_filled_form_reads_back_exactly(example, form):
    values = good_values(example.form)
    reading = read_reply_form(fill_reply_form(form, example.form, values), example.form)
    assert reading.valid, reading.error_lines()
    unit = example.units[2]
    assert reading.unit_name == unit.name
    assert reading.token == token_for(example, unit)
    assert [source for source, _ in reading.tokens] == ["cell", "hidden_sheet", "custom_property"]
    assert not reading.token_conflict and reading.schema_matches is True
    assert reading.values["ziran.sessions"] == values["ziran.sessions"]
    assert isinstance(reading.values["ziran.sessions"], int)
    assert reading.values["ziran.hours"] == Decimal(str(values["ziran.hours"]))
    assert reading.values["stories"] == RARE_TEXT.replace("\r\n", "\n")   # line breaks and 𠀀 堃 kept
    assert reading.values["phone"] == "0931-8259130"
    assert reading.json_values()["ziran.hours"] == values["ziran.hours"]
    assert reading.cells["ziran.hours"] == address_of(form, example.form, "ziran.hours")


def test_isolated_and_in_process_readings_agree(example, form):
    data = fill_reply_form(form, example.form, good_values(example.form))
    assert read_reply_form(data, example.form) == read_reply_form(data, example.form, isolated=False)


@pytest.mark.parametrize("typed, expected", [("12", 12), ("１２", 12), ("12 场", 12), (" 7 ", 7), ("1,234", 1234),
                                             (12.0, 12), ("+3", 3)])
def test_integers_typed_as_text_are_understood(example, form, typed, expected):
    values = good_values(example.form) | {"ziran.sessions": typed}
    reading = read_reply_form(fill_reply_form(form, example.form, values), example.form, isolated=False)
    assert reading.valid, reading.error_lines()
    assert reading.values["ziran.sessions"] == expected


@pytest.mark.parametrize("typed, expected", [(" 3.5 ", "3.5"), ("３．５小时", "3.5"), ("12", "12"), (0.1 + 0.2, "0.3"),
                                             ("2.50", "2.5")])
def test_decimals_typed_any_way_are_exact(example, form, typed, expected):
    values = good_values(example.form) | {"ziran.hours": typed}
    reading = read_reply_form(fill_reply_form(form, example.form, values), example.form, isolated=False)
    assert reading.valid, reading.error_lines()
    assert reading.values["ziran.hours"] == Decimal(expected)
    assert str(reading.values["ziran.hours"]) == expected


@pytest.mark.parametrize("key, typed, words", [
    ("ziran.hours", -1, "应为 0 到 100000000 之间的数字"),
    ("ziran.sessions", "-3", "应为 0 到 100000 之间的整数"),
    ("ziran.sessions", 100001, "之间的整数"),
    ("ziran.sessions", "2.5", "应为整数"),
    ("ziran.sessions", "约20", "（现为“约20”）"),
    ("ziran.hours", "1.25", "最多保留 1 位小数"),
    ("ziran.volunteers", None, "未填写"),
    ("filler", "   ", "未填写"),
    ("filler", "张" * 21, "超过了 20 字的上限"),
    ("phone", "打电话找我", "不是有效的电话号码"),
    ("phone", "12-3", "不是有效的电话号码"),
    ("ziran.served", datetime(2023, 10, 1), "识别成了日期"),
    ("ziran.served", "#DIV/0!", "错误值"),
])
def test_each_error_names_the_cell_and_the_field(example, form, key, typed, words):
    values = good_values(example.form) | {key: typed}
    reading = read_reply_form(fill_reply_form(form, example.form, values), example.form, isolated=False)
    assert not reading.valid
    assert len(reading.errors) == 1, reading.error_lines()
    error = reading.errors[0]
    assert error.cell == address_of(form, example.form, key) and error.key == key
    assert error.label == example.form.label_of(key)
    assert str(error).startswith(f"{error.cell} {error.label}：")
    assert words in error.message
    assert "请" in error.message   # says what to do
    assert reading.values[key] is None


def test_error_message_reads_as_the_office_writes_it(example, form):
    values = good_values(example.form) | {"ziran.hours": "-2"}
    reading = read_reply_form(fill_reply_form(form, example.form, values), example.form, isolated=False)
    cell = address_of(form, example.form, "ziran.hours")
    assert reading.error_lines() == [
        f"{cell} 关爱自然·志愿服务时长（小时）：应为 0 到 100000000 之间的数字（最多1位小数）（现为“-2”），请改正后重新发送"]


def test_optional_fields_may_stay_empty(example, form):
    values = good_values(example.form) | {"stories": None, "problems": ""}
    reading = read_reply_form(fill_reply_form(form, example.form, values), example.form, isolated=False)
    assert reading.valid, reading.error_lines()
    assert reading.values["stories"] is None and reading.values["problems"] is None


def test_blank_form_sent_back_gets_one_clear_message(example, form):
    reading = read_reply_form(form, example.form, isolated=False)
    assert [e.message for e in reading.errors] == ["回执表还没有填写任何内容，请填写后重新发送"]


def test_inserted_rows_are_followed(example, form):
    def insert_rows(workbook, sheet):
        first_grid_row = next(c.row for c in sheet["A"] if c.value == example.form.grid.rows[0].label)
        sheet.insert_rows(first_grid_row + 2)          # between two activity kinds
        sheet.insert_rows(2, amount=2)                 # above everything but the title
    values = good_values(example.form) | {"ruoshi.hours": "-5"}
    data = fill_reply_form(form, example.form, values, edit=insert_rows)
    reading = read_reply_form(data, example.form, isolated=False)
    cell = address_of(data, example.form, "ruoshi.hours")
    assert [(e.cell, e.key) for e in reading.errors] == [(cell, "ruoshi.hours")]
    assert cell != address_of(form, example.form, "ruoshi.hours")   # the rows did move
    assert reading.values["huimin.sessions"] == values["huimin.sessions"]
    assert reading.values["phone"] == values["phone"]


def test_values_copied_into_a_fresh_workbook_still_read(example, form):
    values = good_values(example.form)
    original = load_workbook(io.BytesIO(fill_reply_form(form, example.form, values)))[FORM_SHEET_TITLE]
    fresh = Workbook()
    sheet = fresh.active
    sheet.title = "Sheet1"
    for row in original.iter_rows():
        for cell in row:
            if cell.value is not None:   # pasted two rows lower and one column to the right
                sheet.cell(row=cell.row + 2, column=cell.column + 1, value=cell.value)
    header = next(c for row in sheet.iter_rows() for c in row if c.value == example.form.grid.columns[0].label)
    header.value = " 活动 场次 "                 # a unit's stray spaces do not hide the column
    out = io.BytesIO()
    fresh.save(out)
    reading = read_reply_form(out.getvalue(), example.form, isolated=False)
    assert reading.valid, reading.error_lines()
    assert reading.tokens == [("cell", token_for(example, example.units[2]))]
    assert reading.token == token_for(example, example.units[2])
    assert reading.schema_matches is None
    assert reading.values["xuanjiang.sessions"] == values["xuanjiang.sessions"]


def test_disagreeing_tokens_are_all_reported(example, form):
    other = token_for(example, example.units[7])

    def overwrite_token(workbook, sheet):
        label = next(c for c in sheet["A"] if c.value == TOKEN_LABEL)
        sheet.cell(row=label.row, column=2, value=other)
    data = fill_reply_form(form, example.form, good_values(example.form), edit=overwrite_token)
    reading = read_reply_form(data, example.form, isolated=False)
    assert reading.token is None and reading.token_conflict
    assert ("cell", other) in reading.tokens
    assert ("hidden_sheet", token_for(example, example.units[2])) in reading.tokens


def test_formulas_without_cached_values_are_computed(example, form):
    cells = input_cells(load_workbook(io.BytesIO(form))[FORM_SHEET_TITLE], example.form)
    values = good_values(example.form) | {
        "xuanjiang.sessions": 4,
        "xuanjiang.volunteers": f"={cells['xuanjiang.sessions']}*3+1",
        "xuanjiang.served": f"=SUM({cells['xuanjiang.sessions']}:{cells['xuanjiang.volunteers']})",
        "xuanjiang.hours": "=1.5+2%*100",
        "articles": "=(2+4)/3"}
    reading = read_reply_form(fill_reply_form(form, example.form, values), example.form, isolated=False)
    assert reading.valid, reading.error_lines()
    assert reading.values["xuanjiang.volunteers"] == 13
    assert reading.values["xuanjiang.served"] == 17
    assert reading.values["xuanjiang.hours"] == Decimal("3.5")
    assert reading.values["articles"] == 2


def test_formula_that_cannot_be_computed_is_an_error(example, form):
    values = good_values(example.form) | {"ziran.sessions": "=VLOOKUP(1,Sheet2!A1:B9,2,FALSE)"}
    reading = read_reply_form(fill_reply_form(form, example.form, values), example.form, isolated=False)
    assert [e.key for e in reading.errors] == ["ziran.sessions"]
    assert "公式" in reading.errors[0].message


def test_filled_copy_of_the_sheet_wins_over_the_blank_original(example, form):
    values = good_values(example.form)

    def copy_sheet(workbook, sheet):
        workbook.copy_worksheet(sheet).title = "回执表（填报）"
    data = fill_reply_form(form, example.form, {}, edit=copy_sheet)
    workbook = load_workbook(io.BytesIO(data))
    copy = workbook["回执表（填报）"]
    for key, coordinate in input_cells(copy, example.form).items():
        copy[coordinate] = values[key]
    out = io.BytesIO()
    workbook.save(out)
    reading = read_reply_form(out.getvalue(), example.form, isolated=False)
    assert reading.sheet == "回执表（填报）" and reading.valid


@pytest.mark.rendered
def test_form_resaved_by_libreoffice_reads_the_same(example, form, tmp_path):
    cells = input_cells(load_workbook(io.BytesIO(form))[FORM_SHEET_TITLE], example.form)
    values = good_values(example.form) | {"ziran.sessions": "１２ 场",
                                          "huimin.volunteers": f"={cells['huimin.sessions']}+10"}
    resaved = soffice_resave(fill_reply_form(form, example.form, values), tmp_path)
    reading = read_reply_form(resaved, example.form)
    assert reading.valid, reading.error_lines()
    assert reading.token == token_for(example, example.units[2])
    assert {source for source, _ in reading.tokens} == {"cell", "hidden_sheet", "custom_property"}
    assert reading.values["ziran.sessions"] == 12
    assert reading.values["huimin.volunteers"] == values["huimin.sessions"] + 10   # LibreOffice's cached result
    assert reading.values["stories"] == RARE_TEXT.replace("\r\n", "\n")
    assert looks_like_reply_form(resaved, example.form)


def test_a_workbook_that_is_not_the_form_is_refused(example):
    workbook = Workbook()
    workbook.active.append(["序号", "姓名", "电话"])
    out = io.BytesIO()
    workbook.save(out)
    with pytest.raises(NotAReplyForm) as caught:
        read_reply_form(out.getvalue(), example.form, isolated=False)
    assert "活动类别" in caught.value.message_zh
    assert not looks_like_reply_form(out.getvalue(), example.form)


def test_a_word_document_is_not_the_form(example):
    document = docx.Document()
    document.add_paragraph("活动类别 活动场次")
    out = io.BytesIO()
    document.save(out)
    with pytest.raises(NotAReplyForm) as caught:
        read_reply_form(out.getvalue(), example.form)
    assert ".xlsx" in caught.value.message_zh


def test_another_campaigns_form_is_not_this_form(example):
    other = safety_definition(example)
    data = reply_form_bytes(other, "甲园区安监站", token_for(other, other.units[0]))
    assert looks_like_reply_form(data, other.form)
    assert not looks_like_reply_form(data, example.form)
    with pytest.raises(NotAReplyForm):
        read_reply_form(data, example.form)


def test_macro_copy_of_the_form_is_refused(example, form):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(form)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
        target.writestr("xl/vbaProject.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    with pytest.raises(UnsafeFile) as caught:
        read_reply_form(out.getvalue(), example.form)
    assert caught.value.reason_code == "macro"
    assert not looks_like_reply_form(out.getvalue(), example.form)


def test_another_schema_reads_with_no_code_change(example):
    definition = safety_definition(example)
    form = reply_form_bytes(definition, "甲园区安监站", token_for(definition, definition.units[0]))
    values = good_values(definition.form) | {"enterprise.fines": "1.25", "venue.closed": None,
                                             "checked_on": "2024年3月5日"}
    reading = read_reply_form(fill_reply_form(form, definition.form, values), definition.form)
    assert reading.valid, reading.error_lines()
    assert reading.values["enterprise.fines"] == Decimal("1.25")
    assert reading.values["checked_on"] == date(2024, 3, 5)
    assert reading.values["venue.closed"] is None
    assert reading.token == token_for(definition, definition.units[0])

    broken = good_values(definition.form) | {"venue.fines": "1.255", "checked_on": "下周一", "lead": "张" * 11}
    reading = read_reply_form(fill_reply_form(form, definition.form, broken), definition.form)
    assert {e.key for e in reading.errors} == {"venue.fines", "checked_on", "lead"}
    by_key = {e.key: e for e in reading.errors}
    assert "最多保留 2 位小数" in by_key["venue.fines"].message
    assert "日期" in by_key["checked_on"].message
    assert by_key["lead"].label == "带队领导"


def test_a_form_without_grid_reads(example):
    definition = example.model_copy(update={
        "form": FormSchema(title="联络员信息表", fields=[
            FieldSpec(key="person", label="联络员", type="text", required=True, max_length=20),
            FieldSpec(key="mobile", label="手机", type="phone", required=True)]),
        "spec": example.spec.model_copy(update={"id": "liaison-2024"})})
    form = reply_form_bytes(definition, "某单位", "XQ9-YQ01-AAAAAA")
    reading = read_reply_form(fill_reply_form(form, definition.form, {"person": "李四", "mobile": 13800000000}),
                              definition.form, isolated=False)
    assert reading.valid, reading.error_lines()
    assert reading.values == {"person": "李四", "mobile": "13800000000"}


def test_a_sheet_with_too_many_cells_is_refused(example, form):
    def flood(workbook, sheet):
        extra = workbook.create_sheet("附表")
        for row in range(1, 1001):
            extra.append(list(range(60)))
    data = fill_reply_form(form, example.form, good_values(example.form), edit=flood)
    with pytest.raises(UnsafeFile) as caught:
        read_reply_form(data, example.form)
    assert caught.value.reason_code == "parse_limit"


def styles_needing_gigabytes(form: bytes) -> bytes:
    """Under a megabyte on disk, within every zip limit, but the parser would need far more memory
    than a form deserves."""
    rng = random.Random(9704)
    styles = b"".join(b'<xf numFmtId="%d" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="%d"/>'
                      % (rng.randrange(50), rng.randrange(2)) for _ in range(400_000))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(form)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "xl/styles.xml":
                content = re.sub(rb"(<cellXfs[^>]*>)", lambda m: m.group(1) + styles, content, count=1)
            target.writestr(info.filename, content)
    hostile = out.getvalue()
    assert len(hostile) < 2 * 1024 * 1024
    return hostile


def test_a_form_whose_styles_need_gigabytes_is_stopped(example, form):
    """The parser hits its memory cap and the file is refused."""
    with pytest.raises(UnsafeFile) as caught:
        read_reply_form(styles_needing_gigabytes(form), example.form)
    assert caught.value.reason_code == "parse_limit"
    assert "内存" in caught.value.message_zh


def test_forms_in_a_row_share_one_parser_and_a_hostile_one_spoils_none_after_it(example):
    units = example.units[:6]
    values = good_values(example.form)
    forms = [fill_reply_form(reply_form_bytes(example, unit.name, token_for(example, unit)), example.form, values)
             for unit in units]
    worker = run_with_limits(os.getpid)
    readings = [read_reply_form(data, example.form) for data in forms[:3]]
    assert run_with_limits(os.getpid) == worker     # three forms, one process
    with pytest.raises(UnsafeFile) as caught:
        read_reply_form(styles_needing_gigabytes(forms[3]), example.form)
    assert caught.value.reason_code == "parse_limit"
    readings += [read_reply_form(data, example.form) for data in forms[3:]]
    replacement = run_with_limits(os.getpid)
    assert replacement != worker                    # the one that ran out of memory was replaced
    assert [reading.token for reading in readings] == [token_for(example, unit) for unit in units]
    assert [reading.unit_name for reading in readings] == [unit.name for unit in units]
    for reading in readings:
        assert reading.valid, reading.error_lines()
        assert reading.values == parse_reply_form(forms[0], example.form).values


def test_cell_error_without_a_cell_still_reads():
    error = CellError("", "ziran", "关爱自然", "表中找不到“关爱自然”这一行。")
    assert str(error) == "关爱自然：表中找不到“关爱自然”这一行。"


def test_a_deleted_row_is_named(example, form):
    def delete_row(workbook, sheet):
        label = next(c for c in sheet["A"] if c.value == "关爱自然")
        sheet.delete_rows(label.row)
    values = {k: v for k, v in good_values(example.form).items() if not k.startswith("ziran.")}
    data = fill_reply_form(form, example.form, values, edit=delete_row)
    reading = parse_reply_form(data, example.form)
    assert [(e.cell, e.key) for e in reading.errors] == [("", "ziran")]
    assert "关爱自然" in reading.errors[0].message
