"""The application's database layer on a real PostgreSQL: a campaign issued, replies collected,
the ladder run, a unit exempted and the summary published — the same code as on SQLite.

Runs where NOTICEFLOW_TEST_POSTGRES_URL names a reachable database (scripts/test starts the
machine's PostgreSQL and sets it)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from sqlmodel import SQLModel, select

from demo import units as sim
from flows.campaign import issue_notice
from flows.collect import collect_replies
from flows.escalate import chase_overdue
from flows.runner import run_flow
from flows.summarize import publish_summary
from forms.campaign import load_campaign
from models import db
from models.actions import exempt_unit
from models.clock import now
from models.settings import PROJECT_ROOT, reload_settings
from models.tables import OutboundMessage

pytestmark = pytest.mark.postgres
POSTGRES_URL = os.environ.get("NOTICEFLOW_TEST_POSTGRES_URL", "")
EXAMPLE = PROJECT_ROOT / "campaigns" / "xinqu-2023-9"


@pytest.fixture
def postgres(nf_env, monkeypatch):
    if not POSTGRES_URL:
        pytest.skip("NOTICEFLOW_TEST_POSTGRES_URL is not set: no PostgreSQL reachable here (scripts/test starts one as root)")
    monkeypatch.setenv("NOTICEFLOW_DATABASE_URL", POSTGRES_URL)
    db.reset_engines()
    reload_settings()
    engine = db.get_engine()
    SQLModel.metadata.drop_all(engine)
    SQLModel.metadata.create_all(engine)
    yield engine
    db.reset_engines()


def _at(monkeypatch, when: str) -> None:
    monkeypatch.setenv("NOTICEFLOW_NOW", when)


def _status() -> dict:
    result = subprocess.run([sys.executable, "-m", "flows.cli", "status", "xinqu-2023-9", "--json"],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    return {u["code"]: u for u in json.loads(result.stdout)["units"]}


def test_a_whole_campaign_on_postgresql(postgres, devmail, tmp_path, monkeypatch):
    campaign_dir = tmp_path / "xinqu-2023-9"
    shutil.copytree(EXAMPLE, campaign_dir)
    lines = (campaign_dir / "units.csv").read_text(encoding="utf-8").splitlines()
    (campaign_dir / "units.csv").write_text("\n".join(lines[:6]) + "\n", encoding="utf-8")
    definition = load_campaign(campaign_dir)
    office = definition.spec.office.email
    first, second, third, fourth, fifth = definition.units

    _at(monkeypatch, "2023-09-20T09:00:00+08:00")
    assert "本次发出 5 封" in run_flow(issue_notice, str(campaign_dir))
    assert "本次发出 0 封" in run_flow(issue_notice, str(campaign_dir))  # a rerun sends nothing

    _at(monkeypatch, "2023-09-28T10:00:00+08:00")
    for unit, broken in ((first, False), (second, True)):
        notice = sim.received_notice(devmail.mailbox_messages(unit.email), office)
        form = sim.filled_form(definition, notice, unit, broken=broken)
        devmail.deliver(office, sim.plain_reply(unit, office, notice, form, now()))
    run_flow(collect_replies, definition.id)

    with db.session_scope() as session:
        exempt_unit(session, definition.id, fourth.code, "单位已撤并", actor="test")

    _at(monkeypatch, "2023-10-10T09:05:00+08:00")
    run_flow(chase_overdue, definition.id)
    _at(monkeypatch, "2023-10-10T18:05:00+08:00")
    run_flow(chase_overdue, definition.id)

    status = _status()
    assert status[first.code]["status"] == "replied" and status[first.code]["submissions"] == 1
    assert status[second.code]["status"] == "overdue" and status[second.code]["errors"]
    assert status[third.code]["status"] == "overdue" and status[third.code]["reminders_sent"] == 1
    assert status[fourth.code]["status"] == "exempt" and status[fourth.code]["reminders_sent"] == 0
    assert status[second.code]["reminders_sent"] == 1  # the correction variant of 催报

    summary = run_flow(publish_summary, definition.id, "2023-10-12")
    assert summary.strip().endswith(".docx")
    with db.session_scope() as session:
        keys = [row.dedupe_key for row in session.exec(select(OutboundMessage))]
    assert len(keys) == len(set(keys))
    assert db.get_engine().dialect.name == "postgresql"
