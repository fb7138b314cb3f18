"""Synthetic campaign data for tests: a units.csv of made-up units, and filled-in form values."""
from __future__ import annotations

import csv
from pathlib import Path

from forms.schema import FormSchema

KINDS = ("park", "department", "soe", "provincial")


def write_units(campaign_dir: Path, count: int, name: str = "测试单位{n:03d}") -> list[str]:
    """Replace the campaign's unit list with `count` units T001… on a .test domain; returns their
    addresses in list order."""
    addresses = [f"t{n:03d}@units.example.test" for n in range(1, count + 1)]
    with open(campaign_dir / "units.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", "name", "kind", "email", "leader_email", "contact"])
        for n, address in enumerate(addresses, 1):
            writer.writerow([f"T{n:03d}", name.format(n=n), KINDS[n % 4], address, f"leader.{address}", ""])
    return addresses


def figures(schema: FormSchema, seed: int, *, step: int = 100) -> dict[str, object]:
    """A valid value for every cell of the form, different per `seed` and per cell."""
    values = {}
    for index, (key, spec) in enumerate(schema.iter_cells()):
        if spec.type.value == "integer":
            values[key] = seed * step + index
        elif spec.type.value == "number":
            values[key] = seed * 10 + index + 0.5
        elif spec.type.value == "phone":
            values[key] = "0931-8259130"
        else:
            values[key] = f"单位{seed}填写的内容"
    return values
