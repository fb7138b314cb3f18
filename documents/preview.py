"""Previews of rendered documents: .docx → PDF with LibreOffice, PDF → PNG with poppler.

The official faces (仿宋_GB2312, 方正小标宋简体 …) are not on Linux machines; a private fontconfig
file (documents/fontconfig/fonts.conf) maps them to free CJK faces for the preview only. Each
conversion uses its own LibreOffice profile, so conversions can run side by side.

    python -m documents.preview outputs/xinqu-2023-9/notice.docx   # writes notice.pdf + PNGs
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FONTCONFIG_FILE = Path(__file__).resolve().parent / "fontconfig" / "fonts.conf"
SOFFICE_TIMEOUT = 180
TOOLS = ("soffice", "pdftotext", "pdftoppm")


class PreviewError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    """The command-line tools a preview needs that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def preview_environment(profile: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FONTCONFIG_FILE"] = str(FONTCONFIG_FILE)
    env["XDG_CACHE_HOME"] = str(profile / "cache")   # fontconfig's user cache stays in the profile
    return env


def docx_to_pdf(docx_path: Path, out_dir: Path | None = None, work_dir: Path | None = None) -> Path:
    """Convert with LibreOffice headless; returns the PDF's path (beside the .docx by default).
    LibreOffice's profile and caches live in a fresh folder under `work_dir` (default: the system's
    temporary folder) and are removed afterwards."""
    docx_path = Path(docx_path).resolve()
    out_dir = Path(out_dir or docx_path.parent).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lo_profile_", dir=work_dir) as profile:
        command = ["soffice", "--headless", "--norestore",
                   f"-env:UserInstallation={Path(profile).as_uri()}",
                   "--convert-to", "pdf", "--outdir", str(out_dir), str(docx_path)]
        result = subprocess.run(command, env=preview_environment(Path(profile)), capture_output=True,
                                text=True, timeout=SOFFICE_TIMEOUT)
    pdf_path = out_dir / (docx_path.stem + ".pdf")
    if result.returncode != 0 or not pdf_path.is_file():
        raise PreviewError(f"LibreOffice could not convert {docx_path}: {result.stderr.strip()}")
    return pdf_path


def pdf_to_png(pdf_path: Path, out_prefix: Path | None = None, dpi: int = 80,
               first_page: int | None = None, last_page: int | None = None) -> list[Path]:
    """Render pages to PNG files named <prefix>-<page>.png; returns them in page order."""
    pdf_path = Path(pdf_path)
    out_prefix = Path(out_prefix or pdf_path.with_suffix(""))
    command = ["pdftoppm", "-png", "-r", str(dpi)]
    if first_page:
        command += ["-f", str(first_page)]
    if last_page:
        command += ["-l", str(last_page)]
    subprocess.run([*command, str(pdf_path), str(out_prefix)], check=True, capture_output=True)
    return sorted(out_prefix.parent.glob(out_prefix.name + "-*.png"),
                  key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    pdf = docx_to_pdf(Path(argv[1]))
    print(pdf)
    for png in pdf_to_png(pdf):
        print(png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
