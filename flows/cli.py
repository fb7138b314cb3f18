"""The `noticeflow` command. Commands import their flows lazily: `status` should not pay for Prefect."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

app = typer.Typer(help="noticeflow：通知下发、回执收集、催报与情况通报", no_args_is_help=True,
                  add_completion=False)

EXIT_BAD_INPUT = 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _load_definition(campaign_dir: Path):
    from forms.campaign import load_campaign
    from forms.errors import CampaignError

    try:
        return load_campaign(campaign_dir)
    except CampaignError as exc:
        _fail("活动配置有误，未写入任何数据：\n" + "\n".join(f"  - {p}" for p in exc.problems))


@app.command()
def load(campaign_dir: Path = typer.Argument(..., help="活动目录，例如 campaigns/xinqu-2023-9")):
    """读取并校验活动配置，写入数据库（可重复执行）。"""
    from forms.store import upsert_campaign
    from models.db import session_scope

    definition = _load_definition(campaign_dir)
    with session_scope() as session:
        upsert_campaign(session, definition)
    typer.echo(f"已载入活动 {definition.id}：{len(definition.units)} 个单位，截止 {definition.spec.deadline:%Y-%m-%d %H:%M}")


@app.command()
def issue(campaign_dir: Path = typer.Argument(..., help="活动目录，例如 campaigns/xinqu-2023-9")):
    """下发通知：生成公文和各单位回执表，逐一发送邮件（可重复执行，不会重复发送）。"""
    from flows.campaign import IssueStopped, issue_notice
    from flows.runner import run_flow
    from mail.outbox import OutboxBusy

    _load_definition(campaign_dir)  # a broken campaign stops here, before anything is written
    try:
        summary = run_flow(issue_notice, str(campaign_dir))
    except (IssueStopped, OutboxBusy) as exc:
        _fail(str(exc), code=1)
    typer.echo(summary)


@app.command()
def collect(campaign_id: str = typer.Argument(..., help="活动编号，例如 xinqu-2023-9")):
    """收取回复：登记各单位报送，发送回执或更正通知（可重复执行）。"""
    from flows.collect import collect_replies
    from flows.runner import run_flow
    from mail.ingest import CollectError

    try:
        typer.echo(run_flow(collect_replies, campaign_id))
    except CollectError as exc:
        _fail(str(exc))


@app.command()
def summary(campaign_id: str = typer.Argument(..., help="活动编号，例如 xinqu-2023-9"),
            date: str = typer.Option(None, "--date", help="通报的成文日期 YYYY-MM-DD，默认今天")):
    """生成情况通报（Word）、汇总表和附件材料包，输出通报文件的路径。"""
    from flows.runner import run_flow
    from flows.summarize import SummaryError, publish_summary
    from models.status import UnknownCampaign

    try:
        typer.echo(run_flow(publish_summary, campaign_id, date))
    except (SummaryError, UnknownCampaign) as exc:
        _fail(str(exc.args[0]) if exc.args else str(exc))


@app.command()
def status(campaign_id: str, as_json: bool = typer.Option(False, "--json", help="输出 JSON")):
    """各单位的报送状态。"""
    from models.db import session_scope
    from models.status import UnknownCampaign, campaign_status

    try:
        with session_scope() as session:
            report = campaign_status(session, campaign_id)
    except UnknownCampaign:
        _fail(f"找不到活动 {campaign_id}，请先执行 noticeflow load 或 noticeflow issue")
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    typer.echo(f"活动 {report['campaign']}  截止 {report['deadline']}")
    for unit in report["units"]:
        typer.echo(f"{unit['code']:<8}{unit['status']:<14}{unit['submissions']:>3} 份  催报 {unit['reminders_sent']}  {unit['name']}")


@app.command()
def chase(campaign_id: str = typer.Argument(..., help="活动编号，例如 xinqu-2023-9")):
    """催报：按催报阶梯提醒、催报、督办未报送的单位，并发送每日报送日报（可重复执行，不会重复发送）。"""
    from flows.escalate import ChaseStopped, chase_overdue
    from flows.runner import run_flow
    from models.status import UnknownCampaign

    try:
        summary = run_flow(chase_overdue, campaign_id)
    except UnknownCampaign as exc:
        _fail(str(exc.args[0]))
    except ChaseStopped as exc:
        _fail(str(exc), code=1)
    typer.echo(summary)


@app.command()
def exempt(campaign_id: str, unit_code: str,
           reason: str = typer.Option(..., "--reason", help="豁免原因（必填），记入操作记录")):
    """将单位标记为豁免：不再催报，汇总时列为“免报”。"""
    from models.actions import ActionError, exempt_unit
    from models.db import session_scope

    try:
        with session_scope() as session:
            exempt_unit(session, campaign_id, unit_code, reason, actor="cli")
    except ActionError as exc:
        _fail(str(exc))
    typer.echo(f"已将单位 {unit_code.upper()} 标记为豁免（原因：{reason.strip()}），此后不再向其催报。")


@app.command("web")
def web_command(host: str = typer.Option("127.0.0.1", "--host", help="监听地址"),
                port: int = typer.Option(8000, "--port", help="端口")):
    """启动办公室工作台（浏览器访问）。"""
    from web.app import serve as serve_web

    serve_web(host, port)


staff_app = typer.Typer(help="工作人员账号", no_args_is_help=True)
app.add_typer(staff_app, name="staff")


@staff_app.command("add")
def staff_add(name: str, reset: bool = typer.Option(False, "--reset", help="重设已有账号的密码")):
    """添加工作人员账号；不在终端运行时从标准输入读取密码。"""
    from web.cli_support import PasswordEntryError, StaffError, add_staff_interactive

    try:
        typer.echo(add_staff_interactive(name, replace=reset))
    except (PasswordEntryError, StaffError) as error:
        _fail(str(error))


@app.command()
def serve(no_schedules: bool = typer.Option(False, "--no-schedules", help="只接受手动触发，不按计划运行")):
    """在一个进程中运行 prefect.yaml 中的全部部署（需要 PREFECT_API_URL 指向 Prefect 服务器）。"""
    from flows.deployments import serve_all
    from flows.runner import prefect_server_configured

    if not prefect_server_configured():
        _fail("未设置 PREFECT_API_URL：请先启动 Prefect 服务器（prefect server start），"
              "再设置 PREFECT_API_URL=http://127.0.0.1:4200/api 后重试")
    serve_all(with_schedules=not no_schedules)


@app.command()
def demo(units: int = typer.Option(0, "--units", help="只用前 N 个单位（0 为全部）"),
         keep_running: bool = typer.Option(False, "--keep-running", help="结束后保留 Prefect 服务器和办公室工作台"),
         web_port: int = typer.Option(8000, "--web-port", help="办公室工作台端口（配合 --keep-running）"),
         output_dir: Path = typer.Option(None, "--output-dir", help="演示数据目录（每次运行前清空），默认 outputs/demo"),
         prefect_home: Path = typer.Option(None, "--prefect-home", help="Prefect 服务器数据目录，默认 outputs/prefect")):
    """演示：启动 Prefect 服务器和内置邮件服务器，按时间推进完整运行示例活动。"""
    from demo.run import DEFAULT_DEMO_DIR, PREFECT_HOME, run_demo

    try:
        run_demo(unit_limit=units or None, keep_running=keep_running, web_port=web_port, say=typer.echo,
                 output_dir=(output_dir or DEFAULT_DEMO_DIR).resolve(), prefect_home=(prefect_home or PREFECT_HOME).resolve())
    except KeyboardInterrupt:
        _fail("已中断，所有服务已关闭。", code=130)


@app.command()
def devmail():
    """启动内置的开发用邮件服务器（SMTP + IMAP，仅监听本机）。"""
    from mail.devmail import serve_forever

    serve_forever()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
