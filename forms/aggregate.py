"""Adding up the replies of a campaign, driven by the form schema's `aggregate` rules.

Only the latest valid submission of each unit counts (the caller passes its values, see
`latest_valid()`). Exempt units are outside everything: they are not owed and their numbers are
not added. Everything is ordered by the unit order of units.csv, so two runs give the same summary.
Sums of `number` fields are Decimal, rounded to the field's decimals (no float noise)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from forms.schema import Aggregate, FieldSpec, FieldType, FormSchema
from models.states import RecipientStatus

Number = int | Decimal


@dataclass(frozen=True)
class UnitOutcome:
    code: str
    name: str
    kind: str
    status: str                            # a models.states.RecipientStatus value
    values: dict | None = None             # the latest valid submission's values, or None
    received_at: datetime | None = None
    late: bool = False
    rejected: bool = False                 # sent a form, none of its versions valid yet


@dataclass
class Counts:
    units: int = 0                 # 全部单位
    should_report: int = 0         # 应报: all units minus exempt
    reported: int = 0              # 已报: has a valid submission
    on_time: int = 0               # 按时
    late: int = 0                  # 逾期
    not_reported: int = 0          # 未报: owed, no valid submission (includes bounced)
    bounced: int = 0               # 退信
    exempt: int = 0                # 免报
    needs_review: int = 0          # waiting for staff (a disputed token, disagreeing keys)
    awaiting_correction: int = 0   # sent a form, but nothing valid yet (待更正)


@dataclass(frozen=True)
class Collected:
    unit_code: str
    unit_name: str
    kind: str
    value: object


@dataclass
class KindSummary:
    key: str
    label: str
    counts: Counts
    totals: dict[str, Number]
    column_totals: dict[str, Number]


@dataclass
class Aggregation:
    counts: Counts
    totals: dict[str, Number]                     # every `sum` key, e.g. totals["ziran.hours"]
    row_totals: dict[str, dict[str, Number]]      # grid row -> `sum` column -> total
    column_totals: dict[str, Number]              # `sum` column -> total over all grid rows
    value_counts: dict[str, int]                  # every `count` key -> units with a non-empty, non-zero value
    collected: dict[str, list[Collected]]         # every `collect` key -> values, in unit order
    by_kind: dict[str, KindSummary]               # in the campaign's order of unit kinds
    units: list[UnitOutcome]                      # every unit, in unit order
    on_time_units: list[UnitOutcome] = field(default_factory=list)
    late_units: list[UnitOutcome] = field(default_factory=list)
    not_reported_units: list[UnitOutcome] = field(default_factory=list)
    bounced_units: list[UnitOutcome] = field(default_factory=list)
    exempt_units: list[UnitOutcome] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain JSON (Decimal as string, times as ISO), e.g. for a Prefect artifact."""
        return _plain(asdict(self))


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def latest_valid(submissions):
    """The submission that counts: the highest version among the valid ones (objects with `.valid`
    and `.version`, e.g. models.tables.Submission), or None."""
    valid = [s for s in submissions if s.valid]
    return max(valid, key=lambda s: s.version) if valid else None


def aggregate(definition, units_with_status: list[UnitOutcome]) -> Aggregation:
    """Counts, totals, per-kind figures and collected texts of a campaign. Units of units.csv that
    are missing from `units_with_status` count as not reported."""
    schema: FormSchema = definition.form
    outcomes = _in_unit_order(definition, units_with_status)
    specs = dict(schema.iter_cells())
    counting = [o for o in outcomes if o.status != RecipientStatus.exempt.value]
    reported = [o for o in counting if o.values is not None]

    totals = _sums(reported, specs)
    row_totals, column_totals = _grid_totals(schema, totals)
    value_counts = {key: sum(1 for o in reported if _given(o.values.get(key)))
                    for key, spec in specs.items() if spec.aggregate == Aggregate.count}
    collected = {key: [Collected(o.code, o.name, o.kind, o.values[key]) for o in reported
                       if _given(o.values.get(key), zero_counts=True)]
                 for key, spec in specs.items() if spec.aggregate == Aggregate.collect}

    by_kind = {}
    for key, label in _kinds(definition, outcomes):
        members = [o for o in outcomes if o.kind == key]
        kind_totals = _sums([o for o in members if o.status != RecipientStatus.exempt.value
                             and o.values is not None], specs)
        by_kind[key] = KindSummary(key, label, _count(members), kind_totals,
                                   _grid_totals(schema, kind_totals)[1])

    return Aggregation(
        counts=_count(outcomes), totals=totals, row_totals=row_totals, column_totals=column_totals,
        value_counts=value_counts, collected=collected, by_kind=by_kind, units=outcomes,
        on_time_units=[o for o in reported if not _is_late(o)],
        late_units=[o for o in reported if _is_late(o)],
        not_reported_units=[o for o in counting if o.values is None],
        bounced_units=[o for o in counting if o.status == RecipientStatus.bounced.value],
        exempt_units=[o for o in outcomes if o.status == RecipientStatus.exempt.value])


def _in_unit_order(definition, outcomes: list[UnitOutcome]) -> list[UnitOutcome]:
    by_code: dict[str, UnitOutcome] = {}
    for outcome in outcomes:
        if outcome.code in by_code:
            raise ValueError(f"unit {outcome.code} appears twice in the outcomes")
        by_code[outcome.code] = outcome
    ordered = []
    for unit in definition.units:
        outcome = by_code.pop(unit.code, None)
        ordered.append(outcome or UnitOutcome(unit.code, unit.name, unit.kind, RecipientStatus.pending.value))
    # Units no longer in units.csv still had a say; they go last, by code, so the order stays stable.
    return ordered + [by_code[code] for code in sorted(by_code)]


def _kinds(definition, outcomes: list[UnitOutcome]) -> list[tuple[str, str]]:
    kinds = [(kind.key, kind.label) for kind in definition.spec.unit_kinds]
    known = {key for key, _ in kinds}
    extra = sorted({o.kind for o in outcomes} - known)
    return kinds + [(key, key) for key in extra]


def _is_late(outcome: UnitOutcome) -> bool:
    return outcome.late or outcome.status == RecipientStatus.late.value


def _count(outcomes: list[UnitOutcome]) -> Counts:
    counts = Counts(units=len(outcomes))
    for outcome in outcomes:
        if outcome.status == RecipientStatus.exempt.value:
            counts.exempt += 1
            continue
        counts.should_report += 1
        if outcome.values is not None:
            counts.reported += 1
            if _is_late(outcome):
                counts.late += 1
            else:
                counts.on_time += 1
        else:
            counts.not_reported += 1
            if outcome.rejected:
                counts.awaiting_correction += 1
        if outcome.status == RecipientStatus.bounced.value:
            counts.bounced += 1
        if outcome.status == RecipientStatus.needs_review.value:
            counts.needs_review += 1
    return counts


def _number(value, spec: FieldSpec, unit_code: str, key: str) -> Number | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        # str(float) is the shortest text that reads back as the same float: 0.1 stays "0.1".
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError(f"unit {unit_code}: value {value!r} of {key} is not a number") from None
    if spec.type == FieldType.integer:
        if number != number.to_integral_value():
            raise ValueError(f"unit {unit_code}: value {value!r} of integer field {key} has decimals")
        return int(number)
    return number


def _zero(spec: FieldSpec) -> Number:
    return 0 if spec.type == FieldType.integer else _quantize(Decimal(0), spec)


def _quantize(number: Decimal, spec: FieldSpec) -> Decimal:
    return number.quantize(Decimal(1).scaleb(-spec.decimals))


def _sums(outcomes: list[UnitOutcome], specs: dict[str, FieldSpec]) -> dict[str, Number]:
    totals: dict[str, Number] = {}
    for key, spec in specs.items():
        if spec.aggregate != Aggregate.sum:
            continue
        total = _zero(spec)
        for outcome in outcomes:
            number = _number(outcome.values.get(key), spec, outcome.code, key)
            if number is not None:
                total += number
        totals[key] = total if spec.type == FieldType.integer else _quantize(Decimal(total), spec)
    return totals


def _grid_totals(schema: FormSchema, totals: dict[str, Number]):
    if not schema.grid:
        return {}, {}
    columns = [c for c in schema.grid.columns if c.aggregate == Aggregate.sum]
    row_totals = {row.key: {c.key: totals[f"{row.key}.{c.key}"] for c in columns} for row in schema.grid.rows}
    column_totals = {}
    for column in columns:
        total = _zero(column)
        for row in schema.grid.rows:
            total += row_totals[row.key][column.key]
        column_totals[column.key] = total
    return row_totals, column_totals


def _given(value, zero_counts: bool = False) -> bool:
    """Non-empty, and (for `count`) non-zero: a unit that wrote 0 did not do the thing."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return False
    if zero_counts or isinstance(value, str):
        return True
    try:
        return Decimal(str(value)) != 0
    except InvalidOperation:
        return True
