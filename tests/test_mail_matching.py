"""Matching decisions one key at a time: which key wins, when keys disagree, foreign and forged
tokens, bounces."""
from __future__ import annotations

from dataclasses import replace

import pytest

from mail.classify import Classification, Kind
from mail.matching import match_bounce, match_reply
from mail.mime import ParsedMessage
from models import tokens

THREAD = {"<notice.XQ9.YQ01.issue@wenmingban.example>": "YQ01", "<notice.XQ9.YQ02.issue@wenmingban.example>": "YQ02"}
ADDRESSES = {"yq01@units.example": "YQ01", "yq02@units.example": "YQ02"}


def message(subject: str = "", *, sender: str = "someone@else.example", in_reply_to: str = "",
            references: list[str] | None = None, forwarded: list[ParsedMessage] | None = None) -> ParsedMessage:
    return ParsedMessage("<m@x>", subject, sender, "", [], in_reply_to, references or [], None, "", "", [], {},
                         forwarded=forwarded or [])


def match(parsed: ParsedMessage, form_tokens=()):
    return match_reply(parsed, form_tokens=list(form_tokens), token_prefix="xq9",
                       message_id_to_unit=THREAD.get, address_to_unit=ADDRESSES.get)


@pytest.fixture
def tok(nf_env):
    return lambda unit, prefix="XQ9": str(tokens.sign(prefix, unit))


def test_form_token_beats_the_others_and_all_are_recorded(tok):
    result = match(message(f"Re:【{tok('YQ01')}】", sender="yq01@units.example",
                           in_reply_to="<notice.XQ9.YQ01.issue@wenmingban.example>"), [f"识别码：{tok('YQ01')}"])
    assert (result.unit_code, result.key, result.needs_review) == ("YQ01", "form_token", False)
    assert [c.key for c in result.candidates] == ["form_token", "subject_token", "in_reply_to", "sender"]


def test_token_survives_prefixes_and_full_width(tok):
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in tok("YQ02"))
    result = match(message(f"回复：答复: 转发：Fw: Re:【{full_width}】通知"))
    assert (result.unit_code, result.key) == ("YQ02", "subject_token")


def test_sender_that_disagrees_with_a_token_goes_to_review(tok):
    result = match(message(f"【{tok('YQ01')}】", sender="yq02@units.example"))
    assert result.unit_code is None and result.needs_review
    assert [(c.key, c.unit_code) for c in result.candidates] == [("subject_token", "YQ01"), ("sender", "YQ02")]


def test_thread_that_disagrees_goes_to_review(tok):
    result = match(message(f"【{tok('YQ01')}】", in_reply_to="<notice.XQ9.YQ02.issue@wenmingban.example>"))
    assert result.needs_review and result.unit_code is None


def test_references_naming_two_units_go_to_review():
    result = match(message("Re: 通知", references=list(THREAD)))
    assert result.needs_review and [c.unit_code for c in result.candidates] == ["YQ01", "YQ02"]


def test_unknown_sender_is_fine_when_a_strong_key_matches(tok):
    result = match(message("新邮件", sender="private@qq.example"), [tok("YQ02")])
    assert (result.unit_code, result.key, result.needs_review) == ("YQ02", "form_token", False)


def test_sender_only(tok):
    result = match(message("材料", sender="yq01@units.example"))
    assert (result.unit_code, result.key, result.needs_review) == ("YQ01", "sender", False)


def test_forged_token_wins_over_everything_else(tok):
    forged = tok("YQ01")[:-1] + ("Z" if not tok("YQ01").endswith("Z") else "Y")
    result = match(message(f"【{forged}】", sender="yq01@units.example"), [tok("YQ01")])
    assert result.needs_review and result.unit_code is None and result.invalid_tokens == [forged]


def test_token_shaped_noise_of_another_prefix_is_ignored():
    result = match(message("关于 ISO-9001-REPORT 的回复", sender="yq01@units.example"))
    assert (result.unit_code, result.key, result.other_campaign_tokens) == ("YQ01", "sender", [])


def test_other_campaign_token_blocks_a_sender_only_match(tok):
    result = match(message(f"【{tok('YQ01', 'XQ8')}】", sender="yq01@units.example"))
    assert (result.unit_code, result.needs_review) == (None, False)
    assert result.other_campaign_tokens == [tok("YQ01", "XQ8")]


def test_other_campaign_token_is_ignored_beside_our_own(tok):
    result = match(message(f"【{tok('YQ01')}】 另附【{tok('YQ02', 'XQ8')}】"))
    assert (result.unit_code, result.key) == ("YQ01", "subject_token")


def test_forwarded_message_keys_count(tok):
    inner = message(f"回复：【{tok('YQ02')}】", in_reply_to="<notice.XQ9.YQ02.issue@wenmingban.example>")
    result = match(message("FW: 材料", forwarded=[inner]))
    assert [(c.key, c.unit_code) for c in result.candidates] == [("subject_token", "YQ02"), ("in_reply_to", "YQ02")]


def test_nothing_at_all():
    result = match(message("你好"))
    assert result.needs_review and result.candidates == [] and result.unit_code is None


def bounce(**fields) -> Classification:
    return replace(Classification(Kind.bounce, "test"), **fields)


def test_bounce_by_message_id_and_address():
    result = match_bounce(bounce(original_message_ids=["<notice.XQ9.YQ01.issue@wenmingban.example>"],
                                 bounced_addresses=["yq01@units.example"]),
                          message_id_to_unit=THREAD.get, address_to_unit=ADDRESSES.get)
    assert (result.unit_code, result.key) == ("YQ01", "original_message_id")


def test_bounce_by_address_only_and_conflicting_bounce():
    only = match_bounce(bounce(bounced_addresses=["yq02@units.example"]),
                        message_id_to_unit=THREAD.get, address_to_unit=ADDRESSES.get)
    assert (only.unit_code, only.key) == ("YQ02", "final_recipient")
    conflict = match_bounce(bounce(original_message_ids=["<notice.XQ9.YQ01.issue@wenmingban.example>"],
                                   bounced_addresses=["yq02@units.example"]),
                            message_id_to_unit=THREAD.get, address_to_unit=ADDRESSES.get)
    assert conflict.needs_review and conflict.unit_code is None
    unknown = match_bounce(bounce(bounced_addresses=["nobody@else.example"]),
                           message_id_to_unit=THREAD.get, address_to_unit=ADDRESSES.get)
    assert unknown.needs_review and unknown.candidates == []
