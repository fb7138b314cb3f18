"""`issue_notice` end to end: the dev mail server, a faulty SMTP server, and a sender killed mid-batch.

The flow's body runs directly (run_flow with no PREFECT_API_URL), in process or as
`python -m flows.cli issue` in a subprocess; no Prefect server is involved here.
"""
from __future__ import annotations

import email
import email.policy
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from email.header import decode_header, make_header
from pathlib import Path

import docx
import openpyxl
import pytest
from imap_tools import MailBoxUnencrypted
from sqlmodel import select
from typer.testing import CliRunner

from flows.campaign import NOTICE_KIND, NOTICE_STEP, issue_notice
from flows.cli import app
from flows.runner import run_flow
from forms.campaign import load_campaign
from mail.notice_mail import ReplyForms
from mail.staff_intake import correct_unit_email
from mail.outbox import EVENT_RESEND, FAULT_EXIT_ENV, PROCESS_COMPOSING_FROM
from models import tokens
from models.db import reset_engines, session_scope
from models.settings import DEFAULT_OFFICE_LOGIN, PROJECT_ROOT, reload_settings
from models.states import RecipientStatus
from models.tables import Event, OutboundMessage, OutboundState, Recipient
from smtp_sink import SinkHandler, SmtpSink
import synthetic

EXAMPLE = PROJECT_ROOT / "campaigns" / "xinqu-2023-9"
CAMPAIGN_ID = "xinqu-2023-9"
FAST_RETRIES = [0.05, 0.1]
NOTICE_NAME = "新文明办发〔2023〕9号 关于组织开展“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动的通知.docx"


@pytest.fixture
def campaign_dir(tmp_path) -> Path:
    target = tmp_path / "campaign" / CAMPAIGN_ID
    shutil.copytree(EXAMPLE, target)
    return target


def write_units(campaign_dir: Path, count: int) -> list[str]:
    return synthetic.write_units(campaign_dir, count, name="测试单位{n:03d}（合成）")


@pytest.fixture
def sink_env(nf_env):
    """Points NOTICEFLOW_SMTP_* at a fresh recording sink (no AUTH offered, no TLS)."""
    def start(handler: SinkHandler | None = None) -> SmtpSink:
        sink = SmtpSink(handler).__enter__()
        started.append(sink)
        patch.setenv("NOTICEFLOW_SMTP_HOST", "127.0.0.1")
        patch.setenv("NOTICEFLOW_SMTP_PORT", str(sink.port))
        patch.setenv("NOTICEFLOW_SMTP_SECURITY", "none")
        reload_settings()
        return sink

    started: list[SmtpSink] = []
    with pytest.MonkeyPatch.context() as patch:
        yield start
    for sink in started:
        sink.__exit__(None, None, None)
    reload_settings()


def status_json(campaign_id: str = CAMPAIGN_ID) -> dict:
    result = CliRunner().invoke(app, ["status", campaign_id, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def attachment_names(raw: bytes) -> list[tuple[str, str]]:
    """(Content-Disposition filename, Content-Type name) of each attachment, decoded by the stdlib."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return [(part.get_filename(), str(make_header(decode_header(part.get_param("name", header="content-type")))))
            for part in parsed.iter_attachments()]


def attachments(raw: bytes) -> dict[str, bytes]:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return {part.get_filename(): part.get_content() for part in parsed.iter_attachments()}


def docx_text(data: bytes) -> str:
    document = docx.Document(io.BytesIO(data))
    cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in document.paragraphs] + cells)


def workbook_text(data: bytes) -> str:
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    return "\n".join(str(cell.value) for sheet in workbook.worksheets for row in sheet.iter_rows()
                     for cell in row if cell.value is not None)


# -- the dev mail server --------------------------------------------------------------------------

def test_every_unit_gets_exactly_its_own_notice(nf_env, devmail, campaign_dir):
    summary = run_flow(issue_notice, str(campaign_dir))
    assert "本次发出 44 封" in summary and "已送达 44" in summary

    definition = load_campaign(campaign_dir)
    title = definition.spec.notice.title
    for unit in definition.units:
        token = str(tokens.sign(definition.spec.token_prefix, unit.code))
        received = devmail.mailbox_messages(unit.email)
        assert len(received) == 1, unit.code
        parsed = email.message_from_bytes(received[0], policy=email.policy.default)
        assert parsed["Subject"] == f"{title}【{token}】"
        form_name = f"回执表-{unit.name}.xlsx"
        assert attachment_names(received[0]) == [(NOTICE_NAME, NOTICE_NAME), (form_name, form_name)]
        files = attachments(received[0])
        form_text = workbook_text(files[form_name])
        assert token in form_text and unit.name in form_text
        body = parsed.get_body(("plain",)).get_content()
        assert unit.name in body and token in body and "2023年10月10日18时前" in body
        assert parsed["Message-ID"] == f"<notice.XQ9.{unit.code}.issue@wenmingban.example>"
    notice_path = nf_env.campaign_dir(CAMPAIGN_ID) / "notice.docx"
    assert files[NOTICE_NAME] == notice_path.read_bytes()
    notice_text = "".join(docx_text(files[NOTICE_NAME]).split())
    assert title in notice_text and definition.spec.notice.doc_number in notice_text
    assert devmail.mailbox_messages(DEFAULT_OFFICE_LOGIN) == []

    # What a unit sees when it logs in to its own mailbox.
    unit = definition.units[0]
    with MailBoxUnencrypted("127.0.0.1", devmail.imap_port).login(unit.email, devmail.other_password) as box:
        fetched = list(box.fetch(mark_seen=False))
    assert len(fetched) == 1
    assert [a.filename for a in fetched[0].attachments] == [NOTICE_NAME, f"回执表-{unit.name}.xlsx"]

    report = status_json()
    assert {u["code"]: (u["status"], u["reminders_sent"]) for u in report["units"]} == \
        {u.code: ("notified", 0) for u in definition.units}

    # Again, with the notice text edited meanwhile: nothing is sent and the units' document stays.
    before = hashlib.sha256(notice_path.read_bytes()).hexdigest()
    (campaign_dir / "notice.txt").write_text("改过的正文。\n", encoding="utf-8")
    summary = run_flow(issue_notice, str(campaign_dir))
    assert "本次发出 0 封" in summary
    assert all(len(devmail.mailbox_messages(u.email)) == 1 for u in definition.units)
    assert hashlib.sha256(notice_path.read_bytes()).hexdigest() == before


# -- a faulty server ------------------------------------------------------------------------------

def test_451_is_retried_550_bounces_and_the_batch_goes_on(sink_env, campaign_dir):
    addresses = write_units(campaign_dir, 12)
    greylisted = {addresses[1], addresses[4], addresses[9]}
    unknown = addresses[6]
    sink = sink_env(SinkHandler(refuse_once={a: "451 4.7.1 Greylisted, please try again later" for a in greylisted},
                                refuse_always={unknown: "550 5.1.1 <t007@units.example.test>: Recipient address rejected: User unknown"}))

    summary = run_flow(issue_notice, str(campaign_dir), retry_delays=FAST_RETRIES)

    assert "退信 1" in summary and "已送达 11" in summary
    assert sink.handler.count_by_recipient() == Counter({a: 1 for a in addresses if a != unknown})
    assert sink.handler.connections == 1
    units = {u["email"]: u for u in status_json()["units"]}
    assert units[unknown]["status"] == "bounced"
    assert any("550 5.1.1" in e and "User unknown" in e for e in units[unknown]["errors"])
    assert all(units[a]["status"] == "notified" and units[a]["errors"] == [] for a in addresses if a != unknown)
    with session_scope() as session:
        attempts = {r.to_addrs[0]: r.attempts for r in session.exec(select(OutboundMessage))}
    assert {a for a, n in attempts.items() if n == 2} == greylisted

    # Running again changes nothing; correcting the address sends to that unit only.
    run_flow(issue_notice, str(campaign_dir), retry_delays=FAST_RETRIES)
    assert sum(sink.handler.count_by_recipient().values()) == 11
    units_csv = campaign_dir / "units.csv"
    units_csv.write_text(units_csv.read_text("utf-8").replace(unknown, "t007.new@units.example.test"), "utf-8")
    summary = run_flow(issue_notice, str(campaign_dir), retry_delays=FAST_RETRIES)
    assert "本次发出 1 封" in summary and "退信 0" in summary
    assert sink.handler.count_by_recipient()["t007.new@units.example.test"] == 1
    assert sum(sink.handler.count_by_recipient().values()) == 12
    assert {u["status"] for u in status_json()["units"]} == {"notified"}


def test_a_reload_keeps_the_address_staff_corrected_until_units_csv_changes(sink_env, campaign_dir):
    addresses = write_units(campaign_dir, 3)
    unknown, corrected = addresses[1], "t002.office@units.example.test"
    sink = sink_env(SinkHandler(refuse_always={unknown: "550 5.1.1 User unknown"}))
    run_flow(issue_notice, str(campaign_dir), retry_delays=FAST_RETRIES)
    with session_scope() as session:
        correct_unit_email(session, CAMPAIGN_ID, "T002", corrected, actor="staff")

    # units.csv still lists the refused address: the next run keeps the correction and sends there.
    summary = run_flow(issue_notice, str(campaign_dir), retry_delays=FAST_RETRIES)
    assert "本次发出 1 封" in summary and "退信 0" in summary
    assert sink.handler.count_by_recipient() == Counter({addresses[0]: 1, addresses[2]: 1, corrected: 1})
    assert {u["code"]: u["email"] for u in status_json()["units"]}["T002"] == corrected

    # Once units.csv itself is changed, the list wins again (and a delivered notice is not resent).
    units_csv = campaign_dir / "units.csv"
    units_csv.write_text(units_csv.read_text("utf-8").replace(unknown, "t002.third@units.example.test"), "utf-8")
    assert "本次发出 0 封" in run_flow(issue_notice, str(campaign_dir), retry_delays=FAST_RETRIES)
    assert {u["code"]: u["email"] for u in status_json()["units"]}["T002"] == "t002.third@units.example.test"


def test_a_dropped_connection_is_resumed_without_duplicates(sink_env, campaign_dir):
    addresses = write_units(campaign_dir, 10)
    sink = sink_env(SinkHandler(drop_at_data={4}))
    run_flow(issue_notice, str(campaign_dir), retry_delays=FAST_RETRIES)
    assert sink.handler.count_by_recipient() == Counter({a: 1 for a in addresses})
    assert sink.handler.connections == 2
    assert {u["status"] for u in status_json()["units"]} == {"notified"}


def test_a_server_that_stays_away_leaves_units_pending(nf_env, campaign_dir, monkeypatch):
    from smtp_sink import free_port

    write_units(campaign_dir, 3)
    monkeypatch.setenv("NOTICEFLOW_SMTP_PORT", str(free_port()))  # nobody listens there
    reload_settings()
    summary = run_flow(issue_notice, str(campaign_dir), retry_delays=[0.01])
    assert "待发送 3" in summary and "请稍后再次执行 noticeflow issue" in summary
    assert {u["status"] for u in status_json()["units"]} == {"pending"}


def test_a_status_lost_in_a_crash_is_recorded_on_the_next_run(sink_env, campaign_dir):
    addresses = write_units(campaign_dir, 4)
    sink = sink_env()
    run_flow(issue_notice, str(campaign_dir), retry_delays=FAST_RETRIES)
    with session_scope() as session:  # as if the process died after sending, before the status
        recipient = session.exec(select(Recipient).order_by(Recipient.id)).first()
        recipient.status = RecipientStatus.pending
        session.add(recipient)
    summary = run_flow(issue_notice, str(campaign_dir), retry_delays=FAST_RETRIES)
    assert "本次发出 0 封" in summary
    assert sum(sink.handler.count_by_recipient().values()) == len(addresses)
    assert {u["status"] for u in status_json()["units"]} == {"notified"}
    with session_scope() as session:
        late = session.exec(select(Event).where(Event.recipient_id == recipient.id, Event.kind == "notice.sent")).all()
    assert [e.detail.get("note") for e in late] == [None, "recorded after an interrupted run"]


def test_forms_are_built_once_per_token(nf_env, campaign_dir):
    definition = load_campaign(campaign_dir)
    forms = ReplyForms(definition)
    first = {code: forms.path(code, f"XQ9-{code}-AAAAAA") for code in ("YQ01", "YQ02")}
    forms.save()
    stamps = {code: path.stat().st_mtime_ns for code, path in first.items()}
    time.sleep(0.01)
    forms = ReplyForms(definition)  # a later run
    assert forms.path("YQ01", "XQ9-YQ01-AAAAAA").stat().st_mtime_ns == stamps["YQ01"]
    rebuilt = forms.path("YQ02", "XQ9-YQ02-CCCCCC")
    assert rebuilt.stat().st_mtime_ns != stamps["YQ02"]
    assert "XQ9-YQ02-CCCCCC" in workbook_text(rebuilt.read_bytes())
    rebuilt.unlink()
    assert forms.path("YQ02", "XQ9-YQ02-CCCCCC").exists()  # a form deleted by hand comes back
    forms.save()

    # A new deadline changes what the form says: every form is made again.
    text = (campaign_dir / "campaign.yaml").read_text("utf-8")
    (campaign_dir / "campaign.yaml").write_text(text.replace("2023-10-10T18:00:00", "2023-10-12T18:00:00"), "utf-8")
    stamp = forms.path("YQ01", "XQ9-YQ01-AAAAAA").stat().st_mtime_ns
    time.sleep(0.01)
    assert ReplyForms(load_campaign(campaign_dir)).path("YQ01", "XQ9-YQ01-AAAAAA").stat().st_mtime_ns != stamp


# -- a sender that dies -------------------------------------------------------------------------------

def cli_env(tmp_path: Path, sink: SmtpSink, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTICEFLOW_", "PREFECT_"))}
    env.update(NOTICEFLOW_OUTPUT_DIR=os.environ["NOTICEFLOW_OUTPUT_DIR"],
               NOTICEFLOW_DATABASE_URL=os.environ["NOTICEFLOW_DATABASE_URL"],
               NOTICEFLOW_SECRET=os.environ["NOTICEFLOW_SECRET"],
               NOTICEFLOW_SMTP_HOST="127.0.0.1", NOTICEFLOW_SMTP_PORT=str(sink.port),
               NOTICEFLOW_SMTP_SECURITY="none", PREFECT_HOME=str(tmp_path / "prefect-home"), **extra)
    return env


def issue_command(campaign_dir: Path) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "issue", str(campaign_dir)]


def test_crash_between_acceptance_and_record_resends_that_one_with_the_same_message_id(
        sink_env, campaign_dir, tmp_path):
    addresses = write_units(campaign_dir, 12)
    sink = sink_env()
    crashed = subprocess.run(issue_command(campaign_dir), cwd=tmp_path, capture_output=True, text=True,
                             env=cli_env(tmp_path, sink, **{FAULT_EXIT_ENV: "5"}), timeout=120)
    assert crashed.returncode == 86, crashed.stderr
    assert sum(sink.handler.count_by_recipient().values()) == 5
    reset_engines()
    with session_scope() as session:
        states = Counter(r.state for r in session.exec(select(OutboundMessage)))
    assert states == {OutboundState.sent: 4, OutboundState.sending: 1, OutboundState.pending: 7}

    finished = subprocess.run(issue_command(campaign_dir), cwd=tmp_path, capture_output=True, text=True,
                              env=cli_env(tmp_path, sink), timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "本次发出 8 封" in finished.stdout and "已送达 12" in finished.stdout
    counts = sink.handler.count_by_recipient()
    ids = sink.handler.message_ids_by_recipient()
    assert counts == Counter({a: 2 if a == addresses[4] else 1 for a in addresses})
    assert all(len(ids[a]) == 1 for a in addresses)  # the second copy is the same message
    reset_engines()
    with session_scope() as session:
        events = session.exec(select(Event).where(Event.kind == EVENT_RESEND)).all()
    assert [e.detail["message_id"] for e in events] == [next(iter(ids[addresses[4]]))]
    assert {u["status"] for u in status_json()["units"]} == {"notified"}


def test_sigkill_mid_batch_then_rerun_sends_each_unit_once(sink_env, campaign_dir, tmp_path):
    # Enough units for the messages to be composed in the worker process (mail.composing).
    count = PROCESS_COMPOSING_FROM + 20
    addresses = write_units(campaign_dir, count)
    sink = sink_env(SinkHandler(data_delay=0.03))  # ~4 s of sending: time to kill in the middle
    process = subprocess.Popen(issue_command(campaign_dir), cwd=tmp_path, env=cli_env(tmp_path, sink),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sink.wait_for(20, timeout=90)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    before_rerun = sum(sink.handler.count_by_recipient().values())
    assert 20 <= before_rerun < count

    finished = subprocess.run(issue_command(campaign_dir), cwd=tmp_path, capture_output=True, text=True,
                              env=cli_env(tmp_path, sink), timeout=120)
    assert finished.returncode == 0, finished.stderr
    counts = sink.handler.count_by_recipient()
    ids = sink.handler.message_ids_by_recipient()
    # Exact for distinct messages; a raw copy more is possible only for the one message that was
    # on the wire when the process died (resent with the same Message-ID, see mail.outbox).
    assert {a: len(ids.get(a, ())) for a in addresses} == {a: 1 for a in addresses}
    assert set(counts) == set(addresses)
    assert sum(counts.values()) <= len(addresses) + 1
    assert {u["status"] for u in status_json()["units"]} == {"notified"}
    with session_scope() as session:
        rows = session.exec(select(OutboundMessage).where(OutboundMessage.kind == NOTICE_KIND,
                                                          OutboundMessage.step == NOTICE_STEP)).all()
    assert len(rows) == count and {r.state for r in rows} == {OutboundState.sent}
