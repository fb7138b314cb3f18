"""Simulated units for the demo: each reads the notice from its own mailbox and answers the way a
real office's staff does — through different mail clients, on time or late, sometimes wrongly.

Every address here is on a reserved domain (.example / .test)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from email import encoders
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.header import Header
from email.utils import format_datetime, make_msgid
from datetime import datetime

from demo.tnef import TnefFile, build_tnef
from forms.campaign import CampaignDefinition, UnitRow
from forms.form_filling import fill_reply_form
from mail.mime import ParsedMessage, parse_message

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PERSONAL_DOMAIN = "personal.test"
# What units write under 典型事例: a few shapes, filled per unit, so the demo's 情况通报 reads like one.
STORIES = [
    "{unit}组建“红马甲”志愿服务队，{count}名志愿者利用周末走进社区，为独居老人打扫卫生、代购药品，"
    "建立一对一帮扶台账。一位老人说：“有你们在，心里踏实。”",
    "{unit}联合辖区学校开展“学雷锋·护母亲河”活动，{count}名志愿者沿河清理垃圾、宣传节水知识，"
    "带动周边群众参与，活动照片被文明甘肃微信公众号刊发。",
    "{unit}开设“志愿者课堂”，邀请宣讲团成员用身边事讲党的二十大精神，累计{count}场次，"
    "群众反映“听得懂、记得住、用得上”。",
    "{unit}针对留守儿童开展“周末陪伴”志愿服务，{count}名青年志愿者结对辅导功课、陪伴阅读，"
    "家长自发送来锦旗表示感谢。",
]


@dataclass(frozen=True)
class ReceivedNotice:
    """What a unit finds in its mailbox: the notice, its token and its blank form."""

    subject: str
    message_id: str
    form_name: str
    form: bytes


def latest_from_office(messages: list[bytes], office: str, *, subject_contains: str = "") -> ParsedMessage | None:
    for raw in reversed(messages):
        parsed = parse_message(raw)
        if parsed.from_addr.lower() == office.lower() and subject_contains in parsed.subject:
            return parsed
    return None


def received_notice(messages: list[bytes], office: str) -> ReceivedNotice:
    for raw in messages:
        parsed = parse_message(raw)
        forms = [a for a in parsed.attachments if a.original_name.endswith(".xlsx")]
        if parsed.from_addr.lower() == office.lower() and forms:
            return ReceivedNotice(parsed.subject, parsed.message_id, forms[0].original_name, forms[0].data)
    raise LookupError("no notice with a reply form in this mailbox")


def figures(definition: CampaignDefinition, unit: UnitRow, *, zero: bool = False) -> dict[str, object]:
    """Plausible numbers for one unit, the same on every run (seeded by the unit code)."""
    rng = random.Random(unit.code)
    values: dict[str, object] = {}
    for key, spec in definition.form.iter_cells():
        if spec.type.value == "integer":
            values[key] = 0 if zero else rng.randint(1, 12) * (20 if key.endswith(("volunteers", "served")) else 1)
        elif spec.type.value == "number":
            values[key] = 0 if zero else round(rng.uniform(4, 160), 1)
        elif spec.type.value == "phone":
            values[key] = f"0931-{rng.randint(8200000, 8299999)}"
        elif key == "filler":
            values[key] = rng.choice(["王丽", "李强", "张敏", "赵磊", "陈静", "刘洋"])
        elif key == "stories":
            values[key] = rng.choice(STORIES).format(unit=unit.name, count=rng.randint(12, 60))
        else:
            values[key] = "志愿者队伍还需壮大，下一步将完善激励机制，推动志愿服务常态化。"
    return values


def filled_form(definition: CampaignDefinition, notice: ReceivedNotice, unit: UnitRow, *, broken: bool = False) -> bytes:
    values = figures(definition, unit)
    if broken:
        # The mistakes units really make: a required figure left empty, a negative number.
        first_key = next(key for key, spec in definition.form.iter_cells() if spec.numeric)
        values[first_key] = None
        values["phone"] = "电话见上"
    return fill_reply_form(notice.form, definition.form, values)


def _reply_subject(notice: ReceivedNotice, prefix: str = "回复：") -> str:
    return f"{prefix}{notice.subject}"


def _threading(message, notice: ReceivedNotice) -> None:
    message["In-Reply-To"] = notice.message_id
    message["References"] = notice.message_id


def plain_reply(unit: UnitRow, office: str, notice: ReceivedNotice, form: bytes, when: datetime,
                body: str = "") -> bytes:
    """A modern client (Thunderbird, Apple Mail, 163 webmail): UTF-8, RFC 2231 file name."""
    message = EmailMessage()
    message["From"] = f"{unit.name} <{unit.email}>"
    message["To"] = office
    message["Subject"] = _reply_subject(notice)
    message["Date"] = format_datetime(when)
    message["Message-ID"] = make_msgid(domain=unit.email.split("@")[1])
    _threading(message, notice)
    message.set_content(body or f"您好！\n\n{unit.name}的回执表见附件，请查收。\n")
    message.add_attachment(form, maintype="application", subtype=XLSX_TYPE.split("/")[1],
                           filename=notice.form_name)
    return message.as_bytes()


def _client_reply(unit: UnitRow, office: str, notice: ReceivedNotice, when: datetime, *, charset: str,
                  prefix: str, mailer: str) -> MIMEMultipart:
    """The headers an older desktop client writes: encoded words in `charset`, its own X-Mailer."""
    root = MIMEMultipart("mixed")
    root["From"] = f"{Header(unit.name, charset).encode()} <{unit.email}>"
    root["To"] = office
    root["Subject"] = Header(_reply_subject(notice, prefix), charset).encode()
    root["Date"] = format_datetime(when)
    root["Message-ID"] = make_msgid(domain=unit.email.split("@")[1])
    root["X-Mailer"] = mailer
    _threading(root, notice)
    return root


def foxmail_reply(unit: UnitRow, office: str, notice: ReceivedNotice, form: bytes, when: datetime) -> bytes:
    """Foxmail 7 style: GB2312-labelled headers and an RFC 2047 word inside the quoted filename."""
    root = _client_reply(unit, office, notice, when, charset="gb18030", prefix="回复: ",
                         mailer="Foxmail 7.2.25.228[cn]")
    root.attach(MIMEText(f"税科长：\n  您好！我单位回执表已填好，请查收。\n{unit.name}", "plain", "gb18030"))
    part = MIMEApplication(form, XLSX_TYPE.split("/")[1])
    encoded_name = Header(notice.form_name, "gb18030").encode()
    part.add_header("Content-Disposition", "attachment", filename=encoded_name)
    part.set_param("name", encoded_name)
    root.attach(part)
    return root.as_bytes()


def outlook_tnef_reply(unit: UnitRow, office: str, notice: ReceivedNotice, form: bytes, when: datetime) -> bytes:
    """Outlook with rich text on: the form travels inside winmail.dat (application/ms-tnef)."""
    root = _client_reply(unit, office, notice, when, charset="utf-8", prefix="答复: ", mailer="Microsoft Outlook 16.0")
    body = f"您好，{unit.name}回执表见附件。"
    root.attach(MIMEText(body, "plain", "utf-8"))
    winmail = build_tnef([TnefFile(long_name=notice.form_name, data=form, mime_tag=XLSX_TYPE,
                                   short_name="FORM~1.XLS")], body=body)
    part = MIMEBase("application", "ms-tnef", name="winmail.dat")
    part.set_payload(winmail)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename="winmail.dat")
    root.attach(part)
    return root.as_bytes()


def personal_address(unit: UnitRow) -> str:
    return f"{unit.code.lower()}.staff@{PERSONAL_DOMAIN}"


def new_mail_from_another_mailbox(unit: UnitRow, office: str, notice: ReceivedNotice, form: bytes,
                                  when: datetime) -> bytes:
    """A staff member's personal mailbox, a fresh email with no token in the subject: only the
    token inside the form says which unit it is."""
    message = EmailMessage()
    message["From"] = personal_address(unit)
    message["To"] = office
    message["Subject"] = f"{unit.name}学雷锋活动统计表"
    message["Date"] = format_datetime(when)
    message["Message-ID"] = make_msgid(domain=PERSONAL_DOMAIN)
    message.set_content(f"文明办：\n我是{unit.name}的联络员，单位邮箱登不上，用个人邮箱报送，请见附件。\n")
    message.add_attachment(form, maintype="application", subtype=XLSX_TYPE.split("/")[1],
                           filename=f"{unit.name}统计表.xlsx")
    return message.as_bytes()


def forwarded_reply(unit: UnitRow, office: str, notice: ReceivedNotice, form: bytes, when: datetime) -> bytes:
    """The unit's reply went to a colleague first, who forwards it as an attachment."""
    inner = plain_reply(unit, f"colleague@{unit.email.split('@')[1]}", notice, form, when)
    message = EmailMessage()
    message["From"] = unit.leader_email
    message["To"] = office
    message["Subject"] = f"转发：{_reply_subject(notice)}"
    message["Date"] = format_datetime(when)
    message["Message-ID"] = make_msgid(domain=unit.leader_email.split("@")[1])
    message.set_content("转发我单位的回执，请查收。")
    message.add_attachment(inner, maintype="message", subtype="rfc822")
    return message.as_bytes()


def delivery_failure(unit: UnitRow, office: str, notice_message_id: str, when: datetime) -> bytes:
    """What the unit's mail server (Postfix) sends back when the mailbox does not exist (RFC 3464)."""
    domain = unit.email.split("@")[1]
    boundary = f"dsn.{unit.code}.boundary"
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@{domain}>\r\n"
        f"To: {office}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(when)}\r\n"
        f"Message-ID: {make_msgid(domain=domain)}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"This is the mail system at host mx.{domain}.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        f"<{unit.email}>: host mx.{domain} said: 550 5.1.1 User unknown\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.{domain}\r\n\r\n"
        f"Final-Recipient: rfc822; {unit.email}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"From: {office}\r\nTo: {unit.email}\r\nMessage-ID: {notice_message_id}\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode("ascii")
