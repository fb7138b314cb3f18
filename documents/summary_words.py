"""The words of the 情况通报, apart from any document: figures, lists of names, the phrase a
measure's label makes around its figure, dates and times, and excerpts of what the units wrote
(cut at sentence ends). Written one way everywhere, so the text and the tables read the same."""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Sequence

from documents.blocks import cell_text
from documents.chinese_text import chinese_date
from models.clock import CHINA_TZ

EXCERPT_MAX_CHARS = 150          # characters of one excerpt, before its attribution
EXCERPT_MIN_CHARS = 8            # shorter texts ("无", "详见附件") are not cases
MAX_NAMED_UNITS = 10             # units named in one sentence; more are "……等N个单位"
_NUMERALS = "一二三四五六七八九十"


# --- Words ---------------------------------------------------------------------------------------
def figure(value, decimals: int = 0) -> str:
    """A figure as the summary writes it, in the text and the tables alike: no digit grouping,
    at most the field's decimals, no trailing zeros (12.5, 12)."""
    if value is None or value == "":
        return ""
    number = Decimal(str(value))
    if decimals <= 0:
        return str(int(number.quantize(Decimal(1))))
    text = f"{number.quantize(Decimal(1).scaleb(-decimals)):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def chinese_number(n: int) -> str:
    """1 → 一 … 10 → 十, 11 → 十一 … 99 (heading numbers)."""
    if n <= 10:
        return _NUMERALS[n - 1]
    tens, ones = divmod(n, 10)
    return (_NUMERALS[tens - 1] if tens > 1 else "") + "十" + (_NUMERALS[ones - 1] if ones else "")


def join_names(names: Sequence[str]) -> str:
    """A、B和C."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return "、".join(names[:-1]) + "和" + names[-1]


def units_phrase(names: Sequence[str], limit: int = MAX_NAMED_UNITS) -> str:
    """中川园区管委会 / A和B共2个单位 / A、B……等12个单位 — a complete list or a named sample."""
    names = list(names)
    if len(names) == 1:
        return names[0]
    if len(names) <= limit:
        return f"{join_names(names)}共{len(names)}个单位"
    return f"{'、'.join(names[:limit])}等{len(names)}个单位"


# How a measure's label becomes words around its figure: 活动场次 → 活动120场,
# 参与志愿者人次 → 参与志愿者3456人次, 志愿服务时长（小时） → 志愿服务时长5678.5小时.
_MEASURE_WORDS = (
    (re.compile(r"^(.*?)(?:场次|场数)$"), "场"),
    (re.compile(r"^(.*?)人次$"), "人次"),
    (re.compile(r"^(.*?)人数$"), "人"),
    (re.compile(r"^(.*?)篇数$"), "篇"),
    (re.compile(r"^(.*?)次数$"), "次"),
    (re.compile(r"^(.*?)个数$"), "个"),
    (re.compile(r"^(.*?)件数$"), "件"),
    (re.compile(r"^(.*?)[（(]([^（）()]+)[）)]$"), None),   # the unit in brackets
)


def measure_words(label: str) -> tuple[str, str]:
    """(stem, unit of measure) of a measure's label; the stem is the label itself when no rule
    applies and then the unit is empty."""
    for pattern, unit in _MEASURE_WORDS:
        match = pattern.match(label.strip())
        if match and match.group(1):
            return match.group(1), unit if unit is not None else match.group(2)
    return label.strip(), ""


def measure_phrase(label: str, value, decimals: int = 0) -> str:
    stem, unit = measure_words(label)
    return f"{stem}{figure(value, decimals)}{unit}"


# --- Excerpts of the units' texts ------------------------------------------------------------------
_SENTENCE = re.compile(r".*?(?:[。！？!?]+|…+)[”’」』）)]*|.+$", re.S)
_ENDS_SENTENCE = re.compile(r"(?:[。！？!?]|…)[”’」』）)]*$")
_SOFT_BREAK = "，；、：,;:"
_LIST_MARKER = re.compile(r"^(?:[一二三四五六七八九十]+[、.．]|[（(][一二三四五六七八九十\d]+[）)]"
                          r"|\d+[、.．](?!\d)|[①-⑳]|[•·\-*—]+)\s*")
# Answers that say there is nothing to quote.
_NOTHING = re.compile(r"^(?:无|暂无|没有|略|同上|(?:详见|见|参见)附件\S{0,12}|/|-+|—+)[。.！!]?$")
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0E\uFE0F\u200D\U000E0000-\U000E007F]")
# Line breaks as Excel, Word and web forms write them.
_LINE_BREAK = re.compile(r"\r\n|[\r\x0b\x0c\x85\u2028\u2029]")


def clean_text(text) -> str:
    """A unit's text as the document may show it: NFC, line breaks as \\n, no control characters
    or emoji. Characters outside GB2312 (堃, 𠮷) stay as they are."""
    text = _LINE_BREAK.sub("\n", unicodedata.normalize("NFC", str(text)))
    return _EMOJI.sub("", cell_text(text))


def text_paragraphs(text) -> list[str]:
    """The paragraphs of a unit's text. A blank line, a line that starts with 一、 （一） 1. …, and
    the line after a finished sentence or a short heading start a new paragraph; any other line
    break is where the writer's box wrapped, and the lines are joined."""
    paragraphs, current = [], ""
    for line in clean_text(text).split("\n"):
        line = line.strip(" \t\u3000")
        if not line or (current and (_LIST_MARKER.match(line) or _ENDS_SENTENCE.search(current)
                                     or len(current) < EXCERPT_MIN_CHARS)):
            if current:
                paragraphs.append(current)
            current = ""
        current += line
    if current:
        paragraphs.append(current)
    return paragraphs


def excerpt(text, max_chars: int = EXCERPT_MAX_CHARS) -> str | None:
    """The opening of a unit's text: whole sentences (。！？) of its first real paragraph up to
    `max_chars`; a first sentence longer than that is cut after a comma and ends in “……”. None
    when there is nothing to quote ("无", "详见附件")."""
    paragraphs = [_LIST_MARKER.sub("", p).strip(" \t\u3000") for p in text_paragraphs(text)]
    paragraphs = [p for p in paragraphs if len(p) >= EXCERPT_MIN_CHARS and not _NOTHING.match(p)]
    if not paragraphs:
        return None
    sentences = [s for s in _SENTENCE.findall(paragraphs[0]) if s.strip()]
    kept = ""
    for sentence in sentences:
        if len(kept) + len(sentence) > max_chars:
            break
        kept += sentence
    if not kept:
        head = sentences[0][:max_chars]
        cut = max(head.rfind(mark) for mark in _SOFT_BREAK)
        if cut >= max_chars // 2:
            head = head[:cut]
        return head.rstrip(_SOFT_BREAK + " ") + "……"
    kept = kept.strip()
    if not _ENDS_SENTENCE.search(kept):
        kept = kept.rstrip(_SOFT_BREAK + " ") + "。"
    return kept


# --- Times -------------------------------------------------------------------------------------------
def report_time(when: datetime | None, deadline: datetime) -> str:
    """报送时间 in a table cell: 10月9日 / 15:30 on two lines, the year only when it is not the
    deadline's."""
    if when is None:
        return ""
    local = when.astimezone(CHINA_TZ)
    day = f"{local.month}月{local.day}日" if local.year == deadline.year else chinese_date(local.date())
    return f"{day}\n{local:%H:%M}"


def deadline_text(deadline: datetime) -> str:
    return chinese_date(deadline.astimezone(CHINA_TZ).date())
