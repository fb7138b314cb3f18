"""Reading the campaign's files as staff write them: YAML with line numbers, CSV from Excel or WPS
(UTF-8 with or without a BOM, or GBK)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml

from forms.errors import CampaignError, Problem

UNIT_COLUMNS = ("code", "name", "kind", "email", "leader_email")
OPTIONAL_UNIT_COLUMNS = ("contact",)
# Chinese headers that Excel users may type instead of the column keys.
HEADER_ALIASES = {"代码": "code", "单位代码": "code", "名称": "name", "单位名称": "name", "类别": "kind",
                  "单位类别": "kind", "邮箱": "email", "单位邮箱": "email", "领导邮箱": "leader_email",
                  "分管领导邮箱": "leader_email", "联系人": "contact"}


def _line_map(node, path=()) -> dict[tuple, int]:
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_line_map(value, path + (key.value,)))
            lines[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_map(item, path + (index,)))
    return lines


def read_yaml_with_lines(path: Path) -> tuple[dict, dict[tuple, int]]:
    text = decode_text(path)
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CampaignError([Problem(path, mark.line + 1 if mark else None, "",
                                     f"YAML 格式错误（{getattr(exc, 'problem', exc)}），请检查缩进和冒号")]) from None
    if not isinstance(data, dict):
        raise CampaignError([Problem(path, 1, "", "文件内容应为一组键值（key: value），请检查")])
    return data, _line_map(node) if node is not None else {}


def decode_text(path: Path) -> str:
    """UTF-8 (a BOM is dropped), else GB18030 — a superset of GBK/GB2312, what Excel in China saves."""
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise CampaignError([Problem(path, None, "", "文件编码无法识别，请另存为 UTF-8 或 GBK 编码的 CSV")])


def read_units_csv(path: Path) -> list[tuple[int, dict]]:
    """Rows as (line number in the file, {column: value}); blank rows are skipped."""
    reader = csv.reader(io.StringIO(decode_text(path)))
    try:
        header = next(reader)
    except StopIteration:
        raise CampaignError([Problem(path, 1, "", "单位名单为空，请填写表头和单位")]) from None
    columns = [HEADER_ALIASES.get(h.strip(), h.strip()) for h in header]
    missing = [c for c in UNIT_COLUMNS if c not in columns]
    if missing:
        raise CampaignError([Problem(path, 1, ",".join(missing),
                                     f"表头缺少列：{'、'.join(missing)}，表头应为 code,name,kind,email,leader_email")])
    rows = []
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue
        values = {col: (record[i].strip() if i < len(record) else "") for i, col in enumerate(columns)
                  if col in UNIT_COLUMNS + OPTIONAL_UNIT_COLUMNS}
        rows.append((reader.line_num, values))
    return rows
