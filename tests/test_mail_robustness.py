"""Damaged mail never stops the collector: every corpus message, truncated, with bytes flipped or
MIME syntax inserted, still decodes, classifies and yields its links without raising."""
from __future__ import annotations

import random

import pytest

from mail.bigfile_links import find_bigfile_links
from mail.classify import Classification, classify
from mail.mime import ParsedMessage, parse_message
from mailcorpus import build_corpus
from models import tokens

SYNTAX = [b"=?gb2312?B?", b'"', b";", b"\r\n", b"--", b"*0*=", b"%", b"\x00", b"=?utf-8?Q?=E5", b"\r\n\r\n"]
MUTATIONS_PER_MESSAGE = 12


def mutations(raw: bytes, seed: int):
    rng = random.Random(seed)
    for round_ in range(MUTATIONS_PER_MESSAGE):
        data = bytearray(raw)
        if round_ % 3 == 0:
            data = data[: rng.randrange(len(data))]
        elif round_ % 3 == 1:
            for _ in range(20):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            position = rng.randrange(len(data))
            data[position:position] = rng.choice(SYNTAX)
        yield bytes(data)


def test_damaged_messages_are_still_processed(nf_env):
    corpus = build_corpus(tokens.sign)
    checked = 0
    for seed, (name, message) in enumerate(sorted(corpus.items())):
        if name == "hostile_deep_nesting":
            continue  # its own test; each parse of it costs a deep recursion
        for raw in mutations(message.raw, seed):
            parsed = parse_message(raw)
            assert isinstance(parsed, ParsedMessage)
            assert isinstance(classify(raw, parsed), Classification)
            find_bigfile_links(parsed.text, parsed.html)
            checked += 1
    assert checked == (len(corpus) - 1) * MUTATIONS_PER_MESSAGE


@pytest.mark.parametrize("raw", [b"", b"\r\n", b"garbage without headers", b"Subject: =?\r\n\r\n",
                                 b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n"])
def test_degenerate_input(raw, nf_env):
    parsed = parse_message(raw)
    assert classify(raw, parsed).kind.value in ("reply", "unknown")
