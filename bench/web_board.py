"""Benchmark: how long the staff page takes to answer for a campaign of N units (default 1,000).

    /work/venv/bin/python bench/web_board.py            # N = 1000
    /work/venv/bin/python bench/web_board.py 1000 5000

For each N, on a fresh SQLite database and output folder: the seed campaign with N synthetic units
(four kinds), every unit notified; then, written straight into the tables as the flows would leave
them, about 60 % replied on time with a valid form (every figure filled), 5 % late, 10 % with a
rejected form, and the rest overdue (1-2 reminders each), escalated, bounced, waiting for review or
exempt, with a notice and a history of 3-5 events per unit. The staff page runs under uvicorn in
this process; an HTTP client logs in and times, end to end (request to last byte):

- the board, unfiltered (every unit on the page), sorted by code, and filtered + sorted differently;
- a unit's page (one with a valid submission).

Each is fetched WARMUP times first, then ROUNDS times; the median, 95th percentile and maximum are
printed, with the page size and the number of SQL statements one board request runs (a fixed number,
whatever N).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from synthetic import campaign_with_units  # noqa: E402  (bench/ is the script's folder)

WARMUP = 3
ROUNDS = 20
NOW = "2023-10-12T10:00:00"
STAFF, PASSWORD = "bench", "bench-password"


def write_campaign(root: Path, units: int) -> Path:
    return campaign_with_units(root, units, prefix="U", name="测试单位{n:05d}管理委员会")


def values(schema, seed: int) -> dict:
    out = {}
    for index, (key, spec) in enumerate(schema.iter_cells()):
        kind = spec.type.value
        out[key] = (seed + index if kind == "integer" else seed + index + 0.5 if kind == "number"
                    else "0931-8259130" if kind == "phone" else f"单位{seed}开展了志愿服务活动，群众反响良好。")
    return out


def populate(campaign_dir: Path) -> None:
    from forms.campaign import load_campaign
    from forms.store import upsert_campaign
    from models.clock import now
    from models.db import session_scope
    from models.staff import add_staff
    from models.states import RecipientStatus as S
    from models.tables import Event, OutboundMessage, OutboundState, Recipient, Submission
    from sqlmodel import select

    definition = load_campaign(campaign_dir)
    with session_scope() as session:
        upsert_campaign(session, definition)
        add_staff(session, STAFF, PASSWORD)
    at = now()
    with session_scope() as session:
        recipients = list(session.exec(select(Recipient).order_by(Recipient.id)))
        rows = []
        for n, recipient in enumerate(recipients):
            share = n % 100
            status = (S.replied if share < 60 else S.late if share < 65 else S.replied if share < 75
                      else S.overdue if share < 88 else S.escalated if share < 92 else S.bounced if share < 95
                      else S.needs_review if share < 98 else S.exempt)
            recipient.status, recipient.notified_at = status, at
            rows.append(OutboundMessage(dedupe_key=f"{recipient.campaign_id}:{n}:notice:issue",
                                        campaign_id=recipient.campaign_id, recipient_id=recipient.id, kind="notice",
                                        step="issue", message_id=f"<notice.{n}@bench.example>", to_addrs=["x@y.example"],
                                        state=OutboundState.failed if status == S.bounced else OutboundState.sent))
            rows += [Event(campaign_id=recipient.campaign_id, recipient_id=recipient.id, kind="notice.sent",
                           from_status="pending", to_status="notified", at=at) for _ in range(3 + n % 3)]
            if status in (S.replied, S.late):
                invalid = 65 <= share < 75
                recipient.last_reply_at = at
                rows.append(Submission(recipient_id=recipient.id, version=1, values=values(definition.form, n),
                                       errors=[{"cell": "B6", "label": "活动场次", "message": "应为整数"}] if invalid else [],
                                       valid=not invalid, late=status == S.late, received_at=at))
            if status in (S.overdue, S.escalated):
                for step in ("gentle", "urge")[: 1 + n % 2]:
                    rows.append(OutboundMessage(dedupe_key=f"{recipient.campaign_id}:{n}:reminder:{step}",
                                                campaign_id=recipient.campaign_id, recipient_id=recipient.id,
                                                kind="reminder", step=step, message_id=f"<r.{n}.{step}@bench.example>",
                                                to_addrs=["x@y.example"], state=OutboundState.sent))
            if status in (S.bounced, S.needs_review, S.exempt):
                recipient.status_reason = "原因说明：请核对该单位的邮箱地址或材料。"
        session.add_all(recipients + rows)


class LiveServer:
    def __init__(self, app):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc_info):
        self.server.should_exit = True
        self.thread.join(10)


def timed(client, url: str) -> tuple[list[float], int]:
    for _ in range(WARMUP):
        assert client.get(url).status_code == 200
    times, size = [], 0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, (url, response.status_code)
        size = len(response.content)
    return times, size


def report(label: str, times: list[float], size: int) -> None:
    ordered = sorted(times)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    print(f"  {label:<44} median {statistics.median(times) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
          f"max {max(times) * 1000:7.1f} ms   {size / 1024:7.0f} KB")


def count_statements(url: str, client) -> int:
    from sqlalchemy import event

    from models.db import get_engine

    counter = {"n": 0}

    def count(*_args, **_kwargs):
        counter["n"] += 1

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return counter["n"]


def run(units: int) -> None:
    import httpx

    root = Path(tempfile.mkdtemp(prefix="nf-web-bench-"))
    os.environ.update(NOTICEFLOW_OUTPUT_DIR=str(root / "outputs"), NOTICEFLOW_DATABASE_URL=f"sqlite:///{root / 'nf.db'}",
                      NOTICEFLOW_SECRET="bench-secret", NOTICEFLOW_NOW=NOW)
    from models import db
    from models.settings import reload_settings

    db.reset_engines()
    reload_settings()
    started = time.perf_counter()
    populate(write_campaign(root, units))
    print(f"N = {units}: data written in {time.perf_counter() - started:.1f} s")
    from web.app import create_app

    with LiveServer(create_app()) as base, httpx.Client(base_url=base) as client:
        login = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        assert client.post("/login", data={"name": STAFF, "password": PASSWORD, "csrf_token": token}).status_code == 303
        board = "/campaigns/xinqu-2023-9"
        page = client.get(board).text
        assert page.count('data-status="') == units, "the board must list every unit"
        print(f"  SQL statements per board request: {count_statements(board, client)}")
        report("board, all units, by code", *timed(client, board))
        report("board, status=overdue, by reminders desc", *timed(client, f"{board}?status=overdue&sort=reminders&order=desc"))
        report("board, kind=department, by name", *timed(client, f"{board}?kind=department&sort=name"))
        report("unit page (valid submission, 30 figures)", *timed(client, f"{board}/units/U00001"))
    db.reset_engines()
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("units", nargs="*", type=int, default=[1000])
    for units in parser.parse_args().units:
        run(units)


if __name__ == "__main__":
    main()
