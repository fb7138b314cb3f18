"""The benchmarks' campaign: a copy of the example campaign's folder with `count` made-up units."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN_ID = "xinqu-2023-9"
EXAMPLE = PROJECT_ROOT / "campaigns" / CAMPAIGN_ID
KINDS = ("park", "department", "soe", "provincial")


def campaign_with_units(root: Path, count: int, *, prefix: str = "B", name: str = "基准测试单位{n:05d}") -> Path:
    """root/campaign/<id>, units {prefix}00001… with mailboxes on units.example.test."""
    folder = root / "campaign" / CAMPAIGN_ID
    shutil.copytree(EXAMPLE, folder)
    with open(folder / "units.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", "name", "kind", "email", "leader_email", "contact"])
        for n in range(1, count + 1):
            code = f"{prefix}{n:05d}"
            address = f"{code.lower()}@units.example.test"
            writer.writerow([code, name.format(n=n), KINDS[n % 4], address, f"leader.{address}", ""])
    return folder
