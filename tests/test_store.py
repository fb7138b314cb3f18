"""Putting a campaign into the database: reloading is harmless, statuses survive, new units join."""
from __future__ import annotations

import csv
import shutil

import pytest
from sqlalchemy import event
from sqlmodel import func, select

from forms.campaign import load_campaign
from forms.store import campaign_recipients, upsert_campaign
from models import tokens
from models.db import get_engine, session_scope
from models.settings import PROJECT_ROOT
from models.states import RecipientStatus, transition
from models.tables import Event, Recipient, Unit

EXAMPLE = PROJECT_ROOT / "campaigns" / "xinqu-2023-9"
UNIT_COLUMNS = ["code", "name", "kind", "email", "leader_email", "contact"]


@pytest.fixture
def campaign_dir(tmp_path):
    folder = tmp_path / "campaigns" / "xinqu-2023-9"
    shutil.copytree(EXAMPLE, folder)
    return folder


def read_units(folder) -> list[dict]:
    with open(folder / "units.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_units(folder, rows: list[dict]) -> None:
    with open(folder / "units.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=UNIT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def load(folder):
    definition = load_campaign(folder)
    with session_scope() as session:
        upsert_campaign(session, definition)
    return definition


def snapshot(campaign_id: str) -> list[tuple]:
    with session_scope() as session:
        return [(r.id, r.token, r.status, u.id, u.code, u.email) for r, u in campaign_recipients(session, campaign_id)]


def test_every_unit_gets_a_recipient_with_its_token_in_list_order(nf_env, campaign_dir):
    definition = load(campaign_dir)
    rows = snapshot(definition.id)
    assert [code for *_, code, _ in rows] == [unit.code for unit in definition.units]
    prefix = definition.spec.token_prefix
    assert [token for _, token, *_ in rows] == [str(tokens.sign(prefix, u.code)) for u in definition.units]
    assert {status for _, _, status, *_ in rows} == {RecipientStatus.pending}


def test_loading_twice_is_harmless(nf_env, campaign_dir):
    definition = load(campaign_dir)
    first = snapshot(definition.id)
    load(campaign_dir)
    assert snapshot(definition.id) == first
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(Unit)).one() == len(definition.units)
        assert session.exec(select(func.count()).select_from(Recipient)).one() == len(definition.units)


def test_a_reload_keeps_statuses_and_history(nf_env, campaign_dir):
    definition = load(campaign_dir)
    with session_scope() as session:
        recipient, _ = campaign_recipients(session, definition.id)[2]
        transition(session, recipient, RecipientStatus.notified, kind="notice_sent", reason="250 OK")
        changed_id = recipient.id
    load(campaign_dir)
    with session_scope() as session:
        statuses = {r.id: r.status for r, _ in campaign_recipients(session, definition.id)}
        assert statuses.pop(changed_id) == RecipientStatus.notified
        assert set(statuses.values()) == {RecipientStatus.pending}
        assert [e.kind for e in session.exec(select(Event))] == ["notice_sent"]


def test_a_unit_added_to_the_list_gets_a_recipient_and_edits_are_taken(nf_env, campaign_dir):
    definition = load(campaign_dir)
    before = {row[4]: row for row in snapshot(definition.id)}
    rows = read_units(campaign_dir)
    rows[0]["email"] = "new.address@units.xinqu.example"
    rows.append({"code": "XZ99", "name": "新设街道办事处", "kind": "department", "email": "xz99@units.xinqu.example",
                 "leader_email": "leader.xz99@units.xinqu.example", "contact": ""})
    write_units(campaign_dir, rows)
    load(campaign_dir)
    after = {row[4]: row for row in snapshot(definition.id)}
    assert set(after) == set(before) | {"XZ99"}
    added = after.pop("XZ99")
    assert added[1] == str(tokens.sign(definition.spec.token_prefix, "XZ99"))
    assert added[2] == RecipientStatus.pending
    first_code = rows[0]["code"]
    assert after[first_code][5] == "new.address@units.xinqu.example"
    # Same recipients, same tokens, same units: only the edited address differs.
    assert {code: row[:5] for code, row in after.items()} == {code: row[:5] for code, row in before.items()}


def test_loading_many_units_takes_a_fixed_number_of_statements(nf_env, campaign_dir):
    """The statements sent to the database do not grow with the number of units (one flush for all
    units, one for all recipients), so a campaign of thousands loads in one go."""
    rows = [{"code": f"B{n:04d}", "name": f"测试单位{n:04d}", "kind": "park", "email": f"b{n:04d}@units.example",
             "leader_email": f"leader.b{n:04d}@units.example", "contact": ""} for n in range(1, 301)]
    write_units(campaign_dir, rows)
    definition = load_campaign(campaign_dir)
    engine = get_engine()
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)
    event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope() as session:
            upsert_campaign(session, definition)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) <= 6, inserts
    assert len(snapshot(definition.id)) == 300
