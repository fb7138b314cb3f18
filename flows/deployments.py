"""`noticeflow serve`: every deployment of prefect.yaml in one process, with the same entrypoints,
parameters and schedules (prefect.yaml stays the one place they are written)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from models.settings import PROJECT_ROOT

PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str
    description: str = ""
    parameters: dict = field(default_factory=dict)
    schedules: list[dict] = field(default_factory=list)
    concurrency_limit: int | None = None


def read_deployments(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [DeploymentSpec(name=d["name"], entrypoint=d["entrypoint"], description=d.get("description", ""),
                           parameters=d.get("parameters") or {}, schedules=d.get("schedules") or [],
                           concurrency_limit=d.get("concurrency_limit"))
            for d in data["deployments"]]


def load_flow(entrypoint: str):
    file_part, _, attribute = entrypoint.partition(":")
    module_name = "flows." + Path(file_part).stem
    spec = importlib.util.find_spec(module_name)
    if spec is None:
        raise LookupError(f"entrypoint {entrypoint}: module {module_name} not found")
    return getattr(importlib.import_module(module_name), attribute)


def _schedule(entry: dict):
    from prefect.schedules import Cron, Interval

    timezone = entry.get("timezone", "Asia/Shanghai")
    if "cron" in entry:
        return Cron(entry["cron"], timezone=timezone)
    if "interval" in entry:
        return Interval(entry["interval"], timezone=timezone)
    raise ValueError(f"unsupported schedule in prefect.yaml: {entry}")


def build_deployments(specs: list[DeploymentSpec], with_schedules: bool = True) -> list:
    deployments = []
    for spec in specs:
        flow = load_flow(spec.entrypoint)
        parameters = dict(spec.parameters)
        if "campaign_dir" in parameters:
            parameters["campaign_dir"] = str((PROJECT_ROOT / parameters["campaign_dir"]).resolve())
        deployments.append(flow.to_deployment(
            name=spec.name, description=spec.description, parameters=parameters,
            schedules=[_schedule(s) for s in spec.schedules] if with_schedules else None,
            concurrency_limit=spec.concurrency_limit))
    return deployments


def serve_all(with_schedules: bool = True) -> None:
    """Blocks, running scheduled and triggered runs, until interrupted. Schedules are not paused on
    shutdown: a restart carries on where it was."""
    from prefect import serve

    serve(*build_deployments(read_deployments(), with_schedules), pause_on_shutdown=False)
