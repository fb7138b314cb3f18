"""Two chases at the same instant, as threads and as processes: every message once, every
transition once (the outbox key, the claim, and the campaign's sending lock around the decisions)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from chase_helpers import CID, ChaseWorld, addresses, trimmed_seed

WHEN = "2023-10-12T17:00:00"  # after the deadline: overdue, 督办 with cc, and the day's digest


@pytest.fixture
def world(nf_env, devmail, tmp_path, monkeypatch) -> ChaseWorld:
    world = ChaseWorld(monkeypatch, devmail, trimmed_seed(tmp_path, 12))
    world.notify()
    return world


def assert_everything_once(world: ChaseWorld) -> None:
    for code in world.codes:
        [supervise] = world.unit_inbox(code)
        assert supervise["Subject"].startswith("督办：")
        assert addresses(supervise, "Cc") == [world.units[code].leader_email]
        assert len(world.leader_inbox(code)) == 1
    assert len(world.inbox("lzxqwmb@wenmingban.example")) == 1  # one digest
    rows = world.outbox()
    assert Counter((row.step, row.state) for row in rows) == {
        ("gentle", "skipped"): len(world.codes), ("urge", "skipped"): len(world.codes),
        ("supervise", "sent"): len(world.codes)}
    assert all(row.attempts == 1 for row in rows if row.state == "sent")
    for kind in ("chase.overdue", "chase.escalated", "reminder.sent"):
        per_unit = Counter(event.recipient_id for event in world.events(kind))
        assert len(per_unit) == len(world.codes) and set(per_unit.values()) == {1}, kind
    assert {unit["reminders_sent"] for unit in world.status().values()} == {1}
    assert set(world.statuses().values()) == {"escalated"}


def test_two_threads_at_the_same_instant(world):
    from flows.escalate import chase_overdue
    from flows.runner import run_flow

    world.at(WHEN)
    start = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            start.wait()
            results.append(run_flow(chase_overdue, CID, retry_delays=[]))
        except BaseException as error:  # reported below: a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [] and len(results) == 2
    assert sorted("本次发出提醒 12 封" in r for r in results) == [False, True]
    assert_everything_once(world)


RUN_WHEN_TOLD = """
import pathlib, sys, time
from flows.escalate import chase_overdue
from flows.runner import run_flow
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
print(run_flow(chase_overdue, sys.argv[3], retry_delays=[]))
"""


def test_two_processes_at_the_same_instant(world, tmp_path):
    world.at(WHEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", RUN_WHEN_TOLD, str(tmp_path / f"ready-{n}"), str(go), CID],
                                  env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in range(2)]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{n}").exists() for n in range(2)):
            assert time.monotonic() < deadline, "the chase processes did not start"
            assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
            time.sleep(0.05)
        go.touch()
        outputs = [p.communicate(timeout=120) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert sorted("本次发出提醒 12 封" in out for out, _ in outputs) == [False, True]
    assert_everything_once(world)
