"""What the summary is made from (each unit's latest valid submission), the data export 汇总表.xlsx
and the bundle 附件材料.zip, each read back: openpyxl for the workbook, zipfile for the archive."""
from __future__ import annotations

import hashlib
import io
import re
import tracemalloc
import unicodedata
import zipfile
from datetime import datetime

import openpyxl
import pytest
from sqlmodel import select

from documents.bundle import BUNDLE_FILE_NAME, UTF8_NAMES, build_bundle
from documents.export import EXPORT_FILE_NAME, FIGURES_SHEET, UNITS_SHEET, write_export
from documents.outcomes import gather_outcomes, gather_unit_records
from documents.summary import unit_numbers
from models.db import session_scope
from models.states import RecipientStatus as S
from models.tables import Attachment, Recipient, Unit
from summary_world import CID, LATE, ON_TIME, SUMMARY_DAY, SummaryWorld, figures, synthetic_units

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
WINDOWS_FORBIDDEN = set('<>:"\\|?*')
RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\.|$)", re.IGNORECASE)


def docx_bytes(text: str) -> bytes:
    from docx import Document

    document = Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def world(nf_env, tmp_path) -> SummaryWorld:
    world = SummaryWorld(tmp_path, synthetic_units(8))
    world.notify()
    return world


# --- What counts ----------------------------------------------------------------------------------------
def test_only_the_latest_valid_submission_counts_and_the_first_valid_one_dates_it(world):
    d = world.definition
    world.reply("T001", figures(d, 1))
    world.reply("T001", figures(d, 2), at=LATE)                          # a correction after the deadline
    world.reply("T001", {"xuanjiang.sessions": "x"}, at=LATE, valid=False)  # a broken third version
    world.reply("T002", {"xuanjiang.sessions": "x"}, valid=False)        # wrong on time…
    world.reply("T002", figures(d, 3), at=LATE)                          # …right only after the deadline
    world.reply("T003", {"xuanjiang.sessions": "x"}, valid=False)        # never right
    world.status("T004", S.exempt, reason="已撤并")
    with session_scope() as session:
        records = {r.code: r for r in gather_unit_records(session, CID)}
        outcomes = {o.code: o for o in gather_outcomes(session, CID)}
    one = records["T001"]
    assert (one.submissions, one.counted_version, one.values) == (3, 2, figures(d, 2))
    assert one.first_valid_at == datetime.fromisoformat(ON_TIME + "+08:00") and not one.late
    assert one.counted_at == datetime.fromisoformat(LATE + "+08:00")
    assert records["T002"].late and records["T002"].status == "replied"
    assert records["T003"].values is None and records["T003"].submissions == 1
    assert records["T004"].status_label == "免报"
    assert outcomes["T001"].values == figures(d, 2) and outcomes["T001"].received_at == one.first_valid_at
    counts = world.aggregation().counts
    assert (counts.reported, counts.on_time, counts.late, counts.exempt, counts.not_reported) == (2, 1, 1, 1, 5)


def test_records_follow_the_unit_list_and_unknown_units_come_last(world):
    with session_scope() as session:
        default = [r.code for r in gather_unit_records(session, CID)]
        ordered = [r.code for r in gather_unit_records(session, CID, ["T005", "T002", "T009"])]
    assert default == [f"T{n:03d}" for n in range(1, 9)]
    assert ordered == ["T005", "T002", "T001", "T003", "T004", "T006", "T007", "T008"]


def test_an_unknown_campaign_is_named_in_chinese(nf_env):
    from models.status import UnknownCampaign

    with session_scope() as session, pytest.raises(UnknownCampaign, match="找不到活动 xinqu-2099-1"):
        gather_unit_records(session, "xinqu-2099-1")


# --- 汇总表.xlsx ---------------------------------------------------------------------------------------------
HOSTILE = ["=HYPERLINK(\"http://evil.example\",\"点我\")", "+8613800000000", "-1+2", "@SUM(A1:A9)", "\t=1+1",
           "\r=1+1", "=cmd|' /C calc'!A0"]


def exported(world: SummaryWorld, tmp_path):
    aggregation = world.aggregation()
    path = write_export(world.definition, aggregation, world.records(), SUMMARY_DAY, tmp_path / EXPORT_FILE_NAME)
    return path, aggregation


def test_export_has_one_row_per_unit_with_every_field(world, tmp_path):
    d = world.definition
    world.reply("T001", figures(d, 1, stories="第一行\n第二行"))
    world.reply("T002", figures(d, 2), at=LATE)
    world.status("T003", S.bounced, reason="邮箱不存在")
    world.status("T004", S.exempt, reason="已撤并")
    path, aggregation = exported(world, tmp_path)
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == [UNITS_SHEET, FIGURES_SHEET]
    sheet = workbook[UNITS_SHEET]
    header = [c.value for c in sheet[1]]
    labels = [d.form.label_of(key) for key, _ in d.form.iter_cells()]
    assert header[-len(labels):] == labels
    assert header[:8] == ["序号", "单位代码", "单位名称", "单位类别", "单位邮箱", "状态", "报送情况", "报送时间（北京时间）"]
    rows = {row[1]: dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert list(rows) == world.codes and sheet.max_row == 1 + len(world.codes)
    numbers = unit_numbers(aggregation)
    assert all(rows[code]["序号"] == numbers[code] for code in world.codes)
    one, two, three, four = (rows[c] for c in ("T001", "T002", "T003", "T004"))
    assert (one["状态"], one["报送情况"], two["状态"], two["报送情况"]) == ("已报送", "按时报送", "逾期报送", "逾期报送")
    assert (three["状态"], three["报送情况"], three["状态说明"]) == ("退信", "未报送", "邮箱不存在")
    assert (four["状态"], four["报送情况"]) == ("免报", "免报")
    assert rows["T005"]["状态"] == "已通知"
    # Beijing wall-clock time, as the office reads it
    assert one["报送时间（北京时间）"] == datetime(2023, 10, 9, 15, 30)
    assert two["报送时间（北京时间）"] == datetime(2023, 10, 12, 9, 15)
    assert sheet.cell(row=2, column=8).number_format == "yyyy-mm-dd hh:mm"
    # every value of the form, numbers as numbers
    values = figures(d, 1, stories="第一行\n第二行")
    for key, _ in d.form.iter_cells():
        cell = one[d.form.label_of(key)]
        expected = values[key]
        assert cell == (pytest.approx(expected) if isinstance(expected, (int, float)) else expected), key
    assert isinstance(one["党的二十大精神宣讲·活动场次"], int)
    assert rows["T005"]["党的二十大精神宣讲·活动场次"] is None


def test_export_header_is_frozen_and_columns_are_sized(world, tmp_path):
    world.reply("T001", figures(world.definition, 1))
    path, _ = exported(world, tmp_path)
    sheet = openpyxl.load_workbook(path)[UNITS_SHEET]
    assert sheet.freeze_panes == "D2"
    assert sheet.auto_filter.ref.startswith("A1:")
    widths = {letter: sheet.column_dimensions[letter].width for letter in ("A", "C", "E", "O")}
    assert widths["C"] >= 20 and widths["E"] >= 20 and all(w and w >= 6 for w in widths.values())
    assert all(cell.font.bold for cell in sheet[1])


def test_export_neutralises_formulas_and_strips_what_excel_refuses(nf_env, tmp_path):
    world = SummaryWorld(tmp_path, [("T001", "=1+1单位", "park"), ("T002", "@单位", "park"), ("T003", "普通单位", "soe")])
    world.notify()
    d = world.definition
    for index, (code, payload) in enumerate(zip(world.codes, HOSTILE), start=1):
        world.reply(code, figures(d, index, stories=payload, filler=payload, problems="含控制字符\x01\x1b的文字"))
    path, _ = exported(world, tmp_path)
    workbook = openpyxl.load_workbook(path)
    cells = [cell for sheet in workbook for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    texts = [c.value for c in cells if isinstance(c.value, str)]
    assert not [t for t in texts if t[:1] in ("=", "+", "-", "@", "\t", "\r")]
    sheet = workbook[UNITS_SHEET]
    header = [c.value for c in sheet[1]]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    stories = [row[header.index("典型事例/感人故事")] for row in rows]
    assert stories == ["'" + payload for payload in HOSTILE[:3]]
    assert [row[2] for row in rows] == ["'=1+1单位", "'@单位", "普通单位"]
    assert rows[0][header.index("存在问题及下一步打算")] == "含控制字符的文字"
    # numbers stay numbers: negative-looking text is only text
    assert isinstance(rows[0][header.index("投稿宣传篇数")], int)


def test_export_figures_sheet_matches_the_aggregation(world, tmp_path):
    d = world.definition
    for seed, code in enumerate(world.codes[:5], start=1):
        world.reply(code, figures(d, seed), at=LATE if seed == 5 else ON_TIME)
    path, aggregation = exported(world, tmp_path)
    rows = list(openpyxl.load_workbook(path)[FIGURES_SHEET].iter_rows(values_only=True))
    by_label = {row[0]: row[1:] for row in rows if row[0]}
    c = aggregation.counts
    assert (by_label["应报"][0], by_label["已报"][0], by_label["按时报送"][0], by_label["逾期报送"][0],
            by_label["未报送"][0]) == (c.should_report, c.reported, c.on_time, c.late, c.not_reported)
    assert by_label["合计"][:4] == tuple(pytest.approx(float(aggregation.column_totals[k]))
                                        for k in ("sessions", "volunteers", "served", "hours"))
    assert by_label["投稿宣传篇数"][0] == aggregation.totals["articles"]


def test_export_is_reproducible(world, tmp_path):
    world.reply("T001", figures(world.definition, 1))
    first, _ = exported(world, tmp_path / "a")
    second, _ = exported(world, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


# --- 附件材料.zip ------------------------------------------------------------------------------------------------
def bundle(world: SummaryWorld, tmp_path):
    aggregation = world.aggregation()
    with session_scope() as session:
        report = build_bundle(session, CID, unit_numbers(aggregation), tmp_path / BUNDLE_FILE_NAME)
    return report, zipfile.ZipFile(report.path)


def test_bundle_keeps_every_attachment_by_unit_under_readable_names(world, tmp_path):
    summary = docx_bytes("活动总结")
    world.attach("T001", [("回执表.xlsx", docx_bytes("不是表格")), ("活动照片.jpg", JPEG)])
    world.attach("T001", [("活动照片.jpg", JPEG + b"2"), ("活动照片.JPG", JPEG + b"3"), ("活动照片.jpg", JPEG)],
                 at=LATE)                                      # the first photo again: kept once
    world.attach("T003", [("活动总结.doc", summary), ("说明.txt", "你好".encode())])
    report, archive = bundle(world, tmp_path)
    names = archive.namelist()
    assert names == [
        "001_测试单位001/回执表.docx",               # the extension of what the file is
        "001_测试单位001/活动照片.jpg",
        "001_测试单位001/活动照片（2）.jpg",
        "001_测试单位001/活动照片（3）.JPG",         # clashes regardless of case
        "003_测试单位003/活动总结.docx",
        "003_测试单位003/说明.txt",
    ]
    assert (report.files, report.units, report.duplicates, report.missing) == (6, 2, 1, [])
    assert all(info.flag_bits & UTF8_NAMES for info in archive.infolist())
    assert archive.read("001_测试单位001/活动照片（2）.jpg") == JPEG + b"2"
    assert archive.read("003_测试单位003/活动总结.docx") == summary
    assert archive.getinfo("001_测试单位001/活动照片.jpg").date_time == (2023, 10, 9, 15, 30, 0)
    assert archive.getinfo("001_测试单位001/活动照片（2）.jpg").date_time == (2023, 10, 12, 9, 15, 0)
    assert archive.getinfo("003_测试单位003/说明.txt").compress_type == zipfile.ZIP_DEFLATED
    assert archive.getinfo("001_测试单位001/活动照片.jpg").compress_type == zipfile.ZIP_STORED
    # the raw name bytes are UTF-8 (what Explorer and 7-Zip read with the flag set)
    assert "001_测试单位001/回执表.docx".encode("utf-8") in report.path.read_bytes()


def test_bundle_names_are_safe_on_every_file_system(world, tmp_path):
    hostile = [("../../etc/passwd", b"root:x"), ("/abs/olute.txt", b"a"), ("CON.txt", b"c"), ("con", b"d"),
               ("回执表\u202excod.jpg", JPEG), ("报告\x00.txt", b"n"), ("问号?星号*.txt", b"q"),
               ("很长的名字" * 60 + ".txt", b"l"), ("  .  ", b"blank"), ("a:b|c<d>e\"f.txt", b"w")]
    world.attach("T002", hostile)
    report, archive = bundle(world, tmp_path)
    names = archive.namelist()
    assert len(names) == len(hostile)
    for name in names:
        folder, file = name.split("/")
        assert folder == "002_测试单位002"
        assert not (set(file) & WINDOWS_FORBIDDEN), file
        assert not RESERVED.match(file), file
        assert file == file.strip(" .") and len(file) <= 100
        assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in file)
        assert ".." not in name.split("/")
    assert "002_测试单位002/_CON.txt" in names
    assert any(n.endswith(".jpg") and "xcod" in n for n in names)     # the override is shown, not obeyed
    assert report.missing == []


def test_bundle_leaves_out_refused_and_unmatched_mail_and_reports_lost_files(world, tmp_path):
    kept = world.attach("T001", [("照片.png", PNG)])
    world.attach("T002", [("程序.exe", b"MZ" + b"\x00" * 100), ("空.txt", b"")])       # refused when stored
    lost = world.attach("T003", [("已删除.png", PNG + b"lost")])
    with session_scope() as session:   # mail that matched no unit is for staff, not for the bundle
        session.add(Attachment(recipient_id=None, seq=1, stored_path=kept[0], original_name="别人的.png",
                               sha256="0" * 64, size=10, verdict="stored"))
    (nf_output() / lost[0]).unlink()
    report, archive = bundle(world, tmp_path)
    assert archive.namelist() == ["001_测试单位001/照片.png"]
    assert report.missing == lost


def nf_output():
    from models.settings import get_settings

    return get_settings().output_dir


def test_bundle_is_reproducible_and_numbers_units_like_the_summary(world, tmp_path):
    world.attach("T008", [("总结.txt", "总结".encode())])
    world.attach("T002", [("总结.txt", "总结二".encode())])
    first, _ = bundle(world, tmp_path / "a")
    second, archive = bundle(world, tmp_path / "b")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert archive.namelist() == ["002_测试单位002/总结.txt", "008_测试单位008/总结.txt"]


def test_bundle_streams_files_instead_of_loading_them(world, tmp_path):
    big = 24 * 1024 * 1024
    with session_scope() as session:
        recipient = session.exec(select(Recipient).join(Unit, Unit.id == Recipient.unit_id)
                                 .where(Unit.code == "T001")).one()
        relative = f"{CID}/attachments/T001/001_big.mp4"
        target = nf_output() / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            handle.truncate(big)
        session.add(Attachment(recipient_id=recipient.id, seq=1, stored_path=relative, original_name="活动视频.mp4",
                               sha256=hashlib.sha256(b"big").hexdigest(), size=big, verdict="stored"))
    tracemalloc.start()
    try:
        report, archive = bundle(world, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert archive.getinfo("001_测试单位001/活动视频.mp4").file_size == big
    assert peak < big // 4, f"peak {peak} bytes while bundling a {big}-byte file"
