"""Benchmark: the 情况通报 of N synthetic units, beside a bare baseline in the same run.

    /work/venv/bin/python bench/summary.py                 # N = 100, 1000, 10000
    /work/venv/bin/python bench/summary.py 100 1000 --repeats 5

For each N a fresh SQLite database holds a campaign of N units (90 % on time, 5 % late, the others
bounced, exempt, rejected or silent; every tenth unit with an attachment). Then, each in a process of
its own so that its peak memory is its own:

  baseline  docxtpl renders the same template with the same context, computed beforehand (the
            document's paragraphs, its annex tables already built as WordprocessingML), and saves
  ours      the whole summary from the database, as the flow makes it: read each unit's latest
            valid submission and aggregate by the form schema (data), write the prose and the
            tables (write), build the annex XML, render with docxtpl, post-process, save
            reproducibly (render)
  export    汇总表.xlsx and 附件材料.zip (reported beside, not part of the ratio)

Times are the best of --repeats runs inside the process; peak memory is the process's maximum
resident set (it includes the interpreter and the libraries: compare the columns, not the numbers
with zero). No Prefect server is involved.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
from synthetic import campaign_with_units  # noqa: E402  (bench/ is the script's folder)
from synthetic import CAMPAIGN_ID  # noqa: E402
SUMMARY_DAY = date(2023, 10, 16)
STORY = ("组织党员志愿者深入社区开展宣讲，采取“宣讲+服务”模式，受到群众欢迎。"
         "同时开展义诊、清洁家园等活动，服务群众百余人次。\n第二个事例：关爱留守儿童。")


# -- the data ---------------------------------------------------------------------------------------

def point_environment(root: Path) -> None:
    from models.db import reset_engines
    from models.settings import reload_settings

    os.environ.update(NOTICEFLOW_OUTPUT_DIR=str(root / "outputs"),
                      NOTICEFLOW_DATABASE_URL=f"sqlite:///{root / 'noticeflow.db'}",
                      NOTICEFLOW_SECRET="benchmark-secret")
    os.environ.pop("PREFECT_API_URL", None)
    reset_engines()
    reload_settings()


def make_world(root: Path, count: int) -> Path:
    """The campaign folder with `count` units, loaded, with their replies; returns the folder."""
    folder = campaign_with_units(root, count, name="基准测试单位{n:05d}（新区某某局）")
    point_environment(root)

    from sqlmodel import select

    from forms.campaign import load_campaign
    from forms.store import upsert_campaign
    from models.db import session_scope
    from models.states import RecipientStatus as S
    from models.tables import Attachment, Recipient, Submission

    definition = load_campaign(folder)
    deadline = definition.spec.deadline
    cells = list(definition.form.iter_cells())
    with session_scope() as session:
        upsert_campaign(session, definition)
    attachments = root / "outputs" / CAMPAIGN_ID / "attachments"
    with session_scope() as session:
        recipients = session.exec(select(Recipient).where(Recipient.campaign_id == CAMPAIGN_ID)
                                  .order_by(Recipient.id)).all()
        for n, recipient in enumerate(recipients, start=1):
            share = n % 100
            if share < 95:
                late = share >= 90
                values = {key: (n % 37 if spec.type.value == "integer" else
                                round((n % 50) * 1.5, 1) if spec.type.value == "number" else
                                "0931-8259130" if spec.type.value == "phone" else
                                STORY if key == "stories" else f"单位{n}")
                          for key, spec in cells}
                received = deadline + (timedelta(days=2) if late else -timedelta(days=1, minutes=n % 600))
                session.add(Submission(recipient_id=recipient.id, version=1, values=values, valid=True,
                                       late=late, received_at=received))
                recipient.status = S.late if late else S.replied
                recipient.last_reply_at = received
            elif share < 96:
                recipient.status = S.bounced
            elif share < 97:
                recipient.status = S.exempt
            elif share < 98:
                session.add(Submission(recipient_id=recipient.id, version=1, values={}, valid=False,
                                       errors=[{"message": "应为数字"}], received_at=deadline))
                recipient.status = S.replied
            else:
                recipient.status = S.overdue
            if n % 10 == 0:
                relative = f"{CAMPAIGN_ID}/attachments/B{n:05d}/001_{n:012d}.jpg"
                path = attachments / f"B{n:05d}" / f"001_{n:012d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(n % 256 for _ in range(2000)))
                session.add(Attachment(recipient_id=recipient.id, seq=1, stored_path=relative,
                                       original_name="活动照片.jpg", sha256=f"{n:064d}", size=2004, verdict="stored"))
    return folder


# -- the contestants (each in a child process) --------------------------------------------------------

def _ours(folder: Path, out: Path) -> dict:
    """What the flow does for the .docx (flows/summarize.py: gather_summary_data, render_summary_file)."""
    from documents.officialdoc import render_official_document
    from documents.outcomes import campaign_figures
    from documents.summary import summary_document
    from forms.campaign import load_campaign
    from models.db import session_scope

    steps = {}
    started = time.perf_counter()
    definition = load_campaign(folder)
    with session_scope() as session:
        _, aggregation = campaign_figures(session, definition)
    steps["data"] = time.perf_counter() - started
    mark = time.perf_counter()
    document = summary_document(definition, aggregation, SUMMARY_DAY)
    steps["write"] = time.perf_counter() - mark
    mark = time.perf_counter()
    render_official_document(document, out)
    steps["render"] = time.perf_counter() - mark
    steps["total"] = time.perf_counter() - started
    return steps


def _baseline_context(folder: Path):
    """The same template and the context ours renders, computed beforehand (untimed)."""
    from docxtpl import DocxTemplate

    from documents.officialdoc import DEFAULT_TEMPLATE, _context
    from documents.outcomes import campaign_figures
    from documents.summary import summary_document
    from forms.campaign import load_campaign
    from models.db import session_scope

    definition = load_campaign(folder)
    with session_scope() as session:
        _, aggregation = campaign_figures(session, definition)
    document = summary_document(definition, aggregation, SUMMARY_DAY)
    template = DocxTemplate(str(DEFAULT_TEMPLATE))
    template.init_docx()
    return template, _context(document, template)


def _baseline(folder: Path, out: Path) -> dict:
    template, context = _baseline_context(folder)
    started = time.perf_counter()
    template.render(context, autoescape=True)
    template.save(str(out))
    return {"total": time.perf_counter() - started}


def _exports(folder: Path, out: Path) -> dict:
    from documents.bundle import build_bundle
    from documents.export import write_export
    from documents.outcomes import campaign_figures
    from documents.summary import unit_numbers
    from forms.campaign import load_campaign
    from models.db import session_scope

    definition = load_campaign(folder)
    with session_scope() as session:
        records, aggregation = campaign_figures(session, definition)
    started = time.perf_counter()
    write_export(definition, aggregation, records, SUMMARY_DAY, out.with_suffix(".xlsx"))
    xlsx = time.perf_counter() - started
    mark = time.perf_counter()
    with session_scope() as session:
        report = build_bundle(session, CAMPAIGN_ID, unit_numbers(aggregation), out.with_suffix(".zip"))
    return {"xlsx": xlsx, "zip": time.perf_counter() - mark, "files": report.files}


CONTESTANTS = {"baseline": _baseline, "ours": _ours, "exports": _exports}


def _child(kind: str, root: str, repeats: int, queue) -> None:
    point_environment(Path(root))
    folder = Path(root) / "campaign" / CAMPAIGN_ID
    runs = [CONTESTANTS[kind](folder, Path(root) / f"{kind}-{i}.docx") for i in range(repeats)]
    best = min(runs, key=lambda r: r.get("total", r.get("xlsx", 0)))
    best["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(best)


def measure(kind: str, root: Path, repeats: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(kind, str(root), repeats, queue))
    process.start()
    result = queue.get(timeout=3600)
    process.join()
    if process.exitcode:
        raise SystemExit(f"{kind} failed in its process (exit {process.exitcode})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per contestant and size; the best is shown")
    args = parser.parse_args()
    print(f"{'N':>6} {'base s':>7} {'ours s':>7} {'ratio':>6} {'base ms/u':>10} {'ours ms/u':>10} "
          f"{'base MB':>8} {'ours MB':>8} | {'data':>5} {'write':>5} {'render':>6} | "
          f"{'xlsx s':>6} {'zip s':>6} {'MB':>6}")
    for count in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"nf-bench-summary-{count}-") as tmp:
            root = Path(tmp)
            make_world(root, count)
            base = measure("baseline", root, args.repeats)
            ours = measure("ours", root, args.repeats)
            exports = measure("exports", root, 1)
        print(f"{count:>6} {base['total']:>7.2f} {ours['total']:>7.2f} {ours['total'] / base['total']:>6.2f} "
              f"{1000 * base['total'] / count:>10.2f} {1000 * ours['total'] / count:>10.2f} "
              f"{base['peak_mb']:>8.0f} {ours['peak_mb']:>8.0f} | {ours['data']:>5.2f} "
              f"{ours['write']:>5.2f} {ours['render']:>6.2f} | {exports['xlsx']:>6.2f} {exports['zip']:>6.2f} "
              f"{exports['peak_mb']:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
