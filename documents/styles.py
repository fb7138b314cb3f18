"""The named styles of an official document. Formatting lives here (and so in the template's
styles.xml, where staff can adjust it in Word/WPS); the template and the renderer only name a
style. Style ids are ASCII; the names staff see are Chinese and start with 公文."""
from __future__ import annotations

from dataclasses import dataclass

from documents import layout as L
from documents.ooxml import Border, E, ParaProps, RunProps, fonts_element

CHAR = L.BODY_CHAR_PITCH   # one 三号 character with its −0.25 pt spacing, twips


@dataclass(frozen=True)
class Style:
    id: str
    name: str
    kind: str = "paragraph"            # paragraph | character
    based_on: str | None = "Normal"
    para: ParaProps | None = None
    run: RunProps | None = None
    next: str | None = None

    def element(self):
        style = E("w:style", {"w:type": self.kind, "w:styleId": self.id,
                              "w:default": "1" if self.id == NORMAL else None},
                  E("w:name", {"w:val": self.name}),
                  E("w:basedOn", {"w:val": self.based_on}) if self.based_on else None,
                  E("w:next", {"w:val": self.next}) if self.next else None,
                  E("w:qFormat"))
        if self.kind == "paragraph" and self.para is not None:
            style.append(self.para.element())
        if self.run is not None:
            rpr = self.run.element()
            if rpr is not None:
                style.append(rpr)
        return style


# Style ids, used by the template builder and the renderer.
NORMAL = "Normal"
MARK = "GwMark"
DOC_NUMBER = "GwDocNumber"
TITLE = "GwTitle"
ADDRESSEES = "GwAddressees"
BODY = "GwBody"
HEADING_1 = "GwHeading1"
HEADING_2 = "GwHeading2"
HEADING_1_CHAR = "GwHeading1Char"
HEADING_2_CHAR = "GwHeading2Char"
ATTACHMENT = "GwAttachment"
ATTACHMENT_FIRST = "GwAttachmentFirst"
ATTACHMENT_NEXT = "GwAttachmentNext"
SIGNATURE = "GwSignature"
DATE = "GwDate"
NOTE = "GwNote"
ANNEX_LABEL = "GwAnnexLabel"
ANNEX_TITLE = "GwAnnexTitle"
TABLE_TEXT = "GwTableText"
TABLE_HEADER = "GwTableHeader"
IMPRINT = "GwImprint"
PAGE_NUMBER_ODD = "GwPageNumberOdd"
PAGE_NUMBER_EVEN = "GwPageNumberEven"
BODY_LEVEL_STYLES = {1: HEADING_1, 2: HEADING_2, 3: BODY, 4: BODY}
LEAD_CHAR_STYLES = {1: HEADING_1_CHAR, 2: HEADING_2_CHAR}

# Sizes other than 三号 set spacing=0: the −0.25 pt belongs to the 28-character body line only.
_FIRST_LINE_TWO_CHARS = dict(first_line_chars=L.INDENT_TWO_CHARS, first_line=L.INDENT_TWO_CHARS_TWIPS)
_NO_INDENT = dict(left=0, right=0, first_line=0)
_THICK = Border(L.IMPRINT_RULE_THICK)
_THIN = Border(L.IMPRINT_RULE_THIN)
_IMPRINT_RUN = RunProps(size=L.IMPRINT_SIZE, spacing=0)
# 7.4.2: 抄送 (and a 主送 moved to the 版记, 7.3.2: labels of the same length) wraps under the
# first name after the colon.
_COPY_TO_HANGING = len(L.COPY_TO_LABEL) * L.IMPRINT_SIZE * L.TWIPS_PER_PT // 2
assert len(L.ADDRESSEES_LABEL) == len(L.COPY_TO_LABEL), "the 版记's labels share one hanging indent"

STYLES: tuple[Style, ...] = (
    # 5.2.2–5.2.4: 三号仿宋, black, exact 28.95 pt lines, 28 characters a line, justified.
    # overflowPunct on is Word's own default (a line-end comma may hang in the margin); it is
    # written out because LibreOffice reads the flag inverted and, when it hangs punctuation in a
    # justified line, leaves the mark out of the PDF: with the flag on, previews keep every mark.
    # No automatic extra space between Chinese and digits (“10月10日” keeps the character grid).
    Style(NORMAL, "Normal", based_on=None,
          para=ParaProps(align="both", line=L.LINE_PITCH, before=0, after=0, widow_control=False,
                         overflow_punct=True, auto_space=False),
          run=RunProps(font=L.FONT_FANGSONG, size=L.BODY_SIZE, spacing=L.BODY_CHAR_SPACING,
                       color=L.TEXT_COLOR, lang=L.LANGUAGE, latin_lang=L.LATIN_LANGUAGE)),
    Style(MARK, "公文-发文机关标志", next=NORMAL,                                          # 7.2.4
          para=ParaProps(align="center", line=L.MARK_LINE_HEIGHT, before=L.MARK_SPACE_BEFORE),
          run=RunProps(font=L.FONT_XIAOBIAOSONG, size=L.MARK_SIZE, color=L.MARK_COLOR, spacing=0)),
    Style(DOC_NUMBER, "公文-发文字号", next=NORMAL,                                       # 7.2.5, 7.2.7
          para=ParaProps(align="center", borders={"bottom": Border(
              L.RED_RULE_WIDTH, L.RED_RULE_COLOR, L.RED_RULE_SPACE_PT)})),
    Style(TITLE, "公文-标题", next=NORMAL,                                                # 7.3.1
          para=ParaProps(align="center", keep_next=True, keep_lines=True),
          run=RunProps(font=L.FONT_XIAOBIAOSONG, size=L.TITLE_SIZE, bold=False, spacing=0)),
    Style(ADDRESSEES, "公文-主送机关", next=BODY, para=ParaProps(align="left", **_NO_INDENT)),  # 7.3.2
    Style(BODY, "公文-正文", next=BODY, para=ParaProps(**_FIRST_LINE_TWO_CHARS)),          # 7.3.3
    Style(HEADING_1, "公文-一级标题", based_on=BODY, next=BODY,
          para=ParaProps(keep_next=True, outline_level=0)),
    Style(HEADING_2, "公文-二级标题", based_on=BODY, next=BODY, para=ParaProps(outline_level=1)),
    Style(HEADING_1_CHAR, "公文-一级标题字", kind="character", based_on=None,
          run=RunProps(font=L.HEADING_FONTS[1])),
    Style(HEADING_2_CHAR, "公文-二级标题字", kind="character", based_on=None,
          run=RunProps(font=L.HEADING_FONTS[2])),
    # 7.3.4: “附件：” two characters in; a wrapped name aligns with the name's first character.
    Style(ATTACHMENT, "公文-附件说明", next=BODY, para=ParaProps(
        left=2 * CHAR + len(L.ATTACHMENT_LABEL) * CHAR, hanging=len(L.ATTACHMENT_LABEL) * CHAR)),
    Style(ATTACHMENT_FIRST, "公文-附件说明（多件首行）", next=ATTACHMENT_NEXT, para=ParaProps(
        left=(2 + len(L.ATTACHMENT_LABEL)) * CHAR + L.ATTACHMENT_NUMBER_WIDTH,
        hanging=len(L.ATTACHMENT_LABEL) * CHAR + L.ATTACHMENT_NUMBER_WIDTH)),
    Style(ATTACHMENT_NEXT, "公文-附件说明（多件续行）", next=ATTACHMENT_NEXT, para=ParaProps(
        left=(2 + len(L.ATTACHMENT_LABEL)) * CHAR + L.ATTACHMENT_NUMBER_WIDTH,
        hanging=L.ATTACHMENT_NUMBER_WIDTH)),
    # 7.3.5.2: the renderer adds the indents that depend on the lengths of 署名 and date.
    Style(SIGNATURE, "公文-发文机关署名", next=DATE, para=ParaProps(
        align="right", left=0, right=L.SIGNATURE_RIGHT_CHARS * CHAR, first_line=0, keep_next=True)),
    Style(DATE, "公文-成文日期", next=NOTE, para=ParaProps(align="left", first_line=0)),
    # 7.3.6; flush left: a wrapped e-mail address would otherwise stretch the line before it.
    Style(NOTE, "公文-附注", next=BODY, para=ParaProps(align="left", **_FIRST_LINE_TWO_CHARS)),
    Style(ANNEX_LABEL, "公文-附件标识", next=NORMAL,                                       # 7.3.7
          para=ParaProps(align="left", page_break_before=True, keep_next=True, **_NO_INDENT),
          run=RunProps(font=L.FONT_HEITI)),
    Style(ANNEX_TITLE, "公文-附件标题", based_on=TITLE, next=NORMAL),
    Style(TABLE_TEXT, "公文-表格文字", para=ParaProps(align="center", line=L.TABLE_LINE_PITCH,
                                                    **_NO_INDENT),
          run=RunProps(size=L.TABLE_SIZE, spacing=0)),
    Style(TABLE_HEADER, "公文-表格表头", based_on=TABLE_TEXT, run=RunProps(font=L.FONT_HEITI)),
    # 7.4: the 版记 lines (主送 when moved there, 抄送, then 印发机关 and 印发日期) share this style; their rules are its
    # borders: Word draws "top" above the first line, "between" between lines of the same borders
    # and indents, "bottom" under the last. Sharing one style keeps them one group (and one frame).
    Style(IMPRINT, "公文-版记", run=_IMPRINT_RUN, para=ParaProps(
        left=L.IMPRINT_INDENT + _COPY_TO_HANGING, right=L.IMPRINT_INDENT, hanging=_COPY_TO_HANGING,
        first_line=None, align="left", tabs=(("right", L.TYPE_AREA_WIDTH - L.IMPRINT_INDENT),),
        borders={"top": _THICK, "between": _THIN, "bottom": _THICK})),
    # 7.5: odd pages right, even pages left, one 四号 character in.
    Style(PAGE_NUMBER_ODD, "公文-页码（单页）", run=RunProps(
        font=L.FONT_SONGTI, size=L.PAGE_NUMBER_SIZE, spacing=0),
        para=ParaProps(align="right", left=0, right=L.PAGE_NUMBER_INDENT, first_line=0)),
    Style(PAGE_NUMBER_EVEN, "公文-页码（双页）", based_on=PAGE_NUMBER_ODD,
          para=ParaProps(align="left", left=L.PAGE_NUMBER_INDENT, right=0)),
)


def doc_defaults():
    """w:docDefaults: the same face and language as Normal, so text outside any style (and
    readers that ignore styles) still gets 仿宋, zh-CN and exact lines."""
    return E("w:docDefaults", None,
             E("w:rPrDefault", None, E("w:rPr", None,
                                       fonts_element(L.FONT_FANGSONG),
                                       E("w:sz", {"w:val": L.BODY_SIZE}),
                                       E("w:szCs", {"w:val": L.BODY_SIZE}),
                                       E("w:lang", {"w:val": L.LATIN_LANGUAGE, "w:eastAsia": L.LANGUAGE,
                                                    "w:bidi": "ar-SA"}))),
             E("w:pPrDefault", None, ParaProps(line=L.LINE_PITCH, before=0, after=0).element()))


def builtin_defaults():
    """The default character and table styles every Word document carries."""
    return [
        E("w:style", {"w:type": "character", "w:default": "1", "w:styleId": "DefaultParagraphFont"},
          E("w:name", {"w:val": "Default Paragraph Font"}), E("w:uiPriority", {"w:val": 1}),
          E("w:semiHidden"), E("w:unhideWhenUsed")),
        E("w:style", {"w:type": "table", "w:default": "1", "w:styleId": "TableNormal"},
          E("w:name", {"w:val": "Normal Table"}), E("w:uiPriority", {"w:val": 99}),
          E("w:semiHidden"), E("w:unhideWhenUsed"),
          E("w:tblPr", None, E("w:tblInd", {"w:w": 0, "w:type": "dxa"}),
            E("w:tblCellMar", None,
              E("w:top", {"w:w": 0, "w:type": "dxa"}),
              E("w:left", {"w:w": L.TABLE_CELL_MARGIN, "w:type": "dxa"}),
              E("w:bottom", {"w:w": 0, "w:type": "dxa"}),
              E("w:right", {"w:w": L.TABLE_CELL_MARGIN, "w:type": "dxa"})))),
    ]
