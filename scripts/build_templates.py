"""Rebuild the Word templates under templates/ from documents/layout.py and documents/styles.py.

    python scripts/build_templates.py            # writes templates/official_document.docx
    python scripts/build_templates.py OUT_DIR    # writes into another folder

The output is byte-for-byte reproducible; commit it after changing the layout or the styles.
"""
from __future__ import annotations

import sys
from pathlib import Path

from documents.template_builder import TEMPLATE_NAME, build_template
from models.settings import TEMPLATES_DIR


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else TEMPLATES_DIR
    path = build_template(out_dir / TEMPLATE_NAME)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
