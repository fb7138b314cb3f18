"""The parts of an official document whose layout depends on their content, built as
WordprocessingML: the condensed 发文机关标志, the 署名/成文日期 pair, annex pages with tables, and
the section breaks around a landscape table."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

from docx.oxml.ns import nsmap, qn
from lxml import etree

from documents import layout as L
from documents import styles as S
from documents.chinese_text import BodyParagraph, classify, display_width, title_lines
from documents.ooxml import E, ParaProps, RunProps, paragraph, run, to_fragment

CHAR = L.BODY_CHAR_PITCH


def width_twips(text: str) -> int:
    """Width of `text` in the body face with its character spacing (full-width 315, half 155)."""
    return round(sum(
        (1.0 if w == 1.0 else 0.5) * L.BODY_SIZE * L.TWIPS_PER_PT / 2 + L.BODY_CHAR_SPACING
        for w in (display_width(ch) for ch in text)))


# --- 7.2.4 发文机关标志 ---------------------------------------------------------------------------
def mark_scale(mark: str) -> int | None:
    """Horizontal scale (percent) that keeps the mark inside the type area at its style's size;
    None when it fits as it is."""
    natural = display_width(mark) * L.MARK_SIZE * L.TWIPS_PER_PT / 2
    if natural <= L.TYPE_AREA_WIDTH:
        return None
    return max(L.MARK_MIN_SCALE, int(100 * L.TYPE_AREA_WIDTH / natural))


def mark_run(mark: str):
    return run(mark, RunProps(scale=mark_scale(mark)))


# --- 7.3.5.2 署名 and 成文日期 without a seal -----------------------------------------------------
def signature_paragraphs(issuer: str, date_text: str) -> list:
    """署名 two characters from the right; the date on the next line starting two characters right
    of the 署名's first character; if the date would then come closer than two characters to the
    right edge, both move left so it keeps them."""
    issuer_width, date_width = width_twips(issuer), width_twips(date_text)
    right_gap = L.SIGNATURE_RIGHT_CHARS * CHAR
    shift = L.DATE_SHIFT_CHARS * CHAR
    if issuer_width - shift >= date_width + (L.DATE_RIGHT_MIN_CHARS * CHAR - right_gap):
        issuer_right = right_gap
    else:
        issuer_right = L.DATE_RIGHT_MIN_CHARS * CHAR + date_width + shift - issuer_width
    date_left = L.TYPE_AREA_WIDTH - issuer_right - issuer_width + shift
    return [
        paragraph(ParaProps(style=S.SIGNATURE, right=issuer_right), run(issuer)),
        paragraph(ParaProps(style=S.DATE, left=date_left), run(date_text)),
    ]


# --- Body paragraphs (also used on annex pages) --------------------------------------------------
def body_paragraph(para: BodyParagraph, keep_next: bool | None = None):
    style = S.BODY_LEVEL_STYLES.get(para.level, S.BODY)
    runs = []
    if para.lead:
        runs.append(run(para.lead, RunProps(style=S.LEAD_CHAR_STYLES[para.level])))
    if para.rest:
        runs.append(run(para.rest))
    return paragraph(ParaProps(style=style, keep_next=keep_next), *runs)


# --- 8 Annex tables --------------------------------------------------------------------------------
class Merge(Enum):
    """A header cell that is part of a neighbour: `LEFT` widens the cell on its left (gridSpan),
    `UP` lengthens the cell above it (vMerge). Only header rows merge."""

    LEFT = "left"
    UP = "up"


MERGE_LEFT, MERGE_UP = Merge.LEFT, Merge.UP

# Characters an XML text node may not hold, and the ones docxtpl turns into markup after rendering
# (\a a new paragraph, \f a page break, \v …): user text loses them. \n and \t stay: run() makes
# them line breaks and tabs.
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def cell_text(text) -> str:
    """Text as a table cell or an annex paragraph may hold it: line breaks normalised to \n,
    control characters dropped."""
    return _NOT_TEXT.sub("", str(text).replace("\r\n", "\n").replace("\r", "\n"))


@dataclass(frozen=True)
class AnnexTable:
    """A table on an annex page. `header` rows repeat at the top of every page the table runs
    onto, and may merge cells (MERGE_LEFT, MERGE_UP); `widths` are relative column weights
    (default: equal); `align` per column is "left", "center" or "right" (default: centred). Cell
    text may contain line breaks."""

    header: Sequence[Sequence[str | Merge]]
    rows: Sequence[Sequence[str]]
    widths: Sequence[float] | None = None
    align: Sequence[str] | None = None
    font_size: int = L.TABLE_SIZE          # half-points; layout.TABLE_SIZE_SMALL for wide tables

    @property
    def column_count(self) -> int:
        return max(len(r) for r in [*self.header, *self.rows])


def column_widths(weights: Sequence[float] | None, count: int, total: int) -> list[int]:
    """Twips per column, summing exactly to `total` (the type area's width)."""
    weights = list(weights) if weights else [1.0] * count
    if len(weights) != count or any(w <= 0 for w in weights):
        raise ValueError(f"表格有 {count} 列，列宽比例应为 {count} 个正数，现为 {weights}")
    widths = [int(total * w / sum(weights)) for w in weights]
    widths[-1] += total - sum(widths)
    return widths


def _cell(text: str, width: int, style: str, align: str | None, size: int | None,
          span: int = 1, v_merge: str | None = None):
    props = RunProps(size=size) if size else None
    content = () if v_merge == "continue" else (run(cell_text(text), props),)
    return E("w:tc", None,
             E("w:tcPr", None, E("w:tcW", {"w:w": width, "w:type": "dxa"}),
               E("w:gridSpan", {"w:val": span}) if span > 1 else None,
               (E("w:vMerge", {"w:val": "restart"}) if v_merge == "restart" else E("w:vMerge"))
               if v_merge else None,
               E("w:vAlign", {"w:val": "center"})),
             paragraph(ParaProps(style=style, align=align), *content))


class TableXml(str):
    """A table as WordprocessingML text, ready for a fragment (see table_xml)."""


def table_xml(table: AnnexTable, total_width: int) -> TableXml:
    """The table as WordprocessingML text. The frame and the header rows are built as elements;
    the body rows are written as text from one built row (see _BodyRows): a table of 10,000 rows
    then costs little more than the text itself."""
    count = table.column_count
    widths = column_widths(table.widths, count, total_width)
    size = table.font_size if table.font_size != L.TABLE_SIZE else None
    border = {"w:val": "single", "w:sz": L.TABLE_BORDER_WIDTH, "w:space": 0, "w:color": "000000"}
    tbl = E("w:tbl", None,
            E("w:tblPr", None,
              E("w:tblW", {"w:w": total_width, "w:type": "dxa"}),
              E("w:jc", {"w:val": "center"}),
              E("w:tblBorders", None, *(E(f"w:{side}", border) for side in
                                        ("top", "left", "bottom", "right", "insideH", "insideV"))),
              E("w:tblLayout", {"w:type": "fixed"}),
              E("w:tblLook", {"w:val": "04A0", "w:firstRow": 1, "w:lastRow": 0, "w:firstColumn": 0,
                              "w:lastColumn": 0, "w:noHBand": 0, "w:noVBand": 1})),
            E("w:tblGrid", None, *(E("w:gridCol", {"w:w": w}) for w in widths)))
    for index, header_row in enumerate(table.header):
        below = table.header[index + 1] if index + 1 < len(table.header) else ()
        tbl.append(_header_row(header_row, below, widths, size))
    head = to_fragment(tbl)
    assert head.endswith(_TBL_END)
    body_rows = _BodyRows(widths, table.align, size)
    return TableXml(head[:-len(_TBL_END)] + "".join(body_rows.row(r) for r in table.rows) + _TBL_END)


_TBL_END = "</w:tbl>"


def _header_row(cells: Sequence[str | Merge], below: Sequence[str | Merge], widths: list[int], size):
    cells = list(cells) + [""] * (len(widths) - len(cells))
    tr = E("w:tr", None, E("w:trPr", None, E("w:cantSplit"), E("w:tblHeader")))
    column = 0
    while column < len(cells):
        value = cells[column]
        if value is MERGE_LEFT:
            raise ValueError(f"表头第 {column + 1} 列左侧没有可合并的单元格")
        span = 1
        while column + span < len(cells) and cells[column + span] is MERGE_LEFT:
            span += 1
        if value is MERGE_UP:
            v_merge, value = "continue", ""
        else:
            v_merge = "restart" if column < len(below) and below[column] is MERGE_UP else None
        tr.append(_cell(value, sum(widths[column:column + span]), S.TABLE_HEADER, None, size, span, v_merge))
        column += span
    return tr


class _BodyRows:
    """Body rows as text: one row is built as elements with a marker for each cell's text and
    serialised once; each row is then that text with the cells' texts put in, escaped, with line
    breaks and tabs as run() writes them."""

    _MARK = "\ue000"      # a private-use character: no text reaches here with it (see row())

    def __init__(self, widths: list[int], align, size):
        self.width = len(widths)
        prototype = E("w:tr", None, E("w:trPr", None, E("w:cantSplit")), *(
            _cell(self._MARK, width, S.TABLE_TEXT, (align[i] if align and i < len(align) else None), size)
            for i, width in enumerate(widths)))
        marked = f'<w:t xml:space="preserve">{self._MARK}</w:t>'
        self.pieces = to_fragment(prototype).split(marked)
        if len(self.pieces) != self.width + 1:
            raise AssertionError("the prototype row does not hold one marked text per cell")

    @staticmethod
    def _run_content(text: str) -> str:
        parts = []
        for piece in _BREAKS.split(text):
            if piece == "\n":
                parts.append("<w:br/>")
            elif piece == "\t":
                parts.append("<w:tab/>")
            elif piece:
                parts.append(f'<w:t xml:space="preserve">{_escape(piece)}</w:t>')
        return "".join(parts)

    def row(self, cells: Sequence[str]) -> str:
        cells = list(cells) + [""] * (self.width - len(cells))
        out = [self.pieces[0]]
        for text, after in zip(cells, self.pieces[1:]):
            out.append(self._run_content(cell_text(text).replace(self._MARK, "")))
            out.append(after)
        return "".join(out)


_BREAKS = re.compile(r"(\n|\t)")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- 7.3.7 Annex pages ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Annex:
    """One 附件: its title (as the 附件说明 lists it) and its content: paragraphs (heading levels
    detected as in the body) and tables. With no content the annex is only listed (it travels as a
    separate file). `landscape` turns its pages for a wide table (8: the page number stays where
    the portrait pages have it)."""

    title: str
    content: Sequence[str | AnnexTable] = field(default_factory=tuple)
    landscape: bool = False


def annex_label(number: int | None) -> str:
    return L.ANNEX_LABEL if number is None else f"{L.ANNEX_LABEL}{number}"


def annex_page(annex: Annex, number: int | None, total_width: int) -> list:
    """附件N on line 1 (new page), the title centred on line 3, then the content: paragraphs as
    elements, tables as TableXml text (see fragment_xml)."""
    elements = [paragraph(ParaProps(style=S.ANNEX_LABEL), run(annex_label(number)))]
    elements += [paragraph() for _ in range(L.BLANK_LINES_ANNEX_LABEL_TO_TITLE)]
    # The title breaks like the document's own (7.3.1), over the width of this page.
    title = "\n".join(title_lines(cell_text(annex.title), total_width // (L.TITLE_SIZE * L.TWIPS_PER_PT // 2)))
    elements.append(paragraph(ParaProps(style=S.ANNEX_TITLE), run(title)))
    elements += [paragraph() for _ in range(L.BLANK_LINES_ANNEX_TITLE_TO_CONTENT)]
    content = list(annex.content)
    for index, item in enumerate(content):
        if isinstance(item, AnnexTable):
            elements.append(table_xml(item, total_width))
        else:
            # A paragraph that introduces a table stays on the page where the table starts.
            introduces = index + 1 < len(content) and isinstance(content[index + 1], AnnexTable)
            elements.append(body_paragraph(classify(cell_text(item)), keep_next=True if introduces else None))
    if isinstance(elements[-1], TableXml):
        # A table may not end a section or the document: Word needs a paragraph after it.
        elements.append(paragraph())
    return elements


def fragment_xml(parts) -> str:
    """Elements and TableXml texts as one fragment's text."""
    return "".join(part if isinstance(part, TableXml) else to_fragment(part) for part in parts)


# --- Sections -------------------------------------------------------------------------------------
def section_break(sect_pr) -> object:
    """An empty paragraph that ends a section (merged into the paragraph before it when there is
    one, see merge_section_breaks)."""
    return paragraph(None, sect_pr=sect_pr)


def portrait_section(template_sect_pr):
    """The template's own section (page, margins, page-number footers) for a section that ends
    before a landscape one."""
    sect_pr = copy.deepcopy(template_sect_pr)
    _set_type(sect_pr, "nextPage")
    return sect_pr


def landscape_section(template_sect_pr, footer_ids: dict[str, str]):
    """A landscape section over the same type area; `footer_ids` maps "default"/"even" to the
    relationship ids of footers that print the page number turned, at the portrait position."""
    sect_pr = copy.deepcopy(template_sect_pr)
    for ref in sect_pr.findall(qn("w:footerReference")):
        ref.set(qn("r:id"), footer_ids[ref.get(qn("w:type"))])
    _set_type(sect_pr, "nextPage")
    pg_sz = sect_pr.find(qn("w:pgSz"))
    pg_sz.set(qn("w:w"), str(L.PAGE_HEIGHT))
    pg_sz.set(qn("w:h"), str(L.PAGE_WIDTH))
    pg_sz.set(qn("w:orient"), "landscape")
    pg_mar = sect_pr.find(qn("w:pgMar"))
    for name, value in (("top", L.LANDSCAPE_MARGIN_TOP), ("bottom", L.LANDSCAPE_MARGIN_BOTTOM),
                        ("left", L.LANDSCAPE_MARGIN_LEFT), ("right", L.LANDSCAPE_MARGIN_RIGHT)):
        pg_mar.set(qn(f"w:{name}"), str(value))
    return sect_pr


def _set_type(sect_pr, value: str) -> None:
    existing = sect_pr.find(qn("w:type"))
    if existing is None:
        existing = E("w:type")
        anchor = sect_pr.find(qn("w:pgSz"))
        anchor.addprevious(existing)
    existing.set(qn("w:val"), value)


def merge_section_breaks(body) -> None:
    """Move each section break held by an empty paragraph into the paragraph before it, so the
    break does not add a line (which could spill onto a page of its own)."""
    for p in body.findall(qn("w:p")):
        p_pr = p.find(qn("w:pPr"))
        if p_pr is None or p_pr.find(qn("w:sectPr")) is None or p.find(qn("w:r")) is not None:
            continue
        previous = p.getprevious()
        if previous is None or previous.tag != qn("w:p"):
            continue
        previous_ppr = previous.find(qn("w:pPr"))
        if previous_ppr is None:
            previous_ppr = E("w:pPr")
            previous.insert(0, previous_ppr)
        if previous_ppr.find(qn("w:sectPr")) is not None:
            continue
        sect_pr = p_pr.find(qn("w:sectPr"))
        # w:sectPr is the last child of w:pPr (only w:pPrChange may follow).
        previous_ppr.append(sect_pr)
        body.remove(p)


# --- 7.3.5.5: no page with only the 署名 and the date ---------------------------------------------
_KEPT_WITH_SIGNATURE = {S.ATTACHMENT, S.ATTACHMENT_FIRST, S.ATTACHMENT_NEXT}


def _style_of(p) -> str | None:
    style = p.find(f"{qn('w:pPr')}/{qn('w:pStyle')}")
    return None if style is None else style.get(qn("w:val"))


def _has_text(p) -> bool:
    return any((t.text or "").strip() for t in p.iter(qn("w:t")))


def keep_signature_with_text(body) -> None:
    """Chain keep-with-next from the last body paragraph through the 附件说明 and the blank lines
    to the 署名, so that the page holding the 署名 and date also holds the end of the text."""
    signature = next((p for p in body.iter(qn("w:p")) if _style_of(p) == S.SIGNATURE), None)
    if signature is None:
        return
    p = signature.getprevious()
    while p is not None and p.tag == qn("w:p"):
        p_pr = p.find(qn("w:pPr"))
        if p_pr is None:
            p_pr = E("w:pPr")
            p.insert(0, p_pr)
        if p_pr.find(qn("w:keepNext")) is None:
            keep = E("w:keepNext")
            style = p_pr.find(qn("w:pStyle"))
            if style is not None:
                style.addnext(keep)
            else:
                p_pr.insert(0, keep)
        if _has_text(p) and _style_of(p) not in _KEPT_WITH_SIGNATURE:
            break
        p = p.getprevious()


# Runs with content that is only empty w:t, in the body's own paragraphs: the template's tags are
# there; the annex tables (100,000s of runs) are built here and hold no such run.
_EMPTY_RUNS = etree.XPath(
    "./w:p/w:r[*[not(self::w:rPr)] and not(*[not(self::w:rPr or self::w:t)])"
    " and not(w:t[string-length(.) > 0])]", namespaces={"w": nsmap["w"]})


def drop_empty_runs(body) -> None:
    """Remove the empty runs docxtpl leaves around `{{r …}}` tags and empty values."""
    for r in _EMPTY_RUNS(body):
        r.getparent().remove(r)
