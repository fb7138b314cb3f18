"""Loading the example campaign, and every kind of broken campaign with its exact Chinese message."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forms.campaign import load_campaign
from forms.errors import CampaignError
from models.settings import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "campaigns" / "xinqu-2023-9"
SEED = PROJECT_ROOT.parent / "shared" / "seed" / "notice-xinqu-2023-9.txt"
RESERVED_DOMAIN = re.compile(r"@([a-z0-9\-]+\.)*[a-z0-9\-]+\.(example|test)$")


@pytest.fixture
def campaign_copy(tmp_path) -> Path:
    target = tmp_path / "campaign"
    shutil.copytree(EXAMPLE, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text not found: {old}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


def _problems(directory: Path) -> list[str]:
    with pytest.raises(CampaignError) as caught:
        load_campaign(directory)
    return [str(p) for p in caught.value.problems]


def test_example_campaign_loads_as_the_seed_notice_says():
    definition = load_campaign(EXAMPLE)
    spec = definition.spec
    assert spec.notice.doc_number == "新文明办发〔2023〕9号"
    assert spec.office.mark == "兰州新区精神文明建设指导委员会办公室文件"
    assert spec.notice.title == "关于组织开展“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动的通知"
    assert spec.notice.addressees == "新区各园区，各部门、各单位，新区各国有集团公司，省驻区各单位"
    assert (spec.notice.date.year, spec.notice.date.month, spec.notice.date.day) == (2023, 3, 14)
    assert spec.contact.name == "税国斌" and spec.contact.phone == "8259130"
    assert spec.deadline.isoformat() == "2023-10-10T18:00:00+08:00"
    assert [s.label for s in spec.ladder] == ["温馨提示", "催报", "督办"]
    assert len(definition.units) >= 40
    assert {u.kind for u in definition.units} == {k.key for k in spec.unit_kinds}
    # Heading levels of the body survive: four 一、-level headings and the （一） items.
    paragraphs = definition.notice_body.split("\n\n")
    assert [p for p in paragraphs if re.match(r"^[一二三四]、", p)] == ["一、活动主题", "二、活动内容", "三、工作要求"]
    assert sum(1 for p in paragraphs if p.startswith("（")) == 9


def test_the_body_reproduces_every_sentence_of_the_seed():
    if not SEED.exists():
        pytest.skip("../shared/seed is not beside this checkout")
    definition = load_campaign(EXAMPLE)
    flatten = lambda text: re.sub(r"\s+", "", text).replace("(三)", "（三）").replace("and", "和")
    seed = flatten(SEED.read_text(encoding="utf-8"))
    body = flatten(definition.notice_body)
    assert body in seed


def test_every_example_address_is_on_a_reserved_domain():
    definition = load_campaign(EXAMPLE)
    addresses = [definition.spec.office.email, definition.spec.contact.email]
    addresses += [u.email for u in definition.units] + [u.leader_email for u in definition.units]
    assert all(RESERVED_DOMAIN.search(a) for a in addresses), [a for a in addresses if not RESERVED_DOMAIN.search(a)]
    assert len(set(u.code for u in definition.units)) == len(definition.units)


def test_missing_field_names_file_line_and_field(campaign_copy):
    spec = campaign_copy / "campaign.yaml"
    _edit(spec, "  addressees: 新区各园区，各部门、各单位，新区各国有集团公司，省驻区各单位\n", "")
    line = _line_of(spec, "notice:")
    assert _problems(campaign_copy) == [f"campaign.yaml 第{line}行 notice.addressees：缺少必填项，请补上"]


def test_bad_date(campaign_copy):
    spec = campaign_copy / "campaign.yaml"
    _edit(spec, "deadline: 2023-10-10T18:00:00+08:00", "deadline: 2023-13-40 18:00")
    line = _line_of(spec, "deadline: 2023-13-40")
    assert _problems(campaign_copy) == [
        f"campaign.yaml 第{line}行 deadline：日期时间格式不正确，请写成 2023-10-10T18:00:00+08:00 的形式"]


def test_deadline_before_issue_date(campaign_copy):
    spec = campaign_copy / "campaign.yaml"
    _edit(spec, "deadline: 2023-10-10T18:00:00+08:00", "deadline: 2023-03-01T18:00:00+08:00")
    line = _line_of(campaign_copy / "campaign.yaml", "deadline: 2023-03-01")
    assert _problems(campaign_copy) == [
        f"campaign.yaml 第{line}行 deadline：截止时间 2023-03-01 不晚于成文日期 2023-03-14，请检查 deadline 与 notice.date"]


def test_addressees_too_long_for_any_place_are_refused_at_load(campaign_copy):
    """Every unit named one by one: too long for page 1 and for the 版记 the list would move to."""
    spec = campaign_copy / "campaign.yaml"
    names = "，".join(f"新区第{n}个需要逐一列名的基层单位" for n in range(1, 41))
    _edit(spec, "addressees: 新区各园区，各部门、各单位，新区各国有集团公司，省驻区各单位", f"addressees: {names}")
    line = _line_of(spec, "addressees: 新区第1个")
    [problem] = _problems(campaign_copy)
    assert problem.startswith(f"campaign.yaml 第{line}行 notice.addressees：主送机关名称过多，移至版记后约")
    assert problem.endswith("请改用统称（如“各有关单位”），并将单位名单作为附件")


def test_addressees_that_fit_the_imprint_load(campaign_copy):
    spec = campaign_copy / "campaign.yaml"
    names = "，".join(f"新区第{n}单位" for n in range(1, 31))  # off page 1, within the 版记
    _edit(spec, "addressees: 新区各园区，各部门、各单位，新区各国有集团公司，省驻区各单位", f"addressees: {names}")
    assert load_campaign(campaign_copy).spec.notice.addressees == names


def test_duplicate_unit_code_names_both_rows(campaign_copy):
    units = campaign_copy / "units.csv"
    lines = units.read_text(encoding="utf-8").splitlines()
    lines.append("YQ03,重复的园区,park,dup@units.xinqu.example,leader.dup@units.xinqu.example,")
    units.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _problems(campaign_copy) == [
        f"units.csv 第{len(lines)}行 code：单位代码“YQ03”与第4行重复，每个单位的代码必须唯一"]


def test_malformed_and_duplicate_email(campaign_copy):
    units = campaign_copy / "units.csv"
    _edit(units, "yq02@units.xinqu.example", "yq02#units.xinqu.example")
    _edit(units, "yq05@units.xinqu.example", "yq04@units.xinqu.example")
    assert _problems(campaign_copy) == [
        "units.csv 第3行 email：邮箱地址“yq02#units.xinqu.example”格式不正确，请写成 name@example.gov.cn 的形式",
        "units.csv 第6行 email：邮箱“yq04@units.xinqu.example”与第5行重复，请为每个单位填写各自的邮箱",
    ]


def test_unknown_field_type(campaign_copy):
    form = campaign_copy / "form.yaml"
    _edit(form, "{key: articles, label: 投稿宣传篇数, type: integer", "{key: articles, label: 投稿宣传篇数, type: money")
    line = _line_of(form, "type: money")
    (problem,) = _problems(campaign_copy)
    assert problem == (f"form.yaml 第{line}行 fields.1.type：取值“money”无法识别，"
                       "可用的取值：integer、number、text、phone、date")


def test_deadline_on_a_public_holiday_is_refused(campaign_copy):
    spec = campaign_copy / "campaign.yaml"
    _edit(spec, "deadline: 2023-10-10T18:00:00+08:00", "deadline: 2023-10-02T18:00:00+08:00")
    (problem,) = _problems(campaign_copy)
    assert problem.startswith(f"campaign.yaml 第{_line_of(spec, 'deadline: 2023-10-02')}行 deadline：")
    assert "2023年10月2日（国庆节假期）不是工作日" in problem and "deadline_on_holiday" in problem


def test_a_ladder_step_naming_a_missing_email_template(campaign_copy):
    spec = campaign_copy / "campaign.yaml"
    _edit(spec, "template: reminder_urge", "template: reminder_nonexistent")
    line = _line_of(spec, "template: reminder_nonexistent")
    assert _problems(campaign_copy) == [
        f"campaign.yaml 第{line}行 ladder.1.template：找不到邮件模板“reminder_nonexistent”"
        "（templates/email/reminder_nonexistent.subject.j2 与 reminder_nonexistent.txt.j2），请检查模板名称或先添加模板"]


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig"])
def test_csv_saved_by_excel_in_gbk_or_with_bom_loads(campaign_copy, encoding):
    units = campaign_copy / "units.csv"
    text = units.read_text(encoding="utf-8")
    units.write_bytes(text.encode(encoding))
    definition = load_campaign(campaign_copy)
    assert definition.units[0].name == "中川园区管委会"
    assert definition.units[0].code == "YQ01"


def test_chinese_headers_are_accepted(campaign_copy):
    units = campaign_copy / "units.csv"
    _edit(units, "code,name,kind,email,leader_email,contact", "单位代码,单位名称,类别,邮箱,领导邮箱,联系人")
    assert len(load_campaign(campaign_copy).units) == 44


def test_cli_exits_2_and_writes_nothing_on_a_broken_campaign(campaign_copy, nf_env):
    _edit(campaign_copy / "units.csv", "yq02@units.xinqu.example", "not-an-address")
    result = subprocess.run([sys.executable, "-m", "flows.cli", "load", str(campaign_copy)],
                            capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 2
    assert "units.csv 第3行 email：邮箱地址“not-an-address”格式不正确" in result.stderr
    assert not (nf_env.output_dir / "noticeflow.db").exists() and not list(nf_env.output_dir.glob("*.db"))


def test_cli_loads_and_reports_every_unit_pending(nf_env):
    run = lambda *args: subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                                       text=True, cwd=PROJECT_ROOT, check=True)
    run("load", str(EXAMPLE))
    run("load", str(EXAMPLE))  # loading twice is harmless
    report = json.loads(run("status", "xinqu-2023-9", "--json").stdout)
    assert report["campaign"] == "xinqu-2023-9"
    assert report["deadline"] == "2023-10-10T18:00:00+08:00"
    assert len(report["units"]) == 44
    first = report["units"][0]
    assert set(first) == {"code", "name", "email", "status", "submissions", "last_reply_at", "reminders_sent", "errors"}
    assert {u["status"] for u in report["units"]} == {"pending"}
    assert first == {"code": "YQ01", "name": "中川园区管委会", "email": "yq01@units.xinqu.example",
                     "status": "pending", "submissions": 0, "last_reply_at": None, "reminders_sent": 0, "errors": []}


def test_status_of_an_unknown_campaign_says_what_to_do(nf_env):
    result = subprocess.run([sys.executable, "-m", "flows.cli", "status", "nope"], capture_output=True,
                            text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 2
    assert "找不到活动 nope，请先执行 noticeflow load" in result.stderr
