"""Reusable checks of GB/T 9704-2012 《党政机关公文格式》 for rendered official documents (the
notice, the summary): structural ones on the .docx XML, rendered ones on LibreOffice's PDF.

Every check returns a list of problems (empty when the document passes), so a test reads
`assert check_x(doc) == []` and a failure names every offending paragraph at once.

The numbers here are written out from the standard and shared/notes/gbt9704.md on purpose, not
imported from documents/layout.py: a wrong constant there must fail here. Only the template's
style ids are imported — they name things, they do not measure them.
"""
from __future__ import annotations

import re
import subprocess
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from documents import styles as S

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS = {"w": W, "r": R}

# --- The numbers (twips, half-points, eighths of a point) -----------------------------------------
A4 = (11906, 16838)                                                    # 5.1
MARGINS = {"top": 2098, "left": 1587, "right": 1474, "bottom": 1984}   # 5.2.1
LANDSCAPE_MARGINS = {"top": 1587, "bottom": 1474, "left": 1984, "right": 2098}
TYPE_AREA_WIDTH = A4[0] - MARGINS["left"] - MARGINS["right"]          # 8845
LINE_PITCH = 579                      # 5.2.3: 22 lines in 225 mm
MARK_LINE_HEIGHT = 2 * LINE_PITCH     # the mark takes two body lines
BODY_SIZE = 32                        # 三号
BODY_CHAR_SPACING = -5                # −0.25 pt: 28 characters a line
TITLE_SIZE = 44                       # 二号
FOUR_SIZE = 28                        # 四号: page numbers, 版记
TWO_CHARS = 200                       # firstLineChars
ONE_FOUR_CHAR = 280                   # one 四号 character, twips
BODY_CHAR = 315                       # one 三号 character with its spacing
RULE_THICK, RULE_THIN = 8, 6          # 7.4.1: 0.35 mm and 0.25 mm
RED = "FF0000"
FANGSONG, XIAOBIAOSONG, HEITI, KAITI, SONGTI = "仿宋_GB2312", "方正小标宋简体", "黑体", "楷体_GB2312", "宋体"
OFFICIAL_FONTS = {FANGSONG, XIAOBIAOSONG, HEITI, KAITI, SONGTI}
DOC_NUMBER = re.compile(r"^[^〔〕]+〔\d{4}〕[1-9]\d*号$")          # 7.2.5
DATE = re.compile(r"^\d{4}年[1-9]\d?月[1-9]\d?日$")                 # 7.3.5.4, 7.4.3
PAGE_NUMBER_TEXT = re.compile(r"^—\s*(\d+)\s*—$")                    # 7.5
HEADING_PATTERNS = ((1, re.compile(r"^[一二三四五六七八九十]+、")), (2, re.compile(r"^（[一二三四五六七八九十]+）")),
                    (3, re.compile(r"^\d+[.．]")), (4, re.compile(r"^（\d+）")))
HEADING_FONTS = {1: HEITI, 2: KAITI, 3: FANGSONG, 4: FANGSONG}       # 7.3.3
THEME_ATTRIBUTES = {"asciiTheme", "hAnsiTheme", "eastAsiaTheme", "cstheme"}
TEXT_STYLES = {S.BODY, S.HEADING_1, S.HEADING_2}


def w(tag: str) -> str:
    return f"{{{W}}}{tag}"


def _attrs(element) -> dict[str, str]:
    return {etree.QName(k).localname: v for k, v in element.attrib.items()}


# --- Reading a .docx ---------------------------------------------------------------------------------
@dataclass
class Docx:
    """The parts of a .docx the checks read, and a resolver of effective formatting
    (docDefaults → paragraph style chain → character style chain → direct formatting)."""

    path: Path
    parts: dict[str, bytes]
    document: etree._Element
    styles: etree._Element
    settings: etree._Element
    footers: dict[str, etree._Element] = field(default_factory=dict)   # by reference type, final section

    @classmethod
    def open(cls, path: Path) -> "Docx":
        with zipfile.ZipFile(path) as z:
            parts = {name: z.read(name) for name in z.namelist()}
        document = etree.fromstring(parts["word/document.xml"])
        rels = etree.fromstring(parts["word/_rels/document.xml.rels"])
        targets = {r.get("Id"): r.get("Target") for r in rels}
        doc = cls(path, parts, document, etree.fromstring(parts["word/styles.xml"]),
                  etree.fromstring(parts["word/settings.xml"]))
        final = document.find("w:body/w:sectPr", NS)
        for ref in final.findall("w:footerReference", NS):
            doc.footers[ref.get(w("type"))] = etree.fromstring(parts["word/" + targets[ref.get(f"{{{R}}}id")]])
        return doc

    # styles
    def _style(self, style_id: str | None):
        if not style_id:
            return None
        return self.styles.find(f"w:style[@w:styleId='{style_id}']", NS)

    def _chain(self, style_id: str | None, default_type: str) -> list:
        chain = []
        style = self._style(style_id) if style_id else self.styles.find(
            f"w:style[@w:type='{default_type}'][@w:default='1']", NS)
        while style is not None and len(chain) < 20:
            chain.insert(0, style)
            based = style.find("w:basedOn", NS)
            style = self._style(based.get(w("val"))) if based is not None else None
        return chain

    @staticmethod
    def _merge(target: dict, props) -> None:
        if props is None:
            return
        for child in props:
            name = etree.QName(child).localname
            if name in ("rPr", "sectPr", "pPrChange", "rPrChange"):
                continue
            if name in ("pBdr", "tabs"):
                target[name] = {etree.QName(c).localname: _attrs(c) for c in child}
            else:
                target.setdefault(name, {}).update(_attrs(child))

    def paragraph_style(self, p) -> str | None:
        style = p.find("w:pPr/w:pStyle", NS)
        return style.get(w("val")) if style is not None else None

    def para_props(self, p) -> dict:
        props: dict = {}
        self._merge(props, self.styles.find("w:docDefaults/w:pPrDefault/w:pPr", NS))
        for style in self._chain(self.paragraph_style(p), "paragraph"):
            self._merge(props, style.find("w:pPr", NS))
        self._merge(props, p.find("w:pPr", NS))
        return props

    def run_props(self, r, p) -> dict:
        props: dict = {}
        self._merge(props, self.styles.find("w:docDefaults/w:rPrDefault/w:rPr", NS))
        for style in self._chain(self.paragraph_style(p), "paragraph"):
            self._merge(props, style.find("w:rPr", NS))
        r_style = r.find("w:rPr/w:rStyle", NS)
        if r_style is not None:
            for style in self._chain(r_style.get(w("val")), "character"):
                self._merge(props, style.find("w:rPr", NS))
        self._merge(props, r.find("w:rPr", NS))
        return props

    # content
    def body_paragraphs(self, in_tables: bool = False) -> list:
        body = self.document.find("w:body", NS)
        result = []
        for p in body.iter(w("p")):
            inside_table = any(a.tag == w("tbl") for a in p.iterancestors())
            if inside_table == in_tables:
                result.append(p)
        return result

    def paragraphs_with_style(self, style_id: str) -> list:
        return [p for p in self.body_paragraphs() + self.body_paragraphs(True)
                if self.paragraph_style(p) == style_id]

    @staticmethod
    def text(p) -> str:
        out = []
        for node in p.iter(w("t"), w("tab"), w("br")):
            if node.tag == w("t"):
                out.append(node.text or "")
            elif node.tag == w("tab"):
                out.append("\t")
            else:
                out.append("\n")
        return "".join(out)

    @staticmethod
    def text_runs(p) -> list:
        return [r for r in p.iter(w("r")) if r.find("w:t", NS) is not None]

    def all_runs(self):
        """(run, paragraph) for every text run in the body and the footers."""
        paragraphs = self.body_paragraphs() + self.body_paragraphs(True)
        for footer in self.footers.values():
            paragraphs += list(footer.iter(w("p")))
        for p in paragraphs:
            for r in self.text_runs(p):
                yield r, p


def _size(props: dict) -> int | None:
    return int(props["sz"]["val"]) if "sz" in props else None


def _east_asian_font(props: dict) -> str | None:
    return props.get("rFonts", {}).get("eastAsia")


def _label(doc: Docx, p) -> str:
    return f"«{doc.text(p)[:20]}» ({doc.paragraph_style(p) or 'Normal'})"


# --- Structural checks ------------------------------------------------------------------------------
def check_page_setup(doc: Docx) -> list[str]:
    """5.1, 5.2.1: A4 and the margins, on every section (landscape ones turned)."""
    problems = []
    for sect in doc.document.iter(w("sectPr")):
        size, margins = _attrs(sect.find("w:pgSz", NS)), _attrs(sect.find("w:pgMar", NS))
        landscape = size.get("orient") == "landscape"
        expected_size = (A4[1], A4[0]) if landscape else A4
        if (int(size["w"]), int(size["h"])) != expected_size:
            problems.append(f"page size {size['w']}×{size['h']}, expected {expected_size}")
        for side, value in (LANDSCAPE_MARGINS if landscape else MARGINS).items():
            if int(margins[side]) != value:
                problems.append(f"{'landscape ' if landscape else ''}margin {side} {margins[side]}, expected {value}")
    return problems


def check_line_pitch(doc: Docx) -> list[str]:
    """5.2.3: every paragraph outside tables (and in the footers) has exact 28.95 pt lines; the mark
    takes exactly two of them. Table text has exact lines too."""
    problems = []
    paragraphs = doc.body_paragraphs() + [p for f in doc.footers.values() for p in f.iter(w("p"))]
    for p in paragraphs:
        spacing = doc.para_props(p).get("spacing", {})
        expected = MARK_LINE_HEIGHT if doc.paragraph_style(p) == S.MARK else LINE_PITCH
        if spacing.get("lineRule") != "exact" or int(spacing.get("line", 0)) != expected:
            problems.append(f"{_label(doc, p)}: line {spacing.get('line')} {spacing.get('lineRule')}, "
                            f"expected exact {expected}")
    for p in doc.body_paragraphs(in_tables=True):
        if doc.para_props(p).get("spacing", {}).get("lineRule") != "exact":
            problems.append(f"table {_label(doc, p)}: line spacing not exact")
    return problems


def check_character_spacing(doc: Docx) -> list[str]:
    """5.2.3: 三号 runs have −0.25 pt character spacing (28 a line); other sizes none."""
    problems = []
    for r, p in doc.all_runs():
        props = doc.run_props(r, p)
        spacing = int(props.get("spacing", {}).get("val", 0))
        expected = BODY_CHAR_SPACING if _size(props) == BODY_SIZE else 0
        if spacing != expected:
            problems.append(f"{_label(doc, p)}: size {_size(props)} spacing {spacing}, expected {expected}")
    return problems


def check_fonts(doc: Docx) -> list[str]:
    """Every run names an official face in w:eastAsia and in the ASCII slots."""
    problems = []
    for r, p in doc.all_runs():
        fonts = doc.run_props(r, p).get("rFonts", {})
        for slot in ("eastAsia", "ascii", "hAnsi"):
            if fonts.get(slot) not in OFFICIAL_FONTS:
                problems.append(f"{_label(doc, p)}: w:{slot}={fonts.get(slot)!r}")
    return problems


def check_no_theme_fonts(doc: Docx) -> list[str]:
    """Theme font attributes win over explicit names: there must be none, in any part."""
    problems = []
    for name, data in doc.parts.items():
        if not name.endswith(".xml"):
            continue
        for element in etree.fromstring(data).iter():
            if not isinstance(element.tag, str):
                continue
            for key in element.attrib:
                if etree.QName(key).localname in THEME_ATTRIBUTES:
                    problems.append(f"{name}: {etree.QName(element).localname}/@{etree.QName(key).localname}")
    return problems


def check_language(doc: Docx) -> list[str]:
    problems = []
    default = doc.styles.find("w:docDefaults/w:rPrDefault/w:rPr/w:lang", NS)
    if default is None or default.get(w("eastAsia")) != "zh-CN":
        problems.append("docDefaults: East Asian language is not zh-CN")
    for r, p in doc.all_runs():
        if doc.run_props(r, p).get("lang", {}).get("eastAsia") != "zh-CN":
            problems.append(f"{_label(doc, p)}: East Asian language is not zh-CN")
    return problems


def _runs_props(doc: Docx, paragraphs) -> list[tuple]:
    return [(p, doc.run_props(r, p)) for p in paragraphs for r in doc.text_runs(p)]


def check_head(doc: Docx) -> list[str]:
    """7.2.4–7.2.7, 7.3.1: red centred 小标宋 mark; 文号 in form, centred, red rule below; title
    二号小标宋, not bold, centred, lines no wider than 20 characters."""
    problems = []
    marks, numbers, titles = (doc.paragraphs_with_style(s) for s in (S.MARK, S.DOC_NUMBER, S.TITLE))
    if len(marks) != 1 or len(numbers) != 1 or len(titles) != 1:
        return [f"expected one mark, one 文号, one title: {len(marks)}, {len(numbers)}, {len(titles)}"]
    mark, number, title = marks[0], numbers[0], titles[0]
    body = doc.document.find("w:body", NS)
    if body.index(mark) != 0:
        problems.append("the mark is not the first paragraph")
    for p, props in _runs_props(doc, [mark]):
        if props.get("color", {}).get("val") != RED or _east_asian_font(props) != XIAOBIAOSONG:
            problems.append("mark run not red 小标宋")
    if not DOC_NUMBER.match(doc.text(number)):
        problems.append(f"文号 «{doc.text(number)}» does not match {DOC_NUMBER.pattern}")
    rule = doc.para_props(number).get("pBdr", {}).get("bottom", {})
    if rule.get("color") != RED or rule.get("val") in (None, "nil", "none"):
        problems.append("no red rule under the 文号")
    for p in (mark, number, title):
        if doc.para_props(p).get("jc", {}).get("val") != "center":
            problems.append(f"{_label(doc, p)} not centred")
    for p, props in _runs_props(doc, [title]):
        if _size(props) != TITLE_SIZE or _east_asian_font(props) != XIAOBIAOSONG:
            problems.append(f"title run size {_size(props)} font {_east_asian_font(props)}")
        if props.get("b", {}).get("val", "0") not in ("0", "false"):
            problems.append("title is bold")
    for line in doc.text(title).split("\n"):
        width = sum(1 if ord(ch) > 0x2000 else 0.5 for ch in line)
        if width > 20:
            problems.append(f"title line «{line}» wider than 20 characters")
    return problems


def check_body_text(doc: Docx) -> list[str]:
    """7.3.3: 三号, two-character first-line indent, heading phrases 黑体 / 楷体 / 仿宋 by level."""
    problems = []
    for p in doc.body_paragraphs():
        if doc.paragraph_style(p) not in TEXT_STYLES:
            continue
        props = doc.para_props(p)
        if int(props.get("ind", {}).get("firstLineChars", 0)) != TWO_CHARS:
            problems.append(f"{_label(doc, p)}: firstLineChars is not 200")
        text = doc.text(p)
        level = next((lvl for lvl, pattern in HEADING_PATTERNS if pattern.match(text)), 0)
        lead_end = text.find("。") + 1 or len(text)
        position = 0
        for r in doc.text_runs(p):
            run_text = "".join(t.text or "" for t in r.findall("w:t", NS))
            run_props = doc.run_props(r, p)
            if _size(run_props) != BODY_SIZE:
                problems.append(f"{_label(doc, p)}: size {_size(run_props)}")
            in_lead = level in (1, 2) and position < lead_end
            expected = HEADING_FONTS[level] if in_lead else FANGSONG
            if run_text and _east_asian_font(run_props) != expected:
                problems.append(f"{_label(doc, p)}: «{run_text[:10]}» in {_east_asian_font(run_props)}, "
                                f"expected {expected}")
            if in_lead and position + len(run_text) > lead_end:
                problems.append(f"{_label(doc, p)}: heading run goes past the first 。")
            position += len(run_text)
    return problems


def text_width(text: str) -> int:
    """Twips in the body face: full-width 315, half-width 155 (16 pt with −0.25 pt spacing)."""
    return sum(BODY_CHAR if ord(ch) > 0x2000 else 155 for ch in text)


def check_signature(doc: Docx) -> list[str]:
    """7.3.5.2, 7.3.5.4: 署名 two characters from the right, the date starting two characters to
    its right and ending at least two characters from the edge; the date unpadded."""
    signatures, dates = doc.paragraphs_with_style(S.SIGNATURE), doc.paragraphs_with_style(S.DATE)
    if len(signatures) != 1 or len(dates) != 1:
        return [f"expected one 署名 and one date, found {len(signatures)} and {len(dates)}"]
    sig, date = signatures[0], dates[0]
    problems = []
    if not DATE.match(doc.text(date)):
        problems.append(f"date «{doc.text(date)}» is not like 2023年3月14日")
    sig_props, date_props = doc.para_props(sig), doc.para_props(date)
    if sig_props.get("jc", {}).get("val") != "right":
        problems.append("署名 is not right-aligned")
    right = int(sig_props.get("ind", {}).get("right", 0))
    sig_start = TYPE_AREA_WIDTH - right - text_width(doc.text(sig))
    date_start = int(date_props.get("ind", {}).get("left", 0))
    if date_props.get("jc", {}).get("val") not in ("left", "both", None):
        problems.append("date is not laid out from the left")
    if abs(date_start - sig_start - 2 * BODY_CHAR) > 20:
        problems.append(f"date starts {date_start - sig_start} twips right of the 署名, expected {2 * BODY_CHAR}")
    if right < 2 * BODY_CHAR - 20:
        problems.append(f"署名 right gap {right} < two characters")
    if TYPE_AREA_WIDTH - date_start - text_width(doc.text(date)) < 2 * BODY_CHAR - 20:
        problems.append("date closer than two characters to the right edge")
    return problems


def check_attachment_note(doc: Docx, names: list[str]) -> list[str]:
    """7.3.4: “附件：名称” for one; “附件：1.名称” and the numbers and names aligned for several."""
    styles = {S.ATTACHMENT, S.ATTACHMENT_FIRST, S.ATTACHMENT_NEXT}
    paragraphs = [p for p in doc.body_paragraphs() if doc.paragraph_style(p) in styles]
    texts = [doc.text(p) for p in paragraphs]
    if len(names) == 1:
        expected = [f"附件：{names[0]}"]
    else:
        expected = [("附件：" if i == 1 else "") + f"{i}.\t{name}" for i, name in enumerate(names, 1)]
    problems = [] if texts == expected else [f"附件说明 {texts}, expected {expected}"]
    lefts = {int(doc.para_props(p).get("ind", {}).get("left", 0)) for p in paragraphs}
    if len(lefts) > 1:
        problems.append(f"attachment names not aligned: left indents {sorted(lefts)}")
    for p in paragraphs:
        ind = doc.para_props(p).get("ind", {})
        first_line_start = int(ind.get("left", 0)) - int(ind.get("hanging", 0))
        label_start = 2 * BODY_CHAR if doc.text(p).startswith("附件") else 5 * BODY_CHAR
        if abs(first_line_start - label_start) > 20:
            problems.append(f"{_label(doc, p)}: first line starts at {first_line_start}, expected {label_start}")
    return problems


def check_imprint(doc: Docx, printer: str, copy_to: list[str] | None = None) -> list[str]:
    """7.4: the 版记 at the bottom of the type area (a frame), 四号, thick first and last rules, a
    thin one between 抄送 and 印发; 印发机关 one character from the left, “…印发” one from the right."""
    paragraphs = doc.body_paragraphs()
    expected_count = 2 if copy_to else 1
    block = paragraphs[-expected_count:]
    problems = []
    if copy_to and doc.text(block[0]) != "抄送：" + "，".join(copy_to) + "。":
        problems.append(f"抄送 line «{doc.text(block[0])}»")
    imprint = doc.text(block[-1])
    m = re.match(r"^(.+)\t(.+)印发$", imprint)
    if not m or m.group(1) != printer or not DATE.match(m.group(2)):
        problems.append(f"印发 line «{imprint}»")
    for p in block:
        props = doc.para_props(p)
        frame = props.get("framePr", {})
        if frame.get("yAlign") != "bottom" or frame.get("vAnchor") != "margin":
            problems.append(f"{_label(doc, p)}: not framed at the bottom of the type area")
        borders = props.get("pBdr", {})
        sizes = {side: int(borders.get(side, {}).get("sz", 0)) for side in ("top", "between", "bottom")}
        if sizes != {"top": RULE_THICK, "between": RULE_THIN, "bottom": RULE_THICK}:
            problems.append(f"{_label(doc, p)}: rules {sizes}")
        ind = props.get("ind", {})
        if int(ind.get("left", 0)) - int(ind.get("hanging", 0)) != ONE_FOUR_CHAR or int(ind.get("right", 0)) != ONE_FOUR_CHAR:
            problems.append(f"{_label(doc, p)}: not one character in from each side")
        for _, run_props in _runs_props(doc, [p]):
            if _size(run_props) != FOUR_SIZE or _east_asian_font(run_props) != FANGSONG:
                problems.append(f"{_label(doc, p)}: not 四号仿宋")
    tabs = doc.para_props(block[-1]).get("tabs", {})
    if not any(t.get("val") == "right" and int(t.get("pos", 0)) == TYPE_AREA_WIDTH - ONE_FOUR_CHAR
               for t in tabs.values()):
        problems.append("印发日期 is not set against a right tab one character from the edge")
    return problems


def check_page_number_footers(doc: Docx) -> list[str]:
    """7.5: “— N —” in 四号宋体; odd pages right, even pages left, one character in."""
    problems = []
    flag = doc.settings.find("w:evenAndOddHeaders", NS)
    if flag is None or flag.get(w("val")) in ("0", "false"):
        problems.append("settings: evenAndOddHeaders is off")
    for kind, align, side in (("default", "right", "right"), ("even", "left", "left")):
        footer = doc.footers.get(kind)
        if footer is None:
            problems.append(f"no {kind} footer")
            continue
        paragraphs = [p for p in footer.iter(w("p")) if p.find(".//w:instrText", NS) is not None]
        if len(paragraphs) != 1:
            problems.append(f"{kind} footer: {len(paragraphs)} paragraphs with a field")
            continue
        p = paragraphs[0]
        props = doc.para_props(p)
        if props.get("jc", {}).get("val") != align:
            problems.append(f"{kind} footer aligned {props.get('jc')}, expected {align}")
        if int(props.get("ind", {}).get(side, 0)) != ONE_FOUR_CHAR:
            problems.append(f"{kind} footer {side} indent {props.get('ind')}, expected {ONE_FOUR_CHAR}")
        instructions = "".join(t.text or "" for t in p.iter(w("instrText")))
        chars = [c.get(w("fldCharType")) for c in p.iter(w("fldChar"))]
        if instructions.split() != ["PAGE"] or chars != ["begin", "separate", "end"]:
            problems.append(f"{kind} footer field {instructions!r} {chars}")
        texts = [t.text for t in p.iter(w("t"))]
        if not texts or texts[0] != "— " or texts[-1] != " —":
            problems.append(f"{kind} footer text {texts}, expected “— ” PAGE “ —”")
        for r in doc.text_runs(p):
            run_props = doc.run_props(r, p)
            if _size(run_props) != FOUR_SIZE or _east_asian_font(run_props) != SONGTI:
                problems.append(f"{kind} footer run not 四号宋体")
    return problems


STRUCTURAL_CHECKS = (check_page_setup, check_line_pitch, check_character_spacing, check_fonts,
                     check_no_theme_fonts, check_language, check_head, check_body_text,
                     check_signature, check_page_number_footers)


def structural_problems(doc: Docx) -> dict[str, list[str]]:
    """Run every content-independent structural check; {check name: problems} for failures."""
    result = {check.__name__: check(doc) for check in STRUCTURAL_CHECKS}
    return {name: problems for name, problems in result.items() if problems}


# --- Rendered checks (LibreOffice PDF, pdftotext -bbox-layout) ----------------------------------------
PT_PER_MM = 72 / 25.4


def mm(pt: float) -> float:
    return pt / PT_PER_MM


@dataclass
class Row:
    """One printed line: the words pdftotext puts on the same baseline."""

    text: str
    x_min: float
    x_max: float
    y_min: float
    y_max: float

    @property
    def y_center(self) -> float:
        return (self.y_min + self.y_max) / 2


@dataclass
class Page:
    number: int
    width: float
    height: float
    rows: list[Row]

    @property
    def landscape(self) -> bool:
        return self.width > self.height

    def type_area(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) in points."""
        m = LANDSCAPE_MARGINS if self.landscape else MARGINS
        return (m["left"] / 20, m["top"] / 20, self.width - m["right"] / 20, self.height - m["bottom"] / 20)

    def text_rows(self) -> list[Row]:
        """Rows inside the type area (page numbers excluded)."""
        left, top, right, bottom = self.type_area()
        return [r for r in self.rows if r.y_min >= top - 2 and r.y_max <= bottom + 2
                and not PAGE_NUMBER_TEXT.match(r.text)]

    def page_number(self) -> Row | None:
        return next((r for r in self.rows if PAGE_NUMBER_TEXT.match(r.text)), None)


def read_pdf_layout(pdf: Path) -> list[Page]:
    xhtml = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], check=True,
                           capture_output=True).stdout
    root = etree.fromstring(xhtml, etree.XMLParser(recover=True))
    ns = {"x": "http://www.w3.org/1999/xhtml"}
    pages = []
    for number, page in enumerate(root.iterfind(".//x:page", ns), start=1):
        rows: dict[int, list] = {}
        for line in page.iterfind(".//x:line", ns):
            words = line.findall("x:word", ns)
            text = "".join(word.text or "" for word in words)
            box = [float(line.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")]
            rows.setdefault(round(box[3]), []).append((box, text))
        merged = []
        for key in sorted(rows):
            parts = sorted(rows[key], key=lambda item: item[0][0])
            merged.append(Row("".join(t for _, t in parts), min(b[0] for b, _ in parts),
                              max(b[2] for b, _ in parts), min(b[1] for b, _ in parts),
                              max(b[3] for b, _ in parts)))
        pages.append(Page(number, float(page.get("width")), float(page.get("height")), merged))
    return pages


def check_full_page(page: Page) -> list[str]:
    """5.2.3: a full body page has 22 lines; no line has more than 28 characters and a typical
    line has exactly 28."""
    rows = page.text_rows()
    problems = [] if len(rows) == 22 else [f"page {page.number}: {len(rows)} lines, expected 22"]
    counts = [len(r.text.replace(" ", "")) for r in rows]
    if counts and max(counts) > 28:
        problems.append(f"page {page.number}: a line of {max(counts)} characters")
    if counts and Counter(counts).most_common(1)[0][0] != 28:
        problems.append(f"page {page.number}: most lines have {Counter(counts).most_common(1)[0][0]} characters, expected 28")
    return problems


def check_mark_position(page: Page, mark: str, tolerance_mm: float = 2.0) -> list[str]:
    """7.2.4: the mark's top edge 35 mm below the type area's, 72 mm from the paper's edge."""
    row = next((r for r in page.rows if r.text.startswith(mark[:6])), None)
    if row is None:
        return [f"mark «{mark}» not found on page {page.number}"]
    top = mm(row.y_min)
    return [] if abs(top - 72) <= tolerance_mm else [f"mark top {top:.1f} mm from the edge, expected 72 ± {tolerance_mm}"]


def check_text_on_page(page: Page, text: str) -> list[str]:
    """7.3.3: e.g. the first page must show body text."""
    joined = "".join(r.text for r in page.rows).replace(" ", "")
    return [] if text.replace(" ", "") in joined else [f"«{text}» not on page {page.number}"]


def check_page_numbers(pages: list[Page], tolerance_mm: float = 2.0) -> list[str]:
    """7.5: every page numbered in order; the dashes 7 mm below the type area; odd pages one 四号
    character in from the right, even pages from the left. On a landscape page the number stays
    where the portrait pages have it (8), so it reads turned on the landscape page's left side."""
    problems = []
    char = FOUR_SIZE / 2
    for page in pages:
        row = page.page_number()
        if row is None:
            problems.append(f"page {page.number}: no page number")
            continue
        if int(PAGE_NUMBER_TEXT.match(row.text).group(1)) != page.number:
            problems.append(f"page {page.number}: numbered {row.text}")
        left, top, right, bottom = page.type_area()
        odd = page.number % 2 == 1
        if not page.landscape:
            below = mm(row.y_center - bottom)
            edge_gap = mm(right - row.x_max) if odd else mm(row.x_min - left)
        else:   # portrait bottom = landscape left; portrait right = landscape bottom
            below = mm(left - (row.x_min + row.x_max) / 2)
            edge_gap = mm(bottom - row.y_max) if odd else mm(row.y_min - top)
        if abs(below - 7) > tolerance_mm:
            problems.append(f"page {page.number}: page number {below:.1f} mm below the type area, expected 7")
        if abs(edge_gap - mm(char)) > tolerance_mm:
            problems.append(f"page {page.number}: page number {edge_gap:.1f} mm from the "
                            f"{'right' if odd else 'left'} edge of the type area, expected {mm(char):.1f}")
    return problems


def check_imprint_at_bottom(page: Page, tolerance_mm: float = 2.0) -> list[str]:
    """7.4.1: the last rule on the type area's bottom edge: the 印发 line is the last line there."""
    row = next((r for r in reversed(page.text_rows()) if r.text.endswith("印发")), None)
    if row is None:
        return [f"page {page.number}: no 印发 line"]
    gap = mm(page.type_area()[3] - row.y_max)
    return [] if -tolerance_mm <= gap <= tolerance_mm + 3 else [f"印发 line {gap:.1f} mm above the type area's bottom"]


def red_rule_rows(pdf: Path, page: int = 1, dpi: int = 150) -> list[float]:
    """Vertical positions (points from the top) of pixel rows that are mostly red: the 版头 rule."""
    data = subprocess.run(["pdftoppm", "-r", str(dpi), "-f", str(page), "-l", str(page), str(pdf)],
                          check=True, capture_output=True).stdout
    magic, dims, _, pixels = data.split(b"\n", 3)
    width, height = map(int, dims.split())
    rows = []
    step = 4
    for y in range(height):
        line = pixels[y * width * 3:(y + 1) * width * 3]
        red = sum(1 for x in range(0, width * 3, 3 * step)
                  if line[x] > 200 and line[x + 1] < 90 and line[x + 2] < 90)
        if red * step > width / 2:
            rows.append(y * 72 / dpi)
    return rows


def check_red_rule(pdf: Path, page: Page, doc_number: str, tolerance_mm: float = 1.5) -> list[str]:
    """7.2.7: a red rule 4 mm below the 文号 (from the bottom of its characters)."""
    rows = red_rule_rows(pdf, page.number)
    number = next((r for r in page.rows if r.text.replace(" ", "") == doc_number), None)
    if not rows or number is None:
        return [f"red rule found: {bool(rows)}, 文号 found: {number is not None}"]
    # pdftotext's box runs 0.35 em below the baseline; the characters end 0.12 em below it.
    glyph_bottom = number.y_max - (0.35 - 0.12) * BODY_SIZE / 2
    gap = mm(rows[0] - glyph_bottom)
    return [] if abs(gap - 4) <= tolerance_mm else [f"red rule {gap:.1f} mm below the 文号, expected 4"]


# --- 7.3.2: a 主送 too long for page 1, moved to the 版记 -------------------------------------------
IMPRINT_LABEL_CHARS = 3               # “主送：” and “抄送：”: wrapped lines start under the first name


def imprint_paragraphs(doc: Docx) -> list:
    """The 版记's paragraphs (framed at the bottom of the type area), top to bottom."""
    return [p for p in doc.body_paragraphs()
            if doc.para_props(p).get("framePr", {}).get("yAlign") == "bottom"]


def check_addressees_in_imprint(doc: Docx, addressees: str) -> list[str]:
    """7.3.2, 7.4.2: no 主送 line under the title; the 版记 opens with “主送：<names>。” in the 抄送
    style: the same frame and rules as the other 版记 lines, 四号仿宋, one character in from each
    side, wrapped lines under the first name; 抄送 (if any) and 印发 follow it."""
    problems = []
    if doc.paragraphs_with_style(S.ADDRESSEES):
        problems.append("a 主送 line is still under the title")
    block = imprint_paragraphs(doc)
    if not block:
        return problems + ["no 版记 frame"]
    first = block[0]
    expected = "主送：" + addressees + "。"
    if doc.text(first) != expected:
        problems.append(f"first 版记 line «{doc.text(first)[:30]}…», expected «{expected[:30]}…»")
    following = [doc.text(p) for p in block[1:]]
    if not following or not following[-1].endswith("印发") or not all(t.startswith("抄送：") for t in following[:-1]):
        problems.append(f"after 主送 the 版记 holds {following}, expected 抄送 (optional) then 印发")
    props = doc.para_props(first)
    if props.get("framePr") != doc.para_props(block[-1]).get("framePr"):
        problems.append("主送 is not in the same frame as the 印发 line")
    borders = props.get("pBdr", {})
    sizes = {side: int(borders.get(side, {}).get("sz", 0)) for side in ("top", "between", "bottom")}
    if sizes != {"top": RULE_THICK, "between": RULE_THIN, "bottom": RULE_THICK}:
        problems.append(f"主送 rules {sizes}")
    ind = props.get("ind", {})
    left, hanging, right = (int(ind.get(k, 0)) for k in ("left", "hanging", "right"))
    if left - hanging != ONE_FOUR_CHAR or right != ONE_FOUR_CHAR:
        problems.append(f"主送 not one character in from each side: {ind}")
    if hanging != IMPRINT_LABEL_CHARS * ONE_FOUR_CHAR:
        problems.append(f"主送 hanging indent {hanging}: wrapped lines do not start under the first name")
    for _, run_props in _runs_props(doc, [first]):
        if _size(run_props) != FOUR_SIZE or _east_asian_font(run_props) != FANGSONG:
            problems.append("主送 in the 版记 is not 四号仿宋")
    return problems


def check_text_not_on_page(page: Page, text: str) -> list[str]:
    joined = "".join(r.text for r in page.rows).replace(" ", "")
    return [f"«{text}» is on page {page.number}"] if text.replace(" ", "") in joined else []


def imprint_item_rows(page: Page) -> list[list[Row]]:
    """The printed rows of the 版记's items (主送, 抄送, the 印发 line), each item's rows together:
    an item starts at “主送：”, “抄送：” or the 印发 line; its wrapped lines follow."""
    rows = page.text_rows()
    starts = [i for i, r in enumerate(rows) if r.text.startswith(("主送：", "抄送："))]
    end = next((i for i in range(len(rows) - 1, -1, -1) if rows[i].text.endswith("印发")), None)
    if end is None:
        return []
    first = starts[0] if starts else end
    bounds = [i for i in starts if i >= first] + [end, end + 1]
    return [rows[a:b] for a, b in zip(bounds, bounds[1:])]


def check_addressees_rendered_in_imprint(page: Page, addressees: str, tolerance_mm: float = 1.5) -> list[str]:
    """The 版记 on `page` opens with the 主送: its rows read “主送：<names>。”; the first starts one
    四号 character in from the type area's left edge, wrapped rows under the first name; the next
    item follows one line below; nothing but the 版记 prints below it."""
    items = imprint_item_rows(page)
    if not items or not items[0][0].text.startswith("主送："):
        return [f"page {page.number}: the 版记 does not open with 主送"]
    rows = items[0]
    problems = []
    text = "".join(r.text for r in rows).replace(" ", "")
    expected = ("主送：" + addressees + "。").replace(" ", "")
    if text != expected:
        problems.append(f"主送 reads «{text[:30]}…», expected «{expected[:30]}…»")
    left = page.type_area()[0]
    char = FOUR_SIZE / 2
    if abs(mm(rows[0].x_min - left) - mm(char)) > tolerance_mm:
        problems.append(f"主送 starts {mm(rows[0].x_min - left):.1f} mm from the type area's left, expected {mm(char):.1f}")
    for row in rows[1:]:
        if abs(mm(row.x_min - left) - mm((1 + IMPRINT_LABEL_CHARS) * char)) > tolerance_mm:
            problems.append(f"wrapped 主送 row «{row.text[:8]}» starts {mm(row.x_min - left):.1f} mm in")
    pitch = LINE_PITCH / 20
    tops = [r.y_min for item in items for r in item]
    gaps = [b - a for a, b in zip(tops, tops[1:])]
    if any(abs(gap - pitch) > 3 for gap in gaps):
        problems.append(f"版记 rows are not one line apart: {[round(g, 1) for g in gaps]}")
    above = [r for r in page.text_rows() if r.y_min < rows[0].y_min]
    if above and above[-1].y_max > rows[0].y_min:
        problems.append("text overlaps the 版记")
    return problems


def dark_rule_rows(pdf: Path, page: int, dpi: int = 150) -> list[float]:
    """Vertical positions (points from the top) of horizontal dark rules wider than 60 % of the
    page (the type area is 74 %), one per rule (adjacent pixel rows merged): the 版记's rules."""
    data = subprocess.run(["pdftoppm", "-gray", "-r", str(dpi), "-f", str(page), "-l", str(page), str(pdf)],
                          check=True, capture_output=True).stdout
    _, dims, _, pixels = data.split(b"\n", 3)
    width, height = map(int, dims.split())
    step, rules, previous = 2, [], None
    for y in range(height):
        line = pixels[y * width:(y + 1) * width]
        # a rule is a long run of dark pixels; text rows are broken by gaps between characters
        dark = sum(1 for x in range(0, width, step) if line[x] < 100)
        if dark * step > 0.6 * width:
            if previous is None or y - previous > 1:
                rules.append(y * 72 / dpi)
            previous = y
    return rules


def check_imprint_outer_rules_rendered(pdf: Path, page: Page) -> list[str]:
    """7.4.1: the 版记's first rule lies within one line above its first item (so that item is
    inside the 版记) and its last rule on the type area's bottom edge (to within 2 mm). The thin
    rules between items are w:between borders, which Word draws and LibreOffice 7.4 does not:
    they are checked in the .docx (check_imprint, check_addressees_in_imprint), not here."""
    items = imprint_item_rows(page)
    if not items:
        return [f"page {page.number}: no 版记"]
    pitch, bottom = LINE_PITCH / 20, page.type_area()[3]
    first_top = items[0][0].y_min
    rules = dark_rule_rows(pdf, page.number)
    problems = []
    if not any(first_top - pitch <= y <= first_top for y in rules):
        problems.append(f"no rule within one line above «{items[0][0].text[:6]}»")
    if not any(abs(mm(y - bottom)) <= 2 for y in rules):
        problems.append(f"no rule on the type area's bottom edge; rules at {[round(y, 1) for y in rules]}")
    return problems


def mm_to_pt(value: float) -> float:
    return value * PT_PER_MM
