"""The reply-form schema: a grid (activity kinds × measures) plus single fields. Generic: another
campaign with another form is a new YAML, not new code."""
from __future__ import annotations

import re
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FieldType(str, Enum):
    integer = "integer"
    number = "number"
    text = "text"
    phone = "phone"
    date = "date"


class Aggregate(str, Enum):
    sum = "sum"          # add up across units
    count = "count"      # how many units gave a non-empty / non-zero value
    collect = "collect"  # keep every unit's value, attributed
    none = "none"


NUMERIC_TYPES = {FieldType.integer, FieldType.number}
PHONE_PATTERN = re.compile(r"^[0-9()（）\-－+ ]{5,20}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)
    type: FieldType
    required: bool = False
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(default=None, gt=0)
    decimals: int = Field(default=0, ge=0, le=4)
    aggregate: Aggregate = Aggregate.none
    help: str = ""

    @model_validator(mode="after")
    def _consistent(self):
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"最小值 {self.min} 大于最大值 {self.max}，请改正")
        if self.aggregate == Aggregate.sum and self.type not in NUMERIC_TYPES:
            raise ValueError("只有数字类字段（integer、number）才能用 sum 汇总，请改为 collect 或 count")
        return self

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_TYPES


class GridRow(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)


class Grid(_Strict):
    """Rows (e.g. the six kinds of activity) × columns (the measures): each cell is one value."""

    label: str = Field(min_length=1)
    row_header: str = Field(min_length=1)
    rows: list[GridRow] = Field(min_length=1)
    columns: list[FieldSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        for what, keys in (("行", [r.key for r in self.rows]), ("列", [c.key for c in self.columns])):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                raise ValueError(f"表格的{what}标识重复：{'、'.join(dupes)}，每个标识只能出现一次")
        return self


class FormSchema(_Strict):
    title: str = Field(min_length=1)
    grid: Grid | None = None
    fields: list[FieldSpec] = Field(default_factory=list)
    instructions: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_keys(self):
        keys = [key for key, _ in self.iter_cells()]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"表单字段标识重复：{'、'.join(dupes)}，每个标识只能出现一次")
        if not keys:
            raise ValueError("表单没有任何字段，请至少定义一个 grid 或 fields")
        return self

    def iter_cells(self):
        """Every value a filled form carries, as (key, FieldSpec); grid cells are `row.column`."""
        if self.grid:
            for row in self.grid.rows:
                for column in self.grid.columns:
                    yield f"{row.key}.{column.key}", column
        for spec in self.fields:
            yield spec.key, spec

    def label_of(self, key: str) -> str:
        if "." in key and self.grid:
            row_key, column_key = key.split(".", 1)
            row = next(r for r in self.grid.rows if r.key == row_key)
            column = next(c for c in self.grid.columns if c.key == column_key)
            return f"{row.label}·{column.label}"
        return next(f.label for f in self.fields if f.key == key)
