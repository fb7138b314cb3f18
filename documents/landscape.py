"""Page numbers of landscape table pages (GB/T 9704-2012, 8): the sheet is bound like every other
page, so the number stays where the portrait pages print it — below the type area, odd pages at
the outer right, even pages at the left — and therefore reads turned on the landscape page.

The landscape page's top is the portrait page's left edge (layout.LANDSCAPE_MARGIN_*), so a
portrait point (x, y) is the landscape point (page height − y, x). Each footer holds one text box,
placed relative to the page, whose text runs turned 90° clockwise.
"""
from __future__ import annotations

from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml.ns import nsmap
from docx.parts.hdrftr import FooterPart
from lxml import etree

from documents import layout as L
from documents import styles as S
from documents.ooxml import E, ParaProps, field_runs, paragraph, run

EMU_PER_TWIP = 635
WPS_NS = "http://schemas.microsoft.com/office/word/2010/wordprocessingShape"
WP_NS = nsmap["wp"]
A_NS = nsmap["a"]
BOX_LENGTH = 3 * L.PAGE_NUMBER_INDENT + 6 * L.PAGE_NUMBER_SIZE * L.TWIPS_PER_PT // 2  # room for "— 999 —"
BOX_THICKNESS = L.LINE_PITCH
# Where the dashes sit inside the box's one exact line, measured from the line's top.
_DASH_FROM_LINE_TOP = (L.EXACT_LINE_BASELINE_RATIO * L.LINE_PITCH
                       - (L.CJK_EM_ASCENT - 0.5) * L.PAGE_NUMBER_SIZE * L.TWIPS_PER_PT / 2)


def _el(ns: str, tag: str, attrs: dict | None = None, *children):
    element = etree.Element(f"{{{ns}}}{tag}", {k: str(v) for k, v in (attrs or {}).items()},
                            nsmap={"wp": WP_NS, "a": A_NS, "wps": WPS_NS})
    for child in children:
        element.append(child)
    return element


def _box_position(odd: bool) -> tuple[int, int]:
    """Landscape (x, y) of the box's top-left corner, in twips from the page's edges."""
    portrait_dash_y = L.PAGE_HEIGHT - L.MARGIN_BOTTOM + L.PAGE_NUMBER_BELOW_TYPE_AREA
    dash_x = L.PAGE_HEIGHT - portrait_dash_y
    # The line's top faces the portrait top, i.e. the landscape right: the box's right edge.
    x = round(dash_x + _DASH_FROM_LINE_TOP - BOX_THICKNESS)
    if odd:   # portrait: ends at the right edge of the type area
        y = L.PAGE_WIDTH - L.MARGIN_RIGHT - BOX_LENGTH
    else:     # portrait: starts at the left edge of the type area
        y = L.MARGIN_LEFT
    return x, y


def _turned_number_run(odd: bool, shape_id: int):
    x, y = _box_position(odd)
    style = S.PAGE_NUMBER_ODD if odd else S.PAGE_NUMBER_EVEN
    number = paragraph(ParaProps(style=style), run(L.PAGE_NUMBER_DASH + " "),
                       *field_runs("PAGE", "1"), run(" " + L.PAGE_NUMBER_DASH))
    cx, cy = BOX_THICKNESS * EMU_PER_TWIP, BOX_LENGTH * EMU_PER_TWIP
    wsp = _el(WPS_NS, "wsp", None,
              _el(WPS_NS, "cNvSpPr", {"txBox": 1}),
              _el(WPS_NS, "spPr", None,
                  _el(A_NS, "xfrm", None, _el(A_NS, "off", {"x": 0, "y": 0}),
                      _el(A_NS, "ext", {"cx": cx, "cy": cy})),
                  _el(A_NS, "prstGeom", {"prst": "rect"}, _el(A_NS, "avLst")),
                  _el(A_NS, "noFill"),
                  _el(A_NS, "ln", None, _el(A_NS, "noFill"))),
              _el(WPS_NS, "txbx", None, E("w:txbxContent", None, number)),
              _el(WPS_NS, "bodyPr", {"rot": 0, "vert": "vert", "wrap": "square", "lIns": 0,
                                     "tIns": 0, "rIns": 0, "bIns": 0, "anchor": "t"},
                  _el(A_NS, "noAutofit")))
    anchor = _el(WP_NS, "anchor", {"distT": 0, "distB": 0, "distL": 0, "distR": 0, "simplePos": 0,
                                   "relativeHeight": 1, "behindDoc": 0, "locked": 1,
                                   "layoutInCell": 1, "allowOverlap": 1},
                 _el(WP_NS, "simplePos", {"x": 0, "y": 0}),
                 _el(WP_NS, "positionH", {"relativeFrom": "page"}, _offset(x)),
                 _el(WP_NS, "positionV", {"relativeFrom": "page"}, _offset(y)),
                 _el(WP_NS, "extent", {"cx": cx, "cy": cy}),
                 _el(WP_NS, "effectExtent", {"l": 0, "t": 0, "r": 0, "b": 0}),
                 _el(WP_NS, "wrapNone"),
                 _el(WP_NS, "docPr", {"id": shape_id, "name": f"页码{shape_id}"}),
                 _el(WP_NS, "cNvGraphicFramePr"),
                 _el(A_NS, "graphic", None,
                     _el(A_NS, "graphicData", {"uri": WPS_NS}, wsp)))
    return E("w:r", None, E("w:drawing", None, anchor))


def _offset(twips: int):
    element = _el(WP_NS, "posOffset")
    element.text = str(twips * EMU_PER_TWIP)
    return element


def add_turned_page_number_footers(docx) -> dict[str, str]:
    """Add the two footers of landscape sections to `docx` (a python-docx Document); returns their
    relationship ids by footer type ("default" for odd pages, "even")."""
    ids = {}
    for kind, odd, shape_id in (("default", True, 9001), ("even", False, 9002)):
        part = FooterPart.new(docx.part.package)
        root = part.element
        for child in list(root):
            root.remove(child)
        root.append(paragraph(None, _turned_number_run(odd, shape_id)))
        ids[kind] = docx.part.relate_to(part, RT.FOOTER)
    return ids

