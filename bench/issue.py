"""Benchmark: `issue_notice` to N synthetic units against a local SMTP sink, beside a bare baseline.

    /work/venv/bin/python bench/issue.py            # N = 100, 1000
    /work/venv/bin/python bench/issue.py 100 1000 5000 --repeats 1

For each N, in one run and against the same sink (aiosmtpd in its own process, counting and
discarding): the baseline sends the very same messages, built beforehand, with yagmail over one
connection (`login()` once, `smtp.sendmail` per message); ours runs the whole flow on a fresh
database and output folder: load and store the campaign, render the notice, build every reply
form, render every email, keep the outbox, send. No Prefect server is involved (the flow's body
runs directly, as the CLI does without PREFECT_API_URL), so server start-up is excluded.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
from synthetic import campaign_with_units  # noqa: E402  (bench/ is the script's folder)


# -- the sink, in its own process so it does not compete with the sender for the GIL ----------------

def _serve_sink(port_queue, stop_event, counter) -> None:
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server, session, envelope):
            with counter.get_lock():
                counter.value += 1
            return "250 OK"

    port = _free_port()
    controller = Controller(Counting(), hostname="127.0.0.1", port=port, data_size_limit=0)
    controller.start()
    port_queue.put(port)
    stop_event.wait()
    controller.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink:
    def __enter__(self):
        context = multiprocessing.get_context("spawn")
        self._queue, self._stop, self.counter = context.Queue(), context.Event(), context.Value("i", 0)
        self._process = context.Process(target=_serve_sink, args=(self._queue, self._stop, self.counter), daemon=True)
        self._process.start()
        self.port = self._queue.get(timeout=30)
        return self

    def reset(self) -> None:
        with self.counter.get_lock():
            self.counter.value = 0

    def __exit__(self, *exc_info):
        self._stop.set()
        self._process.join(timeout=10)


# -- the campaign ---------------------------------------------------------------------------------

def make_campaign(root: Path, count: int) -> Path:
    return campaign_with_units(root, count)


def point_environment(root: Path, port: int) -> None:
    from models.db import reset_engines
    from models.settings import reload_settings

    os.environ.update(NOTICEFLOW_OUTPUT_DIR=str(root / "outputs"),
                      NOTICEFLOW_DATABASE_URL=f"sqlite:///{root / 'noticeflow.db'}",
                      NOTICEFLOW_SECRET="benchmark-secret", NOTICEFLOW_SMTP_HOST="127.0.0.1",
                      NOTICEFLOW_SMTP_PORT=str(port), NOTICEFLOW_SMTP_SECURITY="none",
                      NOTICEFLOW_SMTP_PASSWORD="")
    os.environ.pop("PREFECT_API_URL", None)
    reset_engines()
    reload_settings()


# -- the two contestants --------------------------------------------------------------------------

def run_ours(campaign_dir: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, all threads)."""
    from flows.campaign import issue_notice
    from flows.runner import run_flow

    started, cpu = time.perf_counter(), time.process_time()
    run_flow(issue_notice, str(campaign_dir))
    return time.perf_counter() - started, time.process_time() - cpu


def prebuilt_messages(campaign_dir: Path) -> list[tuple[list[str], bytes]]:
    """The messages ours sent, built again by the same code (untimed)."""
    from flows import campaign as issue
    from mail import notice_mail
    from forms.campaign import load_campaign
    from forms.store import campaign_recipients
    from mail import outbox
    from mail.outbound import Attachment, OutgoingEmail, SmtpBatch, sender_domain
    from models.db import session_scope

    definition = load_campaign(campaign_dir)
    spec = definition.spec
    units = {u.code: u for u in definition.units}
    with session_scope() as session:
        due = [issue.DueUnit(r.id, u.code, r.token, u.email) for r, u in campaign_recipients(session, definition.id)]
    forms = notice_mail.ReplyForms(definition)
    notice = Attachment(issue.campaign_output_dir(definition.id) / "notice.docx", notice_mail.notice_attachment_name(definition), shared=True)
    composer = SmtpBatch(sender_name=spec.office.short_name)
    messages = []
    for item in due:
        unit = units[item.code]
        rendered = notice_mail.render_notice_email(definition, unit, item.token)
        message_id = outbox.make_message_id("notice", spec.token_prefix, unit.code, "issue",
                                            sender_domain(spec.office.email))
        messages.append(composer.compose(OutgoingEmail(
            to=(unit.email,), subject=rendered.subject, text=rendered.text, html=rendered.html,
            message_id=message_id,
            attachments=(notice, Attachment(forms.path(unit.code, item.token), notice_mail.form_attachment_name(unit))))))
    return messages


def run_baseline(messages: list[tuple[list[str], bytes]], port: int) -> tuple[float, float]:
    import yagmail

    started, cpu = time.perf_counter(), time.process_time()
    client = yagmail.SMTP(user="lzxqwmb@wenmingban.example", host="127.0.0.1", port=port, smtp_ssl=False,
                          smtp_starttls=False, smtp_skip_login=True)
    client.login()
    for recipients, raw in messages:
        client.smtp.sendmail(client.user, recipients, raw)
    client.close()
    return time.perf_counter() - started, time.process_time() - cpu


def bench(count: int, sink: Sink, repeats: int) -> dict:
    """Best of `repeats` for each contestant, alternating (the machine is shared and noisy).
    CPU is this process's CPU time (the sink's is not counted): steadier than wall time on a busy
    machine, it shows what the sending process costs per unit. For N >= PROCESS_COMPOSING_FROM the
    forms and MIME messages are composed in the worker process (mail.composing), whose CPU time is
    not in that figure: it runs beside the sending, on the other core."""
    ours_times, baseline_times = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix=f"nf-bench-{count}-") as tmp:
            root = Path(tmp)
            campaign_dir = make_campaign(root, count)
            point_environment(root, sink.port)
            sink.reset()
            ours_times.append(run_ours(campaign_dir))
            sent_by_ours = sink.counter.value
            messages = prebuilt_messages(campaign_dir)
            sink.reset()
            baseline_times.append(run_baseline(messages, sink.port))
            sent_by_baseline = sink.counter.value
        if sent_by_ours != count or sent_by_baseline != count:
            raise SystemExit(f"N={count}: the sink counted {sent_by_ours} (ours) and {sent_by_baseline} (baseline)")
    size = sum(len(raw) for _, raw in messages) / len(messages)
    best_ours, best_baseline = min(ours_times), min(baseline_times)
    return {"n": count, "baseline": best_baseline[0], "ours": best_ours[0], "bytes": size,
            "baseline_cpu": min(t[1] for t in baseline_times), "ours_cpu": min(t[1] for t in ours_times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per size; the best of each is shown")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    with Sink() as sink:
        bench(120, sink, 1)  # warm-up: imports, template caches, the composing process (started once)
        print(f"{'N':>6} {'baseline s':>11} {'ours s':>9} {'ratio':>7} {'base ms/unit':>13} {'ours ms/unit':>13} "
              f"{'base CPU ms/u':>14} {'ours CPU ms/u':>14} {'msg KB':>7}")
        for count in args.sizes:
            r = bench(count, sink, args.repeats)
            print(f"{r['n']:>6} {r['baseline']:>11.2f} {r['ours']:>9.2f} {r['ours'] / r['baseline']:>7.2f} "
                  f"{1000 * r['baseline'] / r['n']:>13.2f} {1000 * r['ours'] / r['n']:>13.2f} "
                  f"{1000 * r['baseline_cpu'] / r['n']:>14.2f} {1000 * r['ours_cpu'] / r['n']:>14.2f} {r['bytes'] / 1024:>7.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
