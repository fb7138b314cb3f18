"""A real Prefect server for the demo and the end-to-end test. Prefect's temporary server runs no
schedules and starts unreliably, so anything that must show scheduled runs starts this one."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STARTUP_TIMEOUT_SECONDS = 180.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def server_environment(home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment a client (or the server itself) needs: its home, no analytics (no internet
    here), and the API address."""
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_ENABLE_HTTP2": "false",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def prefect_server(home: Path, host: str = "127.0.0.1", port: int | None = None,
                   log_path: Path | None = None) -> Iterator[str]:
    """Start `prefect server start` (SQLite under `home`), wait until healthy, yield the API URL;
    stop the server and everything it started on exit, Ctrl-C included."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    api_url = f"http://{host}:{port}/api"
    log_path = log_path or home / "server.log"
    env = {**os.environ, **server_environment(home)}
    env.pop("PREFECT_API_URL", None)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not _healthy(api_url):
            if process.poll() is not None:
                raise RuntimeError(f"Prefect server exited with {process.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Prefect server not healthy after {STARTUP_TIMEOUT_SECONDS:.0f} s; see {log_path}")
            time.sleep(0.5)
        yield api_url
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
