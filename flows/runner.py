"""One code path with or without a Prefect server.

Inside a flow run, tasks run as Prefect task runs (retries, logs, visibility). Outside one — the CLI
on a machine with no Prefect server configured — the same task bodies run as plain functions, so
`noticeflow issue` works offline and a test of the logic needs no server."""
from __future__ import annotations

import logging
import os

from prefect.context import FlowRunContext


def in_flow_run() -> bool:
    return FlowRunContext.get() is not None


def run_task(task, *args, **kwargs):
    if in_flow_run():
        return task(*args, **kwargs)
    return task.fn(*args, **kwargs)


def prefect_server_configured() -> bool:
    return bool(os.environ.get("PREFECT_API_URL"))


def run_flow(flow, *args, **kwargs):
    """Run a flow as a real flow run when a Prefect server is configured, else its body directly."""
    if prefect_server_configured():
        return flow(*args, **kwargs)
    return flow.fn(*args, **kwargs)


def logger() -> logging.Logger:
    """Prefect's run logger inside a run (shown in the UI), the module logger outside."""
    if in_flow_run():
        from prefect import get_run_logger

        return get_run_logger()
    return logging.getLogger("noticeflow")


def publish_markdown(key: str, markdown: str, description: str = "") -> None:
    if in_flow_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(key=key, markdown=markdown, description=description)


def publish_table(key: str, rows: list[dict], description: str = "") -> None:
    if in_flow_run() and rows:
        from prefect.artifacts import create_table_artifact

        create_table_artifact(key=key, table=rows, description=description)
