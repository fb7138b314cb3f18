"""`noticeflow serve` against a real Prefect server: every deployment of prefect.yaml is served with
its schedule, and the one trigger (issue-notice) runs as a served flow run that mails every unit."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from flows.prefect_server import prefect_server, server_environment
from models.settings import PROJECT_ROOT

pytestmark = pytest.mark.prefect
EXAMPLE = PROJECT_ROOT / "campaigns" / "xinqu-2023-9"
CLIENT = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

async def deployments():
    async with get_client() as client:
        found = await client.read_deployments()
        return {d.name: {"schedules": len(d.schedules),
                         "limit": d.global_concurrency_limit.limit if d.global_concurrency_limit else None}
                for d in found}

if sys.argv[1] == "list":
    print(json.dumps(asyncio.run(deployments())))
else:
    run = run_deployment("issue-notice/issue-notice", parameters={"campaign_dir": sys.argv[2]}, timeout=240)
    print(json.dumps({"state": run.state.type.value}))
"""


def _client(env, *args) -> dict:
    result = subprocess.run([sys.executable, "-c", CLIENT, *args], env=env, capture_output=True, text=True,
                            timeout=300, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_serve_hosts_every_deployment_and_runs_the_trigger(nf_env, devmail, tmp_path):
    campaign_dir = tmp_path / "xinqu-2023-9"
    shutil.copytree(EXAMPLE, campaign_dir)
    lines = (campaign_dir / "units.csv").read_text(encoding="utf-8").splitlines()
    (campaign_dir / "units.csv").write_text("\n".join(lines[:4]) + "\n", encoding="utf-8")
    home = tmp_path / "prefect"
    with prefect_server(home) as api_url:
        env = {**os.environ, **server_environment(home, api_url), "NOTICEFLOW_NOW": "2023-09-20T09:00:00+08:00"}
        serve = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve"], env=env, cwd=PROJECT_ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            deployments = {}
            while time.monotonic() < deadline and len(deployments) < 4:
                time.sleep(2)
                assert serve.poll() is None, serve.stdout.read().decode()[-3000:]
                deployments = _client(env, "list")
            assert deployments == {"issue-notice": {"schedules": 0, "limit": 1},
                                   "collect-replies": {"schedules": 1, "limit": 1},
                                   "chase-overdue": {"schedules": 1, "limit": 1},
                                   "publish-summary": {"schedules": 1, "limit": 1}}
            assert _client(env, "run", str(campaign_dir)) == {"state": "COMPLETED"}
        finally:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=30)
    for line in lines[1:4]:
        address = line.split(",")[3]
        assert len(devmail.mailbox_messages(address)) == 1
