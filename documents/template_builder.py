"""Builds the official-document template (templates/official_document.docx) from the numbers in
documents/layout.py and the styles in documents/styles.py. `scripts/build_templates.py` runs it;
the result is byte-for-byte reproducible, so a test can tell when the committed file is stale.

The template is an ordinary Word file: staff can open it in Word or WPS, see the 版头, the body
loop and the 版记 with readable docxtpl tags, and change a style. Run the script again to return
to the standard layout.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from docx import Document
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml.ns import qn

from documents import layout as L
from documents import styles as S
from documents.ooxml import E, Frame, ParaProps, RunProps, field_runs, paragraph, run, to_fragment
from documents.package import save_docx

TEMPLATE_NAME = "official_document.docx"
# Fixed so the build is reproducible; the renderer replaces them with the document's own date.
TEMPLATE_TIMESTAMP = dt.datetime(2012, 7, 1)

_DROPPED_PART_TYPES = {
    RT.CUSTOM_XML, RT.NUMBERING, RT.THEME, RT.WEB_SETTINGS,
    "http://schemas.microsoft.com/office/2007/relationships/stylesWithEffects",
}
_CHINESE_FONTS = (L.FONT_FANGSONG, L.FONT_XIAOBIAOSONG, L.FONT_HEITI, L.FONT_KAITI, L.FONT_SONGTI)


def tag(text: str, style: str | None = None):
    """A paragraph that holds one docxtpl tag."""
    return paragraph(ParaProps(style=style) if style else None, run(text))


def blank(count: int = 1) -> list:
    """空行: empty paragraphs of the body's exact line height."""
    return [paragraph() for _ in range(count)]


def _tab_run():
    return E("w:r", None, E("w:tab"))


def body_elements() -> list:
    """The template's body, top to bottom: 版头, 主体, the annex slot, 版记."""
    imprint_frame = Frame(width=L.TYPE_AREA_WIDTH)
    return [
        # 版头 (7.2)
        paragraph(ParaProps(style=S.MARK), run("{{r mark }}")),
        *blank(L.BLANK_LINES_MARK_TO_DOC_NUMBER),
        paragraph(ParaProps(style=S.DOC_NUMBER), run("{{ doc_number }}")),
        # 主体 (7.3)
        *blank(L.BLANK_LINES_RULE_TO_TITLE),
        paragraph(ParaProps(style=S.TITLE), run("{{ title }}")),
        *blank(L.BLANK_LINES_TITLE_TO_ADDRESSEES),
        # 7.3.2: the renderer leaves `addressees` empty when the 主送 goes to the 版记.
        tag("{%p if addressees %}"),
        paragraph(ParaProps(style=S.ADDRESSEES), run("{{ addressees }}" + L.ADDRESSEES_END)),
        tag("{%p endif %}"),
        tag("{%p for para in body %}"),
        tag("{%p if para.level == 1 %}"),
        paragraph(ParaProps(style=S.HEADING_1), run("{{ para.lead }}", RunProps(style=S.HEADING_1_CHAR)),
                  run("{{ para.rest }}")),
        tag("{%p elif para.level == 2 %}"),
        paragraph(ParaProps(style=S.HEADING_2), run("{{ para.lead }}", RunProps(style=S.HEADING_2_CHAR)),
                  run("{{ para.rest }}")),
        tag("{%p else %}"),
        paragraph(ParaProps(style=S.BODY), run("{{ para.text }}")),
        tag("{%p endif %}"),
        tag("{%p endfor %}"),
        tag("{%p if attachments %}"),
        *blank(L.BLANK_LINES_BODY_TO_ATTACHMENTS),
        tag("{%p if attachments|length == 1 %}"),
        paragraph(ParaProps(style=S.ATTACHMENT), run(L.ATTACHMENT_LABEL + "{{ attachments[0] }}")),
        tag("{%p else %}"),
        tag("{%p for name in attachments %}"),
        tag("{%p if loop.first %}"),
        paragraph(ParaProps(style=S.ATTACHMENT_FIRST), run(L.ATTACHMENT_LABEL + "{{ loop.index }}."),
                  _tab_run(), run("{{ name }}")),
        tag("{%p else %}"),
        paragraph(ParaProps(style=S.ATTACHMENT_NEXT), run("{{ loop.index }}."), _tab_run(),
                  run("{{ name }}")),
        tag("{%p endif %}"),
        tag("{%p endfor %}"),
        tag("{%p endif %}"),
        tag("{%p endif %}"),
        *blank(L.BLANK_LINES_TO_SIGNATURE),
        tag("{{p signature }}"),
        tag("{%p if note %}"),
        paragraph(ParaProps(style=S.NOTE), run(L.NOTE_OPEN + "{{ note }}" + L.NOTE_CLOSE)),
        tag("{%p endif %}"),
        tag("{{p annexes }}"),
        # 版记 (7.4): a frame at the bottom of the last page's type area. Its items share one style,
        # whose borders are the rules: thick above the first and below the last, thin between.
        tag("{%p if imprint_addressees %}"),
        paragraph(ParaProps(style=S.IMPRINT, frame=imprint_frame),
                  run(L.ADDRESSEES_LABEL + "{{ imprint_addressees }}" + L.IMPRINT_LIST_END)),
        tag("{%p endif %}"),
        tag("{%p if copy_to %}"),
        paragraph(ParaProps(style=S.IMPRINT, frame=imprint_frame),
                  run(L.COPY_TO_LABEL + "{{ copy_to }}" + L.IMPRINT_LIST_END)),
        tag("{%p endif %}"),
        paragraph(ParaProps(style=S.IMPRINT, frame=imprint_frame),
                  run("{{ printer }}"), _tab_run(), run("{{ printed_date }}" + L.IMPRINT_SUFFIX)),
    ]


def page_number_paragraph(style: str):
    """“— N —” (7.5): a PAGE field between two 一字线."""
    return paragraph(ParaProps(style=style), run(L.PAGE_NUMBER_DASH + " "),
                     *field_runs("PAGE", "1"), run(" " + L.PAGE_NUMBER_DASH))


def portrait_page_setup(sect_pr) -> None:
    """Page size and margins (5.1, 5.2.1) on a w:sectPr, keeping its header/footer references."""
    for child in list(sect_pr):
        if child.tag.split("}")[1] in {"pgSz", "pgMar", "cols", "docGrid", "titlePg"}:
            sect_pr.remove(child)
    sect_pr.append(E("w:pgSz", {"w:w": L.PAGE_WIDTH, "w:h": L.PAGE_HEIGHT}))
    sect_pr.append(E("w:pgMar", {"w:top": L.MARGIN_TOP, "w:right": L.MARGIN_RIGHT,
                                 "w:bottom": L.MARGIN_BOTTOM, "w:left": L.MARGIN_LEFT,
                                 "w:header": L.HEADER_DISTANCE, "w:footer": L.FOOTER_DISTANCE,
                                 "w:gutter": 0}))
    sect_pr.append(E("w:docGrid", {"w:linePitch": L.LINE_PITCH}))


def _strip_package(document) -> None:
    """Drop what python-docx's starter file carries and an official document does not need:
    its theme (whose fonts would compete with ours), numbering, custom XML, thumbnail."""
    part = document.part
    for r_id, rel in list(part.rels.items()):
        if rel.reltype in _DROPPED_PART_TYPES:
            del part.rels[r_id]
    package_rels = part.package.rels
    for r_id, rel in list(package_rels.items()):
        if rel.reltype == RT.THUMBNAIL:
            del package_rels[r_id]


def _write_styles(document) -> None:
    root = document.styles.element
    for child in list(root):
        root.remove(child)
    root.append(S.doc_defaults())
    for element in S.builtin_defaults():
        root.append(element)
    for style in S.STYLES:
        root.append(style.element())


def _write_settings(document) -> None:
    settings = document.settings.element
    for child in list(settings):
        if child.tag.split("}")[1] in {"rsids", "themeFontLang", "savePreviewPicture",
                                       "attachedTemplate", "proofState", "clrSchemeMapping",
                                       "shapeDefaults", "docId"}:
            settings.remove(child)
    document.settings.odd_and_even_pages_header_footer = True        # 7.5: odd right, even left
    settings.find(qn("w:defaultTabStop")).set(qn("w:val"), str(2 * S.CHAR))
    for setting in settings.find(qn("w:compat")):
        if setting.get(qn("w:name")) == "compatibilityMode":
            setting.set(qn("w:val"), "15")


def _write_font_table(document) -> None:
    part = document.part.part_related_by(RT.FONT_TABLE)
    fonts = E("w:fonts")
    for name in _CHINESE_FONTS:
        font = E("w:font", {"w:name": name})
        if name in L.FONT_ALT_NAMES:
            font.append(E("w:altName", {"w:val": L.FONT_ALT_NAMES[name]}))
        font.append(E("w:charset", {"w:val": "86"}))          # GB2312
        font.append(E("w:family", {"w:val": "modern" if name != L.FONT_HEITI else "swiss"}))
        font.append(E("w:pitch", {"w:val": "variable"}))
        fonts.append(font)
    xml = to_fragment(fonts).replace("<w:fonts>", f'<w:fonts xmlns:w="{fonts.nsmap["w"]}">', 1)
    part._blob = ("<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n" + xml).encode()


def _write_properties(document) -> None:
    core = document.core_properties
    core.author = ""
    core.comments = ""
    core.title = "党政机关公文（GB/T 9704-2012）"
    core.last_modified_by = ""
    core.revision = 1
    core.created = TEMPLATE_TIMESTAMP
    core.modified = TEMPLATE_TIMESTAMP
    core.language = L.LANGUAGE


def _write_body(document) -> None:
    body = document.element.body
    sect_pr = body.sectPr
    for child in list(body):
        if child is not sect_pr:
            body.remove(child)
    for element in body_elements():
        sect_pr.addprevious(element)


def _write_headers_footers(document) -> None:
    section = document.sections[0]
    for story, style in ((section.footer, S.PAGE_NUMBER_ODD), (section.even_page_footer, S.PAGE_NUMBER_EVEN)):
        story.is_linked_to_previous = False
        _replace_story(story, page_number_paragraph(style))
    # Empty headers, named explicitly, so a later section never inherits another one's.
    for story in (section.header, section.even_page_header):
        story.is_linked_to_previous = False
        _replace_story(story, paragraph())


def _replace_story(story, new_paragraph) -> None:
    root = story._element
    for child in list(root):
        root.remove(child)
    root.append(new_paragraph)


def build_template(out_path: Path) -> Path:
    """Write the official-document template to `out_path` and return the path."""
    document = Document()
    _strip_package(document)
    _write_styles(document)
    _write_settings(document)
    _write_font_table(document)
    _write_properties(document)
    _write_body(document)
    _write_headers_footers(document)
    portrait_page_setup(document.element.body.sectPr)
    return save_docx(document, out_path)
