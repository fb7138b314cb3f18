"""The shortened demo through a real Prefect server and real flow runs: final statuses, the emails
each simulated unit received, the summary's headline figures."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import docx
import pytest

from models.settings import PROJECT_ROOT

pytestmark = pytest.mark.prefect

UNITS = 10
# What each role must end as, and how many emails from the office the unit's mailbox and its
# leader's mailbox hold at the end.
EXPECTED = {
    "plain": ("replied", 2, 0),        # notice, 回执
    "foxmail": ("replied", 2, 0),
    "outlook": ("replied", 2, 0),
    "personal": ("replied", 2, 0),     # the 回执 goes to the personal mailbox, the unit in copy
    "forwarded": ("replied", 2, 1),    # the 回执 goes to the leader who forwarded it, the unit in copy
    "corrected": ("replied", 3, 0),    # notice, correction request, 回执
    "bounce": ("bounced", 1, 0),       # the notice (the demo's server keeps it; the DSN came back)
    "late": ("late", 4, 0),            # notice, 温馨提示, 催报, 回执
    "never": ("escalated", 4, 1),      # notice, 温馨提示, 催报, 督办 (leader in copy)
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTICEFLOW_", "PREFECT_"))}
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "demo", "--units", str(UNITS), "--output-dir", str(root / "out"),
         "--prefect-home", str(root / "prefect")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((root / "out" / "report.json").read_text(encoding="utf-8"))
    return root, report, result.stdout


def test_every_unit_ends_in_the_state_its_story_leads_to(demo_run):
    _, report, _ = demo_run
    statuses = {u["code"]: u["status"] for u in report["status"]["units"]}
    assert len(statuses) == UNITS
    for code, role in report["roles"].items():
        assert statuses[code] == EXPECTED[role][0], (code, role)


def test_each_mailbox_received_exactly_the_expected_emails(demo_run):
    _, report, _ = demo_run
    for code, role in report["roles"].items():
        _, unit_count, leader_count = EXPECTED[role]
        assert report["received"][code] == {"unit": unit_count, "leader": leader_count}, (code, role)


def test_reminders_and_submissions_are_counted_in_status(demo_run):
    _, report, _ = demo_run
    units = {u["code"]: u for u in report["status"]["units"]}
    roles = report["roles"]
    assert all(units[c]["reminders_sent"] == 3 for c, r in roles.items() if r == "never")
    assert all(units[c]["reminders_sent"] == 2 for c, r in roles.items() if r == "late")
    assert all(units[c]["submissions"] == 2 for c, r in roles.items() if r == "corrected")
    assert all(units[c]["reminders_sent"] == 0 for c, r in roles.items() if r in ("plain", "foxmail", "outlook"))


def test_summary_headline_figures_match_the_outcome(demo_run):
    _, report, stdout = demo_run
    text = "\n".join(p.text for p in docx.Document(report["summary"]).paragraphs)
    roles = list(report["roles"].values())
    reported = sum(1 for r in roles if r not in ("bounce", "never"))
    late = roles.count("late")
    assert f"应报送单位{UNITS}个" in text.replace(" ", "")
    assert f"已报送{reported}个（其中按时报送{reported - late}个、逾期报送{late}个），未报送{UNITS - reported}个" in text.replace(" ", "")
    assert "情况通报：" in stdout and report["summary"] in stdout


def test_the_flows_ran_as_real_prefect_flow_runs(demo_run):
    root, _, _ = demo_run
    with sqlite3.connect(root / "prefect" / "prefect.db") as db:
        rows = dict(db.execute("select f.name, count(*) from flow_run r join flow f on f.id = r.flow_id "
                               "where r.state_type = 'COMPLETED' group by f.name").fetchall())
    assert rows == {"issue-notice": 1, "collect-replies": 4, "chase-overdue": 5, "publish-summary": 1}
