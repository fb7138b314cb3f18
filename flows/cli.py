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
    from flows.campaign import issue_notice
    from flows.runner import run_flow

    _load_definition(campaign_dir)  # a broken campaign stops here, before anything is written
    summary = run_flow(issue_notice, str(campaign_dir))
    typer.echo(summary)


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
def devmail():
    """启动内置的开发用邮件服务器（SMTP + IMAP，仅监听本机）。"""
    from mail.devmail import serve_forever

    serve_forever()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
