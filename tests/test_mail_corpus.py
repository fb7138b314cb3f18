"""The inbound-mail corpus (tests/mailcorpus/) run through decoding, classification, matching,
attachment storage and big-file link detection, the way the collector calls them.

Each test names the message, then asserts what a person would check: the classification, the
unit and the key that matched, the decoded subject and file names, the stored bytes and paths, the
parsed values or the exact message for the unit."""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from mail.attachments import DEFAULT_LIMITS, AttachmentLimits, MiB, StoredAttachment, safe_extension, store_attachments
from mail.bigfile_links import BigFileLink, find_bigfile_links
from mail.classify import Classification, Kind, classify, harvestable_attachments
from mail.matching import MatchResult, match_bounce, match_reply
from mail.mime import ParsedMessage, parse_message
from mailcorpus import CorpusMessage, build_corpus
from mailcorpus.campaign import NOTICE_TITLE, OFFICE, PREFIX, UNITS, Signer, notice_message_id, unit_email
from mailcorpus.payloads import form_token
from models import tokens
from models.settings import reload_settings

REVIEW_DIR = "_review"


@pytest.fixture(scope="module")
def corpus_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOTICEFLOW_SECRET", "corpus-secret-for-tests")
        patch.setenv("NOTICEFLOW_OUTPUT_DIR", str(tmp_path_factory.mktemp("outputs")))
        reload_settings()
        yield Signer(tokens.sign), build_corpus(tokens.sign)
    reload_settings()


@pytest.fixture
def signer(corpus_env) -> Signer:
    return corpus_env[0]


@pytest.fixture
def corpus(corpus_env) -> dict[str, CorpusMessage]:
    return corpus_env[1]


# What the database answers in the real flow: our sent Message-IDs and the units' addresses.
SENT_MESSAGE_IDS = {notice_message_id(code, step): code for code in UNITS for step in ("issue", "gentle")}
ADDRESSES = {email: code for code, (_, email) in UNITS.items()}


@dataclass
class Outcome:
    parsed: ParsedMessage
    classification: Classification
    match: MatchResult
    stored: list[StoredAttachment]
    links: list[BigFileLink]


def collect(message: CorpusMessage, store_root: Path, *, limits: AttachmentLimits = DEFAULT_LIMITS) -> Outcome:
    """The collector's order: decode, classify (bounce first), match, store, look for links."""
    parsed = parse_message(message.raw)
    classification = classify(message.raw, parsed, own_addresses=[OFFICE])
    files = harvestable_attachments(parsed, classification)
    if classification.kind is Kind.bounce:
        match = match_bounce(classification, message_id_to_unit=SENT_MESSAGE_IDS.get, address_to_unit=ADDRESSES.get)
    else:
        # The form reader's part: the token cell of every workbook attached.
        found = [form_token(item.data) for item in files if safe_extension(item.data, item.original_name) == ".xlsx"]
        match = match_reply(parsed, form_tokens=found, token_prefix=PREFIX,
                            message_id_to_unit=SENT_MESSAGE_IDS.get, address_to_unit=ADDRESSES.get)
    unit_dir = match.unit_code or REVIEW_DIR
    stored = store_attachments(files, store_root, unit_dir, limits=limits)
    return Outcome(parsed, classification, match, stored, find_bigfile_links(parsed.text, parsed.html))


def assert_stored(outcome: Outcome, store_root: Path, unit_dir: str, expected: list[tuple[str, bytes, str]]) -> None:
    """Every file stored under <unit>/<seq>_<sha256[:12]><ext> with the exact bytes sent."""
    assert [(item.original_name, item.verdict) for item in outcome.stored] == [
        (name, "stored") for name, _, _ in expected]
    for seq, (item, (_, data, extension)) in enumerate(zip(outcome.stored, expected), start=1):
        digest = hashlib.sha256(data).hexdigest()
        assert item.stored_path == f"{unit_dir}/{seq:03d}_{digest[:12]}{extension}"
        assert (store_root / item.stored_path).read_bytes() == data
        assert item.sha256 == digest and item.size == len(data) and item.extension == extension


def keys(match: MatchResult) -> list[tuple[str, str]]:
    return [(candidate.key, candidate.unit_code) for candidate in match.candidates]


# --------------------------------------------------------------------------------------------
# The corpus itself


def test_corpus_has_at_least_30_messages_from_every_client_style(corpus):
    assert len(corpus) >= 30
    clients = " ".join(message.client for message in corpus.values())
    for style in ("Foxmail 7", "Outlook 16", "QQ Mail", "163", "Apple Mail", "Thunderbird", "WPS", "Postfix",
                  "Exchange", "Coremail", "Exim"):
        assert style in clients, style
    for message in corpus.values():
        assert message.raw.count(b"\r\n") > 3 and message.exercises


def test_tnef_stream_is_read_by_tnefparse_itself(corpus):
    """The hand-built winmail.dat is real TNEF: tnefparse reads its files and names."""
    import tnefparse

    parsed = parse_message(corpus["outlook_tnef"].raw)
    assert [item.original_name for item in parsed.attachments] == ["石化产业园区管委会回执表（堃）.xlsx", "活动总结.pdf"]
    from mail.mime import load_message
    winmail = [part for part in load_message(corpus["outlook_tnef"].raw).walk()
               if part.get_content_type() == "application/ms-tnef"][0].get_payload(decode=True)
    tnef = tnefparse.TNEF(winmail, do_checksum=True)
    assert [item.long_filename() for item in tnef.attachments] == ["石化产业园区管委会回执表（堃）.xlsx", "活动总结.pdf"]
    assert tnef.codepage == "cp936"


# --------------------------------------------------------------------------------------------
# Foxmail


def test_foxmail_gbk_characters_in_gb2312_labels(corpus, signer, tmp_path):
    message = corpus["foxmail_gbk_in_gb2312"]
    outcome = collect(message, tmp_path)
    assert outcome.classification.kind is Kind.reply
    assert outcome.parsed.subject == f"回复：【{signer.token('YQ01')}】{NOTICE_TITLE}（王堃报送）"
    assert (outcome.parsed.from_name, outcome.parsed.from_addr) == ("王堃", "wangkun@zc-park.example")
    assert outcome.parsed.to_addrs == [OFFICE]
    assert outcome.parsed.text == "税科长：\n您好！中川园区的回执表已填好，见附件。\n\n王堃\n2023-10-08"
    assert outcome.parsed.in_reply_to == notice_message_id("YQ01")
    assert outcome.parsed.headers["x-mailer"] == "Foxmail 7.2.25.228[cn]"
    assert outcome.parsed.date.isoformat() == "2023-10-08T10:35:27+08:00"
    assert (outcome.match.unit_code, outcome.match.key, outcome.match.needs_review) == ("YQ01", "form_token", False)
    assert keys(outcome.match) == [("form_token", "YQ01"), ("subject_token", "YQ01"), ("in_reply_to", "YQ01")]
    assert_stored(outcome, tmp_path, "YQ01", [("中川园区回执表（王堃）.xlsx", message.files[0][1], ".xlsx")])


def test_foxmail_words_split_through_characters(corpus, signer, tmp_path):
    message = corpus["foxmail_split_words"]
    outcome = collect(message, tmp_path)
    assert outcome.parsed.subject == f"答复：【{signer.token('YQ02')}】{NOTICE_TITLE}"
    assert outcome.match.unit_code == "YQ02" and outcome.match.key == "form_token"
    assert_stored(outcome, tmp_path, "YQ02", [
        ("秦川园区管委会学雷锋志愿服务活动开展情况统计表.xlsx", message.files[0][1], ".xlsx"),
        ("活动照片（1）.jpg", message.files[1][1], ".jpg"),
    ])


def test_foxmail_forged_token_goes_to_review(corpus, signer, tmp_path):
    outcome = collect(corpus["foxmail_forged_token"], tmp_path)
    forged = tokens.parse(outcome.parsed.subject)
    assert outcome.classification.kind is Kind.reply
    assert forged.unit_code == "GQ01" and str(forged) != signer.token("GQ01")
    assert outcome.match.unit_code is None and outcome.match.needs_review
    assert outcome.match.invalid_tokens == [str(forged)]
    assert outcome.match.reason_zh == f"编号 {forged} 校验不通过（可能被改动或伪造），请人工核对这封邮件属于哪个单位。"


def test_foxmail_read_receipt_is_automatic(corpus, tmp_path):
    outcome = collect(corpus["foxmail_read_receipt"], tmp_path)
    assert outcome.classification.kind is Kind.auto_reply
    assert outcome.classification.reason == "read receipt (MDN)"
    assert outcome.classification.bounced_addresses == []
    assert outcome.classification.original_message_ids == [notice_message_id("BM17")]
    assert outcome.stored == []


# --------------------------------------------------------------------------------------------
# Outlook 16


def test_outlook_rfc2231_continuations_in_gb2312(corpus, signer, tmp_path):
    message = corpus["outlook_rfc2231_continuations"]
    outcome = collect(message, tmp_path)
    assert outcome.parsed.subject == f"答复: 【{signer.token('YQ03')}】{NOTICE_TITLE}"
    assert outcome.parsed.from_name == "西岔园区管委会"
    assert outcome.parsed.text == "税科长：\n\n附件是我园区的回执表，请查收。\n\n西岔园区管委会 王堃"
    assert keys(outcome.match) == [("form_token", "YQ03"), ("subject_token", "YQ03"), ("in_reply_to", "YQ03"),
                                   ("sender", "YQ03")]
    assert (outcome.match.unit_code, outcome.match.key) == ("YQ03", "form_token")
    assert_stored(outcome, tmp_path, "YQ03",
                  [("西岔园区管委会学雷锋活动开展情况统计表（王堃填报）.xlsx", message.files[0][1], ".xlsx")])


def test_outlook_tnef_files_are_unpacked_byte_exact(corpus, tmp_path):
    message = corpus["outlook_tnef"]
    outcome = collect(message, tmp_path)
    assert [(item.original_name, item.from_tnef, item.content_type) for item in outcome.parsed.attachments] == [
        ("石化产业园区管委会回执表（堃）.xlsx", True, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("活动总结.pdf", True, "application/pdf"),
    ]
    workbook = message.files[0][1]
    assert workbook.endswith(b"\x00\x00")  # the bytes a naive TNEF read loses
    assert outcome.match.unit_code == "YQ04" and outcome.match.key == "form_token"
    assert_stored(outcome, tmp_path, "YQ04", [("石化产业园区管委会回执表（堃）.xlsx", workbook, ".xlsx"),
                                              ("活动总结.pdf", message.files[1][1], ".pdf")])


def test_outlook_forwarded_reply_inside_message_rfc822(corpus, signer, tmp_path):
    message = corpus["outlook_forward_rfc822"]
    outcome = collect(message, tmp_path)
    assert outcome.parsed.subject == "FW: 报送材料"
    assert [inner.subject for inner in outcome.parsed.forwarded] == [f"回复：【{signer.token('YQ05')}】{NOTICE_TITLE}"]
    assert [(item.original_name, item.from_forwarded) for item in outcome.parsed.attachments] == [
        ("绿色化工园区回执表.xlsx", True)]
    assert keys(outcome.match) == [("form_token", "YQ05"), ("subject_token", "YQ05"), ("in_reply_to", "YQ05")]
    assert outcome.match.unit_code == "YQ05"
    assert outcome.parsed.text == "税科长：\n单位邮箱收不到外网邮件，我把绿色化工园区的回复转给您。\n张三"
    assert_stored(outcome, tmp_path, "YQ05", [("绿色化工园区回执表.xlsx", message.files[0][1], ".xlsx")])


def test_outlook_out_of_office_is_not_a_submission(corpus, signer, tmp_path):
    outcome = collect(corpus["outlook_out_of_office"], tmp_path)
    assert outcome.classification.kind is Kind.auto_reply
    assert outcome.classification.reason == (
        f"auto-reply (subject '{outcome.parsed.subject}', X-Auto-Response-Suppress: All)")
    assert outcome.parsed.subject.startswith("自动答复: 【")
    assert outcome.match.unit_code == "YQ06"  # recorded against the unit, never answered


def test_outlook_reply_with_x_auto_response_suppress_stays_a_submission(corpus, tmp_path):
    message = corpus["outlook_exchange_list_reply"]
    outcome = collect(message, tmp_path)
    assert outcome.classification.kind is Kind.reply
    assert (outcome.match.unit_code, outcome.match.key) == ("SZ02", "form_token")
    assert_stored(outcome, tmp_path, "SZ02", [("回执表.xlsx", message.files[0][1], ".xlsx")])


def test_outlook_conflicting_keys_go_to_review(corpus, tmp_path):
    outcome = collect(corpus["outlook_conflicting_keys"], tmp_path)
    assert outcome.classification.kind is Kind.reply
    assert keys(outcome.match) == [("form_token", "YQ01"), ("subject_token", "YQ02")]
    assert outcome.match.unit_code is None and outcome.match.needs_review
    assert "回执表中的编号" in outcome.match.reason_zh and "→ YQ02" in outcome.match.reason_zh
    assert [item.stored_path.split("/")[0] for item in outcome.stored] == [REVIEW_DIR]  # kept for staff


# --------------------------------------------------------------------------------------------
# QQ Mail


def test_qq_html_only_body_becomes_text(corpus, signer, tmp_path):
    message = corpus["qq_html_only"]
    outcome = collect(message, tmp_path)
    parsed = outcome.parsed
    assert parsed.subject == f"回复：【{signer.token('YQ07')}】{NOTICE_TITLE}"
    assert (parsed.from_name, parsed.from_addr) == ("职教园区 李娜", "2948173650@qq.com")
    assert parsed.text.splitlines()[:5] == ["税科长：", "", "您好！职教园区回执表已填好，请查收。", "", "李娜&职教园区"]
    assert "alert(1)" not in parsed.text and "<div>" in parsed.html
    assert parsed.attachments[0].content_type == "application/octet-stream"
    assert outcome.match.unit_code == "YQ07" and outcome.match.key == "form_token"
    assert_stored(outcome, tmp_path, "YQ07", [("职教园区回执表.xlsx", message.files[0][1], ".xlsx")])


def test_qq_bigfile_links_flag_review_with_expiry(corpus, tmp_path):
    outcome = collect(corpus["qq_bigfile"], tmp_path)
    assert outcome.classification.kind is Kind.reply and outcome.match.unit_code == "YQ08"
    assert outcome.parsed.attachments == [] and outcome.stored == []
    assert [(link.provider, link.name, link.expires) for link in outcome.links] == [
        ("qq", "活动照片合集.zip", "2023-10-20T10:00"),
        ("qq", "志愿服务视频.mp4", "2023-11-02T08:30"),
    ]
    assert outcome.links[0].url == ("https://wx.mail.qq.com/ftn/download?func=3&k=8d3c1b2a4e5f60718293a4b5c6d7e8f9"
                                    "&key=8d3c1b2a4e5f60718293a4b5c6d7e8f9&fweb=1&cl=1")


def test_qq_forward_with_base64_encoded_rfc822(corpus, tmp_path):
    message = corpus["qq_forward_base64_rfc822"]
    outcome = collect(message, tmp_path)
    assert outcome.parsed.text == "转发单位回复，请查收。"
    assert [(item.original_name, item.from_forwarded) for item in outcome.parsed.attachments] == [
        ("绿色化工园区回执表.xlsx", True)]
    assert outcome.match.unit_code == "SZ01"
    assert_stored(outcome, tmp_path, "SZ01", [("绿色化工园区回执表.xlsx", message.files[0][1], ".xlsx")])


def test_qq_auto_reply_by_subject(corpus, tmp_path):
    outcome = collect(corpus["qq_auto_reply"], tmp_path)
    assert outcome.classification.kind is Kind.auto_reply
    assert outcome.classification.reason.startswith("auto-reply (subject '自动回复: 【XQ9-YQ10-")


def test_qq_bounce_text_fallback(corpus, tmp_path):
    outcome = collect(corpus["qq_bounce"], tmp_path)
    classification = outcome.classification
    assert outcome.parsed.subject == "来自qq.com的退信"
    assert classification.kind is Kind.bounce
    assert classification.bounced_addresses == [unit_email("YQ09")]
    assert classification.original_message_ids == [notice_message_id("YQ09")]
    assert classification.bounce_status == "550"
    assert "收件人邮箱地址不存在，请确认邮箱地址是否正确。" in classification.bounce_text
    assert "(550 Mailbox not found or access denied)" in classification.bounce_text
    assert (outcome.match.unit_code, outcome.match.key) == ("YQ09", "original_message_id")
    # Our own blank form comes back inside the bounce: parsed, but never harvested.
    assert [item.from_forwarded for item in outcome.parsed.attachments] == [True]
    assert outcome.stored == [] and not any(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# 163 / Coremail


def test_netease_raw_utf8_headers(corpus, signer, tmp_path):
    message = corpus["netease_raw8bit_utf8"]
    outcome = collect(message, tmp_path)
    assert outcome.parsed.subject == f"Re:【{signer.token('BM01')}】{NOTICE_TITLE}"
    assert (outcome.parsed.from_name, outcome.parsed.from_addr) == ("党群工作部 刘洋", "liuyang_dq@163.com")
    assert outcome.match.unit_code == "BM01"
    assert_stored(outcome, tmp_path, "BM01", [("党群工作部回执表.xlsx", message.files[0][1], ".xlsx")])


def test_netease_raw_gbk_headers(corpus, signer, tmp_path):
    message = corpus["netease_raw8bit_gbk"]
    outcome = collect(message, tmp_path)
    assert outcome.parsed.subject == f"回复：【{signer.token('BM02')}】{NOTICE_TITLE}"
    assert outcome.parsed.from_name == "经济发展局 孙堃"
    assert outcome.parsed.text == "回执表见附件，请查收。"
    assert_stored(outcome, tmp_path, "BM02", [("经济发展局回执表（堃）.xlsx", message.files[0][1], ".xlsx")])


def test_netease_bigfile_links_beside_a_real_attachment(corpus, tmp_path):
    message = corpus["netease_bigfile_with_form"]
    outcome = collect(message, tmp_path)
    assert outcome.match.unit_code == "BM03"
    assert_stored(outcome, tmp_path, "BM03", [("财政局回执表.xlsx", message.files[0][1], ".xlsx")])
    assert [(link.provider, link.name, link.expires, link.expiry_text) for link in outcome.links] == [
        ("163", "财政局活动照片.rar", "2023-10-25T13:35", "2023年10月25日 13:35 到期"),
        ("163", "志愿服务纪实.mp4", "2023-10-26T09:00", "2023年10月26日 09:00 到期"),
    ]
    assert outcome.links[0].url == ("https://mail.163.com/large-attachment-download/index.html"
                                    "?p=X-NETEASE-HUGE-ATTACHMENT&file=Sy2W9lTU-photos&title=x")


def test_netease_x_autoreply_header(corpus, tmp_path):
    outcome = collect(corpus["netease_x_autoreply"], tmp_path)
    assert outcome.classification.kind is Kind.auto_reply
    assert outcome.classification.reason == "auto-reply (x-autoreply: yes)"
    assert outcome.parsed.text == "您好，您的来信已收到，我会尽快处理。"


def test_coremail_system_bounce_with_headers_only(corpus, tmp_path):
    outcome = collect(corpus["coremail_bounce"], tmp_path)
    classification = outcome.classification
    assert outcome.parsed.subject == "系统退信"
    assert classification.kind is Kind.bounce
    assert classification.bounced_addresses == [unit_email("BM04")]
    assert classification.original_message_ids == [notice_message_id("BM04")]
    assert classification.bounce_status == "550"
    assert classification.bounce_text == ("您发送的邮件被退回。\n退信原因：对方服务器拒收 550 User not found: "
                                          "bm04@units.xinqu.example")
    assert outcome.parsed.attachments == [] and outcome.match.unit_code == "BM04"


def test_netease_no_keys_is_kept_for_review(corpus, tmp_path):
    outcome = collect(corpus["netease_no_keys"], tmp_path)
    assert outcome.classification.kind is Kind.reply
    assert outcome.match.candidates == [] and outcome.match.needs_review and outcome.match.unit_code is None
    assert outcome.match.reason_zh == "无法判断这封邮件来自哪个单位（没有有效编号，发件地址也不在名单中），请人工归属。"


# --------------------------------------------------------------------------------------------
# Apple Mail


def test_applemail_rfc2231_nfd_and_split_body(corpus, signer, tmp_path):
    message = corpus["applemail_rfc2231_split_body"]
    outcome = collect(message, tmp_path)
    assert outcome.parsed.subject == f"Re: 【{signer.token('BM06')}】{NOTICE_TITLE}"
    assert outcome.parsed.text == "您好：\n\n回执表和活动总结见附件。\n\n陈静\n教育文化体育局"
    summary_name = outcome.stored[1].original_name
    assert summary_name == "Résumé 活动总结（定稿）第二版最终版本.pdf"
    assert unicodedata.is_normalized("NFC", summary_name)
    assert outcome.match.unit_code == "BM06"
    assert_stored(outcome, tmp_path, "BM06", [
        ("教育文化体育局学雷锋志愿服务活动统计表.xlsx", message.files[0][1], ".xlsx"),
        ("Résumé 活动总结（定稿）第二版最终版本.pdf", message.files[1][1], ".pdf"),
    ])


def test_applemail_inline_photo_kept_logo_skipped_sender_match(corpus, tmp_path):
    message = corpus["applemail_inline_images"]
    outcome = collect(message, tmp_path)
    assert (outcome.match.unit_code, outcome.match.key, outcome.match.needs_review) == ("BM07", "sender", False)
    assert "可信度较低" in outcome.match.reason_zh
    assert outcome.parsed.text == "您好，这是我委活动现场照片：\n卫生健康委员会"
    assert_stored(outcome, tmp_path, "BM07", [("活动现场.png", message.files[0][1], ".png")])


# --------------------------------------------------------------------------------------------
# Thunderbird


def test_thunderbird_matched_by_references(corpus, tmp_path):
    message = corpus["thunderbird_references"]
    outcome = collect(message, tmp_path)
    assert outcome.parsed.subject == f"Re: {NOTICE_TITLE}"
    assert outcome.parsed.references == ["<unrelated.4411@lists.example>", notice_message_id("BM08"),
                                         notice_message_id("BM08", "gentle")]
    assert (outcome.match.unit_code, outcome.match.key) == ("BM08", "in_reply_to")
    assert outcome.match.candidates[0].detail == notice_message_id("BM08", "gentle")
    assert outcome.parsed.text == "您好，\n\n我局的活动总结见附件，回执表稍后补报。\n\n-- \n社会事务管理局"
    assert_stored(outcome, tmp_path, "BM08", [("社会事务管理局活动总结.docx", message.files[0][1], ".docx")])


def test_thunderbird_form_token_only_from_private_mailbox(corpus, tmp_path):
    message = corpus["thunderbird_form_token_only"]
    outcome = collect(message, tmp_path)
    assert keys(outcome.match) == [("form_token", "BM09")]
    assert outcome.match.unit_code == "BM09"
    assert_stored(outcome, tmp_path, "BM09", [(
        "城乡建设和交通管理局“践行二十大·志愿我先行”学雷锋志愿服务主题实践活动开展情况统计表.xlsx",
        message.files[0][1], ".xlsx")])


def test_thunderbird_other_campaign_token_is_not_ours(corpus, signer, tmp_path):
    outcome = collect(corpus["thunderbird_other_campaign"], tmp_path)
    assert outcome.classification.kind is Kind.reply
    assert outcome.match.other_campaign_tokens == [signer.token("YQ03", prefix="XQ8")]
    # The sender is a unit of ours, but it answered the other notice: no match, no review here.
    assert outcome.match.unit_code is None and not outcome.match.needs_review
    assert outcome.match.reason_zh == f"邮件中的编号 {signer.token('YQ03', prefix='XQ8')} 属于另一项通知，本通知不处理。"


# --------------------------------------------------------------------------------------------
# WPS


def test_wps_name_only_and_fullwidth_token(corpus, tmp_path):
    message = corpus["wps_name_only_fullwidth"]
    outcome = collect(message, tmp_path)
    assert keys(outcome.match) == [("form_token", "BM10"), ("subject_token", "BM10"), ("sender", "BM10")]
    assert_stored(outcome, tmp_path, "BM10", [("农林水务局回执表.xlsx", message.files[0][1], ".xlsx")])


def test_wps_legacy_xls_refused_with_instructions(corpus, tmp_path):
    outcome = collect(corpus["wps_legacy_xls"], tmp_path)
    assert outcome.match.unit_code == "BM11" and outcome.match.key == "subject_token"
    [item] = outcome.stored
    assert (item.verdict, item.sniffed_type, item.stored_path) == ("unsafe_legacy_office", "application/vnd.ms-excel", "")
    assert item.message_zh == ("附件“商务和投资合作局回执表.xls”是旧版 Office 格式（.xls），无法读取，未接收。"
                               "请另存为 .xlsx（表格）或 .docx（文档）后重新发送。")
    assert not (tmp_path / "BM11").exists()


# --------------------------------------------------------------------------------------------
# Bounces from MTAs


def test_postfix_dsn(corpus, tmp_path):
    outcome = collect(corpus["postfix_dsn"], tmp_path)
    classification = outcome.classification
    assert classification.kind is Kind.bounce  # although it also says Auto-Submitted
    assert classification.bounced_addresses == [unit_email("BM12")]
    assert classification.original_message_ids == [notice_message_id("BM12")]
    assert classification.bounce_status == "5.1.1"
    assert classification.bounce_text == ("550 5.1.1 <bm12@units.xinqu.example>: Recipient address rejected: "
                                          "User unknown in virtual mailbox table")
    assert outcome.parsed.attachments == []  # the returned notice and its blank form are not walked
    assert (outcome.match.unit_code, outcome.match.key) == ("BM12", "original_message_id")
    assert keys(outcome.match) == [("original_message_id", "BM12"), ("final_recipient", "BM12")]


def test_postfix_delay_is_not_a_bounce(corpus, tmp_path):
    outcome = collect(corpus["postfix_delayed"], tmp_path)
    classification = outcome.classification
    assert classification.kind is Kind.auto_reply
    assert classification.reason == "delivery status notification: delivery delayed, not failed"
    assert classification.bounced_addresses == [] and classification.bounce_status == "4.4.1"
    assert classification.original_message_ids == [notice_message_id("BM13")]


def test_exchange_ndr(corpus, tmp_path):
    outcome = collect(corpus["exchange_ndr"], tmp_path)
    classification = outcome.classification
    assert classification.kind is Kind.bounce
    assert classification.bounced_addresses == [unit_email("BM14")]
    assert classification.bounce_status == "5.1.10"
    assert classification.bounce_text == ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
                                          "address lookup")
    assert outcome.match.unit_code == "BM14" and outcome.parsed.attachments == []


def test_exim_bounce_without_dsn(corpus, tmp_path):
    outcome = collect(corpus["exim_bounce"], tmp_path)
    classification = outcome.classification
    assert classification.kind is Kind.bounce
    assert classification.bounced_addresses == [unit_email("BM15")]
    assert classification.original_message_ids == [notice_message_id("BM15")]
    assert "550 No such user here" in classification.bounce_text
    assert outcome.match.unit_code == "BM15" and outcome.stored == []


# --------------------------------------------------------------------------------------------
# Other automatic messages


def test_vacation_by_precedence_header(corpus, tmp_path):
    outcome = collect(corpus["vacation_precedence"], tmp_path)
    assert (outcome.classification.kind, outcome.classification.reason) == (
        Kind.auto_reply, "auto-reply (Precedence: auto_reply)")


def test_auto_submitted_header(corpus, tmp_path):
    outcome = collect(corpus["sieve_auto_submitted"], tmp_path)
    assert (outcome.classification.kind, outcome.classification.reason) == (
        Kind.auto_reply, "auto-reply (Auto-Submitted: auto-replied (vacation))")


def test_mail_system_notice_is_unknown(corpus, tmp_path):
    outcome = collect(corpus["system_quota_notice"], tmp_path)
    assert outcome.classification.kind is Kind.unknown
    assert outcome.classification.reason_zh == "这是邮件系统发来的通知（不是退信，也不是单位回复），请人工查看。"


# --------------------------------------------------------------------------------------------
# Hostile


def test_hostile_names_never_choose_the_path(corpus, tmp_path):
    message = corpus["hostile_names"]
    outcome = collect(message, tmp_path)
    assert outcome.match.unit_code == "GQ02"
    decoded = [item.original_name for item in outcome.parsed.attachments]
    assert decoded == [name for name, _ in message.files]  # decoded faithfully, NUL and RLO included
    verdicts = [(item.original_name, item.verdict, item.extension) for item in outcome.stored]
    assert verdicts == [
        ("../../etc/cron.d/x", "stored", ".txt"),
        ("/etc/passwd", "stored", ".txt"),
        ("C:\\Windows\\System32\\evil.dll", "unsafe_executable", ".bin"),
        ("回执表.xlsx<U+0000>.exe", "stored", ".xlsx"),
        ("回执表<U+202E>xcod.exe", "unsafe_executable", ".bin"),
        ("CON.xlsx", "stored", ".xlsx"),
        ("a" * 254 + "…", "stored", ".xlsx"),
    ]
    written = sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if path.is_file())
    expected = sorted(item.stored_path for item in outcome.stored if item.verdict == "stored")
    assert written == expected
    for path in written:
        assert path.startswith("GQ02/") and len(path.split("/")[1]) <= len("001_") + 12 + len(".xlsx")
    for item in outcome.stored:
        if item.verdict == "stored":
            data = dict(message.files)[outcome.parsed.attachments[item.seq - 1].original_name]
            assert (tmp_path / item.stored_path).read_bytes() == data


def test_hostile_contents_recognised_by_content(corpus, tmp_path):
    outcome = collect(corpus["hostile_contents"], tmp_path)
    assert [(item.original_name, item.verdict, item.extension) for item in outcome.stored] == [
        ("回执表.xlsx", "unsafe_macro", ".bin"),
        ("回执表（加密）.xlsx", "unsafe_encrypted", ".bin"),
        ("照片.jpg", "unsafe_executable", ".bin"),
        ("说明.pdf", "stored", ".docx"),
        ("数据.csv", "stored", ".csv"),
        ("页面.html", "stored", ".txt"),
    ]
    assert outcome.stored[0].message_zh == ("附件“回执表.xlsx”是含宏的文件，出于安全原因未接收。"
                                            "请在 Excel 或 WPS 中“另存为”不含宏的 .xlsx 格式后重新发送。")
    assert outcome.stored[1].message_zh == "附件“回执表（加密）.xlsx”设置了打开密码，无法读取，未接收。请取消密码后重新发送。"
    # The macro workbook carries a genuine token, but its form is never read: the subject matched.
    assert outcome.match.unit_code == "GQ03"


def test_hostile_sizes(corpus, tmp_path):
    limits = AttachmentLimits(max_attachment_bytes=1 * MiB, max_message_bytes=int(1.2 * MiB))
    outcome = collect(corpus["hostile_oversize"], tmp_path, limits=limits)
    assert [(item.original_name, item.verdict) for item in outcome.stored] == [
        ("大文件.pdf", "refused_size"), ("照片1.pdf", "stored"), ("照片2.pdf", "refused_size"), ("空文件.pdf", "refused_size")]
    assert [item.message_zh for item in outcome.stored if item.verdict != "stored"] == [
        "附件“大文件.pdf”大小为 1.2 MB，超过单个附件 1.0 MB 的上限，未接收。请压缩后重新发送，或改用超大附件。",
        "本封邮件的附件合计超过 1.2 MB，附件“照片2.pdf”未接收。请分成几封邮件发送。",
        "附件“空文件.pdf”是空文件（0 字节），未接收。请检查文件后重新发送。",
    ]
    assert [path.name for path in (tmp_path / "GQ04").iterdir()] == [outcome.stored[1].stored_path.split("/")[1]]


def test_hostile_deep_nesting_is_survived(corpus, signer, tmp_path):
    outcome = collect(corpus["hostile_deep_nesting"], tmp_path)
    assert outcome.parsed.subject == f"回复：【{signer.token('GQ05')}】{NOTICE_TITLE}"
    assert outcome.parsed.defects == ["MIME structure too deep for the parser; only the headers were read"]
    assert outcome.parsed.attachments == [] and outcome.parsed.text == ""
    assert outcome.classification.kind is Kind.reply and outcome.match.unit_code == "GQ05"
