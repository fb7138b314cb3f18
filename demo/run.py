"""`noticeflow demo`: a real Prefect server, the embedded mail server, then the example campaign run
through real flow runs while the clock steps through it. Cleans up everything it started, also on
Ctrl-C."""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from flows.prefect_server import free_port, prefect_server, server_environment
from models.settings import CAMPAIGNS_DIR, PROJECT_ROOT

EXAMPLE_CAMPAIGN = CAMPAIGNS_DIR / "xinqu-2023-9"
DEFAULT_DEMO_DIR = PROJECT_ROOT / "outputs" / "demo"
PREFECT_HOME = PROJECT_ROOT / "outputs" / "prefect"
DEMO_STAFF = ("演示", "demo-password")
STATUS_WORDS_ORDER = ["replied", "late", "overdue", "escalated", "bounced", "needs_review", "exempt", "notified", "pending"]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _demo_environment(output_dir: Path) -> dict[str, str]:
    return {
        "NOTICEFLOW_OUTPUT_DIR": str(output_dir),
        "NOTICEFLOW_DATABASE_URL": f"sqlite:///{output_dir / 'noticeflow.db'}",
        "NOTICEFLOW_SMTP_HOST": "127.0.0.1", "NOTICEFLOW_SMTP_PORT": str(free_port()),
        "NOTICEFLOW_IMAP_HOST": "127.0.0.1", "NOTICEFLOW_IMAP_PORT": str(free_port()),
        "NOTICEFLOW_SMTP_SECURITY": "none", "NOTICEFLOW_IMAP_SECURITY": "none",
    }


def run_demo(*, unit_limit: int | None = None, keep_running: bool = False, output_dir: Path = DEFAULT_DEMO_DIR,
             web_port: int = 8000, prefect_home: Path = PREFECT_HOME, say=print) -> dict:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if output_dir.exists():
        shutil.rmtree(output_dir)  # demo data only: each run starts from an empty office
    output_dir.mkdir(parents=True)
    os.environ.update(_demo_environment(output_dir))
    os.environ.pop("NOTICEFLOW_NOW", None)

    started = time.monotonic()
    with ExitStack() as stack:
        say("启动 Prefect 服务器（首次约需 20–30 秒）…")
        api_url = stack.enter_context(prefect_server(prefect_home))
        os.environ.update(server_environment(prefect_home, api_url))
        say(f"Prefect 服务器就绪：{api_url.removesuffix('/api')}（{time.monotonic() - started:.0f} 秒）")

        # Imported only now: Prefect reads PREFECT_API_URL when it is first imported.
        from demo.scenario import Scenario, prepare_campaign_copy, write_report
        from flows import campaign, collect, escalate, summarize
        from flows.runner import run_flow
        from forms.campaign import load_campaign
        from mail.devmail import DevMailServer
        from models import db
        from models.settings import reload_settings

        settings = reload_settings()
        db.reset_engines()
        mail = stack.enter_context(DevMailServer.from_settings(settings))
        say(f"内置邮件服务器就绪：SMTP {settings.smtp_host}:{mail.smtp_port}，IMAP {settings.imap_host}:{mail.imap_port}")

        campaign_dir = prepare_campaign_copy(EXAMPLE_CAMPAIGN, output_dir / "campaign", unit_limit)
        definition = load_campaign(campaign_dir)
        flows = _Flows(campaign.issue_notice, collect.collect_replies, escalate.chase_overdue, summarize.publish_summary)
        scenario = Scenario(definition, mail, run_flow, flows, say)
        say(f"示例活动 {definition.id}：{len(definition.units)} 个单位，截止 {definition.spec.deadline:%Y-%m-%d %H:%M}")
        scenario.run()

        result = _result(definition, scenario, output_dir)
        write_report(result, output_dir / "report.json")
        _print_status(result, say)
        say(f"用时 {time.monotonic() - started:.0f} 秒")
        if keep_running:
            _keep_running(stack, web_port, api_url, say)
        return result.as_json()


class _Flows:
    def __init__(self, issue_notice, collect_replies, chase_overdue, publish_summary):
        self.issue_notice, self.collect_replies = issue_notice, collect_replies
        self.chase_overdue, self.publish_summary = chase_overdue, publish_summary


def _result(definition, scenario, output_dir: Path):
    from demo.scenario import DemoResult
    from models.db import session_scope
    from models.status import campaign_status

    with session_scope() as session:
        status = campaign_status(session, definition.id)
    campaign_out = output_dir / definition.id
    summaries = sorted(campaign_out.glob("summary-*.docx"))
    return DemoResult(campaign_id=definition.id, output_dir=output_dir,
                      summary_path=summaries[-1] if summaries else campaign_out / "summary-missing.docx",
                      export_path=campaign_out / "汇总表.xlsx", bundle_path=campaign_out / "附件材料.zip",
                      roles=scenario.roles, received=scenario.mail_received(), status=status)


def _print_status(result, say) -> None:
    from rich.console import Console
    from rich.table import Table

    from models.labels import status_label

    table = Table(title="各单位报送情况", title_justify="left")
    for header, justify in (("代码", "left"), ("单位", "left"), ("状态", "left"), ("报送", "right"),
                            ("催报", "right"), ("单位收到", "right"), ("领导收到", "right")):
        table.add_column(header, justify=justify)
    counts: dict[str, int] = {}
    for unit in result.status["units"]:
        received = result.received[unit["code"]]
        counts[unit["status"]] = counts.get(unit["status"], 0) + 1
        table.add_row(unit["code"], unit["name"], status_label(unit["status"]), str(unit["submissions"]),
                      str(unit["reminders_sent"]), str(received["unit"]), str(received["leader"]))
    Console(width=110).print(table)
    say("合计：" + "，".join(f"{status_label(s)} {counts[s]}" for s in STATUS_WORDS_ORDER if s in counts))
    say("")
    say(f"情况通报：{result.summary_path}")
    say(f"汇总表：  {result.export_path}")
    say(f"附件材料：{result.bundle_path}")


def _keep_running(stack: ExitStack, web_port: int, api_url: str, say) -> None:
    import uvicorn

    from models.db import session_scope
    from models.staff import add_staff
    from web.app import create_app

    with session_scope() as session:
        add_staff(session, DEMO_STAFF[0], DEMO_STAFF[1], replace=True)
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=web_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    stack.callback(lambda: (setattr(server, "should_exit", True), thread.join(timeout=10)))
    say(f"办公室工作台：http://127.0.0.1:{web_port}/ （账号 {DEMO_STAFF[0]}，密码 {DEMO_STAFF[1]}）")
    say(f"Prefect 界面：{api_url.removesuffix('/api')}")
    say("按 Ctrl-C 退出并关闭所有服务。")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        say("正在关闭…")
