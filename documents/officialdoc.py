"""Any official document (通知, 通报 …) in GB/T 9704-2012 layout, rendered from the template built
by documents/template_builder.py. The notice and the summary describe their content as an
`OfficialDocument` and call `render_official_document()`."""
from __future__ import annotations

import datetime as dt
import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from docx.oxml import parse_xml
from docx.oxml.ns import qn
from docxtpl import DocxTemplate
from lxml import etree

from documents import layout as L
from documents.addressees import addressee_text, addressees_fit_first_page, imprint_fits, imprint_lines
from documents.blocks import (Annex, AnnexTable, annex_page, drop_empty_runs, fragment_xml,
                              keep_signature_with_text, landscape_section, mark_run, merge_section_breaks,
                              portrait_section, section_break, signature_paragraphs)
from documents.chinese_text import chinese_date, parse_body, title_lines
from documents.landscape import add_turned_page_number_footers
from documents.ooxml import E, Fragment, paragraph, run
from documents.package import save_docx
from documents.template_builder import TEMPLATE_NAME
from models.settings import TEMPLATES_DIR

DEFAULT_TEMPLATE = TEMPLATES_DIR / TEMPLATE_NAME
_DOC_NUMBER = re.compile(L.DOC_NUMBER_PATTERN)

_REQUIRED = {"mark": "发文机关标志", "title": "标题", "addressees": "主送机关", "issuer": "发文机关署名",
             "printer": "印发机关"}

__all__ = ["Annex", "AnnexTable", "OfficialDocument", "DEFAULT_TEMPLATE", "gc_paused", "render_official_document"]


@dataclass(frozen=True)
class OfficialDocument:
    """What one official document says. Layout comes from the template and documents/layout.py.

    `body` is the text (paragraphs separated by blank lines) or a sequence of paragraphs; heading
    levels (一、 （一） 1. （1）) are recognised from the text. `attachments` are listed in the
    附件说明 in order; an `Annex` with content also gets its pages before the 版记, a bare name (or
    an Annex without content) is only listed. `note` is the 附注 without its brackets.
    """

    mark: str                      # 发文机关标志, e.g. "…办公室文件"
    doc_number: str                # 发文字号, e.g. "新文明办发〔2023〕9号"
    title: str
    addressees: str                # 主送机关, without the final colon; names may be on separate lines
    body: str | Sequence[str]
    issuer: str                    # 发文机关署名
    date: dt.date                  # 成文日期
    printer: str                   # 印发机关
    printed_date: dt.date          # 印发日期
    attachments: Sequence[Annex | str] = field(default_factory=tuple)
    note: str | None = None        # 附注
    copy_to: Sequence[str] = field(default_factory=tuple)   # 抄送机关

    def __post_init__(self):
        if not _DOC_NUMBER.match(self.doc_number):
            raise ValueError(f"发文字号“{self.doc_number}”不符合 GB/T 9704 格式，应如“新文明办发〔2023〕9号”")
        for name, label in _REQUIRED.items():
            if not getattr(self, name).strip():
                raise ValueError(f"公文的{label}为空，请填写")
        if not self.addressees_on_first_page and not imprint_fits(self.addressees, self.copy_to):
            lines = imprint_lines(self.addressees, self.copy_to)
            raise ValueError(
                f"主送机关名称过多：留在首页会把正文挤出首页，移至版记则版记约{lines}行，一页排不下。"
                "请改用统称（如“各有关单位”），并将单位名单作为附件。")

    @property
    def annexes(self) -> list[Annex]:
        return [a if isinstance(a, Annex) else Annex(title=a) for a in self.attachments]

    @property
    def addressees_on_first_page(self) -> bool:
        """7.3.2: the 主送 stays under the title unless it would leave page 1 without body text;
        then it is printed in the 版记 (“主送：…。”, above 抄送)."""
        return addressees_fit_first_page(self.title, self.addressees, self.body)


def _annex_fragment(document: OfficialDocument, tpl: DocxTemplate) -> Fragment:
    annexes = document.annexes
    numbered = len(annexes) > 1
    template_sect_pr = tpl.docx.element.body.sectPr
    elements: list = []
    landscape_footers: dict[str, str] | None = None
    in_landscape = False
    for index, annex in enumerate(annexes, start=1):
        if not annex.content:
            continue
        # A section break closes the section before it: portrait before the first landscape
        # annex of a run, landscape before the next portrait page.
        if annex.landscape and not in_landscape:
            elements.append(section_break(portrait_section(template_sect_pr)))
        elif in_landscape and not annex.landscape:
            elements.append(section_break(landscape_section(template_sect_pr, landscape_footers)))
        if annex.landscape and landscape_footers is None:
            landscape_footers = add_turned_page_number_footers(tpl.docx)
            _wrap_square(tpl.docx, landscape_footers)
        in_landscape = annex.landscape
        width = L.LANDSCAPE_TYPE_AREA_WIDTH if annex.landscape else L.TYPE_AREA_WIDTH
        elements += annex_page(annex, index if numbered else None, width)
    if in_landscape:   # the 版记 goes on a portrait page of its own
        elements.append(section_break(landscape_section(template_sect_pr, landscape_footers)))
    fragment = Fragment()
    fragment.xml = fragment_xml(elements)
    return fragment


def _wrap_square(docx, footer_ids: dict[str, str]) -> None:
    """Give the turned page numbers square wrapping instead of none. LibreOffice (7.4) places a
    footer's unwrapped box at the page's corner on some landscape pages (a landscape run of two or
    three pages that starts on an odd page); a square-wrapped one stays where it is put, and the
    box lies in the margin, so no text wraps around it. (Belongs in landscape.py's box.)"""
    for r_id in footer_ids.values():
        root = docx.part.related_parts[r_id].element
        for unwrapped in root.iter(qn("wp:wrapNone")):
            square = E("wp:wrapSquare")
            square.set("wrapText", "bothSides")
            unwrapped.addprevious(square)
            unwrapped.getparent().remove(unwrapped)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _line(text: str) -> str:
    """A one-line field: no control characters (docxtpl would turn tab, newline, \\a and \\f into
    tabs, breaks, paragraphs and page breaks)."""
    return _CONTROL.sub("", text).strip()


def _context(document: OfficialDocument, tpl: DocxTemplate) -> dict:
    title = "\n".join(_line(line) for line in title_lines(document.title, L.TITLE_CHARS_PER_LINE))
    note = _line(document.note).strip("（）()") if document.note else None
    addressees = addressee_text(document.addressees)
    on_first_page = document.addressees_on_first_page
    return {
        "mark": Fragment(mark_run(_line(document.mark))),
        "doc_number": document.doc_number,
        "title": title,
        "addressees": addressees if on_first_page else None,        # under the title …
        "imprint_addressees": None if on_first_page else addressees,  # … or in the 版记
        "body": parse_body(document.body),
        "attachments": [_line(a.title) for a in document.annexes],
        "signature": Fragment(*signature_paragraphs(_line(document.issuer), chinese_date(document.date))),
        "note": note,
        "annexes": _annex_fragment(document, tpl),
        "copy_to": L.IMPRINT_LIST_SEPARATOR.join(_line(c) for c in document.copy_to if _line(c)),
        "printer": _line(document.printer),
        "printed_date": chinese_date(document.printed_date),
    }


def _set_properties(docx, document: OfficialDocument) -> None:
    """Core properties from the document itself, never from the clock: the same input gives the
    same file."""
    stamp = dt.datetime.combine(document.date, dt.time())
    core = docx.core_properties
    core.title = document.title
    core.subject = document.doc_number
    core.author = document.issuer
    core.last_modified_by = document.issuer
    core.comments = ""
    core.revision = 1
    core.created = stamp
    core.modified = stamp
    core.language = L.LANGUAGE


# The annex pages join the rendered document as text, not through docxtpl: they are built as
# WordprocessingML already, and docxtpl's passes over its rendered text and its swap of the body
# (lxml moving a parsed tree into another document) grow faster than the text: with a table of
# 10,000 rows they were most of the time. The template's {{p annexes }} tag is rendered as this
# placeholder paragraph; the document is then parsed once with the annexes in its place.
_ANNEX_MARK = "noticeflow:annex-pages:placeholder"
_ANNEX_PLACEHOLDER = paragraph(None, run(_ANNEX_MARK))
_PLACEHOLDER_XML = re.compile(r"<w:p\b[^>]*>(?:(?!<w:p\b).)*?" + re.escape(_ANNEX_MARK) + r".*?</w:p>", re.S)


def _put_annexes(docx, annexes: Fragment) -> None:
    """Replace the placeholder paragraph of the rendered python-docx Document `docx` by the annex
    pages: the document part's XML is parsed anew from text, in one document (no tree moves)."""
    xml, count = _PLACEHOLDER_XML.subn(lambda _: annexes.xml, etree.tostring(docx.element, encoding="unicode"))
    if count != 1:
        raise RuntimeError(f"the rendered template holds {count} annex placeholders, expected 1")
    root = parse_xml(xml)
    # python-docx has no setter for a part's element (docxtpl, too, works on docx._element).
    docx.part._element = root
    docx._element = root


@contextmanager
def gc_paused():
    """Run a block without Python's cyclic garbage collector. Building a document of 10,000 table
    rows allocates millions of short-lived objects; each automatic collection then walks every live
    one (the units' data), which made the work grow faster than the number of units. Nothing here
    creates lasting cycles; the collector runs again when the block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def render_official_document(document: OfficialDocument, out_path: Path,
                             template: Path = DEFAULT_TEMPLATE) -> Path:
    """Render `document` into `out_path` (.docx) from `template`; returns `out_path`."""
    with gc_paused():
        tpl = DocxTemplate(str(template))
        tpl.init_docx()
        context = _context(document, tpl)
        annexes, context["annexes"] = context["annexes"], Fragment(_ANNEX_PLACEHOLDER)
        tpl.render(context, autoescape=True)
        _put_annexes(tpl.docx, annexes)
        drop_empty_runs(tpl.docx.element.body)
        merge_section_breaks(tpl.docx.element.body)
        keep_signature_with_text(tpl.docx.element.body)
        _set_properties(tpl.docx, document)
        return save_docx(tpl, Path(out_path))
