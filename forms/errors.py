"""Campaign errors a staff member reads: Chinese, naming the file, the line and the field."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

# pydantic error type → what to tell a person. `{}` receives pydantic's context where useful.
_MESSAGES = {
    "missing": "缺少必填项，请补上",
    "extra_forbidden": "无法识别的配置项，请检查拼写或删除",
    "string_too_short": "不能为空，请填写",
    "string_too_long": "内容过长，最多 {max_length} 个字符",
    "string_pattern_mismatch": "格式不正确，应符合 {pattern}",
    "string_type": "应为文字",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "date_parsing": "日期格式不正确，请写成 2023-03-14 的形式",
    "date_from_datetime_parsing": "日期格式不正确，请写成 2023-03-14 的形式",
    "date_type": "日期格式不正确，请写成 2023-03-14 的形式",
    "datetime_parsing": "日期时间格式不正确，请写成 2023-10-10T18:00:00+08:00 的形式",
    "datetime_from_date_parsing": "日期时间格式不正确，请写成 2023-10-10T18:00:00+08:00 的形式",
    "datetime_type": "日期时间格式不正确，请写成 2023-10-10T18:00:00+08:00 的形式",
    "time_parsing": "时间格式不正确，请写成 09:00 的形式",
    "time_type": "时间格式不正确，请写成 09:00 的形式",
    "enum": "取值“{input}”无法识别，可用的取值：{expected}",
    "literal_error": "取值“{input}”无法识别，可用的取值：{expected}",
    "too_short": "至少需要 {min_length} 项",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应不小于 {ge}",
    "less_than_equal": "应不大于 {le}",
    "list_type": "应为列表（每行以“- ”开头）",
    "model_type": "应为一组键值（key: value）",
    "dict_type": "应为一组键值（key: value）",
}


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file.name}"
        if self.line:
            where += f" 第{self.line}行"
        if self.field:
            where += f" {self.field}"
        return f"{where}：{self.message}"


class CampaignError(Exception):
    """One or more problems in a campaign folder. Nothing is written when this is raised."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _message(error: dict) -> str:
    kind = error["type"]
    if kind == "value_error":
        # Our own validators already speak Chinese; pydantic prefixes "Value error, ".
        return str(error["ctx"]["error"])
    template = _MESSAGES.get(kind)
    if template is None:
        return f"取值不正确（{error['msg']}），请检查"
    context = {"input": error.get("input"), **{k: v for k, v in (error.get("ctx") or {}).items()}}
    if "expected" in context:
        context["expected"] = str(context["expected"]).replace("'", "").replace(" or ", "、").replace(", ", "、")
    try:
        return template.format(**context)
    except (KeyError, IndexError):
        return template.split("，")[0]


def translate_pydantic(exc: ValidationError, path: Path, lines: dict, line: int | None = None) -> list[Problem]:
    """Turn pydantic's errors into Problems; `lines` maps a YAML path to its line number, `line`
    fixes the line for a CSV row."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        field = ".".join(str(part) for part in loc)
        where = line
        if where is None:
            # The deepest path that the YAML file knows (a missing key: its parent's line).
            for cut in range(len(loc), -1, -1):
                if loc[:cut] in lines:
                    where = lines[loc[:cut]]
                    break
        problems.append(Problem(path, where, field, _message(error)))
    return problems
