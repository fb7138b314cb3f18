"""A corpus of inbound mail built by code, in the styles of the clients units really use.

`build_corpus(sign)` returns every message by name; `sign` is models.tokens.sign (tokens depend on
NOTICEFLOW_SECRET, so build the corpus after setting it).
"""
from __future__ import annotations

from typing import Callable

from . import applemail, autoreplies, bounces, foxmail, hostile, netease, outlook, qqmail, thunderbird, wps
from .base import CorpusMessage
from .campaign import Signer


def build_corpus(sign: Callable[[str, str], object]) -> dict[str, CorpusMessage]:
    signer = Signer(sign)
    inner, inner_files = qqmail.reply_for_forward(signer)
    messages = [
        foxmail.gbk_in_gb2312(signer),
        foxmail.split_words(signer),
        foxmail.forged_token(signer),
        outlook.rfc2231_continuations(signer),
        outlook.tnef_winmail(signer),
        outlook.forward_as_attachment(signer, inner, inner_files),
        outlook.out_of_office(signer),
        outlook.conflicting_keys(signer),
        outlook.exchange_list_reply(signer),
        qqmail.html_only(signer),
        qqmail.bigfile(signer),
        qqmail.forward_base64(signer),
        qqmail.auto_reply(signer),
        qqmail.bounce(signer),
        netease.raw_utf8(signer),
        netease.raw_gbk(signer),
        netease.bigfile_with_form(signer),
        netease.x_autoreply(signer),
        netease.coremail_bounce(signer),
        netease.no_keys(signer),
        applemail.rfc2231_split_body(signer),
        applemail.inline_images(signer),
        thunderbird.references_only(signer),
        thunderbird.form_token_only(signer),
        thunderbird.other_campaign(signer),
        wps.name_only_fullwidth(signer),
        wps.legacy_xls(signer),
        bounces.postfix_failed(signer),
        bounces.postfix_delayed(signer),
        bounces.exchange_ndr(signer),
        bounces.exim_failed(signer),
        autoreplies.precedence_only(signer),
        autoreplies.auto_submitted(signer),
        autoreplies.read_receipt(signer),
        autoreplies.system_notice(signer),
        hostile.names(signer),
        hostile.contents(signer),
        hostile.oversize(signer),
        hostile.deep_nesting(signer),
    ]
    corpus = {item.name: item for item in messages}
    assert len(corpus) == len(messages), "corpus names must be unique"
    return corpus


__all__ = ["CorpusMessage", "build_corpus"]
