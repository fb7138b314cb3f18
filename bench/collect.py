"""Benchmark: `collect_replies` on N replies (each with a filled xlsx reply form) in the IMAP
mailbox, beside a bare baseline, in the same run.

    /work/venv/bin/python bench/collect.py            # N = 100, 500
    /work/venv/bin/python bench/collect.py 100 500 1000

For each N, on a fresh database, output folder and mail server: the notice is issued to N synthetic
units (against a discarding SMTP sink) and every unit's form is filled with openpyxl. Then, --repeat
times (default 3) from that same state — the replies freshly in the office INBOX of the embedded
IMAP server (pymap, in this process), the database and output folder as after set-up — each of the
two runs in its own fresh process, so its time and peak memory are its own; the fastest run of each
counts (a shared machine only ever adds time):

- baseline: imap-tools fetches the same messages (`mark_seen=False`, in bulks of 25) and openpyxl
  parses every xlsx attachment, reading every cell;
- ours: the collect flow's body (run_flow without PREFECT_API_URL, as the CLI runs it): raw files
  with fsync, rows, classification, matching, attachment storage, the form read in its limited
  worker process, a Submission, a status change, one 回执 per reply sent to the sink, the move to
  Processed.

Imports are done before the clock starts in both. CPU is the worker's own plus its child processes'
(the form reader's included), imports included. Peak RSS is the worker process's own (VmHWM); the
form reader's worker processes are not included.
"""
from __future__ import annotations

import argparse
import email.policy
import email.utils
import io
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
from synthetic import campaign_with_units  # noqa: E402  (bench/ is the script's folder)
from synthetic import CAMPAIGN_ID  # noqa: E402
OFFICE_PASSWORD = "bench-office"
NOW = "2023-10-09T15:00:00"
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


# -- workers (run in a fresh process each) --------------------------------------------------------

def baseline_worker() -> dict:
    import openpyxl
    from imap_tools import MailBoxUnencrypted

    from models.settings import get_settings

    settings = get_settings()
    started = time.perf_counter()
    messages = forms = cells = 0
    with MailBoxUnencrypted(settings.imap_host, settings.imap_port, timeout=60).login(
            settings.imap_user, settings.imap_password.get_secret_value()) as mailbox:
        for message in mailbox.fetch(mark_seen=False, bulk=25):
            messages += 1
            for attachment in message.attachments:
                if attachment.filename.endswith(".xlsx"):
                    workbook = openpyxl.load_workbook(io.BytesIO(attachment.payload))
                    forms += 1
                    for sheet in workbook.worksheets:
                        for row in sheet.iter_rows(values_only=True):
                            cells += sum(value is not None for value in row)
    return {"seconds": time.perf_counter() - started, "messages": messages, "forms": forms, "cells": cells}


def ours_worker() -> dict:
    from sqlmodel import func, select

    from flows.collect import collect_replies
    from flows.runner import run_flow
    from models.db import session_scope
    from models.tables import InboundMessage, OutboundMessage, Submission

    started = time.perf_counter()
    if os.environ.get("BENCH_PROFILE"):   # a file name: where cProfile writes the run's profile
        import cProfile
        cProfile.runctx("run_flow(collect_replies, CAMPAIGN_ID)", globals(), locals(), os.environ["BENCH_PROFILE"])
        summary = ""
    else:
        summary = run_flow(collect_replies, CAMPAIGN_ID)
    seconds = time.perf_counter() - started
    with session_scope() as session:
        counts = {
            "messages": session.exec(select(func.count()).select_from(InboundMessage)
                                     .where(InboundMessage.state == "moved")).one(),
            "forms": session.exec(select(func.count()).select_from(Submission)
                                  .where(Submission.valid == True)).one(),  # noqa: E712
            "answers": session.exec(select(func.count()).select_from(OutboundMessage)
                                    .where(OutboundMessage.kind == "ack", OutboundMessage.state == "sent")).one(),
        }
    # Stop the form-reading workers, then the fork server, and wait for them, so the workers' CPU
    # time (reaped by the fork server) is counted in this process's children.
    from multiprocessing import forkserver

    from forms.ooxml_guard import stop_parse_workers

    stop_parse_workers()
    forkserver._forkserver._stop()
    return {"seconds": seconds, "summary": summary, **counts}


def peak_rss_mb() -> float:
    """This process's own peak resident memory. (ru_maxrss would include the launching process's
    memory: Linux carries it across fork and exec.)"""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def run_worker(kind: str, env: dict) -> dict:
    result = subprocess.run([sys.executable, __file__, "--worker", kind], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- setting up one N -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_campaign(root: Path, count: int) -> Path:
    return campaign_with_units(root, count)


def fill_form(form: bytes, schema, seed: int) -> bytes:
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(form))
    sheet = workbook.worksheets[0]
    texts = [cell for row in sheet.iter_rows() for cell in row if isinstance(cell.value, str)]
    header = next(c for c in texts if c.value == schema.grid.row_header)
    columns = {c.value: c.column for c in texts if c.row == header.row}
    for index, row in enumerate(schema.grid.rows):
        label = next(c for c in texts if c.value == row.label and c.column == header.column)
        for offset, column in enumerate(schema.grid.columns):
            value = seed + index * 10 + offset if column.type.value == "integer" else seed + index + 0.5
            sheet.cell(row=label.row, column=columns[column.label], value=value)
    for spec in schema.fields:
        label = next(c for c in texts if c.value.rstrip(" *") == spec.label)
        value = {"integer": seed % 50, "phone": "0931-8259130"}.get(spec.type.value, f"基准测试文字{seed}")
        sheet.cell(row=label.row, column=label.column + 1, value=value)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def reply_bytes(definition, unit, token: str, form: bytes) -> bytes:
    from mail import outbox
    from mail.outbound import sender_domain

    spec = definition.spec
    domain = sender_domain(spec.office.email)
    notice_id = outbox.make_message_id("notice", spec.token_prefix, unit.code, "issue", domain)
    message = EmailMessage()
    message["From"] = unit.email
    message["To"] = spec.office.email
    message["Subject"] = f"回复：{spec.notice.title}【{token}】"
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain="units.bench.test")
    message["In-Reply-To"] = message["References"] = notice_id
    message.set_content("报送材料见附件，请查收。")
    message.add_attachment(form, maintype=XLSX[0], subtype=XLSX[1], filename=f"回执表-{unit.name}.xlsx")
    return message.as_bytes(policy=email.policy.SMTP)


def empty_mailbox(settings) -> None:
    """Remove every message from the office INBOX and Processed folder of the bench's own server."""
    from imap_tools import MailBoxUnencrypted

    with MailBoxUnencrypted(settings.imap_host, settings.imap_port, timeout=60).login(
            settings.imap_user, settings.imap_password.get_secret_value(), initial_folder=None) as mailbox:
        for folder in (settings.imap_folder, settings.imap_processed_folder):
            if mailbox.folder.exists(folder):
                mailbox.folder.set(folder)
                mailbox.client.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Deleted)")
                mailbox.client.expunge()


def measure(count: int, repeat: int, keep: bool) -> dict:
    """Set up once; then `repeat` times: the same messages in the inbox, the database and output
    folder as after set-up, baseline then ours. The fastest run of each counts (a shared machine
    only ever adds time)."""
    from aiosmtpd.controller import Controller

    root = Path(tempfile.mkdtemp(prefix=f"nf-bench-collect-{count}-"))
    work, snapshot = root / "work", root / "snapshot"
    sink_port = free_port()

    class Discard:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    sink = Controller(Discard(), hostname="127.0.0.1", port=sink_port)
    sink.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTICEFLOW_", "PREFECT_API_URL"))}
    env.update(NOTICEFLOW_OUTPUT_DIR=str(work / "outputs"), NOTICEFLOW_DATABASE_URL=f"sqlite:///{work / 'nf.db'}",
               NOTICEFLOW_SECRET="bench-secret", NOTICEFLOW_NOW=NOW,
               NOTICEFLOW_SMTP_HOST="127.0.0.1", NOTICEFLOW_SMTP_PORT=str(sink_port), NOTICEFLOW_SMTP_SECURITY="none",
               NOTICEFLOW_SMTP_PASSWORD="", NOTICEFLOW_IMAP_HOST="127.0.0.1", NOTICEFLOW_IMAP_SECURITY="none",
               NOTICEFLOW_IMAP_PASSWORD=OFFICE_PASSWORD)
    os.environ.update(env)
    from mail.devmail import DevMailServer
    from models import db
    from models.settings import DEFAULT_OFFICE_LOGIN, reload_settings

    server = DevMailServer(smtp_host="127.0.0.1", smtp_port=0, imap_host="127.0.0.1", imap_port=0,
                           office_user=DEFAULT_OFFICE_LOGIN, office_password=OFFICE_PASSWORD, other_password="bench")
    server.start()
    runs = {"baseline": [], "ours": []}
    try:
        env["NOTICEFLOW_IMAP_PORT"] = os.environ["NOTICEFLOW_IMAP_PORT"] = str(server.imap_port)
        settings = reload_settings()
        db.reset_engines()
        from flows.campaign import issue_notice
        from flows.runner import run_flow
        from forms.campaign import load_campaign
        from forms.reply_form import reply_form_bytes
        from models import tokens

        folder = make_campaign(root, count)
        started = time.perf_counter()
        run_flow(issue_notice, str(folder))
        definition = load_campaign(folder)
        replies = []
        for seed, unit in enumerate(definition.units, start=1):
            token = str(tokens.sign(definition.spec.token_prefix, unit.code))
            form = fill_form(reply_form_bytes(definition, unit.name, token), definition.form, seed)
            replies.append(reply_bytes(definition, unit, token, form))
        setup = time.perf_counter() - started
        db.reset_engines()   # closes the connections: the database file is complete on disk
        shutil.copytree(work, snapshot)

        for _ in range(repeat):
            shutil.rmtree(work)
            shutil.copytree(snapshot, work)
            empty_mailbox(settings)
            for raw in replies:
                server.deliver(DEFAULT_OFFICE_LOGIN, raw)
            for kind in ("baseline", "ours"):
                result = run_worker(kind, env)
                done = (result["messages"], result["forms"]) + ((result["answers"],) if kind == "ours" else ())
                if set(done) != {count}:
                    raise RuntimeError(f"{kind} did not do the whole work: {result}")
                runs[kind].append(result)
                print(f"  N={count} {kind}: {result['seconds']:.2f} s, CPU {result['cpu_seconds']:.2f} s "
                      f"({result['cpu_children_seconds']:.2f} s in child processes)",
                      file=sys.stderr, flush=True)
    finally:
        server.stop()
        sink.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    best = {kind: min(results, key=lambda r: r["seconds"]) for kind, results in runs.items()}
    return {"n": count, "setup": setup, **best,
            "peak_rss": {kind: max(r["peak_rss_mb"] for r in results) for kind, results in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="*", type=int, default=[100, 500])
    parser.add_argument("--worker", choices=["baseline", "ours"])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest counts")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    if args.worker:
        result = baseline_worker() if args.worker == "baseline" else ours_worker()
        own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        result.update(peak_rss_mb=peak_rss_mb(), cpu_children_seconds=children.ru_utime + children.ru_stime,
                      cpu_seconds=own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime)
        print(json.dumps(result, ensure_ascii=False))
        return

    rows = [measure(count, args.repeat, args.keep) for count in args.counts]
    print(f"{'N':>6} {'baseline s':>11} {'ours s':>8} {'ratio':>6} {'ours/msg ms':>12} "
          f"{'CPU s base/ours':>16} {'peak RSS MB (ours)':>19} {'(baseline)':>11}")
    for row in rows:
        b, o = row["baseline"], row["ours"]
        cpu = f"{b['cpu_seconds']:.2f}/{o['cpu_seconds']:.2f}"
        print(f"{row['n']:>6} {b['seconds']:>11.2f} {o['seconds']:>8.2f} {o['seconds'] / b['seconds']:>6.2f} "
              f"{1000 * o['seconds'] / row['n']:>12.1f} {cpu:>16} {row['peak_rss']['ours']:>19.1f} "
              f"{row['peak_rss']['baseline']:>11.1f}")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"peak RSS ours, N={last['n']} / N={first['n']}: "
              f"{last['peak_rss']['ours'] / first['peak_rss']['ours']:.2f}")


if __name__ == "__main__":
    main()
