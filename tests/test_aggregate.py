"""Aggregating the latest valid submissions of a campaign by the form schema's rules."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from forms.aggregate import UnitOutcome, aggregate, latest_valid
from forms.campaign import CampaignDefinition, UnitRow, load_campaign
from forms.schema import FieldSpec, FormSchema, Grid, GridRow
from models.clock import CHINA_TZ

CAMPAIGN_DIR = Path(__file__).resolve().parents[1] / "campaigns" / "xinqu-2023-9"
RECEIVED = datetime(2023, 10, 9, 15, 30, tzinfo=CHINA_TZ)
# Hours of 关爱自然 of the four reporting units: as floats they add up to 1.2000000000000002.
NATURE_HOURS = (0.1, 0.2, 0.3, 0.6)


@pytest.fixture(scope="module")
def example() -> CampaignDefinition:
    return load_campaign(CAMPAIGN_DIR)


def values_for(definition: CampaignDefinition, seed: int, **overrides) -> dict:
    """A valid submission as stored (JSON: hours as float), different for each seed."""
    values = {}
    for key, spec in definition.form.iter_cells():
        if spec.type.value == "integer":
            values[key] = seed
        elif spec.type.value == "number":
            values[key] = seed / 10        # 0.1, 0.2, ...: the float sums that go wrong
        else:
            values[key] = f"单位{seed}的{spec.label}"
    values.update(overrides)
    return values


def outcome(unit: UnitRow, status: str, values=None, late=False, rejected=False) -> UnitOutcome:
    return UnitOutcome(code=unit.code, name=unit.name, kind=unit.kind, status=status, values=values,
                       received_at=RECEIVED if values is not None else None, late=late, rejected=rejected)


@pytest.fixture(scope="module")
def scenario(example):
    units = example.units
    hours = dict(zip((1, 2, 3, 4), NATURE_HOURS))
    outcomes = [
        outcome(units[0], "replied", values_for(example, 1, **{"ziran.hours": hours[1]})),
        outcome(units[1], "replied", values_for(example, 2, stories="", **{"ziran.hours": hours[2]})),
        outcome(units[2], "late", values_for(example, 3, **{"ziran.hours": hours[3]}), late=True),
        outcome(units[3], "bounced"),
        outcome(units[4], "exempt", values_for(example, 100)),      # excused: not counted, not added
        outcome(units[5], "needs_review"),
        outcome(units[6], "overdue", rejected=True),                 # sent a form, nothing valid yet
        outcome(units[10], "replied", values_for(example, 4, **{"ziran.hours": hours[4]})),
    ] + [outcome(unit, "overdue") for unit in units[11:]]
    # units[7..9] are missing on purpose: they count as not reported.
    shuffled = outcomes[:]
    random.Random(5).shuffle(shuffled)
    return outcomes, shuffled


def test_counts(example, scenario):
    _, outcomes = scenario
    counts = aggregate(example, outcomes).counts
    total = len(example.units)
    assert counts.units == total
    assert counts.exempt == 1 and counts.should_report == total - 1
    assert (counts.reported, counts.on_time, counts.late) == (4, 3, 1)
    assert counts.not_reported == total - 1 - 4
    assert counts.bounced == 1 and counts.needs_review == 1 and counts.awaiting_correction == 1


def test_sums_are_exact_per_cell_row_and_column(example, scenario):
    _, outcomes = scenario
    result = aggregate(example, outcomes)
    reported_seeds = [1, 2, 3, 4]
    assert result.totals["ziran.sessions"] == sum(reported_seeds)
    assert isinstance(result.totals["ziran.sessions"], int)
    float_sum = 0.0
    for hours in NATURE_HOURS:
        float_sum += hours
    assert repr(float_sum) != "1.2"   # the trap
    assert isinstance(result.totals["ziran.hours"], Decimal)
    assert str(result.totals["ziran.hours"]) == "1.2"
    other_rows = sum(Decimal(str(seed / 10)) for seed in reported_seeds) * (len(example.form.grid.rows) - 1)
    assert result.column_totals["hours"] == Decimal("1.2") + other_rows
    assert str(result.column_totals["hours"]) == str(Decimal("1.2") + other_rows)
    assert result.column_totals["sessions"] == sum(reported_seeds) * len(example.form.grid.rows)
    assert result.row_totals["ziran"] == {c.key: result.totals[f"ziran.{c.key}"] for c in example.form.grid.columns}
    assert result.totals["articles"] == sum(reported_seeds)
    assert "stories" not in result.totals   # collected, not summed


def test_collected_texts_are_attributed_in_unit_order(example, scenario):
    _, outcomes = scenario
    stories = aggregate(example, outcomes).collected["stories"]
    units = example.units
    # units[1] left it empty; exempt units[4] is not collected.
    assert [(c.unit_code, c.unit_name) for c in stories] == [(u.code, u.name) for u in (units[0], units[2], units[10])]
    assert stories[0].value == "单位1的典型事例/感人故事"


def test_per_kind_figures(example, scenario):
    _, outcomes = scenario
    result = aggregate(example, outcomes)
    assert list(result.by_kind) == [kind.key for kind in example.spec.unit_kinds]
    for key, summary in result.by_kind.items():
        members = [u for u in example.units if u.kind == key]
        assert summary.counts.units == len(members)
        assert summary.label == example.kind_label(key)
        seeds = {example.units[i].code: seed for i, seed in ((0, 1), (1, 2), (2, 3), (10, 4))}
        expected = sum(seeds.get(u.code, 0) for u in members)
        assert summary.totals["xuanjiang.volunteers"] == expected
    assert sum(s.counts.reported for s in result.by_kind.values()) == result.counts.reported


def test_unit_lists_follow_units_csv(example, scenario):
    _, outcomes = scenario
    result = aggregate(example, outcomes)
    order = [u.code for u in example.units]
    assert [o.code for o in result.units] == order
    assert [o.code for o in result.late_units] == [example.units[2].code]
    assert [o.code for o in result.bounced_units] == [example.units[3].code]
    assert [o.code for o in result.exempt_units] == [example.units[4].code]
    not_reported = [o.code for o in result.not_reported_units]
    assert not_reported == sorted(not_reported, key=order.index)
    assert {example.units[i].code for i in (7, 8, 9)} <= set(not_reported)


def test_result_does_not_depend_on_input_order(example, scenario):
    ordered, shuffled = scenario
    assert aggregate(example, ordered).as_dict() == aggregate(example, shuffled).as_dict()


def test_as_dict_is_plain_json(example, scenario):
    import json

    _, outcomes = scenario
    data = json.loads(json.dumps(aggregate(example, outcomes).as_dict()))
    assert data["totals"]["ziran.hours"] == "1.2"
    assert data["counts"]["exempt"] == 1


def test_decimal_and_string_values_add_up_the_same(example):
    as_read = {key: (Decimal(str(v)) if isinstance(v, float) else v) for key, v in values_for(example, 7).items()}
    as_text = {key: (str(v) if isinstance(v, float) else v) for key, v in values_for(example, 7).items()}
    units = example.units
    result = aggregate(example, [outcome(units[0], "replied", as_read), outcome(units[1], "replied", as_text)])
    assert result.totals["huimin.hours"] == Decimal("1.4")


def test_duplicate_units_are_a_programming_error(example):
    unit = example.units[0]
    with pytest.raises(ValueError):
        aggregate(example, [outcome(unit, "replied", values_for(example, 1)), outcome(unit, "late")])


def test_a_non_number_in_a_sum_field_is_not_silently_dropped(example):
    with pytest.raises(ValueError, match="ziran.hours"):
        aggregate(example, [outcome(example.units[0], "replied", values_for(example, 1, **{"ziran.hours": "很多"}))])


def test_another_schema_aggregates_with_no_code_change(example):
    form = FormSchema(
        title="安全生产大检查情况统计表",
        grid=Grid(label="检查情况", row_header="检查对象",
                  rows=[GridRow(key="enterprise", label="生产经营企业"), GridRow(key="venue", label="人员密集场所")],
                  columns=[FieldSpec(key="checks", label="检查次数", type="integer", required=True, aggregate="sum"),
                           FieldSpec(key="fines", label="罚款金额（万元）", type="number", decimals=2, aggregate="sum"),
                           FieldSpec(key="closed", label="责令停业家数", type="integer", aggregate="count")]),
        fields=[FieldSpec(key="lead", label="带队领导", type="text", aggregate="collect"),
                FieldSpec(key="note", label="备注", type="text", aggregate="none")])
    units = [UnitRow(code=f"AQ{i}", name=f"安监站{i}", kind="park" if i % 2 else "soe", email=f"aq{i}@u.example",
                     leader_email=f"l{i}@u.example") for i in range(1, 5)]
    definition = CampaignDefinition(directory=example.directory, spec=example.spec, units=units, form=form,
                                    notice_body="正文")
    submissions = {
        "AQ1": {"enterprise.checks": 3, "enterprise.fines": 0.1, "enterprise.closed": 2, "venue.checks": 1,
                "venue.fines": 0.05, "venue.closed": 0, "lead": "王一", "note": "x"},
        "AQ2": {"enterprise.checks": 4, "enterprise.fines": 0.2, "enterprise.closed": None, "venue.checks": 0,
                "venue.fines": 1.15, "venue.closed": 1, "lead": "李二", "note": ""},
    }
    outcomes = [outcome(u, "replied" if u.code in submissions else "notified", submissions.get(u.code)) for u in units]
    result = aggregate(definition, outcomes)
    assert result.totals == {"enterprise.checks": 7, "enterprise.fines": Decimal("0.30"),
                             "venue.checks": 1, "venue.fines": Decimal("1.20")}
    assert result.column_totals == {"checks": 8, "fines": Decimal("1.50")}
    assert result.value_counts == {"enterprise.closed": 1, "venue.closed": 1}   # zero and empty do not count
    assert [(c.unit_code, c.value) for c in result.collected["lead"]] == [("AQ1", "王一"), ("AQ2", "李二")]
    assert "note" not in result.collected and "note" not in result.totals
    assert result.by_kind["park"].totals["enterprise.checks"] == 3
    assert result.by_kind["soe"].counts.reported == 1


def test_latest_valid_submission_counts():
    @dataclass
    class Version:
        version: int
        valid: bool

    history = [Version(1, True), Version(2, False), Version(3, True), Version(4, False)]
    assert latest_valid(history).version == 3
    assert latest_valid([Version(1, False)]) is None
