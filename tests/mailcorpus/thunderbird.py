"""Thunderbird 115: RFC 2231 UTF-8 names, format=flowed text, long References chains."""
from __future__ import annotations

from . import payloads
from .base import CorpusMessage
from .campaign import NOTICE_TITLE, OFFICE, OTHER_PREFIX, Signer, notice_message_id, unit_email, unit_name
from .mimebuild import encoded_word, file_part, message, multipart, rfc2231, text_part

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.3.1"


def _headers(sender: str, subject: str, message_id: str, *, in_reply_to: str | None = None,
             references: str | None = None) -> list:
    headers = [("Message-ID", message_id), ("Date", "Tue, 10 Oct 2023 11:02:33 +0800"), ("MIME-Version", "1.0"),
               ("User-Agent", USER_AGENT)]
    if references:
        headers.append(("References", references))
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    return headers + [("Content-Language", "zh-CN"), ("To", OFFICE), ("From", sender), ("Subject", subject)]


def _flowed(text: str):
    part = text_part(text, transfer="8bit")
    part.headers[0] = ("Content-Type", "text/plain; charset=UTF-8; format=flowed")
    return part


def references_only(signer: Signer) -> CorpusMessage:
    unit = "BM08"
    name = "社会事务管理局活动总结.docx"
    summary = payloads.word_document("社会事务管理局学雷锋活动总结")
    reminder = notice_message_id(unit, step="gentle")
    references = f"<unrelated.4411@lists.example>\r\n {notice_message_id(unit)}\r\n {reminder}"
    body = multipart("mixed", [
        _flowed("您好，\n\n我局的活动总结见附件，回执表稍后补报。\n\n-- \n社会事务管理局\n"),
        file_part(summary, f'{DOCX};\r\n name="{encoded_word(name)}"',
                  disposition="attachment;\r\n " + rfc2231("filename", name)),
    ], "------------0aBcDeFgHiJkLmNoPqRsTuV1")
    raw = message(_headers(f"{encoded_word('社会事务管理局')} <{unit_email(unit)}>",
                           encoded_word(f"Re: {NOTICE_TITLE}"),  # the token was deleted from the subject
                           "<7d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6@units.xinqu.example>",
                           in_reply_to=reminder, references=references), body)
    return CorpusMessage("thunderbird_references", "Thunderbird 115", "no token anywhere: matched by "
                         "In-Reply-To/References against our Message-IDs", raw, [(name, summary)])


def form_token_only(signer: Signer) -> CorpusMessage:
    unit = "BM09"
    name = "城乡建设和交通管理局“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动开展情况统计表.xlsx"
    form = payloads.reply_form(signer.token(unit), unit_name(unit))
    fold = ";\r\n "
    body = multipart("mixed", [
        _flowed("税科长您好，单位邮箱登不上，用个人邮箱发送回执表。\n王芳\n"),
        file_part(form, f"{XLSX}{fold}" + rfc2231("name", name, chunk=40, separator=fold),
                  disposition="attachment" + fold + rfc2231("filename", name, chunk=40, separator=fold)),
    ], "------------0aBcDeFgHiJkLmNoPqRsTuV2")
    raw = message(_headers(f"{encoded_word('王芳')} <wangfang@private.example>",
                           encoded_word("城乡建设和交通管理局学雷锋活动统计表"),
                           "<1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f7@private.example>"), body)
    return CorpusMessage("thunderbird_form_token_only", "Thunderbird 115", "a new mail from a private mailbox: "
                         "only the token inside the form names the unit; 40-byte RFC 2231 continuations", raw,
                         [(name, form)])


def other_campaign(signer: Signer) -> CorpusMessage:
    unit = "YQ03"
    token = signer.token(unit, prefix=OTHER_PREFIX)
    raw = message(_headers(f"{encoded_word('西岔园区管委会')} <{unit_email(unit)}>",
                           encoded_word(f"Re: 【{token}】关于报送2022年度志愿服务统计数据的通知"),
                           "<othercampaign.1@units.xinqu.example>"),
                  _flowed("补报去年的统计数据，见正文：共开展活动12场。\n"))
    return CorpusMessage("thunderbird_other_campaign", "Thunderbird 115", "a verified token of another campaign "
                         "(XQ8): not ours, and the sender address must not claim it", raw)
