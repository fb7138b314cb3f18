"""Where the 主送 goes (GB/T 9704-2012 7.3.2): under the title on page 1, or — when it would leave
page 1 without body text — in the 版记, above 抄送 and written like it: “主送：…。”.

The decision is arithmetic on the layout's own numbers (documents/layout.py), down page 1: the
space above the mark and its two lines, the blank lines and the 文号 with its red rule, the blank
lines and the title's lines, the blank line under the title; what is left of the 22 lines holds
the 主送 and the start of the body. No renderer runs: the same text always gets the same answer.
"""
from __future__ import annotations

import re
from typing import Sequence

from documents import layout as L
from documents import styles as S
from documents.chinese_text import parse_body, title_lines, wrapped_lines

# The body's first-line indent, as characters in front of the text (two full-width spaces).
_INDENT = "\u3000" * (L.INDENT_TWO_CHARS // L.CHAR_UNITS)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\u2028\u2029]+")
_TRAILING = "：:，,。 \t\u3000"


def addressee_text(raw: str) -> str:
    """The 主送 as one run of names: names given on separate lines joined with commas, control
    characters dropped, no colon or full stop at the end (the layout adds the one it needs)."""
    names = [_CONTROL.sub("", part).strip(_TRAILING) for part in _LINE_BREAKS.split(raw)]
    return L.IMPRINT_LIST_SEPARATOR.join(name for name in names if name)


def addressee_lines(addressees: str) -> int:
    """Lines the 主送 and its colon take on page 1: flush left, 28 characters a line."""
    return len(wrapped_lines(addressee_text(addressees) + L.ADDRESSEES_END, L.CHARS_PER_LINE))


def title_line_count(title: str) -> int:
    """Lines the title takes: its lines as the renderer breaks it (7.3.1), each wrapped again should
    a line the author broke by hand be wider than the type area."""
    return sum(len(wrapped_lines(line, L.TITLE_CHARS_PER_LINE))
               for line in title_lines(title, L.TITLE_CHARS_PER_LINE))


def head_height(title: str) -> int:
    """Twips from the top of the type area down to where the 主送 starts: the 版头 (mark, blank
    lines, 文号 and its red rule), the blank lines, the title, the blank line under it."""
    lines = (L.BLANK_LINES_MARK_TO_DOC_NUMBER + 1                     # blank lines, the 文号
             + L.BLANK_LINES_RULE_TO_TITLE + title_line_count(title)
             + L.BLANK_LINES_TITLE_TO_ADDRESSEES)
    return L.MARK_SPACE_BEFORE + L.MARK_LINE_HEIGHT + L.DOC_NUMBER_RULE_HEIGHT + lines * L.LINE_PITCH


def first_page_lines(title: str) -> int:
    """Whole lines page 1 has for the 主送 and the body."""
    return (L.TYPE_AREA_HEIGHT - head_height(title)) // L.LINE_PITCH


def _keeps_with_next(style_id: str) -> bool:
    styles = {style.id: style for style in S.STYLES}
    style = styles.get(style_id)
    while style is not None:
        if style.para is not None and style.para.keep_next is not None:
            return style.para.keep_next
        style = styles.get(style.based_on) if style.based_on else None
    return False


def body_lines_to_show(body: str | Sequence[str]) -> int:
    """Lines the body needs on page 1 for any of it to be there: ADDRESSEES_MIN_BODY_LINES, after
    the lines of the headings it opens with that are kept with the next paragraph (“一、…”)."""
    lines = 0
    for para in parse_body(body):
        if not _keeps_with_next(S.BODY_LEVEL_STYLES.get(para.level, S.BODY)):
            break
        lines += len(wrapped_lines(_INDENT + para.text, L.CHARS_PER_LINE))
    return lines + L.ADDRESSEES_MIN_BODY_LINES


def addressees_fit_first_page(title: str, addressees: str, body: str | Sequence[str] = ()) -> bool:
    """True when the 主送 can stay on page 1 (7.3.2): below the title `title` its lines leave room for
    the start of `body` (at least ADDRESSEES_MIN_BODY_LINES), with ADDRESSEES_SAFETY_LINES to spare.
    False: it goes to the 版记."""
    needed = addressee_lines(addressees) + body_lines_to_show(body) + L.ADDRESSEES_SAFETY_LINES
    return needed <= first_page_lines(title)


def _imprint_item_lines(label: str, names: str) -> int:
    """Lines one item of the 版记 (“抄送：…。”) takes: 四号, one character in from each side,
    wrapped lines under the first name (the label's width is taken off every line)."""
    return len(wrapped_lines(names + L.IMPRINT_LIST_END, L.IMPRINT_CHARS_PER_LINE - len(label)))


def imprint_addressee_lines(addressees: str) -> int:
    """Lines “主送：…。” takes in the 版记."""
    return _imprint_item_lines(L.ADDRESSEES_LABEL, addressee_text(addressees))


def imprint_lines(addressees: str | None, copy_to: Sequence[str] = ()) -> int:
    """Lines of the whole 版记: the 主送 moved there (None when it stays on page 1), the 抄送, and
    the line of 印发机关 and 印发日期."""
    lines = 1
    if addressees:
        lines += imprint_addressee_lines(addressees)
    names = L.IMPRINT_LIST_SEPARATOR.join(name.strip() for name in copy_to if name.strip())
    if names:
        lines += _imprint_item_lines(L.COPY_TO_LABEL, names)
    return lines


def imprint_fits(addressees: str | None, copy_to: Sequence[str] = ()) -> bool:
    """True when that 版记 fits one page (IMPRINT_MAX_LINES): it is a single block at the foot of
    the last page and cannot continue on the next."""
    return imprint_lines(addressees, copy_to) <= L.IMPRINT_MAX_LINES
