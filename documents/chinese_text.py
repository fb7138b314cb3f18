"""Text rules of an official document that do not depend on Word: dates, widths in characters,
how a title breaks into lines, and the heading levels of body paragraphs (GB/T 9704-2012)."""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Iterable, Sequence


def chinese_date(value: date) -> str:
    """7.3.5.4, 7.4.3: Arabic numerals, full year, no padding: 2023年3月14日."""
    return f"{value.year}年{value.month}月{value.day}日"


def char_width(ch: str) -> float:
    """Width in characters of the body face: CJK (and the quotation marks and dashes Chinese faces
    draw full-width) is one, Latin letters and digits are half."""
    return 1.0 if unicodedata.east_asian_width(ch) in "WFA" else 0.5


def display_width(text: str) -> float:
    return sum(char_width(ch) for ch in text)


# How the CJK faces actually draw mixed text, for estimates of how much a line or a cell holds:
# digits and Latin letters come out wider than half a character, and LibreOffice puts a quarter
# character between Chinese and digits or Latin letters (Word, told not to, does not).
DRAWN_HALF_WIDTH = 0.6
SCRIPT_GAP_CHARS = 0.25


def drawn_width(text: str) -> float:
    """Width in characters of `text` as drawn (see DRAWN_HALF_WIDTH): never less than display_width."""
    wide = [char_width(ch) == 1.0 for ch in text]
    switches = sum(1 for a, b in zip(wide, wide[1:]) if a != b)
    return sum(1.0 if w else DRAWN_HALF_WIDTH for w in wide) + switches * SCRIPT_GAP_CHARS


def wrapped_lines(text: str, max_width: float) -> list[str]:
    """`text` as a flush-left paragraph `max_width` characters wide lays it out: filled greedily at
    drawn widths, never breaking before a closing mark or after an opening one."""
    return _greedy_lines(text, max_width, drawn_width)


# --- 7.3.1: titles wrap with words whole, lines symmetric, in a trapezoid or diamond ------------
_NO_LINE_START = set("，。、；：？！”’）》」』〕…·")
_NO_LINE_END = set("“‘（《「『〔")
_GOOD_BREAK_AFTER = set("”’）》」』")
_OPENERS, _CLOSERS = "“《（「『", "”》）」』"
_BAD_BREAK_PENALTY = 100


def _inside_brackets(text: str, index: int) -> bool:
    depth = 0
    for ch in text[:index]:
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth = max(0, depth - 1)
    return depth > 0


def _break_allowed(text: str, i: int) -> bool:
    return text[i] not in _NO_LINE_START and text[i - 1] not in _NO_LINE_END


def title_lines(title: str, max_width: float) -> list[str]:
    """Split a title into lines no wider than `max_width` characters. Explicit line breaks in the
    title win. Otherwise a break after a closing quotation mark or bracket is preferred, then the
    most balanced one; a break inside quotation marks is a last resort."""
    title = title.strip()
    if "\n" in title:
        return [line.strip() for line in title.splitlines() if line.strip()]
    if display_width(title) <= max_width:
        return [title]
    lines_needed = math.ceil(display_width(title) / max_width)
    if lines_needed == 2:
        best = None
        for i in range(1, len(title)):
            first, second = title[:i], title[i:]
            if display_width(first) > max_width or display_width(second) > max_width:
                continue
            if not _break_allowed(title, i):
                continue
            score = abs(display_width(first) - display_width(second))
            if title[i - 1] not in _GOOD_BREAK_AFTER:
                score += _BAD_BREAK_PENALTY / 2
            if _inside_brackets(title, i):
                score += _BAD_BREAK_PENALTY
            if best is None or score < best[0]:
                best = (score, i)
        if best is not None:
            return [title[:best[1]], title[best[1]:]]
    return _greedy_lines(title, max_width)


def _greedy_lines(text: str, max_width: float, measure=display_width) -> list[str]:
    lines, start = [], 0
    while start < len(text):
        end = start + 1               # a line holds at least one character
        while end < len(text) and measure(text[start:end + 1]) <= max_width:
            end += 1
        while start + 1 < end < len(text) and not _break_allowed(text, end):
            end -= 1
        lines.append(text[start:end])
        start = end
    return lines


# --- 7.3.3: 一、 (黑体) （一） (楷体) 1. （1） (仿宋) --------------------------------------------------
_NUMERALS = "一二三四五六七八九十百零"
_LEVELS = (
    (1, re.compile(rf"^[{_NUMERALS}]+、")),
    (2, re.compile(rf"^[（(][{_NUMERALS}]+[）)]")),
    (3, re.compile(r"^\d+[.．]")),
    (4, re.compile(r"^[（(]\d+[）)]")),
)
_LEAD_END = "。"
_STYLED_LEVELS = {1, 2}   # the third and fourth levels are set in the body face


@dataclass(frozen=True)
class BodyParagraph:
    """One paragraph of a body: its level (0 for plain text), the heading phrase set in the level's
    face (`lead`, up to and including the first 。), and the rest in 仿宋."""

    level: int
    lead: str
    rest: str

    @property
    def text(self) -> str:
        return self.lead + self.rest


def _full_width_brackets(text: str, prefix_length: int) -> str:
    prefix = text[:prefix_length].replace("(", "（").replace(")", "）")
    return prefix + text[prefix_length:]


def classify(text: str) -> BodyParagraph:
    for level, pattern in _LEVELS:
        match = pattern.match(text)
        if not match:
            continue
        text = _full_width_brackets(text, match.end())
        if level not in _STYLED_LEVELS:
            return BodyParagraph(level, "", text)
        end = text.find(_LEAD_END)
        cut = len(text) if end < 0 else end + len(_LEAD_END)
        return BodyParagraph(level, text[:cut], text[cut:])
    return BodyParagraph(0, "", text)


_BLANK_LINE = re.compile(r"\n[ \t\u3000]*\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs are separated by blank lines; a line break inside one is a soft wrap (Chinese
    joins without a space). Leading full-width spaces typed for indentation are dropped: the style
    indents."""
    paragraphs = []
    for block in _BLANK_LINE.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line.strip(" \t\u3000") for line in block.split("\n")]
        joined = _CONTROL.sub("", "".join(lines))
        if joined:
            paragraphs.append(joined)
    return paragraphs


def parse_body(body: str | Iterable[str]) -> list[BodyParagraph]:
    """A body given as one text (paragraphs separated by blank lines) or as paragraphs."""
    paragraphs: Sequence[str] = split_paragraphs(body) if isinstance(body, str) else [
        p for item in body for p in split_paragraphs(item)]
    return [classify(p) for p in paragraphs]
