"""Every number of the GB/T 9704-2012 《党政机关公文格式》 layout, once, with its clause.

Units as OOXML stores them: lengths in twips (1/20 pt), font sizes in half-points, border widths
in eighths of a point, character spacing in twips. Lengths the standard gives in millimetres are
converted here and nowhere else.
"""
from __future__ import annotations

TWIPS_PER_PT = 20
EIGHTHS_PER_PT = 8      # border widths
MM_PER_INCH = 25.4
PT_PER_INCH = 72


def mm(value: float) -> int:
    """Millimetres to twips, rounded to the nearest twip."""
    return round(value / MM_PER_INCH * PT_PER_INCH * TWIPS_PER_PT)


def half_points(pt: float) -> int:
    return round(pt * 2)


# --- Chinese font sizes (号), in points -------------------------------------------------------
SIZE_XIAOCHU_PT = 36    # 小初
SIZE_ER_PT = 22         # 二号
SIZE_SAN_PT = 16        # 三号
SIZE_SI_PT = 14         # 四号
SIZE_XIAOSI_PT = 12     # 小四

# --- Font names: the office's machines have these; previews substitute them (documents/preview.py)
FONT_XIAOBIAOSONG = "方正小标宋简体"   # 7.2.4, 7.3.1: 小标宋
FONT_FANGSONG = "仿宋_GB2312"          # 5.2.2: 仿宋
FONT_HEITI = "黑体"                    # 7.3.3 first level, 7.3.7 “附件”
FONT_KAITI = "楷体_GB2312"             # 7.3.3 second level
FONT_SONGTI = "宋体"                   # 7.5 page numbers
# Names Word may fall back to on machines without the _GB2312 editions (w:altName in fontTable).
FONT_ALT_NAMES = {FONT_FANGSONG: "仿宋", FONT_KAITI: "楷体", FONT_XIAOBIAOSONG: "华文中宋"}
LANGUAGE = "zh-CN"            # w:lang/@w:eastAsia: Chinese text
# w:lang/@w:val, the language of Latin-script runs (as Chinese Word sets it): marked zh-CN, an
# e-mail address would be broken anywhere, as Chinese text may be.
LATIN_LANGUAGE = "en-US"

# --- 5.1 幅面尺寸: A4, 210 mm × 297 mm (the exact twips Word writes for A4) ----------------------
PAGE_WIDTH = 11906
PAGE_HEIGHT = 16838

# --- 5.2.1 页边与版心尺寸: 天头 37 mm, 订口 (left) 28 mm, 版心 156 mm × 225 mm --------------------
# so the right margin is 210 − 28 − 156 = 26 mm and the bottom one 297 − 37 − 225 = 35 mm.
MARGIN_TOP = mm(37)                                     # 2098
MARGIN_LEFT = mm(28)                                    # 1587
MARGIN_RIGHT = mm(26)                                   # 1474
MARGIN_BOTTOM = mm(35)                                  # 1984
TYPE_AREA_WIDTH = PAGE_WIDTH - MARGIN_LEFT - MARGIN_RIGHT    # 8845
TYPE_AREA_HEIGHT = PAGE_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM  # 12756

# --- 5.2.2 字体和字号: 三号仿宋, black; 5.2.4 文字的颜色 -------------------------------------------
BODY_SIZE = half_points(SIZE_SAN_PT)                    # 32
TEXT_COLOR = "000000"

# --- 5.2.3 行数和字数: 22 lines of 28 characters filling the type area ---------------------------
LINES_PER_PAGE = 22
CHARS_PER_LINE = 28
# Exact line height: 225 mm / 22 = 28.95 pt. 29 pt (580) leaves only 21 lines a page.
LINE_PITCH = 579
# −0.25 pt between 16 pt characters: 28 × 15.75 pt = 441 pt fits the 442.25 pt type area; plain
# 16 pt fits only 27.
BODY_CHAR_SPACING = -5
BODY_CHAR_PITCH = half_points(SIZE_SAN_PT) * TWIPS_PER_PT // 2 + BODY_CHAR_SPACING   # 315
# Word's "characters" unit for indents: 100 = one character of the paragraph's size.
CHAR_UNITS = 100
INDENT_TWO_CHARS = 2 * CHAR_UNITS
INDENT_TWO_CHARS_TWIPS = 2 * SIZE_SAN_PT * TWIPS_PER_PT  # 640, for readers without *Chars support

# How a renderer lays one exact-height line out (Word and LibreOffice alike): the baseline sits at
# four fifths of the line; the em box of a CJK face reaches 0.88 em above the baseline. Used only
# to place the mark's top edge where 7.2.4 wants it.
EXACT_LINE_BASELINE_RATIO = 0.8
CJK_EM_ASCENT = 0.88

# --- 7.2.4 发文机关标志: red, centred, 小标宋, top edge 35 mm below the top of the type area --------
MARK_COLOR = "FF0000"
MARK_SIZE = half_points(SIZE_XIAOCHU_PT)                # size not fixed by the standard; 小初
MARK_LINE_HEIGHT = 2 * LINE_PITCH                       # the mark occupies two body lines
MARK_TOP_BELOW_TYPE_AREA = mm(35)
MARK_SPACE_BEFORE = round(
    MARK_TOP_BELOW_TYPE_AREA
    - (EXACT_LINE_BASELINE_RATIO * MARK_LINE_HEIGHT - CJK_EM_ASCENT * MARK_SIZE * TWIPS_PER_PT / 2))
# A long name is condensed (w:w, percent) to stay within the type area rather than shrunk.
MARK_MIN_SCALE = 50

# --- 7.2.5 发文字号: two blank lines below the mark, centred -------------------------------------
BLANK_LINES_MARK_TO_DOC_NUMBER = 2
DOC_NUMBER_PATTERN = r"^[^〔〕]+〔\d{4}〕[1-9]\d*号$"

# --- 7.2.7 版头中的分隔线: red, type-area wide, 4 mm below the 发文字号 -----------------------------
RED_RULE_COLOR = MARK_COLOR
RED_RULE_WIDTH = 12                 # eighths of a point (1.5 pt); the standard sets no thickness
# Border spacing (pt) under the 文号 line: the glyphs end 3.9 pt above the exact line's bottom
# (baseline at 4/5, descent 0.12 em), so 4 mm (11.3 pt) below them is ~7.5 pt below the line.
RED_RULE_SPACE_PT = 7
# The rule is a bottom border, drawn below the exact line: the 文号 paragraph grows by its spacing
# and its width (LibreOffice measured: the title sits 8.5 pt lower than the lines alone put it).
DOC_NUMBER_RULE_HEIGHT = RED_RULE_SPACE_PT * TWIPS_PER_PT + RED_RULE_WIDTH * TWIPS_PER_PT // EIGHTHS_PER_PT

# --- 7.3.1 标题: 二号小标宋, two blank lines below the red rule, centred ---------------------------
TITLE_SIZE = half_points(SIZE_ER_PT)                    # 44
BLANK_LINES_RULE_TO_TITLE = 2
TITLE_CHARS_PER_LINE = TYPE_AREA_WIDTH // (TITLE_SIZE * TWIPS_PER_PT // 2)   # 20

# --- 7.3.2 主送机关: one blank line below the title, flush left, ends with a colon ---------------
# The blank line stays when the 主送 moves to the 版记: the body then starts one line below the title.
BLANK_LINES_TITLE_TO_ADDRESSEES = 1
ADDRESSEES_END = "："
# Page 1 must show body text: when the 主送 would leave less than this many body lines on it, the
# 主送 moves to the 版记 (documents/addressees.py decides).
ADDRESSEES_MIN_BODY_LINES = 1
# One line more than the estimate needs, so a borderline list moves rather than overflows: the
# estimate is the layout's arithmetic, while the page is laid out by Word, WPS or LibreOffice, which
# differ by a fraction of a line (the red rule's border, a comma hung in the margin or carried to
# the next line, Latin words kept whole, substituted faces); a list moved to the 版记 is always
# correct, a body pushed to page 2 never is.
ADDRESSEES_SAFETY_LINES = 1

# --- 7.3.3 正文: paragraphs indented two characters; heading levels ---------------------------
HEADING_FONTS = {1: FONT_HEITI, 2: FONT_KAITI, 3: FONT_FANGSONG, 4: FONT_FANGSONG}

# --- 7.3.4 附件说明: one blank line below the body, two characters in --------------------------
BLANK_LINES_BODY_TO_ATTACHMENTS = 1
ATTACHMENT_LABEL = "附件："
# Several attachments: "1." + tab to the names, so wrapped names align with the name above.
ATTACHMENT_NUMBER_WIDTH = 2 * BODY_CHAR_PITCH

# --- 7.3.5.2 署名 and 成文日期 without a seal ----------------------------------------------------
BLANK_LINES_TO_SIGNATURE = 1
SIGNATURE_RIGHT_CHARS = 2           # 署名 two characters from the right
DATE_SHIFT_CHARS = 2                # date's first character two right of the 署名's first
DATE_RIGHT_MIN_CHARS = 2            # the date keeps at least two characters to the right

# --- 7.3.6 附注: the line after the date, two characters in, in full-width brackets -----------
NOTE_OPEN, NOTE_CLOSE = "（", "）"

# --- 7.3.7 附件: new page; “附件N” 三号黑体 on line 1, the title centred on line 3 -----------------
ANNEX_LABEL = "附件"
BLANK_LINES_ANNEX_LABEL_TO_TITLE = 1
BLANK_LINES_ANNEX_TITLE_TO_CONTENT = 1   # custom: one line between the annex title and its table

# --- 8 公文中的表格 (annex tables): 仿宋, smaller than the body is customary ---------------------
TABLE_SIZE = half_points(SIZE_SI_PT)
TABLE_SIZE_SMALL = half_points(SIZE_XIAOSI_PT)
TABLE_LINE_PITCH = 400              # exact 20 pt rows of text inside cells
TABLE_BORDER_WIDTH = 4              # eighths of a point (0.5 pt)
TABLE_CELL_MARGIN = 80              # left/right padding inside cells
# A landscape table page keeps the portrait type area on the sheet: the landscape top is the
# portrait 订口 (table head at the binding on odd pages, at the outer edge on even ones).
LANDSCAPE_MARGIN_TOP = MARGIN_LEFT
LANDSCAPE_MARGIN_BOTTOM = MARGIN_RIGHT
LANDSCAPE_MARGIN_LEFT = MARGIN_BOTTOM
LANDSCAPE_MARGIN_RIGHT = MARGIN_TOP
LANDSCAPE_TYPE_AREA_WIDTH = PAGE_HEIGHT - LANDSCAPE_MARGIN_LEFT - LANDSCAPE_MARGIN_RIGHT

# --- 7.4 版记 -----------------------------------------------------------------------------------
IMPRINT_SIZE = half_points(SIZE_SI_PT)     # 7.4.2, 7.4.3: 四号仿宋
IMPRINT_INDENT = SIZE_SI_PT * TWIPS_PER_PT  # one character in from each side (280)
IMPRINT_RULE_THICK = 8                      # 7.4.1: 0.35 mm ≈ 1 pt, first and last rules
IMPRINT_RULE_THIN = 6                       # 7.4.1: 0.25 mm ≈ 0.75 pt, between the items (主送, 抄送, 印发)
COPY_TO_LABEL = "抄送："
# 7.3.2: a 主送 too long for page 1 is written in the 版记 the way 抄送 is, above it.
ADDRESSEES_LABEL = "主送："
IMPRINT_LIST_SEPARATOR = "，"        # 7.4.2: names separated by commas …
IMPRINT_LIST_END = "。"              # … ending with a full stop
IMPRINT_LINE_WIDTH = TYPE_AREA_WIDTH - 2 * IMPRINT_INDENT
IMPRINT_CHARS_PER_LINE = IMPRINT_LINE_WIDTH / (IMPRINT_SIZE * TWIPS_PER_PT / 2)   # 29.6
IMPRINT_SUFFIX = "印发"
# The 版记 is one block at the foot of the last page (a frame): it cannot run onto a second page.
# Lines its page keeps free: the rules take part of one; LibreOffice anchors the block to the
# paragraph before it and carries that paragraph (the 附注, two lines) onto the 版记's page.
IMPRINT_PAGE_RESERVED_LINES = 3
IMPRINT_MAX_LINES = LINES_PER_PAGE - IMPRINT_PAGE_RESERVED_LINES

# --- 7.5 页码: 四号半角宋体, “— N —”, 7 mm below the type area; odd right, even left, one char in ---
PAGE_NUMBER_SIZE = half_points(SIZE_SI_PT)    # 28
PAGE_NUMBER_DASH = "—"
PAGE_NUMBER_INDENT = SIZE_SI_PT * TWIPS_PER_PT  # 280
PAGE_NUMBER_BELOW_TYPE_AREA = mm(7)
# Distance from the paper's bottom edge to the bottom of the footer's exact line, chosen so the
# dashes (at the middle of the em box) sit 7 mm below the type area.
_DASH_ABOVE_BASELINE = (CJK_EM_ASCENT - 0.5) * PAGE_NUMBER_SIZE * TWIPS_PER_PT / 2
FOOTER_DISTANCE = round(
    MARGIN_BOTTOM - PAGE_NUMBER_BELOW_TYPE_AREA
    - (1 - EXACT_LINE_BASELINE_RATIO) * LINE_PITCH - _DASH_ABOVE_BASELINE)
HEADER_DISTANCE = mm(15)
