"""Small builders for WordprocessingML elements.

Text always goes in through lxml (never string formatting), so user text containing `<`, `&` or
`{{` stays literal. Children are written in the order the OOXML schema prescribes: Word refuses
files whose w:pPr or w:rPr children are out of order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from docx.oxml.ns import nsmap, qn
from docx.oxml.parser import OxmlElement
from lxml import etree

W_NS = nsmap["w"]

# CT_PPr and CT_RPr child order (ECMA-376 §17.3.1.26 and §17.3.2.28), the parts used here.
_PPR_ORDER = ("pStyle", "keepNext", "keepLines", "pageBreakBefore", "framePr", "widowControl",
              "pBdr", "shd", "tabs", "kinsoku", "wordWrap", "overflowPunct", "autoSpaceDE",
              "autoSpaceDN", "snapToGrid", "spacing", "ind", "contextualSpacing", "jc",
              "textAlignment", "outlineLvl", "rPr", "sectPr")
_RPR_ORDER = ("rStyle", "rFonts", "b", "bCs", "i", "iCs", "color", "spacing", "w", "kern", "sz",
              "szCs", "u", "lang")


def E(tag: str, attrs: dict[str, object] | None = None, *children, text: str | None = None):
    """One element: `E("w:jc", {"w:val": "center"})`. Attribute names carry their prefix."""
    element = OxmlElement(tag)
    for name, value in (attrs or {}).items():
        if value is not None:
            element.set(qn(name), str(value))
    for child in children:
        if child is not None:
            element.append(child)
    if text is not None:
        element.text = text
    return element


def _ordered(parent_tag: str, order: tuple[str, ...], children: list) -> object:
    parent = E(parent_tag)
    rank = {qn(f"w:{name}"): i for i, name in enumerate(order)}
    for child in sorted((c for c in children if c is not None), key=lambda c: rank[c.tag]):
        parent.append(child)
    return parent


def on_off(tag: str, value: bool):
    return E(tag, {"w:val": "1" if value else "0"})


@dataclass(frozen=True)
class RunProps:
    """Direct run formatting. None means "inherit from the style"."""

    style: str | None = None
    font: str | None = None
    size: int | None = None            # half-points
    bold: bool | None = None
    color: str | None = None
    spacing: int | None = None         # twips between characters
    scale: int | None = None           # horizontal scale, percent
    lang: str | None = None            # East Asian language
    latin_lang: str | None = None

    def element(self):
        children = []
        if self.style:
            children.append(E("w:rStyle", {"w:val": self.style}))
        if self.font:
            children.append(fonts_element(self.font))
        if self.bold is not None:
            children += [on_off("w:b", self.bold), on_off("w:bCs", self.bold)]
        if self.color:
            children.append(E("w:color", {"w:val": self.color}))
        if self.spacing is not None:
            children.append(E("w:spacing", {"w:val": self.spacing}))
        if self.scale is not None:
            children.append(E("w:w", {"w:val": self.scale}))
        if self.size is not None:
            children += [E("w:sz", {"w:val": self.size}), E("w:szCs", {"w:val": self.size})]
        if self.lang:
            children.append(E("w:lang", {"w:val": self.latin_lang or self.lang, "w:eastAsia": self.lang}))
        return _ordered("w:rPr", _RPR_ORDER, children) if children else None


def fonts_element(font: str):
    """The same face in every slot: East Asian text needs w:eastAsia; digits and Latin letters in
    the ASCII slots get the Chinese face's half-width glyphs, as Chinese offices expect."""
    return E("w:rFonts", {"w:ascii": font, "w:hAnsi": font, "w:eastAsia": font, "w:cs": font})


@dataclass(frozen=True)
class Border:
    size: int                      # eighths of a point
    color: str = "000000"
    space: int = 0                 # points between text and line


@dataclass(frozen=True)
class Frame:
    """w:framePr: a block of paragraphs positioned on the page (used for the 版记)."""

    width: int
    y_align: str = "bottom"
    v_anchor: str = "margin"
    h_anchor: str = "margin"
    x_align: str = "center"
    wrap: str = "notBeside"


@dataclass(frozen=True)
class ParaProps:
    style: str | None = None
    align: str | None = None                    # left, center, right, both
    line: int | None = None                     # exact line height, twips
    before: int | None = None
    after: int | None = None
    left: int | None = None
    right: int | None = None
    first_line: int | None = None
    first_line_chars: int | None = None
    hanging: int | None = None
    keep_next: bool | None = None
    keep_lines: bool | None = None
    page_break_before: bool | None = None
    widow_control: bool | None = None
    overflow_punct: bool | None = None          # punctuation hanging into the right margin
    auto_space: bool | None = None              # extra space between Chinese and Latin/digits
    outline_level: int | None = None
    tabs: tuple[tuple[str, int], ...] = ()      # (alignment, position)
    borders: dict[str, Border] = field(default_factory=dict)   # top, bottom
    frame: Frame | None = None
    run: RunProps | None = None                 # the paragraph mark's run properties

    def element(self, sect_pr=None):
        c = []
        if self.style:
            c.append(E("w:pStyle", {"w:val": self.style}))
        if self.keep_next is not None:
            c.append(on_off("w:keepNext", self.keep_next))
        if self.keep_lines is not None:
            c.append(on_off("w:keepLines", self.keep_lines))
        if self.page_break_before is not None:
            c.append(on_off("w:pageBreakBefore", self.page_break_before))
        if self.frame:
            f = self.frame
            c.append(E("w:framePr", {"w:w": f.width, "w:wrap": f.wrap, "w:vAnchor": f.v_anchor,
                                     "w:hAnchor": f.h_anchor, "w:xAlign": f.x_align,
                                     "w:yAlign": f.y_align}))
        if self.widow_control is not None:
            c.append(on_off("w:widowControl", self.widow_control))
        if self.borders:
            bdr = E("w:pBdr")
            for side in ("top", "left", "bottom", "right", "between"):
                b = self.borders.get(side)
                if b:
                    bdr.append(E(f"w:{side}", {"w:val": "single", "w:sz": b.size,
                                               "w:space": b.space, "w:color": b.color}))
            c.append(bdr)
        if self.overflow_punct is not None:
            c.append(on_off("w:overflowPunct", self.overflow_punct))
        if self.auto_space is not None:
            c += [on_off("w:autoSpaceDE", self.auto_space), on_off("w:autoSpaceDN", self.auto_space)]
        if self.tabs:
            c.append(E("w:tabs", None, *(E("w:tab", {"w:val": v, "w:pos": p}) for v, p in self.tabs)))
        if any(v is not None for v in (self.line, self.before, self.after)):
            c.append(E("w:spacing", {"w:before": self.before, "w:after": self.after,
                                     "w:line": self.line,
                                     "w:lineRule": "exact" if self.line is not None else None}))
        if any(v is not None for v in (self.left, self.right, self.first_line, self.hanging,
                                       self.first_line_chars)):
            c.append(E("w:ind", {"w:left": self.left, "w:right": self.right,
                                 "w:firstLineChars": self.first_line_chars,
                                 "w:firstLine": self.first_line, "w:hanging": self.hanging}))
        if self.align:
            c.append(E("w:jc", {"w:val": self.align}))
        if self.outline_level is not None:
            c.append(E("w:outlineLvl", {"w:val": self.outline_level}))
        if self.run:
            c.append(self.run.element())
        if sect_pr is not None:
            c.append(sect_pr)
        return _ordered("w:pPr", _PPR_ORDER, c) if c else None


_BREAKS = re.compile(r"(\n|\t)")


def run(text: str = "", props: RunProps | None = None):
    """A run; "\\n" becomes a line break and "\\t" a tab."""
    r = E("w:r", None, props.element() if props else None)
    for piece in _BREAKS.split(text):
        if piece == "\n":
            r.append(E("w:br"))
        elif piece == "\t":
            r.append(E("w:tab"))
        elif piece:
            t = E("w:t", text=piece)
            t.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
            r.append(t)
    return r


def paragraph(props: ParaProps | None = None, *runs, sect_pr=None):
    if props is None and sect_pr is not None:
        props = ParaProps()
    return E("w:p", None, props.element(sect_pr) if props else None, *runs)


def field_runs(instruction: str, placeholder: str, props: RunProps | None = None) -> list:
    """A complex field (PAGE, NUMPAGES…) as its five runs; `placeholder` shows until updated."""
    def rpr():
        return props.element() if props else None
    instr = E("w:instrText", text=f" {instruction} ")
    instr.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
    return [E("w:r", None, rpr(), E("w:fldChar", {"w:fldCharType": "begin"})),
            E("w:r", None, rpr(), instr),
            E("w:r", None, rpr(), E("w:fldChar", {"w:fldCharType": "separate"})),
            E("w:r", None, rpr(), E("w:t", text=placeholder)),
            E("w:r", None, rpr(), E("w:fldChar", {"w:fldCharType": "end"}))]


_NS_DECL = re.compile(r' xmlns:\w+="[^"]*"')


def to_fragment(*elements) -> str:
    """Serialise elements for insertion into a rendered document part, without the namespace
    declarations the enclosing part already makes."""
    return "".join(_NS_DECL.sub("", etree.tostring(e, encoding="unicode")) for e in elements)


class Fragment:
    """Pre-built WordprocessingML for a docxtpl `{{p name }}` / `{{r name }}` tag: jinja2 treats it
    as markup (`__html__`), the text inside was escaped when the elements were built."""

    def __init__(self, *elements):
        self.xml = to_fragment(*elements)

    def __html__(self) -> str:
        return self.xml

    def __str__(self) -> str:
        return self.xml

    def __bool__(self) -> bool:
        return bool(self.xml)
